"""Spectral subtraction: remove an estimated stationary noise power spectrum (hiss, fan, air)."""

from __future__ import annotations

import logging

import numpy as np
from pydantic import Field

from avagent.actions.base import ActionParams
from avagent.audio import validate_audio
from avagent.dsp import (
    fft_size,
    from_rows,
    istft,
    noise_psd,
    power,
    smooth_power,
    stft,
    to_rows,
)

logger = logging.getLogger(__name__)


class SpectralSubtractionParams(ActionParams):
    """Parameters of :func:`spectral_subtraction` (the ``noise`` clip is a call-only argument)."""

    over_subtraction: float = Field(
        2.5, ge=0.5, le=6.0, description="Multiple of the noise power to subtract (>1 is harsher)."
    )
    floor_db: float = Field(
        -20.0, ge=-60.0, le=0.0, description="Lowest gain any time-frequency bin gets, in dB."
    )
    noise_percentile: float = Field(
        10.0, ge=1.0, le=50.0, description="Percentile over time that defines the noise floor."
    )
    frame_ms: float = Field(40.0, ge=8.0, le=200.0, description="STFT frame length in ms.")


def spectral_subtraction(
    y: np.ndarray,
    *,
    sr: int,
    over_subtraction: float = 2.5,
    floor_db: float = -20.0,
    noise_percentile: float = 10.0,
    frame_ms: float = 40.0,
    noise: np.ndarray | None = None,
) -> np.ndarray:
    """Subtract a stationary noise power spectrum from ``y``.

    The noise spectrum is the bias-corrected low percentile over time of the locally smoothed
    power in every frequency bin (minimum statistics over the clip), so it is found in speech
    pauses and in continuous music alike, or it is measured on a noise-only clip ``noise``.
    The gain ``max(1 - over_subtraction * N / P, floor)`` is computed on power smoothed over
    ~50 ms and three bins, which keeps isolated bins from flickering ("musical noise").

    Parameters
    ----------
    y : np.ndarray, shape (..., n)
        Audio; the last axis is time. Every row is processed on its own.
    sr : int
        Sample rate in Hz.
    over_subtraction : float
        Multiple of the estimated noise power that is subtracted (1.0 = plain power
        subtraction; higher removes more noise and more signal).
    floor_db : float
        Lowest gain in dB; the residual noise floor that keeps the result natural.
    noise_percentile : float
        Percentile over time (in %) of the smoothed power taken as the noise floor.
    frame_ms : float
        STFT frame length in ms (rounded to a power of two samples; hop is a quarter).
    noise : np.ndarray, optional
        A noise-only recording, shaped ``(n_noise,)`` or like ``y``'s rows. Its mean power
        spectrum replaces the estimate. Not part of the params model: a plan cannot carry
        arrays, so only direct callers use it.

    Returns
    -------
    np.ndarray
        Denoised audio, same shape and dtype as ``y``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> t = np.arange(48000) / 48000
    >>> y = np.sin(2 * np.pi * 440 * t) + 0.3 * rng.standard_normal(t.size)
    >>> spectral_subtraction(y, sr=48000).shape
    (48000,)
    """
    rows = to_rows(y, np.float32)
    n = rows.shape[-1]
    n_fft = fft_size(sr, frame_ms)
    X = stft(rows, n_fft)
    S = smooth_power(power(X), frames=5, bins=3)
    if noise is not None:
        N = _noise_from(noise, rows.shape[0], n_fft)
    else:
        N = noise_psd(S, n_fft, sr=sr, percentile=noise_percentile, smoothed=S)
    floor = 10.0 ** (floor_db / 20.0)
    # Power-domain subtraction expressed as an amplitude gain, in place on S (float32).
    np.maximum(S, 1e-20, out=S)
    np.divide((-over_subtraction * N).astype(np.float32), S, out=S)
    S += 1.0
    np.maximum(S, floor**2, out=S)
    gain = np.sqrt(S, out=S)
    X *= gain
    out = istft(X, n_fft, n)
    logger.debug("spectral_subtraction: n_fft=%d mean gain %.2f", n_fft, float(gain.mean()))
    return from_rows(out, y)


def _noise_from(noise: np.ndarray, m: int, n_fft: int) -> np.ndarray:
    """Mean power spectrum ``(m or 1, 1, F)`` of a noise-only clip."""
    arr = validate_audio(noise, name="noise")
    rows = to_rows(arr, np.float32)
    if rows.shape[0] not in (1, m):
        rows = rows.mean(axis=0, keepdims=True)
    P = power(stft(rows, n_fft)).astype(np.float64)
    return np.maximum(P[:, 3:-3].mean(axis=1, keepdims=True) if P.shape[1] > 8 else P.mean(
        axis=1, keepdims=True), 1e-20)
