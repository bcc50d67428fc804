"""Long-input perception: the picture scanned as a stream, sync combined from excerpts."""

from __future__ import annotations

import numpy as np

from avagent.perception.facts import SyncFacts
from avagent.perception.frames import FrameSet
from avagent.perception.longform import FrameScan, combine_sync
from avagent.perception.video import analyze_video


def test_scan_gives_the_facts_of_the_whole_frameset(rng) -> None:
    T = 400
    frames = rng.integers(0, 40, (T, 18, 32), dtype=np.uint8)
    frames[150:] += 120  # a cut at 150
    frames[300:340, :, :16] = rng.integers(0, 255, (40, 18, 16), dtype=np.uint8)  # motion
    times = np.arange(T) / 12.5
    fs = FrameSet(frames=frames, times_s=times, sample_fps=12.5, fps=25.0, width=320,
                  height=180, duration_s=T / 12.5)
    scan = FrameScan([(4.0, 6.0), (30.0, 31.0)], sample_fps=12.5, fps=25.0, width=320,
                     height=180, duration_s=T / 12.5)
    for t, f in zip(times, frames, strict=True):
        scan.add(float(t), f)
    assert scan.facts() == analyze_video(fs)
    ex = scan.excerpt_frames()
    assert ex[0] is not None and ex[0].frames.shape[0] == 25
    assert ex[0].times_s[0] == 0.0 and ex[0].duration_s == 2.0
    np.testing.assert_array_equal(ex[1].frames, frames[375:388])


def _s(verdict: str, delay: float | None, conf: float = 0.8) -> SyncFacts:
    return SyncFacts(verdict=verdict, audio_delay_ms=delay, confidence=conf)


def test_two_agreeing_excerpts_decide_an_offset() -> None:
    parts = [(15.0, _s("offset", 212.0)), (600.0, _s("cannot_tell", None)),
             (1200.0, _s("offset", 205.0))]
    got = combine_sync(parts, audio_s=1800.0, video_s=1800.0)
    assert got.verdict == "offset" and got.audio_delay_ms == 208.5


def test_one_deciding_excerpt_is_not_enough() -> None:
    parts = [(15.0, _s("offset", 212.0)), (600.0, _s("cannot_tell", None)), (900.0, None)]
    assert combine_sync(parts, audio_s=1800.0, video_s=1800.0).verdict == "cannot_tell"


def test_disagreeing_excerpts_on_a_line_are_drift_else_cannot_tell() -> None:
    line = [(t, _s("offset", 10.0 + 1.0 * t)) for t in (100.0, 400.0, 700.0, 1000.0)]
    got = combine_sync(line, audio_s=1800.0, video_s=1800.0)
    assert got.verdict == "drift" and abs(got.rate - 1 / 1.001) < 1e-6
    scattered = [(100.0, _s("offset", 300.0)), (400.0, _s("offset", -200.0)),
                 (700.0, _s("offset", 150.0))]
    assert combine_sync(scattered, audio_s=1800.0, video_s=1800.0).verdict == "cannot_tell"


def test_a_known_rate_from_the_durations_is_drift() -> None:
    got = combine_sync([(10.0, None)], audio_s=3600.0 * 23.976 / 25 + 0.03, video_s=3600.0)
    assert got.verdict == "drift" and got.rate is not None and abs(got.rate - 25 / 23.976) < 1e-4
