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
from typing import Self

import numpy as np
from pydantic import Field, model_validator
from scipy.ndimage import minimum_filter1d, uniform_filter1d

from avagent.actions.base import ActionParams, parse_params
from avagent.audio import validate_audio
from avagent.loudness import (
    channel_weights,
    fold_abs,
    gated_loudness,
    k_weight,
    loudness_lufs,
    oversampled,
    sample_peak,
)

logger = logging.getLogger(__name__)

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


# --- levelling -------------------------------------------------------------------------------


def _level(clip: np.ndarray, sr: int, p: VolumeParams) -> np.ndarray:
    """One clip ``(channels, n)``: static gain, then the limiter, then loudness correction."""
    ceiling = 10.0 ** ((p.true_peak_dbtp - _MARGIN_DB) / 20.0)
    if p.gain_db is not None:
        return _limit(clip * 10.0 ** (p.gain_db / 20.0), sr, ceiling, p.true_peak_dbtp)

    weights = channel_weights(clip.shape[0])
    kw = k_weight(clip, sr)  # K-weighting is linear: rescale instead of refiltering
    start = gated_loudness(kw, sr, weights)
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
        got = gated_loudness(kw * g, sr, weights) if out is scaled else loudness_lufs(out, sr=sr)
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
    up = oversampled(x, sr)
    # Most clips are under the ceiling: one max/min pass over the oversampled signal settles it,
    # and the per-sample envelope (the costly fold) is only built when there is work to do.
    if sample_peak(up) <= limit_lin:
        return x
    env = np.max(fold_abs(up, x.shape[-1], sr), axis=0)  # linked: one envelope for all channels
    del up
    for _ in range(4):
        gain = _limiter_gain(env, sr, ceiling)
        out = x * gain
        peak = sample_peak(oversampled(out, sr))
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


def _clips(y: np.ndarray) -> np.ndarray:
    """``(..., n)`` as ``(clips, channels, n)`` float64: mono and ``(channels, n)`` are one clip."""
    x = np.asarray(y, dtype=np.float64)
    if x.ndim == 1:
        return x[None, None, :]
    return x.reshape(-1, x.shape[-2], x.shape[-1])
