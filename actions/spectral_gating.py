"""Spectral gating with noisereduce (its numpy path), stationary or non-stationary."""

from __future__ import annotations

import logging

import numpy as np
from pydantic import Field

from actions._dsp import fft_size, from_rows, to_rows
from actions.base import ActionParams

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
) -> np.ndarray:
    """Gate time-frequency bins that do not rise above the noise (``noisereduce.reduce_noise``).

    The stationary gate measures the mean and spread (in dB) of every frequency bin over the
    clip and mutes bins below ``mean + n_std_thresh * std``; the non-stationary gate compares
    every bin with its own smoothed level over ``time_constant_s``. The gate is smoothed over
    ``freq_mask_smooth_hz`` and ``time_mask_smooth_ms``. Runs noisereduce's numpy code (never its
    torch gate), one row at a time.

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
    # Imported here: it is heavy (joblib, tqdm). noisereduce's own __init__ imports torch when
    # torch is installed (for its torch gate, which we never call); that does not touch CUDA.
    import noisereduce as nr

    rows = to_rows(y)
    n = rows.shape[-1]
    n_fft = fft_size(sr, frame_ms)
    if n < 2 * n_fft:
        return y.copy()
    hop = n_fft // 4
    # The mask smoothing must span at least one bin / one hop or noisereduce refuses.
    freq_smooth = max(freq_mask_smooth_hz, 2.0 * sr / n_fft + 1.0)
    time_smooth = max(time_mask_smooth_ms, 1000.0 * hop / sr + 1.0)
    out = np.empty_like(rows)
    for i, row in enumerate(rows):
        res = nr.reduce_noise(
            y=row,
            sr=sr,
            stationary=stationary,
            y_noise=_quietest(row, sr) if stationary else None,
            prop_decrease=prop_decrease,
            n_std_thresh_stationary=n_std_thresh,
            time_constant_s=time_constant_s,
            freq_mask_smooth_hz=freq_smooth,
            time_mask_smooth_ms=time_smooth,
            n_fft=n_fft,
            hop_length=hop,
            chunk_size=max(n, 600000),  # one chunk: no temp memmap, stats over the whole clip
            padding=n_fft * 2,
            use_tqdm=False,
            n_jobs=1,
            use_torch=False,
        )
        out[i] = np.asarray(res, dtype=np.float64).reshape(-1)[:n]
    logger.debug("spectral_gating: stationary=%s n_fft=%d", stationary, n_fft)
    return from_rows(out, y)


def _quietest(x: np.ndarray, sr: int, frame_s: float = 0.05, fraction: float = 0.15) -> np.ndarray:
    """The quietest ``fraction`` of ``frame_s`` frames of ``x``, joined in time order.

    noisereduce's stationary gate learns its threshold from ``y_noise`` (by default the whole
    clip, whose music or speech pushes the threshold far into the signal). The quietest frames
    are noise alone in speech pauses and the noise-dominated floor in continuous music.
    """
    L = max(16, int(frame_s * sr))
    nf = x.size // L
    if nf < 8:
        return x
    frames = x[: nf * L].reshape(nf, L)
    energy = np.einsum("ij,ij->i", frames, frames)
    k = max(4, int(np.ceil(fraction * nf)))
    keep = np.sort(np.argpartition(energy, k - 1)[:k])
    return frames[keep].reshape(-1)

