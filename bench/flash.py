"""A clip whose picture flashes with each tone burst (issue 12's sync case), built in memory."""

from __future__ import annotations

import numpy as np

from avagent.perception.frames import FrameSet


def flash_av(
    delay_ms: float,
    *,
    n_bursts: int = 10,
    snr_db: float | None = 10.0,
    hue_only: bool = True,
    periodic: bool = False,
    seed: int = 0,
    fps: float = 12.5,
    sr: int = 48000,
) -> tuple[np.ndarray, int, FrameSet, np.ndarray]:
    """Ten 120 ms 1 kHz tone bursts, 0.6-1.4 s apart (or exactly 1 s with ``periodic``); the
    picture's left half flashes for two frames at each burst. ``hue_only``: the flash changes hue at the
    same luminance (grey level moves by < 1), so only colour frames show it. White noise is
    added ``snr_db`` below the bursts' power over the clip. Returns ``(y, sr, frames, times)``.
    """
    rng = np.random.default_rng(seed)
    gaps = np.full(n_bursts, 1.0) if periodic else rng.uniform(0.6, 1.4, n_bursts)
    ev = 0.8 + np.concatenate([[0.0], np.cumsum(gaps[:-1])])
    dur = float(ev[-1] + 1.5)
    times = np.arange(int(dur * fps)) / fps
    h, w = 36, 64
    base = np.array([120, 120, 120], np.float64)
    flash = np.array([200, 68, 180], np.float64) if hue_only else np.array([250, 250, 250.0])
    colour = np.empty((times.size, h, w, 3), np.uint8)
    for i, t in enumerate(times):
        on = np.any((t >= ev) & (t < ev + 2 / fps))
        colour[i] = np.clip(base + rng.normal(0, 1.0, (h, w, 3)), 0, 255)
        if on:  # a lamp in the left half of the picture
            colour[i, :, : w // 2] = np.clip(flash + rng.normal(0, 1.0, (h, w // 2, 3)), 0, 255)
    grey = np.clip(
        colour @ np.array([0.299, 0.587, 0.114]), 0, 255
    ).astype(np.uint8)
    n = int(dur * sr)
    y = np.zeros(n)
    m = int(0.12 * sr)
    tt = np.arange(m) / sr
    burst = 0.3 * np.sin(2 * np.pi * 1000 * tt) * np.minimum(1, np.minimum(tt, tt[::-1]) / 0.005)
    for e in ev:
        i = int((e + delay_ms / 1000) * sr)
        if i >= 0 and i + m <= n:
            y[i : i + m] += burst
    if snr_db is not None:
        p = float(np.mean(y**2))
        y = y + rng.standard_normal(n) * np.sqrt(p / 10 ** (snr_db / 10))
    frames = FrameSet(grey, times, fps, 25.0, 640, 360, dur, colour=colour)
    return y, sr, frames, ev
