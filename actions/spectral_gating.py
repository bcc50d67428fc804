"""Spectral gating (noisereduce's algorithm on our float32 STFT), stationary or non-stationary.

noisereduce itself is not called: its numpy path runs scipy's float64 STFT one channel at a time
(too slow for 50x real time on one core), learns its stationary threshold from the whole clip and
dims the mask at the clip edges when it smooths it (zero padding). The same gate here runs on
:mod:`avagent.dsp` for all channels at once, pads the mask by edge values before smoothing,
caps the stationary threshold by the model noise floor of :func:`avagent.dsp.noise_psd` (which is
zero where no stationary floor exists: clean music is left alone) and limits the attenuation to
``floor_db``.
"""

from __future__ import annotations

import logging

import numpy as np
from pydantic import Field
from scipy.ndimage import convolve1d
from scipy.signal import filtfilt

from avagent.actions.base import ActionParams
from avagent.dsp import fft_size, from_rows, istft, noise_psd, power, stft, to_rows

logger = logging.getLogger(__name__)


class SpectralGatingParams(ActionParams):
    """Parameters of :func:`spectral_gating`."""

    stationary: bool = Field(
        True,
        description="True: one threshold per frequency from the whole clip (hiss, fan); "
        "False: a threshold that follows the noise over time_constant_s (wind, crowd, traffic).",
    )
    prop_decrease: float = Field(
        1.0, ge=0.0, le=1.0, description="How much of the gated noise to remove (1.0 = all)."
    )
    n_std_thresh: float = Field(
        1.5, ge=0.0, le=5.0,
        description="Stationary gate: threshold in standard deviations above the mean noise dB.",
    )
    time_constant_s: float = Field(
        2.0, ge=0.05, le=30.0, description="Non-stationary gate: noise-floor time constant in s."
    )
    freq_mask_smooth_hz: float = Field(
        500.0, ge=50.0, le=5000.0, description="Smoothing of the gate over frequency, in Hz."
    )
    time_mask_smooth_ms: float = Field(
        50.0, ge=10.0, le=1000.0, description="Smoothing of the gate over time, in ms."
    )
    frame_ms: float = Field(20.0, ge=8.0, le=200.0, description="STFT frame length in ms.")
    floor_db: float = Field(
        -20.0, ge=-100.0, le=0.0, description="Lowest gain a gated bin gets, in dB."
    )


def spectral_gating(
    y: np.ndarray,
    *,
    sr: int,
    stationary: bool = True,
    prop_decrease: float = 1.0,
    n_std_thresh: float = 1.5,
    time_constant_s: float = 2.0,
    freq_mask_smooth_hz: float = 500.0,
    time_mask_smooth_ms: float = 50.0,
    frame_ms: float = 20.0,
    floor_db: float = -20.0,
) -> np.ndarray:
    """Gate time-frequency bins that do not rise above the noise (noisereduce's spectral gate).

    The stationary gate measures the mean and spread (in dB) of every frequency bin over the
    clip and mutes bins below ``mean + n_std_thresh * std``; the non-stationary gate compares
    every bin with its own smoothed level over ``time_constant_s``. The gate is smoothed over
    ``freq_mask_smooth_hz`` and ``time_mask_smooth_ms``. The stationary statistics come from the
    quietest 15 % of frames (noise alone in pauses, the floor in continuous music), capped by
    the threshold Gaussian noise of the :func:`avagent.dsp.noise_psd` floor would have; that
    floor is zero where the clip shows no stationary noise, so clean music passes untouched.

    Parameters
    ----------
    y : np.ndarray, shape (..., n)
        Audio; the last axis is time. Every row is processed on its own.
    sr : int
        Sample rate in Hz.
    stationary : bool
        Stationary (one threshold per frequency) or non-stationary gate.
    prop_decrease : float
        Fraction of the gated energy that is removed, from 0 (nothing) to 1 (all).
    n_std_thresh : float
        Stationary gate threshold, in standard deviations of the bin's dB level above its mean.
    time_constant_s : float
        Non-stationary gate: time constant of the noise-floor tracker in seconds.
    freq_mask_smooth_hz : float
        Width of the gate's smoothing over frequency in Hz.
    time_mask_smooth_ms : float
        Width of the gate's smoothing over time in ms.
    frame_ms : float
        STFT frame length in ms (rounded to a power of two samples; hop is a quarter).
    floor_db : float
        Gain of a fully gated bin in dB (noisereduce's ``prop_decrease=1`` is -inf dB); a floor
        keeps the residual natural and caps the damage of a wrong gate.

    Returns
    -------
    np.ndarray
        Gated audio, same shape and dtype as ``y``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> t = np.arange(48000) / 48000
    >>> y = np.sin(2 * np.pi * 440 * t) + 0.3 * rng.standard_normal(t.size)
    >>> spectral_gating(y, sr=48000).shape
    (48000,)
    """
    rows = to_rows(y, np.float32)
    n = rows.shape[-1]
    n_fft = fft_size(sr, frame_ms)
    if n < 2 * n_fft:
        return y.copy()
    hop = n_fft // 4
    X = stft(rows, n_fft)  # (m, T, F) complex64
    P = power(X)
    if stationary:
        keep = _gate_stationary(P, n_fft, sr, n_std_thresh)
    else:
        keep = _gate_nonstationary(P, sr, hop, time_constant_s)
    # noisereduce's triangular smoothing kernel, separable, over edge-padded copies of the mask.
    n_freq = max(1, int(freq_mask_smooth_hz / (sr / (n_fft / 2))))
    n_time = max(1, int(time_mask_smooth_ms / (hop / sr * 1000)))
    keep = convolve1d(keep, _triangle(n_freq), axis=2, mode="nearest")
    keep = convolve1d(keep, _triangle(n_time), axis=1, mode="nearest")
    # gain = 1 - prop * (1 - keep) * (1 - floor): keep=1 passes, keep=0 goes to the floor.
    cut = np.float32(prop_decrease * (1.0 - 10.0 ** (floor_db / 20.0)))
    keep -= 1.0
    keep *= cut
    keep += 1.0
    X *= keep
    out = istft(X, n_fft, n)
    logger.debug("spectral_gating: stationary=%s n_fft=%d", stationary, n_fft)
    return from_rows(out, y)


