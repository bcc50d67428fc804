"""Pitch: shift pitch by semitones, duration kept (e.g. -0.72 (12 log2(25/23.976) = 0.724) undoes a PAL pitch rise).

Method: time-stretch by the pitch ratio with a phase vocoder, then resample back to the original
length with soxr (high quality), which moves every frequency by the ratio exactly.

The phase vocoder uses identity phase locking (Laroche & Dolson 1999): only spectral peaks get
their phase advanced from the instantaneous frequency, and the bins around each peak keep their
phase relation to it, which removes most of the "phasiness" of a plain vocoder. Channels of one
clip share the phase rotation, computed on their sum, so the stereo image (inter-channel phase)
is kept exactly.
"""

from __future__ import annotations

import logging

import numpy as np
import soxr
from pydantic import Field

from avagent.actions.base import ActionParams, parse_params
from avagent.audio import validate_audio

logger = logging.getLogger(__name__)

_FRAME_S = 0.043  # ~2048 samples at 48 kHz: resolves harmonics of low voices and bass
_OVERLAP = 4  # synthesis hop = frame / 4


class PitchParams(ActionParams):
    """Parameters of :func:`pitch`."""

    semitones: float = Field(
        0.0,
        ge=-12.0,
        le=12.0,
        description="pitch shift in semitones, duration kept; -0.72 (12 log2(25/23.976) = 0.724) undoes a PAL pitch rise "
        "(25/23.976) when the duration was already fixed",
    )


def pitch(y: np.ndarray, *, sr: int, semitones: float = 0.0) -> np.ndarray:
    """Shift the pitch of ``y`` by ``semitones`` without changing its duration.

    Parameters
    ----------
    y : np.ndarray, shape (..., n)
        Audio. ``(channels, n)`` is one clip whose channels stay phase-linked; further leading
        axes are independent clips.
    sr : int
        Sample rate in Hz.
    semitones : float
        Shift in semitones within ±12 (ratio ``2 ** (semitones / 12)``). 0 returns a copy.

    Returns
    -------
    np.ndarray
        Same shape and dtype as ``y``.

    Examples
    --------
    >>> t = np.arange(48000) / 48000
    >>> z = pitch(np.sin(2 * np.pi * 440 * t), sr=48000, semitones=12.0)
    >>> z.shape, int(np.argmax(np.abs(np.fft.rfft(z))))  # one octave up: 880 Hz
    ((48000,), 880)
    """
    p = parse_params(PitchParams, "pitch", {"semitones": semitones})
    y = validate_audio(y, sr=sr)
    if p.semitones == 0.0:
        return y.copy()
    ratio = 2.0 ** (p.semitones / 12.0)
    n = y.shape[-1]
    x = np.asarray(y, dtype=np.float64)
    clips = x[None, None, :] if x.ndim == 1 else x.reshape(-1, x.shape[-2], n)
    n_fft = int(2 ** round(np.log2(_FRAME_S * sr)))
    n_fft = max(n_fft, 64)
    out = np.empty_like(clips)
    for i, clip in enumerate(clips):
        out[i] = _shift_clip(clip, sr, ratio, n_fft)
    logger.debug("action=pitch semitones=%s ratio=%.5f n_fft=%d", p.semitones, ratio, n_fft)
    return out.reshape(y.shape).astype(y.dtype, copy=False)


def _shift_clip(x: np.ndarray, sr: int, ratio: float, n_fft: int) -> np.ndarray:
    """Pitch-shift one clip ``(channels, n)`` by ``ratio``, same length."""
    n = x.shape[-1]
    pad = n_fft
    xp = np.pad(x, ((0, 0), (pad, pad)))
    stretched = time_stretch(xp, ratio, n_fft)
    # Play the stretched signal `ratio` times faster: length back to ~n + 2 pad, pitch * ratio.
    res = soxr.resample(np.ascontiguousarray(stretched.T), sr * ratio, sr, quality="HQ").T
    # Frame centres map t -> (t - N/2) * ratio + N/2 in the stretch, so after resampling the
    # input sample t sits at t - N/2 + N / (2 ratio): undo that constant shift.
    start = pad + round(n_fft / 2 * (1.0 / ratio - 1.0))
    seg = res[:, start : start + n]
    if seg.shape[-1] < n:
        seg = np.pad(seg, ((0, 0), (0, n - seg.shape[-1])))
    return seg


