"""Dropout detection, shared: :mod:`avagent.actions.fill_blanks` fills what it finds and
:mod:`avagent.perception.faults` reports it (moved here from ``actions/fill_blanks.py``).

Two kinds of dropout are found on the channel-summed magnitude (a dropout hits every channel):
``digital_silence``, a run of exact zeros with sound on both sides that stops and restarts
abruptly, and ``gap``, a hole at least ``drop_db`` below both sides entered and left within a few
ms. Silence at the edges, long silences and pauses that fade are genuine and not reported.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy.ndimage import maximum_filter1d

Kind = Literal["digital_silence", "gap"]

SILENCE = 1e-6  # |y| at or below this is digital silence
FRAME_MS = 1.0  # envelope resolution of the gap detector
EDGE_MS = 3.0  # the level just outside a dropout ...
CONTEXT_MS = 20.0  # ... must be within ABRUPT_DB of the level over this span before it
ABRUPT_DB = 15.0
LOUD_REL_DB = 45.0  # edges this far below the clip's loud level are not "sound"
TAIL_MS = 10.0  # a zero run is grown by up to this much on each side ...
TAIL_DB = 30.0  # ... through samples this far below the sound around it (codec tails)
ROOM_PERCENTILE = 10.0  # the recording's own floor: this percentile of its non-silent 1 ms levels


def find_dropouts(
    y: np.ndarray,
    *,
    sr: int,
    min_gap_ms: float = 10.0,
    max_gap_ms: float = 500.0,
    drop_db: float = 40.0,
) -> list[tuple[int, int, Kind]]:
    """Dropouts inside sound: ``(start, end, kind)`` sample spans (end exclusive), in order.

    Every leading axis of ``y`` counts as a channel; detection runs on their summed magnitude.
    ``kind`` is ``"digital_silence"`` (exact zeros, ``|y| <= 1e-6``) or ``"gap"`` (a hole at
    least ``drop_db`` below both sides with abrupt edges; its span is widened by 1 ms on each
    side to cover the partial frames at its edges).

    Examples
    --------
    >>> y = np.sin(np.arange(48000) * 0.05)
    >>> y[10000:11000] = 0.0
    >>> find_dropouts(y, sr=48000)
    [(10000, 11000, 'digital_silence')]
    """
    x = np.asarray(y, dtype=np.float64)
    return _find(x.reshape(-1, x.shape[-1]), sr, min_gap_ms, max_gap_ms, drop_db)


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Starts and ends (exclusive) of the True runs of a 1-d boolean mask."""
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return np.flatnonzero(d == 1), np.flatnonzero(d == -1)


