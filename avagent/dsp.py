"""Shared helpers of the noise actions: row reshaping, a fast STFT pair, noise-floor estimation.

Everything works on ``(m, n)`` rows (any leading shape flattened), vectorised across rows and
frequency bins. The STFT uses a periodic Hann window at 75 % overlap and divides by the summed
squared window, so ``istft(stft(x)) == x`` to rounding error. It runs in float32 end to end
(scipy's pocketfft, one worker): half the memory traffic of float64, and 24-bit precision is far
below anything a denoiser's gain changes.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import scipy.fft
from numpy.lib.stride_tricks import sliding_window_view
from scipy.ndimage import grey_opening, uniform_filter1d


def to_rows(y: np.ndarray, dtype: type = np.float64) -> np.ndarray:
    """View ``(..., n)`` as ``(m, n)`` rows of ``dtype`` (a copy only where needed)."""
    return np.ascontiguousarray(y, dtype=dtype).reshape(-1, y.shape[-1])


def from_rows(rows: np.ndarray, like: np.ndarray) -> np.ndarray:
    """Back to ``like``'s shape and dtype, with non-finite samples (never expected) zeroed."""
    out = rows.reshape(like.shape).astype(like.dtype, copy=False)
    if not np.isfinite(out).all():
        out = np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)
    return out


def fft_size(sr: int, frame_ms: float) -> int:
    """Power of two nearest to ``frame_ms`` at ``sr`` (at least 64 samples)."""
    n = max(sr * frame_ms / 1000.0, 64.0)
    return int(2 ** round(np.log2(n)))


@lru_cache(maxsize=16)
def _window(n_fft: int, dtype: str = "float64") -> np.ndarray:
    w = np.hanning(n_fft + 1)[:-1].astype(dtype)  # periodic Hann
    w.setflags(write=False)
    return w


