"""Speed: move the sound in time and change its playback rate (early/late sound, drift, PAL).

Rate is varispeed, like a tape played faster: duration and pitch change together, which is exactly
what clock drift and a PAL speed-up did, so the same rate undoes both. The resampler is soxr in
high-quality mode (any ratio, no rational approximation needed).

Order: the rate is applied first, then the offset (so ``offset_ms`` is measured on the output's
clock, which is the video's clock), then the length is fitted to ``target_duration_s``.
"""

from __future__ import annotations

import logging
from functools import lru_cache

import numpy as np
import soxr
from pydantic import Field
from scipy.signal import oaconvolve

from avagent.actions.base import ActionParams, parse_params
from avagent.audio import validate_audio

logger = logging.getLogger(__name__)

MAX_OFFSET_MS = 5000.0
_EDGE_FADE_MS = 2.0  # a cut into running sound gets a short fade so it does not click
_FRAC_TAPS = 64  # windowed-sinc fractional delay length (taps)


class SpeedParams(ActionParams):
    """Parameters of :func:`speed`."""

    offset_ms: float = Field(
        0.0,
        ge=-MAX_OFFSET_MS,
        le=MAX_OFFSET_MS,
        description="time shift in ms applied after the rate; > 0 delays the sound (silence is "
        "padded at the start, the end is dropped), < 0 advances it (the start is dropped)",
    )
    rate: float = Field(
        1.0,
        ge=0.5,
        le=2.0,
        description="playback speed factor (varispeed: pitch follows); > 1 makes the sound "
        "shorter and higher; 23.976/25 = 0.95904 undoes a PAL speed-up",
    )
    target_duration_s: float | None = Field(
        None,
        gt=0.0,
        le=86400.0,
        description="fit the output to this duration (the video's) by padding silence at the end "
        "or trimming the end; None keeps the length the rate and offset give",
    )


def speed(
    y: np.ndarray,
    *,
    sr: int,
    offset_ms: float = 0.0,
    rate: float = 1.0,
    target_duration_s: float | None = None,
) -> np.ndarray:
    """Change the playback rate of ``y``, then shift it in time, then fit its length.

    Parameters
    ----------
    y : np.ndarray, shape (..., n)
        Audio; the last axis is time. Every channel gets the same treatment.
    sr : int
        Sample rate in Hz (unchanged by this action).
    offset_ms : float
        Time shift in milliseconds, within ±5000. ``> 0`` delays the sound: silence is padded
        at the start and the end is dropped. ``< 0`` advances it: the start is dropped and
        silence is padded at the end. The length is kept. Sub-sample offsets use a 64-tap
        windowed-sinc fractional delay; whole-sample offsets are exact copies.
    rate : float
        Playback speed factor in [0.5, 2]: the output lasts ``n / rate`` samples and every
        frequency is multiplied by ``rate``. Applied before the offset.
    target_duration_s : float or None
        When given, the output has ``round(target_duration_s * sr)`` samples (silence padded at
        the end, or the end trimmed). The agent passes the video's duration.

    Returns
    -------
    np.ndarray, shape (..., m)
        Same dtype and leading shape as ``y``.

    Examples
    --------
    >>> y = np.ones(48000)
    >>> float(speed(y, sr=48000, offset_ms=10.0)[:480].max())  # 10 ms of silence first
    0.0
    >>> speed(y, sr=48000, rate=2.0).shape
    (24000,)
    """
    p = parse_params(
        SpeedParams,
        "speed",
        {"offset_ms": offset_ms, "rate": rate, "target_duration_s": target_duration_s},
    )
    y = validate_audio(y, sr=sr)
    dtype = y.dtype
    lead, n = y.shape[:-1], y.shape[-1]
    x = np.ascontiguousarray(y, dtype=np.float64).reshape(-1, n)

    if p.rate != 1.0:
        x = _varispeed(x, sr, p.rate)
    if p.offset_ms != 0.0:
        x = _shift(x, p.offset_ms * sr / 1000.0, sr)
    if p.target_duration_s is not None:
        x = _fit_length(x, round(p.target_duration_s * sr), sr)

    logger.debug(
        "action=speed rate=%s offset_ms=%s target_duration_s=%s: %d -> %d samples",
        p.rate,
        p.offset_ms,
        p.target_duration_s,
        n,
        x.shape[-1],
    )
    return x.reshape(*lead, x.shape[-1]).astype(dtype, copy=False)


def _varispeed(x: np.ndarray, sr: int, rate: float) -> np.ndarray:
    """Resample rows so they play ``rate`` times faster at ``sr`` (length ``round(n / rate)``)."""
    n = x.shape[-1]
    m = max(1, round(n / rate))
    # Reading the samples as if recorded at sr * rate and converting to sr plays them faster.
    out = soxr.resample(np.ascontiguousarray(x.T), sr * rate, sr, quality="HQ").T
    if out.shape[-1] >= m:
        return np.ascontiguousarray(out[:, :m])
    return np.pad(out, ((0, 0), (0, m - out.shape[-1])))


def _shift(x: np.ndarray, shift: float, sr: int) -> np.ndarray:
    """Delay rows by ``shift`` samples (negative advances), keeping the length."""
    n = x.shape[-1]
    k = int(np.floor(shift))
    frac = shift - k
    if frac > 1e-3:
        if frac > 1 - 1e-3:
            k, frac = k + 1, 0.0
        else:
            x = _fractional_delay(x, frac)
    out = np.zeros_like(x)
    if k >= 0:
        if k < n:
            out[:, k:] = x[:, : n - k]
            _fade(out[:, n - 1 :: -1], _EDGE_FADE_MS, sr)  # the dropped end was a cut
    elif -k < n:
        out[:, : n + k] = x[:, -k:]
        _fade(out, _EDGE_FADE_MS, sr)  # the new start is a cut into running sound
    return out


@lru_cache(maxsize=32)
def _frac_kernel(frac: float) -> np.ndarray:
    # Windowed sinc centred on (taps/2 - 1 + frac): a delay of frac plus an integer group delay.
    t = np.arange(_FRAC_TAPS) - (_FRAC_TAPS // 2 - 1) - frac
    h = np.sinc(t) * np.kaiser(_FRAC_TAPS, 8.0)
    h /= h.sum()
    h.setflags(write=False)
    return h


def _fractional_delay(x: np.ndarray, frac: float) -> np.ndarray:
    h = _frac_kernel(round(frac, 6))
    full = oaconvolve(x, h[None, :], axes=-1)
    start = _FRAC_TAPS // 2 - 1  # remove the integer group delay
    return full[:, start : start + x.shape[-1]]


def _fit_length(x: np.ndarray, m: int, sr: int) -> np.ndarray:
    m = max(1, m)
    n = x.shape[-1]
    if m == n:
        return x
    if m < n:
        out = x[:, :m].copy()
        _fade(out[:, ::-1], _EDGE_FADE_MS, sr)
        return out
    return np.pad(x, ((0, 0), (0, m - n)))


def _fade(view: np.ndarray, ms: float, sr: int) -> None:
    """Raised-cosine fade-in over the first ``ms`` of ``view`` (in place; pass a reversed view
    to fade out)."""
    k = min(view.shape[-1], max(1, round(ms * sr / 1000.0)))
    view[:, :k] *= 0.5 - 0.5 * np.cos(np.pi * (np.arange(k) + 0.5) / k)
