"""Long inputs judged on excerpts: every round is scored on a few windows of the film.

A film cannot be repaired whole in memory, nor scored whole every round. The graph's rounds run
on :class:`Excerpts` instead of the clip: a handful of windows spread over the film (and placed
on the evidence perception found, e.g. dropouts), each read from the spooled track with enough
context for the plan's filters and shifts, each with its sampled frames. The scorer judges each
excerpt as it judges a short clip, and the round's scores are their mean. The chosen plan is then
rendered over the whole track in blocks (:func:`avagent.actions.stream.render`).

Excerpts live on the output's clock (the picture's), so a timing plan reads its input from where
the plan says that moment of sound comes from (:func:`avagent.actions.stream.time_map`).

Whole-clip parameters are resolved here, once per plan: ``volume(target_lufs=)`` becomes the gain
that takes the film's loudness (measured over the whole stream by perception) to the target,
corrected by how much the steps before it changed the excerpts' loudness.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from avagent.actions.stream import MARGIN_S, Step, apply_steps, time_map
from avagent.memory import release
from avagent.perception.blocks import LoudnessMeter
from avagent.perception.facts import Facts
from avagent.perception.frames import FrameSet
from avagent.reflection.scorers import Scorer, Scores

logger = logging.getLogger(__name__)

COUNT = 8  # excerpts per film
LENGTH_S = 10.0  # seconds each (memory: an action's work space grows with a window's length)
ON_EVIDENCE = 2  # of them centred on located faults (dropouts) when there are some

Reader = Callable[[int, int], np.ndarray]  # samples [a, b) -> (channels, b - a), silence outside


def place(duration_s: float, *, count: int = COUNT, length_s: float = LENGTH_S,
          evidence_s: Iterable[float] = ()) -> list[tuple[float, float]]:
    """``count`` windows of ``length_s`` spread evenly over ``duration_s``, up to
    :data:`ON_EVIDENCE` of them moved onto the first times in ``evidence_s``; sorted, not
    overlapping where the film is long enough."""
    length_s = min(length_s, duration_s)
    count = max(1, min(count, int(duration_s // length_s) or 1))
    centres = [(i + 0.5) * duration_s / count for i in range(count)]
    ev = sorted(float(t) for t in evidence_s)[:ON_EVIDENCE]
    for t in ev:  # move the nearest evenly placed window onto the evidence
        i = int(np.argmin([abs(c - t) for c in centres]))
        centres[i] = t
    out = []
    for c in sorted(set(centres)):
        a = min(max(0.0, c - length_s / 2), duration_s - length_s)
        out.append((round(a, 3), round(a + length_s, 3)))
    return out


@dataclass
class Excerpt:
    start_s: float  # on the picture's clock
    stop_s: float
    frames: FrameSet | None = None  # times relative to start_s
    before: Facts | None = None  # the scorer's facts of the untouched excerpt


@dataclass
class Excerpts:
    """The windows a long input's rounds are judged on (see the module)."""

    read: Reader
    sr: int
    n: int  # samples in the whole track
    items: list[Excerpt]
    loudness_lufs: float | None  # the whole track's, from perception
    extra: dict[str, Any] = field(default_factory=dict)

    def segment(self, e: Excerpt, steps: list[Step]) -> np.ndarray:
        """The excerpt with resolved ``steps`` applied (one-shot on the window plus context)."""
        p, y = self._read(e, steps)
        return self._cut(e, steps, (p, apply_steps(steps, y, sr=self.sr, start_s=p / self.sr)))

    def _read(self, e: Excerpt, steps: list[Step]) -> tuple[int, np.ndarray]:
        a, b = time_map(steps)
        margin = MARGIN_S * max(a, 1.0) + abs(b)
        p = int(np.floor((a * e.start_s + b - margin) * self.sr))
        q = int(np.ceil((a * e.stop_s + b + margin) * self.sr))
        return p, self.read(p, q)

    def _cut(self, e: Excerpt, steps: list[Step], seg: tuple[int, np.ndarray]) -> np.ndarray:
        p, y = seg
        a, _ = time_map(steps)
        k0 = round(e.start_s * self.sr - p / a)
        length = round((e.stop_s - e.start_s) * self.sr)
        out = y[:, max(k0, 0) : k0 + length].copy()  # not a view: the context is let go
        if out.shape[-1] < length:
            out = np.pad(out, ((0, 0), (0, length - out.shape[-1])))
        return out

    def input_excerpts(self) -> list[np.ndarray]:
        return [self.segment(e, []) for e in self.items]

    def apply(self, steps: list[Step]) -> tuple[list[np.ndarray], list[Step]]:
        """Every excerpt with the plan applied, and the plan with whole-clip parameters resolved
        (what the whole track is rendered with). One pass: step by step over all excerpts."""
        segs = [self._read(e, steps) for e in self.items]
        levels = any(n == "volume" and p.get("target_lufs") is not None for n, p in steps)
        l_raw = self._pooled([y for _, y in segs]) if levels else None
        resolved: list[Step] = []
        for name, params in steps:
            p = dict(params)
            if name == "volume" and p.get("target_lufs") is not None:
                target = float(p.pop("target_lufs"))
                p["gain_db"] = self._gain_for(l_raw, [y for _, y in segs], target)
                logger.debug("volume(target_lufs=%s) resolved to gain_db=%s", target, p["gain_db"])
            resolved.append((name, p))
            segs = [(q, apply_steps([(name, p)], y, sr=self.sr, start_s=q / self.sr))
                    for q, y in segs]
        out = [self._cut(e, resolved, seg) for e, seg in zip(self.items, segs, strict=True)]
        del segs
        release()
        return out, resolved

    def _pooled(self, ys: list[np.ndarray]) -> float | None:
        """Integrated loudness of the excerpts one after another, measured a few seconds at a
        time (a film's 8 excerpts of 5.1 joined would be hundreds of MB per filter copy)."""
        meter: LoudnessMeter | None = None
        step = 4 * self.sr
        for y in ys:
            x = y.reshape(-1, y.shape[-1])
            meter = meter or LoudnessMeter(self.sr, x.shape[0])
            for a in range(0, x.shape[-1], step):
                meter.add(x[:, a : a + step])
        return None if meter is None else meter.value()

    def _gain_for(self, l_raw: float | None, done: list[np.ndarray], target: float) -> float:
        """The gain taking the whole track to ``target``: its loudness plus what the steps so
        far changed on the excerpts (``l_raw``: their pooled loudness before any step)."""
        if self.loudness_lufs is None:
            return 0.0
        l_done = self._pooled(done)
        change = 0.0 if l_raw is None or l_done is None else l_done - l_raw
        return round(float(np.clip(target - (self.loudness_lufs + change), -60.0, 60.0)), 2)

    # -- scoring
    def score_input(self, scorer: Scorer) -> Scores:
        """Score the untouched excerpts (round 0) and keep each one's facts for the rounds."""
        results = []
        for e, y in zip(self.items, self.input_excerpts(), strict=True):
            s, facts = scorer.score(y, sr=self.sr, frames=e.frames)
            e.before = facts
            results.append(s)
        return mean_scores(results)

    def score(self, scorer: Scorer, candidates: list[np.ndarray], *, timing_changed: bool
              ) -> Scores:
        results = [
            scorer.score(y, sr=self.sr, frames=e.frames, before=e.before,
                         timing_changed=timing_changed)[0]
            for e, y in zip(self.items, candidates, strict=True)
        ]
        release()
        return mean_scores(results)


def mean_scores(results: list[Scores]) -> Scores:
    """The excerpts' scores as one: means of alignment, sync and of every detail all share."""
    keys = set.intersection(*(set(s.details) for s in results)) if results else set()
    return Scores(
        alignment=float(np.mean([s.alignment for s in results])),
        sync=float(np.mean([s.sync for s in results])),
        details={k: round(float(np.mean([s.details[k] for s in results])), 4)
                 for k in sorted(keys)},
    )