def time_stretch(x: np.ndarray, stretch: float, n_fft: int) -> np.ndarray:
    """Phase-vocoder time stretch of ``x (channels, n)`` to about ``n * stretch`` samples.

    Analysis frames start at ``round(k * hop / stretch)`` (whole samples, so each frame's true
    analysis hop is known), synthesis frames at ``k * hop``; sample ``t`` of the input maps to
    ``t * stretch`` of the output.
    """
    c, n = x.shape
    hop = n_fft // _OVERLAP
    win = np.hanning(n_fft + 1)[:-1]
    n_frames = max(1, int((n - n_fft) * stretch / hop) + 1)
    starts = np.minimum(np.round(np.arange(n_frames) * hop / stretch).astype(np.int64), n - n_fft)
    frames = x[:, starts[:, None] + np.arange(n_fft)[None, :]] * win  # (c, K, N)
    spec = np.fft.rfft(frames, axis=-1)  # (c, K, F)
    ref = spec.sum(axis=0)  # (K, F): the channels' common phase reference
    mag = np.abs(ref)
    ana_phase = np.angle(ref)
    n_bins = ref.shape[-1]
    omega = 2.0 * np.pi * np.arange(n_bins) / n_fft  # rad / sample per bin centre
    bins = np.arange(n_bins)

    rot = np.zeros((n_frames, n_bins))  # synthesis phase - analysis phase, per frame and bin
    syn_prev = ana_phase[0].copy()
    for k in range(1, n_frames):
        ra = starts[k] - starts[k - 1]
        if ra <= 0:
            ra = hop / stretch
        dphi = ana_phase[k] - ana_phase[k - 1] - omega * ra
        dphi -= 2.0 * np.pi * np.round(dphi / (2.0 * np.pi))
        inst = omega + dphi / ra
        peaks = _peak_of_bin(mag[k], bins)
        # Peaks advance by their instantaneous frequency; every bin copies its peak's rotation.
        peak_syn = syn_prev + hop * inst
        r = peak_syn - ana_phase[k]
        rot[k] = r[peaks]
        syn_prev = ana_phase[k] + rot[k]

    out_frames = np.fft.irfft(spec * np.exp(1j * rot)[None], n=n_fft, axis=-1) * win
    out_len = (n_frames - 1) * hop + n_fft
    out = np.zeros((c, out_len))
    norm = np.zeros(out_len)
    w2 = win**2
    for k in range(n_frames):
        s = k * hop
        out[:, s : s + n_fft] += out_frames[:, k]
        norm[s : s + n_fft] += w2
    return out / np.maximum(norm, 1e-3 * w2.max())


def _peak_of_bin(mag: np.ndarray, bins: np.ndarray) -> np.ndarray:
    """For every bin, the index of the spectral peak whose region it belongs to.

    Peaks are local maxima over +-2 bins; regions split halfway between neighbouring peaks.
    """
    m = np.pad(mag, 2, mode="constant", constant_values=-1.0)
    is_peak = (mag > m[1:-3]) & (mag > m[:-4]) & (mag >= m[3:-1]) & (mag >= m[4:]) & (mag > 0)
    if not is_peak.any():
        return bins
    idx = np.flatnonzero(is_peak)
    # Nearest peak: boundaries at midpoints between consecutive peaks.
    mids = (idx[:-1] + idx[1:]) / 2.0
    return idx[np.searchsorted(mids, bins, side="left")]