def _find(
    x: np.ndarray, sr: int, min_gap_ms: float, max_gap_ms: float, drop_db: float
) -> list[tuple[int, int, Kind]]:
    # float64 throughout: span levels are differences of a running energy sum, and in float32
    # that sum (hundreds, for a loud clip of seconds) cannot resolve a quiet stretch's energy;
    # the difference rounds to zero and a -60 dB pause reads as a -300 dB hole.
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[-1]
    mag = np.abs(x).sum(axis=0)
    power = (x**2).sum(axis=0)
    h = max(1, round(FRAME_MS * sr / 1000.0))
    n_fr = n // h
    if n_fr < 8:
        return []
    fr_pow = power[: n_fr * h].reshape(n_fr, h).mean(axis=1)
    with np.errstate(divide="ignore"):
        fr_db = 10.0 * np.log10(fr_pow + 1e-30)
    csum = np.concatenate([[0.0], np.cumsum(power)])
    loud_db = float(np.percentile(fr_db, 95))
    # The room: the level the recording rests at between sounds. A pause that fades past it into
    # zeros is a gated recording's own silence; zeros that cut the room tone off are a loss.
    fr_mag = mag[: n_fr * h].reshape(n_fr, h).max(axis=1)
    sounding = fr_db[fr_mag > SILENCE * x.shape[0]]
    room_db = float(np.percentile(sounding, ROOM_PERCENTILE)) if sounding.size else -300.0
    lo, hi = min_gap_ms * sr / 1000.0, max_gap_ms * sr / 1000.0
    edge, ctx = round(EDGE_MS * sr / 1000.0), round(CONTEXT_MS * sr / 1000.0)

    def level(a: int, b: int) -> float:
        a, b = max(a, 0), min(b, n)
        if b <= a:
            return -300.0
        return 10.0 * np.log10((csum[b] - csum[a]) / (b - a) + 1e-30)

    def abrupt(s: int, e: int, one_side: bool = False) -> bool:
        """Sound on both sides that stops at ``s`` and restarts at ``e`` without a fade; with
        ``one_side``, sound cut abruptly on one side and the recording's own room tone on the
        other (within ``ABRUPT_DB`` of its floor): exact zeros that start inside a pause and
        cut into a word. A side that has faded past the room's floor into the zeros is a pause
        ending in a gate (a gated voice recording's word gaps), not a loss."""
        if s < edge + ctx or e > n - edge - ctx:
            return False
        left_edge, right_edge = level(s - edge, s), level(e, e + edge)
        left_ctx, right_ctx = level(s - edge - ctx, s - edge), level(e + edge, e + edge + ctx)
        floor = loud_db - LOUD_REL_DB
        left_ok = left_edge >= floor and left_edge >= left_ctx - ABRUPT_DB
        right_ok = right_edge >= floor and right_edge >= right_ctx - ABRUPT_DB
        if left_ok and right_ok:
            return True
        if not one_side:
            return False
        zero = 10.0 * np.log10((SILENCE * x.shape[0]) ** 2 + 1e-30)
        room = max(zero, room_db - ABRUPT_DB)
        return (left_ok and right_edge > room) or (right_ok and left_edge > room)

    def grow(s: int, e: int) -> tuple[int, int]:
        """Extend a zero run through the faint tails a lossy codec leaves around it."""
        step, limit = max(1, round(sr / 1000.0)), round(TAIL_MS * sr / 1000.0)
        ref_left, ref_right = level(s - edge - ctx, s - edge), level(e + edge, e + edge + ctx)
        a, b = s, e
        while s - a < limit and a - step > 0 and level(a - step, a) < ref_left - TAIL_DB:
            a -= step
        while b - e < limit and b + step < n and level(b, b + step) < ref_right - TAIL_DB:
            b += step
        return a, b

    found: list[tuple[int, int, Kind]] = []
    silent_spans: list[tuple[int, int]] = []
    for s, e in zip(*_runs(mag <= SILENCE * x.shape[0]), strict=True):
        if e - s < lo or s == 0 or e == n:
            continue
        s, e = grow(int(s), int(e))
        silent_spans.append((s, e))
        if e - s <= hi and abrupt(s, e, one_side=True):
            found.append((s, e, "digital_silence"))

    # Holes: frames far below the loudest level around them, then checked against both sides.
    reach = int(np.ceil(max_gap_ms / FRAME_MS / 2)) + 12
    around = maximum_filter1d(fr_db, size=2 * reach + 1, mode="constant", cval=-300.0)
    fs, fe = _runs(fr_db < around - drop_db)
    for a, b in zip(fs, fe, strict=True):
        s, e = max(0, (int(a) - 1) * h), min(n, (int(b) + 1) * h)  # partial frames at edges
        if not lo <= (b - a) * h <= hi + 2 * h:
            continue
        if any(s < se and ss < e for ss, se in silent_spans):
            continue  # zeros were already judged above
        inside = level(s + h, e - h)
        if level(s - ctx, s) - inside < drop_db or level(e, e + ctx) - inside < drop_db:
            continue
        if abrupt(s, e):
            found.append((s, e, "gap"))
    found.sort()
    return found
