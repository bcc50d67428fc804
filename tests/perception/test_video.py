"""Video perception: motion timeline, cuts, active spans, stills."""

from __future__ import annotations

import numpy as np

from avagent.perception.frames import FrameSet
from avagent.perception.video import analyze_video, motion_energy


def _frames(arr: np.ndarray, fps: float = 12.5) -> FrameSet:
    t = np.arange(arr.shape[0]) / fps
    return FrameSet(arr, t, fps, 25.0, 640, 360, arr.shape[0] / fps)


def test_still_is_static(rng):
    base = rng.integers(0, 255, (1, 45, 80), dtype=np.uint8)
    f = analyze_video(_frames(np.repeat(base, 50, axis=0)))
    assert f.static and f.active_spans == [] and f.cuts_s == [] and f.motion_mean < 1e-3
    assert len(f.motion) == 50


def test_moving_block_span_and_cut(rng):
    T = 100  # 8 s at 12.5 fps
    arr = np.full((T, 45, 80), 60, np.uint8)
    for i in range(T):
        if 25 <= i < 50:  # a block moves during 2.0–4.0 s
            x = 2 * (i - 25)
            arr[i, 10:25, x : x + 15] = 230
    arr[75:] = 200 - arr[75:] // 2  # a cut at 6.0 s to a different shot
    frames = _frames(arr)
    m = motion_energy(frames)
    assert m.shape == (T,) and m.max() <= 1.0
    f = analyze_video(frames)
    assert not f.static
    assert f.cuts_s == [6.0]
    assert len(f.active_spans) == 1
    span = f.active_spans[0]
    assert abs(span.start_s - 2.0) <= 0.16 and abs(span.end_s - 4.0) <= 0.16
    # the cut is kept out of the motion timeline
    assert max(f.motion) < 0.1
