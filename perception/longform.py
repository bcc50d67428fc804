"""Perception of a long input from streams: the picture scanned once, sync from excerpts.

* :class:`FrameScan` takes sampled frames one at a time: the motion and histogram timelines
  grow by one number each (the video facts are computed from them exactly as for a short clip),
  and only the frames inside the excerpts' windows are kept, as one small
  :class:`~avagent.perception.frames.FrameSet` per excerpt (times relative to its start). A
  film's frames never exist at once.
* :func:`combine_sync` turns the per-excerpt sync estimates into the film's: a known rate change
  from the stream durations; else an offset when at least two excerpts decide and agree; a
  drift when three or more decide on a line; anything else is ``cannot_tell``. One excerpt that
  decides while the others cannot is not enough to shift a film.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from avagent.perception.facts import SyncFacts, VideoFacts
from avagent.perception.frames import FrameSet
from avagent.perception.sync import AGREE_MS, IN_SYNC_MS, _rate_from_durations
from avagent.perception.video import facts_from

HIST_BINS = 32
MIN_DECIDED = 2
TREND_RESID_MS = 30.0
TREND_MIN_SLOPE = 0.5  # ms of delay per second of film: 0.05 % clock error


@dataclass
class _Meta:
    duration_s: float
    fps: float
    width: int
    height: int
    sample_fps: float
    times_s: np.ndarray


@dataclass
class FrameScan:
    """Video facts and excerpt frames from a stream of ``(t_s, grey frame)`` (see module)."""

    windows: list[tuple[float, float]]
    sample_fps: float
    fps: float
    width: int
    height: int
    duration_s: float
    _m: list[float] = field(default_factory=list)
    _hd: list[float] = field(default_factory=list)
    _t: list[float] = field(default_factory=list)
    _prev: np.ndarray | None = None
    _prev_hist: np.ndarray | None = None
    _kept: list[list[tuple[float, np.ndarray]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._kept = [[] for _ in self.windows]

    def add(self, t: float, frame: np.ndarray) -> None:
        f = np.asarray(frame)
        hist = np.bincount((f.reshape(-1).astype(np.int32) * HIST_BINS) >> 8,
                           minlength=HIST_BINS).astype(np.float64)
        hist /= max(hist.sum(), 1.0)
        if self._prev is None:
            self._m.append(0.0)  # replaced by the next value, as motion_energy does
            self._hd.append(0.0)
        else:
            d = float(np.abs(f.astype(np.int16) - self._prev.astype(np.int16)).mean()) / 255.0
            if len(self._m) == 1:
                self._m[0] = d
            self._m.append(d)
            assert self._prev_hist is not None
            self._hd.append(0.5 * float(np.abs(hist - self._prev_hist).sum()))
        self._prev, self._prev_hist = f, hist
        self._t.append(float(t))
        for i, (a, b) in enumerate(self.windows):
            if a <= t < b:
                self._kept[i].append((t - a, f.copy()))

    def facts(self) -> VideoFacts:
        meta = _Meta(self.duration_s, self.fps, self.width, self.height, self.sample_fps,
                     np.asarray(self._t))
        return facts_from(np.asarray(self._m), np.asarray(self._hd), meta)

    def excerpt_frames(self) -> list[FrameSet | None]:
        out: list[FrameSet | None] = []
        for (a, b), kept in zip(self.windows, self._kept, strict=True):
            if len(kept) < 2:
                out.append(None)
                continue
            out.append(FrameSet(
                frames=np.stack([f for _, f in kept]),
                times_s=np.array([t for t, _ in kept]),
                sample_fps=self.sample_fps, fps=self.fps, width=self.width,
                height=self.height, duration_s=float(b - a),
            ))
        return out


def combine_sync(parts: list[tuple[float, SyncFacts | None]], *, audio_s: float,
                 video_s: float) -> SyncFacts:
    """The film's sync from ``(excerpt centre s, its estimate)`` pairs (see the module)."""
    ratio = round(audio_s / video_s, 5) if video_s > 0 else None
    window_ms = [p.audio_delay_ms for _, p in parts if p is not None and p.audio_delay_ms is not None]
    rate = _rate_from_durations(audio_s, video_s)
    if rate is not None:
        return SyncFacts(verdict="drift", audio_delay_ms=None, confidence=0.9, rate=round(rate, 5),
                         window_delays_ms=window_ms, duration_ratio=ratio)
    decided = [(c, float(p.audio_delay_ms), p.confidence) for c, p in parts
               if p is not None and p.verdict in ("in_sync", "offset")
               and p.audio_delay_ms is not None]
    need = MIN_DECIDED if len(parts) >= MIN_DECIDED else 1
    if len(decided) >= need:
        d = np.array([x[1] for x in decided])
        if float(d.max() - d.min()) <= AGREE_MS:
            delay = float(np.median(d))
            return SyncFacts(
                verdict="in_sync" if abs(delay) <= IN_SYNC_MS else "offset",
                audio_delay_ms=round(delay, 1),
                confidence=round(float(np.median([x[2] for x in decided])), 3),
                window_delays_ms=window_ms, duration_ratio=ratio)
        if len(decided) >= 3:
            t = np.array([x[0] for x in decided])
            slope, icpt = np.polyfit(t, d, 1)
            if (np.max(np.abs(d - (slope * t + icpt))) <= TREND_RESID_MS
                    and abs(slope) >= TREND_MIN_SLOPE):
                return SyncFacts(verdict="drift", audio_delay_ms=round(float(icpt), 1),
                                 confidence=0.6, rate=round(1.0 / (1.0 + slope / 1000.0), 5),
                                 window_delays_ms=window_ms, duration_ratio=ratio)
    return SyncFacts(verdict="cannot_tell", audio_delay_ms=None, confidence=0.0,
                     window_delays_ms=window_ms, duration_ratio=ratio)
