"""Wavelet shrinkage (BayesShrink / VisuShrink) against broadband, white-ish noise."""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np
from pydantic import Field
from scipy.ndimage import uniform_filter1d

from avagent.actions.base import ActionParams
from avagent.dsp import (
    RATIO_NO_NOISE,
    RATIO_NOISE,
    fft_size,
    from_rows,
    noise_psd,
    power,
    stft,
    to_rows,
)

logger = logging.getLogger(__name__)

WaveletName = Literal["db4", "db8", "sym8", "coif3", "haar"]


class WaveletDenoiseParams(ActionParams):
    """Parameters of :func:`wavelet_denoise`."""

    wavelet: WaveletName = Field("db8", description="Mother wavelet (PyWavelets name).")
    level: int | None = Field(
        None, ge=1, le=12, description="Decomposition depth; None goes down to ~150 Hz."
    )
    method: Literal["bayes", "visu"] = Field(
        "bayes",
        description="bayes: locally adaptive BayesShrink with a noise level per band (white or "
        "coloured noise); visu: universal threshold from the finest band (white noise only).",
    )
    mode: Literal["soft", "hard"] = Field("soft", description="Thresholding rule.")
    block_ms: float = Field(
        20.0, ge=2.0, le=500.0, description="Window for the local signal variance, in ms."
    )


def wavelet_denoise(
    y: np.ndarray,
    *,
    sr: int,
    wavelet: str = "db8",
    level: int | None = None,
    method: str = "bayes",
    mode: str = "soft",
    block_ms: float = 20.0,
) -> np.ndarray:
    """Shrink the wavelet coefficients of ``y`` that noise explains.

    The noise level of every detail band is the median absolute deviation (MAD / 0.6745) of its
    quietest stretches, so white noise (the same level in every band) and coloured noise (pink,
    rumble) are both handled. ``method="bayes"`` thresholds each coefficient with
    ``sigma_noise**2 / sigma_signal``, where ``sigma_signal`` is measured locally over
    ``block_ms``: loud passages keep their detail and quiet ones lose the hiss.
    ``method="visu"`` applies the universal threshold ``sigma * sqrt(2 ln n)`` with ``sigma``
    from the finest band (Donoho & Johnstone), stronger and blunter.

    Parameters
    ----------
    y : np.ndarray, shape (..., n)
        Audio; the last axis is time. Every row is processed on its own.
    sr : int
        Sample rate in Hz.
    wavelet : str
        PyWavelets wavelet name, e.g. ``"db8"``, ``"sym8"``.
    level : int, optional
        Number of decomposition levels; by default the coarsest detail band starts near 150 Hz.
    method : {"bayes", "visu"}
        Threshold rule (see above).
    mode : {"soft", "hard"}
        Soft shrinks surviving coefficients by the threshold (smoother), hard keeps them.
    block_ms : float
        Window in ms over which the local signal variance of a band is measured (bayes only).

    Returns
    -------
    np.ndarray
        Denoised audio, same shape and dtype as ``y``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> t = np.arange(48000) / 48000
    >>> y = np.sin(2 * np.pi * 440 * t) + 0.3 * rng.standard_normal(t.size)
    >>> wavelet_denoise(y, sr=48000).shape
    (48000,)
    """
    import pywt

    rows = to_rows(y)
    n = rows.shape[-1]
    w = pywt.Wavelet(wavelet)
    max_level = pywt.dwt_max_level(n, w.dec_len)
    if max_level < 1:
        return y.copy()
    if level is None:
        level = int(np.floor(np.log2(sr / 2 / 150.0)))
    level = max(1, min(level, max_level))
    coeffs = pywt.wavedec(rows, w, level=level, axis=-1, mode="periodization")
    details = coeffs[1:][::-1]  # finest first: band j spans sr/2**(j+2) .. sr/2**(j+1)
    stft_sigma = _stft_band_sigma(rows, sr, len(details))
    finest_sigma = np.minimum(_band_sigma(details[0], sr / 2, block_ms), stft_sigma[0])
    out = [coeffs[0]]
    for j, d in enumerate(details):
        band_sr = sr / 2 ** (j + 1)
        if method == "visu":
            sigma = finest_sigma
            thr = sigma * np.sqrt(2.0 * np.log(n))
        else:
            sigma = np.minimum(_band_sigma(d, band_sr, block_ms), stft_sigma[j])
            win = max(3, int(block_ms / 1000 * band_sr) | 1)
            local_var = uniform_filter1d(d * d, win, axis=-1, mode="nearest")
            sig_x = np.sqrt(np.maximum(local_var - sigma**2, 1e-12 * sigma**2 + 1e-30))
            thr = np.minimum(sigma**2 / sig_x, 10 * sigma)
        out.append(pywt.threshold(d, thr, mode=mode) if mode == "hard" else _soft(d, thr))
    rec = pywt.waverec(out[:1] + out[1:][::-1], w, axis=-1, mode="periodization")[..., :n]
    logger.debug("wavelet_denoise: %s level=%d method=%s", wavelet, level, method)
    return from_rows(rec, y)


