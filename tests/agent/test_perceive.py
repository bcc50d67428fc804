"""perceive(): separate audio/video reports, planted faults found, captions, speed."""

from __future__ import annotations

import re
import time

import numpy as np
import pytest

from avagent.agent.captions import audio_caption, sync_caption, video_caption
from avagent.agent.perceive import perceive
from avagent.perception.facts import NoiseKind
from tests.synth import moving_block_av

VIDEO_WORDS = re.compile(r"\b(video|frame|picture|motion|scene|cut|shot|visual|fps)", re.I)


@pytest.fixture
def planted(rng):
    """10 s stereo 48 kHz AV clip: sound 250 ms late, 50 Hz hum, two dropouts."""
    y, sr, frames = moving_block_av(rng, 250.0)
    t = np.arange(y.size) / sr
    y = y + 0.01 * np.sin(2 * np.pi * 50 * t) + 0.005 * np.sin(2 * np.pi * 100 * t)
    y[int(1.20 * sr) : int(1.32 * sr)] = 0.0
    y[int(3.40 * sr) : int(3.45 * sr)] = 0.0
    return np.stack([y, 0.9 * y]).astype(np.float32), sr, frames


def test_planted_faults_found(planted):
    y, sr, frames = planted
    timings: dict[str, float] = {}
    facts = perceive(y, sr=sr, frames=frames, audio_duration_s=10.0, timings=timings)
    a, v, s = facts.audio, facts.video, facts.sync
    assert a.channels == 2 and a.sample_rate == sr
    assert a.hum_hz == 50.0 and a.noise_kind is NoiseKind.HUM
    got = [x for d in a.dropouts for x in (d.start_s, d.end_s)]
    assert got == pytest.approx([1.20, 1.32, 3.40, 3.45], abs=0.01)
    assert v is not None and not v.static and v.sample_fps == 12.5
    assert s is not None and s.verdict == "offset" and abs(s.audio_delay_ms - 250) <= 20
    assert set(timings) >= {"audio", "video", "sync", "total"}


def test_captions_mention_planted_facts_and_stay_separate(planted):
    y, sr, frames = planted
    facts = perceive(y, sr=sr, frames=frames)
    ac, vc = audio_caption(facts.audio), video_caption(facts.video)
    assert "50 Hz" in ac and "hum" in ac
    assert "two dropouts" in ac and "1.20–1.32 s" in ac and "3.40–3.45 s" in ac
    assert "LUFS" in ac and "dBTP" in ac
    assert not VIDEO_WORDS.search(ac), ac
    assert "640x360" in vc and "motion" in vc
    assert not re.search(r"\b(hum|noise|LUFS|speech|dropout|sound)\b", vc, re.I), vc
    assert "250 ms late" in sync_caption(facts.sync) or "late" in sync_caption(facts.sync)


def test_audio_only(rng):
    y = rng.standard_normal(16000).astype(np.float32) * 0.05
    facts = perceive(y, sr=16000, frames=None)
    assert facts.video is None and facts.sync is None
    assert facts.audio.noise_kind is NoiseKind.BROADBAND


def test_ten_seconds_perceived_fast(planted):
    y, sr, frames = planted
    perceive(y[:, :sr], sr=sr, frames=None)  # load the ONNX sessions once
    t0 = time.perf_counter()
    perceive(y, sr=sr, frames=frames, speech_quality=True)
    # ≤ ~1 s on an idle core; generous bound for the shared CI box
    assert time.perf_counter() - t0 < 3.0


def test_motion_level_in_the_caption_does_not_depend_on_the_sampling_rate():
    from avagent.perception.facts import VideoFacts

    def caption(sample_fps: float, motion: float) -> str:
        return video_caption(VideoFacts(duration_s=5.0, fps=25, width=1280, height=720,
                                        sample_fps=sample_fps, motion_mean=motion))

    # the same smooth pan: half the change per frame when sampled twice as often
    assert "moderate motion" in caption(12.5, 0.012) and "moderate motion" in caption(25.0, 0.006)
    assert "little motion" in caption(25.0, 0.004)