def stft(x: np.ndarray, n_fft: int) -> np.ndarray:
    """Complex STFT of rows ``x (m, n)`` → ``(m, frames, n_fft // 2 + 1)``, hop ``n_fft // 4``.

    The signal is zero-padded by ``n_fft`` on the left and up to a whole number of hops (plus
    ``n_fft``) on the right so every sample is covered by four frames. float32 rows give a
    complex64 spectrogram, float64 rows complex128.
    """
    hop = n_fft // 4
    m, n = x.shape
    n_frames = -(-(n + n_fft) // hop) + 1
    total = (n_frames - 1) * hop + n_fft
    xp = np.zeros((m, total), dtype=x.dtype)
    xp[:, n_fft - hop : n_fft - hop + n] = x
    frames = sliding_window_view(xp, n_fft, axis=-1)[:, ::hop, :]
    return scipy.fft.rfft(frames * _window(n_fft, x.dtype.name), axis=-1, workers=1)


def istft(X: np.ndarray, n_fft: int, n: int) -> np.ndarray:
    """Inverse of :func:`stft` (weighted overlap-add), trimmed to ``n`` samples."""
    hop = n_fft // 4
    m, n_frames, _ = X.shape
    frames = scipy.fft.irfft(X, n=n_fft, axis=-1, workers=1)  # (m, T, n_fft), real
    # Hann² summed at 75 % overlap is 1.5 everywhere the four frames overlap: fold the 1 / 1.5
    # into the synthesis window.
    frames *= _window(n_fft, frames.dtype.name) / frames.dtype.type(1.5)
    total = (n_frames - 1) * hop + n_fft
    out = np.zeros((m, total + 3 * hop), dtype=frames.dtype)
    # n_fft == 4 hops: add each quarter of every frame as one contiguous slab.
    quarters = frames.reshape(m, n_frames, 4, hop)
    for r in range(4):
        out[:, r * hop : r * hop + n_frames * hop] += quarters[:, :, r, :].reshape(m, -1)
    start = n_fft - hop
    return out[:, start : start + n]


def power(X: np.ndarray) -> np.ndarray:
    """``|X|**2`` without the square root ``np.abs`` would take."""
    return X.real * X.real + X.imag * X.imag


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
    The statistics are those of every other frame (what :func:`noise_psd` looks at).
    """
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 400 * n_fft // 4))
    S = smooth_power(power(stft(x, n_fft)), frames, bins)[:, 4:-4:2, 8:-8]
    return float(S.mean() / np.percentile(S, percentile))


# Stationarity test of the quiet tail (see noise_psd): the ratio of the bias-corrected estimates
# at percentile / 4 and percentile is ~0.97 for stationary noise under speech or music (0.85 at
# worst in the lowest bins at 5 dB SNR) and 0.1-0.75 for clean music, whose quietest moments
# keep getting quieter. Confidence ramps from 0 to 1 between these two ratios.
RATIO_NO_NOISE = 0.7
RATIO_NOISE = 0.85


def noise_psd(
    P: np.ndarray,
    n_fft: int,
    *,
    sr: int,
    percentile: float = 10.0,
    open_hz: float = 200.0,
    frames: int = 5,
    bins: int = 3,
    smoothed: np.ndarray | None = None,
    check_stationary: bool = True,
) -> np.ndarray:
    """Robust stationary-noise power per row and bin from a power spectrogram ``(m, T, F)``.

    The low ``percentile`` over time of the locally smoothed power (minimum statistics over the
    whole clip) finds the floor in speech pauses and, in continuous music, the quietest moments of
    every bin. Each bias-corrected estimate at ``percentile``, ``percentile / 2`` and
    ``percentile / 4`` equals the mean for stationary noise; the smallest is kept, so a lower tail
    that keeps falling (music decaying into silence, no noise floor) gives a low estimate instead
    of eating into quiet music. With ``check_stationary`` the estimate is also scaled by the
    confidence that a stationary floor exists at all: where the estimate at ``percentile / 4``
    falls well below the one at ``percentile`` (sustained pads, decays: the quiet tail is music),
    the noise power goes to zero and the denoisers leave the bin alone. Last, a morphological
    opening over ``open_hz`` of frequency keeps smooth noise spectra as they are but shaves off
    narrow peaks: sustained notes are not noise.

    Parameters
    ----------
    P : np.ndarray, shape (m, T, F)
        Power spectrogram from :func:`stft`.
    n_fft : int
        Its FFT size.
    sr : int
        Sample rate in Hz.
    percentile : float
        Percentile over time (in %) taken as the floor.
    open_hz : float
        Widest opening over frequency in Hz.
    frames, bins : int
        Local smoothing before the percentiles.
    smoothed : np.ndarray, optional
        ``smooth_power(P, frames, bins)`` when the caller has it already.
    check_stationary : bool
        Scale the estimate by the stationarity confidence (see above).

    Returns
    -------
    np.ndarray, shape (m, 1, F)
        Noise power per row and bin (at least 1e-20).
    """
    est, ratio = _tail(P, n_fft, percentile, frames, bins, smoothed)
    if check_stationary:
        est = est * stationary_confidence(ratio, n_fft=n_fft, sr=sr)
    return np.maximum(_open_spectrum(est, n_fft, sr, open_hz), 1e-20)


def floor_confidence(
    P: np.ndarray, n_fft: int, *, sr: int, percentile: float = 10.0,
    smoothed: np.ndarray | None = None,
) -> np.ndarray:
    """Confidence ``(m, 1, F)`` in ``[0, 1]`` that each bin holds a stationary noise floor.

    The tail test of :func:`noise_psd` alone, for denoisers with their own noise model.
    """
    _, ratio = _tail(P, n_fft, percentile, 5, 3, smoothed)
    return stationary_confidence(ratio, n_fft=n_fft, sr=sr)


def _tail(
    P: np.ndarray, n_fft: int, percentile: float, frames: int, bins: int,
    smoothed: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Smallest bias-corrected low-percentile estimate and the ratio of ``p / 4`` to ``p``."""
    S = smooth_power(P, frames, bins) if smoothed is None else smoothed
    # 75 % overlap and five-frame smoothing: every other frame carries the same facts.
    S = S[:, ::2, :] if S.shape[1] > 512 else S
    T = S.shape[1]
    pcts = (percentile / 4, percentile / 2, percentile)
    ks = sorted({min(T - 1, int(p / 100 * (T - 1) + 0.5)) for p in pcts})
    part = np.partition(S, ks, axis=1)
    ests = []
    for p in pcts:
        k = min(T - 1, int(p / 100 * (T - 1) + 0.5))
        ests.append(part[:, k : k + 1, :].astype(np.float64) * _percentile_bias(n_fft, p, frames, bins))
    est = np.minimum(np.minimum(ests[0], ests[1]), ests[2])
    return est, ests[0] / np.maximum(ests[2], 1e-30)


def stationary_confidence(ratio: np.ndarray, *, n_fft: int, sr: int) -> np.ndarray:
    """Confidence in ``[0, 1]`` that a bin holds a stationary noise floor, from the tail ratio.

    ``ratio`` ``(m, 1, F)`` is the bias-corrected low-percentile estimate at ``p / 4`` over the
    one at ``p``; it is averaged in the log domain over ~300 Hz (one bin's ratio is noisy) and
    mapped linearly from 0 at :data:`RATIO_NO_NOISE` to 1 at :data:`RATIO_NOISE`.
    """
    width = max(3, int(300.0 * n_fft / sr) | 1)
    lr = np.log(np.clip(ratio, 1e-6, 1.0))
    # The DC bin (and its smoothing neighbour) is real-valued: one degree of freedom, a longer
    # lower tail than the complex bins the bias was measured on. It takes bin 2's ratio.
    if lr.shape[-1] > 3:
        lr[..., :2] = lr[..., 2:3]
    lr = uniform_filter1d(lr, width, axis=-1, mode="nearest")
    r = np.exp(lr)
    return np.clip((r - RATIO_NO_NOISE) / (RATIO_NOISE - RATIO_NO_NOISE), 0.0, 1.0)


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
