"""Sync from continuous activity: how much the picture changes against how much the sound starts.

For footage without discrete events (no flash, no clap; a scene where things move and sound
now and then) neither the event matcher nor the mouth can decide. This cue correlates two
continuous signals at the sampled frames:

* **picture**: the change into each frame (mean absolute difference, in colour when the frames
  carry it, :func:`avagent.perception.events.frame_change`; scene cuts flattened), over the
  interval ``(t[i-1], t[i]]`` it happened in;
* **sound**: the onset strength (positive spectral flux of log band energies, every
  ``HOP_S``) summed over the same interval shifted by the lag.

Both are high-passed (minus a running median over ``HP_FRAMES`` frames) so that slow trends
(a quiet first half, a busy second) do not correlate at every lag. The Pearson correlation is
taken at every lag of ±``max_lag_s`` (``LAG_STEP_S`` steps, refined by a parabola).

**The null.** The same correlation with the sound rotated circularly by every shift at least
``max_lag_s + GUARD_S`` away from zero: sound and picture unrelated, the clip's own textures
kept. The peak is scored as ``z``: how many null spreads it stands above the null mean. A
verdict needs

1. ``z >= Z_PEAK`` and the peak above every null shift (``Z_PEAK`` was set above the largest z
   any unrelated sound/picture pair of ``bench/sync_check.py`` reached, see docs/sync.md);
2. a clear margin (``Z_MARGIN``) over the best lag outside the peak (periodic material, one
   period off matching almost as well, stays undecided);
3. every window of the clip (2-3 along it) peaking within ``AGREE_MS`` of the whole clip's peak,
   and all within ``SPREAD_MS`` of each other: windows that walk apart are a clock drift, and
   one shift would leave the clip's ends off by more than 45 ms.

Sign: ``delay_ms > 0``: the sound is late.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import median_filter

from avagent.perception.events import frame_change
from avagent.perception.features import onset_from_16k
from avagent.perception.frames import FrameSet
from avagent.perception.spectrum import to_16k, to_mono
from avagent.perception.video import scene_cuts

HOP_S = 0.005
LAG_STEP_S = 0.01
MAX_LAG_S = 1.0
HP_FRAMES = 9
GUARD_S = 0.3  # null shifts stay this far beyond the searched lags
MIN_NULL_S = 1.0  # a clip too short for this much null shift cannot be scored
MIN_FRAMES = 30
Z_PEAK = 6.3  # the unrelated pairs of bench/sync_check.py reach 5.8 at 25 fps (5.0 at 12.5; docs/sync.md)
Z_MARGIN = 1.5
AGREE_MS = 80.0
SPREAD_MS = 45.0  # windows further apart than this are a drift, not an offset


@dataclass
class ActivitySync:
    """What the activity correlation says about sync: ``delay_ms`` only when decided."""

    delay_ms: float | None
    z: float
    window_ms: list[float]
    why: str
    z_runner: float = 0.0
    peak_ms: float | None = None  # the undecided peak too, for the record


def picture_activity(frames: FrameSet) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(a, b, v): each frame change ``v`` (high-passed) with the interval ``(a, b]`` (s) it
    happened in. A cut is not activity: its change is replaced by the one before."""
    m = frame_change(frames)
    for c in scene_cuts(frames):
        m[c] = m[c - 1] if c > 0 else 0.0
    t = np.asarray(frames.times_s, dtype=np.float64)
    v = m[1:] - median_filter(m[1:], HP_FRAMES, mode="nearest")
    return t[:-1], t[1:], v


def sound_activity(y: np.ndarray, sr: int) -> np.ndarray:
    """Onset strength every ``HOP_S`` (positive spectral flux of log band energies)."""
    env, _ = onset_from_16k(to_16k(to_mono(np.asarray(y, dtype=np.float64)), sr), hop_s=HOP_S)
    return env


def _sums(cum: np.ndarray, a: np.ndarray, b: np.ndarray, lags: np.ndarray, n: int,
          circular: bool) -> tuple[np.ndarray, np.ndarray]:
    """Onset strength summed over ``(a + lag, b + lag]`` for every lag, ``(L, T)``, and where
    that interval lies inside the sound (always, when circular: indices wrap at ``n``)."""
    ia = np.round((a[None, :] + lags[:, None]) / HOP_S).astype(np.int64)
    ib = np.round((b[None, :] + lags[:, None]) / HOP_S).astype(np.int64)
    if circular:
        total = cum[n]
        qa, ra = np.divmod(ia, n)
        qb, rb = np.divmod(ib, n)
        s = (cum[rb] + qb * total) - (cum[ra] + qa * total)
        return s, np.ones_like(s, dtype=bool)
    ok = (ia >= 0) & (ib <= n)
    s = cum[np.clip(ib, 0, n)] - cum[np.clip(ia, 0, n)]
    return s, ok