def _soft(d: np.ndarray, thr: np.ndarray | float) -> np.ndarray:
    return np.sign(d) * np.maximum(np.abs(d) - thr, 0.0)


def _stft_band_sigma(rows: np.ndarray, sr: int, n_bands: int) -> list[np.ndarray]:
    """Noise sigma per detail band ``(m, 1)`` from the STFT noise floor of :func:`noise_psd`.

    A band's MAD cannot tell a sustained bass note or pad (steady, so it looks like a floor) from
    noise; the STFT estimate can (its opening over frequency removes narrow peaks and its tail
    test removes floors that keep falling). For an orthonormal DWT a band's coefficient variance
    is the mean noise power density over its frequencies, with white noise of variance s**2
    giving s**2 in every band: hence the division by the window's energy.
    """
    n_fft = fft_size(sr, 40.0)
    if rows.shape[-1] < 2 * n_fft:
        return [np.full((rows.shape[0], 1), np.inf)] * n_bands
    N = noise_psd(power(stft(rows.astype(np.float32), n_fft)), n_fft, sr=sr)[:, 0, :]
    N = N / float(np.sum(np.hanning(n_fft + 1)[:-1] ** 2))
    freqs = np.arange(N.shape[-1]) * sr / n_fft
    out = []
    for j in range(n_bands):
        band = (freqs >= sr / 2 ** (j + 2)) & (freqs < sr / 2 ** (j + 1))
        out.append(np.sqrt(N[:, band].mean(axis=-1, keepdims=True)))
    return out


def _band_sigma(d: np.ndarray, band_sr: float, block_ms: float, percentile: float = 10.0):
    """Noise sigma per row ``(m, 1)``: low percentile of block MADs, corrected for its bias.

    Blocks of ~5 x ``block_ms`` (at least 64 coefficients) are long enough for a stable MAD;
    the quietest tenth of them sees the noise floor in pauses and between notes.
    """
    m, k = d.shape
    b = max(64, int(5 * block_ms / 1000 * band_sr))
    nb = k // b
    if nb < 4:
        return np.median(np.abs(d), axis=-1, keepdims=True) / 0.6745
    mad = np.median(np.abs(d[:, : nb * b].reshape(m, nb, b)), axis=-1) / 0.6745
    # The sample MAD of b Gaussian values has relative sd ~1.166 / sqrt(b): undo the low-tail
    # bias of each percentile. For stationary noise all three agree; where the quietest blocks
    # keep getting quieter (music fading to silence, no noise floor) the smallest one wins.
    rel_sd = 1.166 / np.sqrt(b)
    ests = [
        np.percentile(mad, q, axis=-1, keepdims=True) / max(1.0 - z * rel_sd, 0.5)
        for q, z in ((percentile, 1.2816), (percentile / 2, 1.6449), (percentile / 4, 1.9600))
    ]
    est = np.minimum(np.minimum(ests[0], ests[1]), ests[2])
    # No stationary floor at all (clean music: its quietest blocks are pads and decays, the tail
    # keeps falling): scale sigma by the same tail-ratio confidence the STFT denoisers use.
    ratio = (ests[2] / np.maximum(ests[0], 1e-30)) ** 2
    conf = np.clip((ratio - RATIO_NO_NOISE) / (RATIO_NOISE - RATIO_NO_NOISE), 0.0, 1.0)
    return est * np.sqrt(conf)