def _gate_stationary(P: np.ndarray, n_fft: int, sr: int, n_std: float) -> np.ndarray:
    """1 where a bin's dB level exceeds the noise's mean + ``n_std`` std in dB, else 0.

    noisereduce measures the mean and std of every bin's dB level on a noise clip (by default
    the whole signal, whose music or speech pushes the threshold far into the signal). Here the
    noise is the stationary floor of :func:`avagent.dsp.noise_psd` (with its stationarity
    confidence: no floor, no gate), and the dB statistics are those of Gaussian noise of that
    power: an STFT bin's power is exponential, so its dB level has mean ``10 log10 N - 2.51`` and
    std 5.57 dB.
    """
    N = noise_psd(P, n_fft, sr=sr)
    thresh = (N * 10.0 ** ((-2.51 + 5.57 * n_std) / 10.0)).astype(np.float32)
    # noisereduce's own statistics on the quietest 15 % of frames (frames wholly inside the
    # signal, ranked by mean dB over bins so the loud low end of pink noise does not pick them).
    # They follow a non-Gaussian noise better; the model threshold caps them where the quiet
    # frames still hold music, and switches the gate off where there is no stationary floor.
    T = P.shape[1]
    db = 10.0 * np.log10(P + np.float32(1e-20))
    inner = np.arange(4, T - 4) if T > 16 else np.arange(T)
    k = min(max(4, int(np.ceil(0.15 * inner.size))), inner.size)
    quiet = inner[np.argpartition(db[:, inner, :].mean(axis=(0, 2)), k - 1)[:k]]
    ref = db[:, quiet, :]
    thresh_db = ref.mean(axis=1, keepdims=True) + n_std * ref.std(axis=1, keepdims=True)
    np.minimum(thresh, 10.0 ** (thresh_db / 10.0), out=thresh)
    return (thresh < P).astype(np.float32)


def _gate_nonstationary(P: np.ndarray, sr: int, hop: int, time_constant_s: float) -> np.ndarray:
    """noisereduce's non-stationary gate: a sigmoid of how far a bin's magnitude stands above
    its own level smoothed over ``time_constant_s`` (forward-backward one-pole filter)."""
    A = np.sqrt(P)
    t_frames = time_constant_s * sr / float(hop)
    b = (np.sqrt(1 + 4 * t_frames**2) - 1) / (2 * t_frames**2)
    smooth = filtfilt([b], [1, b - 1], A, axis=1, padtype=None).astype(np.float32)
    np.maximum(smooth, np.float32(1e-10), out=smooth)
    ratio = (A - smooth) / smooth
    # sigmoid((ratio - 2) * 10): noisereduce's thresh_n_mult=2 and slope=10
    return (1.0 / (1.0 + np.exp(-(ratio - 2.0) * 10.0))).astype(np.float32)


def _triangle(n_grad: int) -> np.ndarray:
    """noisereduce's mask-smoothing ramp (2 * n_grad + 1 taps without the zero ends), unit sum."""
    k = np.concatenate(
        [np.linspace(0, 1, n_grad + 1, endpoint=False), np.linspace(1, 0, n_grad + 2)]
    )[1:-1]
    return (k / k.sum()).astype(np.float32)