def _corr(s: np.ndarray, ok: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Pearson correlation of each row of ``s`` (high-passed) with ``v`` over ``ok``. (Ranks
    instead of values were tried: the unrelated pairs' largest z fell from 5.0 to 4.6, but the
    drum clips' fell below the gate, and no more clips were decided.)"""
    s = s - median_filter(s, size=(1, HP_FRAMES), mode="nearest")
    w = ok.astype(np.float64)
    n = w.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ms = (s * w).sum(axis=1) / n
        mv = (v[None, :] * w).sum(axis=1) / n
        ds = (s - ms[:, None]) * w
        dv = (v[None, :] - mv[:, None]) * w
        r = (ds * dv).sum(axis=1) / np.sqrt((ds**2).sum(axis=1) * (dv**2).sum(axis=1))
    r[(n < MIN_FRAMES * 0.5) | ~np.isfinite(r)] = np.nan
    return r


def _peak(r: np.ndarray, lags: np.ndarray) -> tuple[float, float]:
    """(lag s, value) of the maximum, the lag refined by a parabola through its neighbours."""
    k = int(np.nanargmax(r))
    lag, val = float(lags[k]), float(r[k])
    if 0 < k < r.size - 1 and np.isfinite(r[k - 1]) and np.isfinite(r[k + 1]):
        den = r[k - 1] - 2 * r[k] + r[k + 1]
        if den < 0:
            lag += float(np.clip(0.5 * (r[k - 1] - r[k + 1]) / den, -0.5, 0.5)) * LAG_STEP_S
    return lag, val


def _runner(r: np.ndarray, lags: np.ndarray, lag: float, frame_s: float) -> float:
    """The best local maximum more than one frame interval from the peak: an on and an off
    change of the same picture (a lamp on for two frames) give two peaks that close, and
    either may be the higher."""
    rr = np.where(np.isfinite(r), r, -np.inf)
    loc = np.r_[False, (rr[1:-1] >= rr[:-2]) & (rr[1:-1] >= rr[2:]), False]
    loc |= np.r_[rr[0] > rr[1], np.zeros(r.size - 2, bool), rr[-1] > rr[-2]]
    far = loc & (np.abs(lags - lag) > frame_s) & np.isfinite(r)
    return float(np.max(r[far])) if far.any() else float(np.nanmin(r))


def activity_sync(y: np.ndarray, sr: int, frames: FrameSet,
                  max_lag_s: float = MAX_LAG_S) -> ActivitySync:
    """How late the sound is against the picture's activity, or why it cannot tell."""
    T = frames.frames.shape[0]
    if T < MIN_FRAMES:
        return ActivitySync(None, 0.0, [], "too few frames")
    a, b, v = picture_activity(frames)
    if float(np.std(v)) < 1e-6:
        return ActivitySync(None, 0.0, [], "the picture does not move")
    env = sound_activity(y, sr)
    n = min(env.size, round(frames.duration_s / HOP_S))
    dur = n * HOP_S
    guard = max_lag_s + GUARD_S
    if dur - 2 * guard < MIN_NULL_S:
        return ActivitySync(None, 0.0, [], "too short for a null")
    keep = b <= dur
    a, b, v = a[keep], b[keep], v[keep]
    cum = np.concatenate([[0.0], np.cumsum(env[:n])])
    lags = np.arange(-max_lag_s, max_lag_s + LAG_STEP_S / 2, LAG_STEP_S)
    r = _corr(*_sums(cum, a, b, lags, n, False), v)
    shifts = np.arange(guard, dur - guard + LAG_STEP_S / 2, LAG_STEP_S)
    null = _corr(*_sums(cum, a, b, shifts, n, True), v)
    null = null[np.isfinite(null)]
    if np.all(np.isnan(r)) or null.size < 10:
        return ActivitySync(None, 0.0, [], "no correlation")
    mu, sd = float(np.mean(null)), float(np.std(null)) + 1e-9
    lag, val = _peak(r, lags)
    z = (val - mu) / sd
    z_run = (_runner(r, lags, lag, float(np.median(b - a))) - mu) / sd
    wins = []
    for rows in np.array_split(np.arange(v.size), 3 if v.size >= 90 else 2):
        rw = _corr(*_sums(cum, a[rows], b[rows], lags, n, False), v[rows])
        wins.append(round(_peak(rw, lags)[0] * 1000.0, 1) if np.any(np.isfinite(rw)) else None)
    d_ms = round(lag * 1000.0, 1)
    out = dict(z=round(z, 2), window_ms=[w for w in wins if w is not None],
               z_runner=round(z_run, 2), peak_ms=d_ms)
    if z < Z_PEAK or val <= float(np.max(null)):
        return ActivitySync(None, why=f"no clear peak (z {z:.1f})", **out)
    if z - z_run < Z_MARGIN:
        return ActivitySync(None, why=f"a second lag matches almost as well (z {z_run:.1f})",
                            **out)
    if any(w is None or abs(w - d_ms) > AGREE_MS for w in wins):
        return ActivitySync(None, why="the windows of the clip disagree", **out)
    if max(wins) - min(wins) > SPREAD_MS:
        return ActivitySync(None, why="the windows drift apart", **out)
    return ActivitySync(d_ms, why="decided", **out)
