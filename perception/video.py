"""Measured facts about the picture: motion timeline, scene cuts, visually active spans."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from avagent.perception.facts import Span, VideoFacts
from avagent.perception.frames import FrameSet

logger = logging.getLogger(__name__)

STATIC_MOTION = 0.004  # mean |Δ| / 255 below this (about one grey level) everywhere: a still
CUT_HIST_DIST = 0.35  # half L1 distance between grey histograms that marks a cut
MIN_SPAN_S = 0.3


def motion_energy(frames: FrameSet) -> np.ndarray:
    """Mean absolute difference between consecutive sampled frames, in 0..1 (÷ 255).

    Value ``i`` describes the change between frame ``i - 1`` and frame ``i``; value 0 repeats
    value 1 so the timeline has one entry per frame.
    """
    f = frames.frames
    if f.shape[0] < 2:
        return np.zeros(f.shape[0])
    d = np.abs(np.diff(f.astype(np.int16), axis=0)).mean(axis=(1, 2)) / 255.0
    return np.concatenate([d[:1], d]).astype(np.float64)


def histogram_distance(frames: FrameSet, *, bins: int = 32) -> np.ndarray:
    """Half L1 distance (0..1) between grey histograms of consecutive frames (entry 0 is 0)."""
    f = frames.frames
    T = f.shape[0]
    if T < 2:
        return np.zeros(T)
    q = (f.reshape(T, -1).astype(np.int32) * bins) >> 8
    h = np.stack([np.bincount(row, minlength=bins) for row in q]).astype(np.float64)
    h /= h.sum(axis=1, keepdims=True)
    d = 0.5 * np.abs(np.diff(h, axis=0)).sum(axis=1)
    return np.concatenate([[0.0], d])


def scene_cuts(frames: FrameSet) -> list[int]:
    """Indices of frames that start a new shot: histogram jumps that stand out of their context."""
    return cuts_from(histogram_distance(frames), motion_energy(frames))


def cuts_from(hd: np.ndarray, m: np.ndarray) -> list[int]:
    """:func:`scene_cuts` from the histogram-distance and motion timelines."""
    if hd.size < 3:
        return []
    med = float(np.median(hd))
    mad = float(np.median(np.abs(hd - med))) + 1e-3
    cand = np.flatnonzero((hd >= max(CUT_HIST_DIST, med + 8 * mad)) | (m > 0.25))
    cuts: list[int] = []
    for i in cand:
        if i == 0 or (cuts and i - cuts[-1] < 2):
            continue
        cuts.append(int(i))
    return cuts


def active_spans(frames: FrameSet, motion: np.ndarray | None = None) -> list[Span]:
    """Spans where motion rises above an adaptive threshold (between the clip's floor and peaks)."""
    m = motion_energy(frames) if motion is None else motion
    return spans_from(m, frames.times_s, frames.sample_fps)


def spans_from(m: np.ndarray, t: np.ndarray, sample_fps: float) -> list[Span]:
    """:func:`active_spans` from the motion timeline ``m`` at frame times ``t``."""
    if m.size < 2 or float(np.percentile(m, 95)) < STATIC_MOTION:
        return []
    lo, hi = float(np.percentile(m, 20)), float(np.percentile(m, 90))
    thr = max(STATIC_MOTION, lo + 0.35 * (hi - lo))
    on = m > thr
    half = 0.5 / sample_fps
    spans: list[Span] = []
    edges = np.diff(np.concatenate([[0], on.astype(np.int8), [0]]))
    for s, e in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True):
        start, end = float(t[s] - half), float(t[e - 1] + half)
        if spans and start - spans[-1].end_s < 0.2:
            spans[-1] = Span(start_s=spans[-1].start_s, end_s=round(end, 3))
        else:
            spans.append(Span(start_s=round(max(start, 0.0), 3), end_s=round(end, 3)))
    return [s for s in spans if s.end_s - s.start_s >= MIN_SPAN_S]


def analyze_video(frames: FrameSet) -> VideoFacts:
    """Measure the sampled frames of a video: motion timeline, cuts, active spans, stillness.

    Parameters
    ----------
    frames : FrameSet
        Grey frames sampled at ``frames.sample_fps`` (e.g. 25 fps, 160 px wide).

    Returns
    -------
    VideoFacts
    """
    return facts_from(motion_energy(frames), histogram_distance(frames), frames)


def facts_from(m: np.ndarray, hd: np.ndarray, frames: Any) -> VideoFacts:
    """:func:`analyze_video` from the motion and histogram timelines; ``frames`` supplies the
    times and the stream's metadata (a :class:`FrameSet` or anything with its attributes)."""
    cuts = cuts_from(hd, m)
    # a cut is one huge difference, not motion: keep it out of the timeline's statistics
    m_clean = m.copy()
    for i in cuts:
        m_clean[i] = m_clean[i - 1] if i > 0 else 0.0
    static = bool(m_clean.size == 0 or float(np.percentile(m_clean, 95)) < STATIC_MOTION)
    return VideoFacts(
        duration_s=round(float(frames.duration_s), 4),
        fps=float(frames.fps),
        width=int(frames.width),
        height=int(frames.height),
        sample_fps=float(frames.sample_fps),
        motion_mean=round(float(m_clean.mean()) if m_clean.size else 0.0, 5),
        motion=[round(float(v), 5) for v in m_clean],
        cuts_s=[round(float(frames.times_s[i]), 3) for i in cuts],
        active_spans=[] if static else spans_from(m_clean, frames.times_s, frames.sample_fps),
        static=static,
    )
