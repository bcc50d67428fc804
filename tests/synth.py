"""Seeded synthetic signals shared by the perception tests."""

from __future__ import annotations

import numpy as np

from avagent.perception.frames import FrameSet


def speechlike(rng: np.random.Generator, sr: int, dur: float) -> np.ndarray:
    """Voiced syllables: harmonic tones with a gliding pitch, 4 per second, with pauses."""
    t = np.arange(int(sr * dur)) / sr
    f0 = 140 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    y = sum(np.sin(k * phase) / k for k in range(1, 12))
    env = np.clip(np.sin(2 * np.pi * 2.0 * t), 0, None) ** 2
    env *= (np.sin(2 * np.pi * 0.25 * t) > -0.6).astype(float)
    return (0.3 * y * env).astype(np.float64)


def moving_block_av(
    rng: np.random.Generator,
    delay_ms: float,
    *,
    dur: float = 10.0,
    fps: float = 12.5,
    sr: int = 48000,
    unrelated_audio: bool = False,
) -> tuple[np.ndarray, int, FrameSet]:
    """A block jumps to a new place at random event times; a click sounds at each event + delay."""
    ev = np.sort(rng.uniform(0.3, dur - 0.3, int(dur * 1.2)))
    times = np.arange(int(dur * fps)) / fps
    frames = np.full((times.size, 45, 80), 40, np.uint8)
    for i, t in enumerate(times):
        k = int(np.searchsorted(ev, t, side="right"))
        r = np.random.default_rng(k)
        y0, x0 = r.integers(0, 33), r.integers(0, 68)
        frames[i, y0 : y0 + 12, x0 : x0 + 12] = 220
    if unrelated_audio:
        ev = np.sort(rng.uniform(0.3, dur - 0.3, ev.size))
    y = rng.standard_normal(int(dur * sr)) * 0.002
    n = 2400
    env = np.exp(-np.arange(n) / (0.01 * sr))
    for e in ev:
        i = int((e + delay_ms / 1000) * sr)
        if 0 <= i < y.size - n:
            y[i : i + n] += rng.standard_normal(n) * 0.3 * env
    return y, sr, FrameSet(frames, times, fps, 25.0, 640, 360, dur)


def periodic_av(delay_ms: float, period_s: float = 0.4, dur: float = 8.0, sr: int = 48000):
    """A block that jumps every ``period_s`` exactly, a click at each jump + delay."""
    rng = np.random.default_rng(7)
    ev = np.arange(0.3, dur - 0.3, period_s)
    fps = 12.5
    times = np.arange(int(dur * fps)) / fps
    frames = np.full((times.size, 45, 80), 40, np.uint8)
    for i, t in enumerate(times):
        r = np.random.default_rng(int(np.searchsorted(ev, t, side="right")))
        y0, x0 = r.integers(0, 33), r.integers(0, 68)
        frames[i, y0 : y0 + 12, x0 : x0 + 12] = 220
    y = rng.standard_normal(int(dur * sr)) * 0.002
    env = np.exp(-np.arange(2400) / (0.01 * sr))
    for e in ev:
        i = int((e + delay_ms / 1000) * sr)
        if 0 <= i < y.size - 2400:
            y[i : i + 2400] += rng.standard_normal(2400) * 0.3 * env
    return y, sr, FrameSet(frames, times, fps, 25.0, 640, 360, dur)
