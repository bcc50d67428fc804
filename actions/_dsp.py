"""Shared helpers of the noise actions: row reshaping, a fast STFT pair, noise-floor estimation.

Everything works on ``(m, n)`` rows (any leading shape flattened), vectorised across rows and
frequency bins. The STFT uses a periodic Hann window at 75 % overlap and divides by the summed
squared window, so ``istft(stft(x)) == x`` to rounding error.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import scipy.fft
from numpy.lib.stride_tricks import sliding_window_view
from scipy.ndimage import grey_opening, uniform_filter1d


def to_rows(y: np.ndarray) -> np.ndarray:
    """View ``(..., n)`` as ``(m, n)`` float64 rows (a copy only where needed)."""
    return np.ascontiguousarray(y, dtype=np.float64).reshape(-1, y.shape[-1])


def from_rows(rows: np.ndarray, like: np.ndarray) -> np.ndarray:
    """Back to ``like``'s shape and dtype, with non-finite samples (never expected) zeroed."""
    out = np.nan_to_num(rows, nan=0.0, posinf=0.0, neginf=0.0)
    return out.reshape(like.shape).astype(like.dtype, copy=False)


def fft_size(sr: int, frame_ms: float) -> int:
    """Power of two nearest to ``frame_ms`` at ``sr`` (at least 64 samples)."""
    n = max(sr * frame_ms / 1000.0, 64.0)
    return int(2 ** round(np.log2(n)))


@lru_cache(maxsize=16)
def _window(n_fft: int) -> np.ndarray:
    w = np.hanning(n_fft + 1)[:-1]  # periodic Hann
    w.setflags(write=False)
    return w


def stft(x: np.ndarray, n_fft: int) -> np.ndarray:
    """Complex STFT of rows ``x (m, n)`` → ``(m, frames, n_fft // 2 + 1)``, hop ``n_fft // 4``.

    The signal is zero-padded by ``n_fft`` on the left and up to a whole number of hops (plus
    ``n_fft``) on the right so every sample is covered by four frames.
    """
    hop = n_fft // 4
    n = x.shape[-1]
    n_frames = -(-(n + n_fft) // hop) + 1
    total = (n_frames - 1) * hop + n_fft
    xp = np.zeros((x.shape[0], total))
    xp[:, n_fft - hop : n_fft - hop + n] = x
    frames = sliding_window_view(xp, n_fft, axis=-1)[:, ::hop, :]
    return scipy.fft.rfft(frames * _window(n_fft), axis=-1)


def istft(X: np.ndarray, n_fft: int, n: int) -> np.ndarray:
    """Inverse of :func:`stft` (weighted overlap-add), trimmed to ``n`` samples."""
    hop = n_fft // 4
    m, n_frames, _ = X.shape
    w = _window(n_fft)
    frames = scipy.fft.irfft(X, n=n_fft, axis=-1) * w  # (m, T, n_fft)
    total = (n_frames - 1) * hop + n_fft
    out = np.zeros((m, total + 3 * hop))
    # n_fft == 4 hops: add each quarter of every frame as one contiguous slab.
    quarters = frames.reshape(m, n_frames, 4, hop)
    for r in range(4):
        out[:, r * hop : r * hop + n_frames * hop] += quarters[:, :, r, :].reshape(m, -1)
    # Hann² summed at 75 % overlap is 1.5 everywhere the four frames overlap.
    start = n_fft - hop
    return out[:, start : start + n] / 1.5


def smooth_power(P: np.ndarray, frames: int = 5, bins: int = 3) -> np.ndarray:
    """Moving average of a power spectrogram ``(m, T, F)`` over time frames and frequency bins."""
    S = P
    if frames > 1:
        S = uniform_filter1d(S, frames, axis=1, mode="nearest")
    if bins > 1:
        S = uniform_filter1d(S, bins, axis=2, mode="nearest")
    return S


@lru_cache(maxsize=32)
def _percentile_bias(n_fft: int, percentile: float, frames: int, bins: int) -> float:
    """Mean / percentile of smoothed STFT power for stationary white noise (Monte-Carlo, cached).

    A low percentile of noise power sits below its mean; this factor brings it back, so the
    estimate is unbiased for stationary noise and conservative (low) for anything that moves.
    """
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 400 * n_fft // 4))
    S = smooth_power(np.abs(stft(x, n_fft)) ** 2, frames, bins)[:, 4:-4, 8:-8]
    return float(S.mean() / np.percentile(S, percentile))


def noise_psd(
    P: np.ndarray,
    n_fft: int,
    *,
    sr: int,
    percentile: float = 10.0,
    open_hz: float = 200.0,
    frames: int = 5,
    bins: int = 3,
) -> np.ndarray:
    """Robust stationary-noise power per row and bin from a power spectrogram ``(m, T, F)``.

    The low ``percentile`` over time of the locally smoothed power (minimum statistics over the
    whole clip) finds the floor in speech pauses and, in continuous music, the quietest moments of
    every bin. Each bias-corrected estimate at ``percentile``, ``percentile / 2`` and
    ``percentile / 4`` equals the mean for stationary noise; the smallest is kept, so a lower tail
    that keeps falling (music decaying into silence, no noise floor) gives a low estimate instead
    of eating into quiet music. Last, a morphological opening over ``open_hz`` of frequency keeps
    smooth noise spectra as they are but shaves off narrow peaks: sustained notes are not noise.
    Returns ``(m, 1, F)``.
    """
    S = smooth_power(P, frames, bins)
    T = S.shape[1]
    if T > 256:  # 75 % overlap: neighbouring frames carry the same facts
        S = S[:, ::2, :]
        T = S.shape[1]
    pcts = (percentile / 4, percentile / 2, percentile)
    ks = sorted({min(T - 1, int(p / 100 * (T - 1) + 0.5)) for p in pcts})
    part = np.partition(S, ks, axis=1)
    est = None
    for p in pcts:
        k = min(T - 1, int(p / 100 * (T - 1) + 0.5))
        e = part[:, k : k + 1, :] * _percentile_bias(n_fft, p, frames, bins)
        est = e if est is None else np.minimum(est, e)
    assert est is not None
    return np.maximum(_open_spectrum(est, n_fft, sr, open_hz), 1e-20)


def _open_spectrum(est: np.ndarray, n_fft: int, sr: int, open_hz: float) -> np.ndarray:
    """Opening over frequency whose width grows with frequency (at most ``open_hz``).

    A fixed wide window would flatten the steep low end of pink or rumble noise, so below
    ``4 * open_hz`` the width is about a quarter of the bin's frequency (constant-Q-like).
    """
    bin_hz = sr / n_fft
    freqs = np.arange(est.shape[-1]) * bin_hz
    out = est.copy()
    done = np.zeros(freqs.shape, dtype=bool)
    # From wide to narrow; each bin takes the widest opening that fits its frequency.
    for width_hz in (open_hz, open_hz / 2, open_hz / 4):
        width = round(width_hz / bin_hz) | 1
        if width < 3:
            break
        sel = (freqs >= 4 * width_hz) & ~done
        if sel.any():
            out[..., sel] = grey_opening(est, size=(1, 1, width), mode="nearest")[..., sel]
            done |= sel
    return out
