"""Volume: loudness to a target (ITU-R BS.1770 / EBU R128) under a true-peak ceiling, or a gain.

The gain is static; a look-ahead true-peak limiter then catches only the peaks above the ceiling.
The limiter's gain is linked across channels (the stereo image does not wander) and detected on
the 4x oversampled signal (BS.1770-4 Annex 2), so inter-sample peaks count. Where the limiter
took loudness away, the static gain is raised a little and the limiter run again, so loudness
ends on target.

Digital silence (or anything below the -70 LUFS absolute gate) has no loudness: asked for a
``target_lufs`` it is returned unchanged with a warning, because refusing would stop a whole
repair over a clip that simply has nothing to level.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Self

import numpy as np
from pydantic import Field, model_validator
from scipy.ndimage import minimum_filter1d, uniform_filter1d
from scipy.signal import firwin, lfilter, resample_poly

from avagent.actions.base import ActionParams, parse_params
from avagent.audio import validate_audio

logger = logging.getLogger(__name__)

_ABS_GATE_LUFS = -70.0
_ATTACK_MS = 2.0  # look-ahead: the gain is fully down when the peak arrives
_RELEASE_MS = 80.0  # time constant of the gain's recovery after a peak
_MARGIN_DB = 0.05  # the limiter aims this far under the ceiling (reconstruction slack)
_MAX_ROUNDS = 6


class VolumeParams(ActionParams):
    """Parameters of :func:`volume`; exactly one of ``target_lufs`` and ``gain_db``."""

    target_lufs: float | None = Field(
        None, ge=-70.0, le=-5.0, description="integrated loudness to reach (BS.1770), LUFS"
    )
    gain_db: float | None = Field(None, ge=-60.0, le=60.0, description="plain gain in dB")
    true_peak_dbtp: float = Field(
        -1.0, ge=-20.0, le=0.0, description="ceiling for the true peak of the result, dBTP"
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.target_lufs is None) == (self.gain_db is None):
            got = "neither" if self.target_lufs is None else "both"
            raise ValueError(f"give exactly one of target_lufs or gain_db (got {got})")
        return self


def volume(
    y: np.ndarray,
    *,
    sr: int,
    target_lufs: float | None = None,
    gain_db: float | None = None,
    true_peak_dbtp: float = -1.0,
) -> np.ndarray:
    """Bring ``y`` to ``target_lufs`` (or apply ``gain_db``) with its true peak under a ceiling.

    Parameters
    ----------
    y : np.ndarray, shape (..., n)
        Audio. Shape ``(n,)`` is mono, ``(channels, n)`` one multichannel clip (loudness and
        limiter gain are shared by its channels); further leading axes are independent clips.
    sr : int
        Sample rate in Hz.
    target_lufs : float, optional
        Integrated loudness to reach, in LUFS (-23 broadcast, -14 streaming). Results land within
        0.1 LU unless the ceiling makes the target unreachable.
    gain_db : float, optional
        Static gain in dB instead of a loudness target.
    true_peak_dbtp : float
        Ceiling for the true peak (4x oversampled) of the result, in dBTP. Peaks above it are
        limited (2 ms look-ahead, 80 ms release); a signal under it is only scaled.

    Returns
    -------
    np.ndarray
        Same shape and dtype as ``y``.

    Examples
    --------
    >>> t = np.arange(48000) / 48000
    >>> y = 0.01 * np.sin(2 * np.pi * 997 * t)
    >>> round(loudness_lufs(volume(y, sr=48000, target_lufs=-23.0), sr=48000), 1)
    -23.0
    """
    p = parse_params(
        VolumeParams,
        "volume",
        {"target_lufs": target_lufs, "gain_db": gain_db, "true_peak_dbtp": true_peak_dbtp},
    )
    y = validate_audio(y, sr=sr)
    clips = _clips(y)
    out = np.empty_like(clips)
    for i, clip in enumerate(clips):
        out[i] = _level(clip, sr, p)
    return out.reshape(y.shape).astype(y.dtype, copy=False)


def loudness_lufs(y: np.ndarray, *, sr: int) -> float | None:
    """Integrated loudness of ``y`` in LUFS (ITU-R BS.1770-4, gated), or None when silent.

    ``(n,)`` is mono; every leading axis is read as channels. Channel weights follow BS.1770:
    1.0 for the first three, 1.41 for channels 4 and 5 (surrounds); with six channels the
    order L R C LFE Ls Rs (WAV/FFmpeg 5.1) is assumed and the LFE is left out. Clips shorter
    than one 400 ms gating block are measured as one block.

    Examples
    --------
    >>> t = np.arange(48000) / 48000
    >>> round(loudness_lufs(0.1 * np.sin(2 * np.pi * 997 * t), sr=48000))  # -23.05 (K-weighting)
    -23
    >>> loudness_lufs(np.zeros(48000), sr=48000) is None
    True
    """
    x = np.asarray(y, dtype=np.float64)
    x = x.reshape(-1, x.shape[-1])
    k = _k_weight(x, sr)
    return _gated_loudness(k, sr, _channel_weights(x.shape[0]))


def true_peak_dbtp(y: np.ndarray, *, sr: int) -> float:
    """True peak of ``y`` in dBTP: the largest magnitude of the signal oversampled to at least
    192 kHz (4x at 48 kHz, per BS.1770-4 Annex 2), over all channels. -inf for silence.

    Examples
    --------
    >>> n = np.arange(4800)
    >>> fade = np.minimum(1, np.minimum(n, 4799 - n) / 480)
    >>> y = np.sin(2 * np.pi * n / 4 + np.pi / 4) * fade  # samples at +-0.707, peaks 1.0
    >>> round(true_peak_dbtp(y, sr=48000), 2)
    0.0
    """
    x = np.asarray(y, dtype=np.float64)
    x = x.reshape(-1, x.shape[-1])
    peak = _peak(_oversampled(x, sr)) if x.size else 0.0
    return float(20.0 * np.log10(peak)) if peak > 0 else float("-inf")


# --- levelling -------------------------------------------------------------------------------


def _level(clip: np.ndarray, sr: int, p: VolumeParams) -> np.ndarray:
    """One clip ``(channels, n)``: static gain, then the limiter, then loudness correction."""
    ceiling = 10.0 ** ((p.true_peak_dbtp - _MARGIN_DB) / 20.0)
    if p.gain_db is not None:
        return _limit(clip * 10.0 ** (p.gain_db / 20.0), sr, ceiling, p.true_peak_dbtp)

    weights = _channel_weights(clip.shape[0])
    kw = _k_weight(clip, sr)  # K-weighting is linear: rescale instead of refiltering
    start = _gated_loudness(kw, sr, weights)
    if start is None:
        logger.warning(
            "action=volume: signal is silent (below -70 LUFS); left unchanged, "
            "target_lufs=%s not applied",
            p.target_lufs,
        )
        return clip.copy()

    assert p.target_lufs is not None
    gain_db = p.target_lufs - start
    out = clip
    got: float | None = start
    for _ in range(_MAX_ROUNDS):
        g = 10.0 ** (gain_db / 20.0)
        scaled = clip * g
        out = _limit(scaled, sr, ceiling, p.true_peak_dbtp)
        # Re-measure even without limiting: the -70 LUFS absolute gate makes gated loudness
        # not exactly scale-invariant, so one static step can land a little off. Unlimited,
        # the result is the clip scaled, and so is its K-weighting: no need to filter again.
        got = _gated_loudness(kw * g, sr, weights) if out is scaled else loudness_lufs(out, sr=sr)
        if got is None:
            break
        miss = p.target_lufs - got
        if abs(miss) < 0.02:
            break
        gain_db += miss
        if gain_db > 60.0:
            break
    final = got  # the loudness of ``out``: every path above measured it last
    logger.debug(
        "action=volume: %.2f LUFS -> %s LUFS (target %s, ceiling %s dBTP)",
        start,
        None if final is None else round(final, 2),
        p.target_lufs,
        p.true_peak_dbtp,
    )
    if final is not None and abs(final - p.target_lufs) > 0.5:
        logger.warning(
            "action=volume: reached %.2f LUFS, not %.2f; the %.1f dBTP ceiling forbids more",
            final,
            p.target_lufs,
            p.true_peak_dbtp,
        )
    return out


def _limit(x: np.ndarray, sr: int, ceiling: float, ceiling_dbtp: float) -> np.ndarray:
    """Look-ahead true-peak limiter on ``x (channels, n)``; returns ``x`` itself if under."""
    limit_lin = 10.0 ** (ceiling_dbtp / 20.0)
    up = _oversampled(x, sr)
    # Most clips are under the ceiling: one max/min pass over the oversampled signal settles it,
    # and the per-sample envelope (the costly fold) is only built when there is work to do.
    if _peak(up) <= limit_lin:
        return x
    env = np.max(_fold_abs(up, x.shape[-1], sr), axis=0)  # linked: one envelope for all channels
    del up
    for _ in range(4):
        gain = _limiter_gain(env, sr, ceiling)
        out = x * gain
        peak = _peak(_oversampled(out, sr))
        if peak <= limit_lin:
            return out
        ceiling *= limit_lin / peak * 0.999  # overshoot from gain modulation: aim lower
    # Last resort (never seen in tests): scale the whole clip under the ceiling.
    return out * (limit_lin / peak * 0.999)


def _limiter_gain(env: np.ndarray, sr: int, ceiling: float) -> np.ndarray:
    """Smooth gain <= ceiling / env at every sample, per oversampled envelope ``env (4n,)``."""
    n = env.shape[-1]
    need = np.minimum(1.0, ceiling / np.maximum(env, 1e-12))
    la = max(1, round(_ATTACK_MS * sr / 1000.0))
    # Hold: g_hold[m] = min(need[m .. m+la-1]) ...
    hold = minimum_filter1d(need, size=la, origin=-(la // 2), mode="nearest")
    # ... release: the depth 1-g decays exponentially after a peak (vectorised recursion) ...
    rel = _release(1.0 - hold, np.exp(-1.0 / (_RELEASE_MS * sr / 1000.0)))
    # ... attack: averaging la values that each are <= need[m] keeps the bound at every m.
    g = uniform_filter1d(1.0 - rel, size=la, origin=(la - 1) // 2, mode="nearest")
    return np.minimum(g, 1.0)[:n]


def _release(depth: np.ndarray, a: float) -> np.ndarray:
    """``d[i] = max(depth[i], a * d[i-1])`` without a Python loop over samples.

    In logs: ``log d[i] - i log a`` is a running maximum. Blocks keep ``i log a`` small.
    """
    out = np.empty_like(depth)
    la = np.log(a)
    block = max(1, int(200.0 / -la))  # |i log a| <= 200 inside a block
    carry = 0.0
    with np.errstate(divide="ignore"):
        for s in range(0, depth.shape[0], block):
            d = depth[s : s + block]
            i = np.arange(d.shape[0])
            e = np.log(np.maximum(d, 1e-300)) - i * la
            if carry > 0:
                e = np.maximum(e, np.log(carry) + la)  # carry decays one step into the block
            e = np.maximum.accumulate(e)
            out[s : s + block] = np.exp(e + i * la)
            carry = out[s + d.shape[0] - 1]
    out[out < 1e-250] = 0.0
    return out


# --- measurement -----------------------------------------------------------------------------


def _oversample_factor(sr: int) -> int:
    return max(1, int(np.ceil(192000 / sr)))


def _oversampled(x: np.ndarray, sr: int) -> np.ndarray:
    """``x (channels, n)`` oversampled to at least 192 kHz (``x`` itself when already there)."""
    f = _oversample_factor(sr)
    if f == 1:
        return x
    return resample_poly(x, f, 1, axis=-1, window=_interpolator(f))


def _peak(up: np.ndarray) -> float:
    """Largest magnitude of an (oversampled) signal, without materialising ``|up|``."""
    if up.size == 0:
        return 0.0
    return float(max(up.max(), -up.min()))


def _fold_abs(up: np.ndarray, n: int, sr: int) -> np.ndarray:
    """``|up|`` folded back to one value per input sample: ``(channels, n)``.

    Each input sample gets the largest magnitude among the oversampled points from it to the
    next sample, which is what a sample-rate gain must control.
    """
    f = _oversample_factor(sr)
    if f == 1:
        return np.abs(up)
    return np.abs(up[:, : n * f]).reshape(up.shape[0], n, f).max(axis=-1)


@lru_cache(maxsize=8)
def _interpolator(f: int) -> np.ndarray:
    # 32 taps per phase, flat to 0.95 of the input Nyquist (< 0.001 dB error at fs/4), so a
    # true peak is neither missed nor over-read; BS.1770's own 12-tap-per-phase filter is looser.
    h = firwin(32 * f + 1, 0.95 / f, window=("kaiser", 9.0))
    h.setflags(write=False)
    return h


@lru_cache(maxsize=8)
def _k_filters(sr: int) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    import pyloudnorm  # BS.1770 K-weighting coefficients for any rate

    meter = pyloudnorm.Meter(sr)
    return tuple((np.asarray(f.b), np.asarray(f.a)) for f in meter._filters.values())


def _k_weight(x: np.ndarray, sr: int) -> np.ndarray:
    for b, a in _k_filters(sr):
        x = lfilter(b, a, x, axis=-1)
    return x


def _channel_weights(c: int) -> np.ndarray:
    if c == 6:  # L R C LFE Ls Rs
        return np.array([1.0, 1.0, 1.0, 0.0, 1.41, 1.41])
    w = np.ones(c)
    w[3:5] = 1.41
    return w


def _gated_loudness(k: np.ndarray, sr: int, weights: np.ndarray) -> float | None:
    """BS.1770-4 gating (400 ms blocks, 75 % overlap, -70 LUFS absolute, -10 LU relative)
    on K-weighted channels ``k (channels, n)``; pyloudnorm's algorithm, vectorised."""
    n = k.shape[-1]
    blk = round(0.4 * sr)
    if n < blk:
        z = np.mean(k**2, axis=-1)[:, None]
    else:
        step = round(0.1 * sr)
        n_blocks = (n - blk) // step + 1
        csum = np.concatenate([np.zeros((k.shape[0], 1)), np.cumsum(k**2, axis=-1)], axis=-1)
        starts = np.arange(n_blocks) * step
        z = (csum[:, starts + blk] - csum[:, starts]) / blk
    power = weights @ z
    with np.errstate(divide="ignore"):
        lj = -0.691 + 10.0 * np.log10(np.maximum(power, 0.0))
    above = lj >= _ABS_GATE_LUFS
    if not above.any():
        return None
    rel = -0.691 + 10.0 * np.log10(power[above].mean()) - 10.0
    keep = above & (lj > rel)
    return float(-0.691 + 10.0 * np.log10(power[keep].mean()))


def _clips(y: np.ndarray) -> np.ndarray:
    """``(..., n)`` as ``(clips, channels, n)`` float64: mono and ``(channels, n)`` are one clip."""
    x = np.asarray(y, dtype=np.float64)
    if x.ndim == 1:
        return x[None, None, :]
    return x.reshape(-1, x.shape[-2], x.shape[-1])
