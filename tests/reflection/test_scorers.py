"""Reflection scores order versions of a clip as their true quality does."""

from __future__ import annotations

import numpy as np
import pytest

from avagent.bench import corrupt, signals
from avagent.errors import ParameterError
from avagent.perception.facts import AudioFacts, Facts, SyncFacts
from avagent.perception.video import analyze_video
from avagent.reflection.scorers import (
    EmbeddedScorer,
    alignment_components,
    get_scorer,
    sync_components,
)
from tests.synth import moving_block_av, periodic_av


@pytest.fixture(scope="module")
def music_clip(media_dir):
    return signals.music("guitar", duration_s=6.0, channels=2)


def _alignment(y, sr):
    scorer = EmbeddedScorer()
    facts = Facts(audio=_analyze(y, sr))
    return scorer.score(y, sr=sr, facts=facts)[0].alignment


def _analyze(y, sr):
    from avagent.perception.audio import analyze_audio

    return analyze_audio(y, sr=sr, speech_quality=False)


def test_alignment_orders_clean_half_repaired_corrupted(music_clip):
    clean, sr = music_clip.y, music_clip.sr
    hummed, _ = corrupt.add_hum(clean, sr=sr, fundamental_hz=50.0, snr_db=5.0, seed=1)
    noise_only, _ = corrupt.add_noise(clean, sr=sr, kind="white", snr_db=12.0, seed=2)
    # Both faults, then "half repaired": the hum removed, the noise still there.
    both = hummed + (noise_only - clean)
    half = noise_only
    a_clean, a_half, a_bad = (_alignment(y, sr) for y in (clean, half, both))
    assert a_clean > a_half > a_bad
    assert a_clean >= 0.85 > a_half


@pytest.mark.parametrize("faults", [[("quiet", {"target_lufs": -45.0})], [("dropouts", {"count": 3})]])
def test_alignment_drops_for_coordination_faults(music_clip, faults):
    clean, sr = music_clip.y, music_clip.sr
    bad, _ = corrupt.mixture(clean, sr=sr, faults=faults, seed=4)
    assert _alignment(clean, sr) >= 0.85 > _alignment(bad, sr)


def test_sync_score_orders_residual_offsets(rng):
    scorer = EmbeddedScorer()
    got = []
    for delay in (0.0, 150.0, 500.0):
        y, sr, frames = moving_block_av(np.random.default_rng(11), delay)
        before = Facts(audio=_analyze(y, sr), video=analyze_video(frames))
        scores, facts = scorer.score(y, sr=sr, frames=frames, before=before, timing_changed=True)
        assert facts.sync is not None
        got.append(scores.sync)
    assert got[0] > got[1] > got[2]
    assert got[0] >= 0.85 > got[1]


def test_input_and_candidate_are_scored_alike(music_clip):
    """Round 0 (perception's facts handed in) and a candidate (re-measured) of the same audio
    get the same scores: there is one scoring path."""
    y, sr = music_clip.y, music_clip.sr
    scorer = EmbeddedScorer()
    given, _ = scorer.score(y, sr=sr, facts=Facts(audio=_analyze(y, sr)))
    measured, facts = scorer.score(y, sr=sr, before=Facts(audio=_analyze(y, sr)))
    assert (measured.alignment, measured.sync) == (given.alignment, given.sync)
    # a candidate also gets the damage check; the input against itself shows none
    assert {k: v for k, v in measured.details.items() if k not in given.details} == {
        k: 1.0 for k in set(measured.details) - set(given.details)}
    assert facts.video is None and facts.sync is None


def test_cannot_tell_is_neutral_and_detected_drift_is_penalised():
    neutral = sync_components(SyncFacts(verdict="cannot_tell"))
    assert neutral["sync_offset"] == pytest.approx(0.85)
    assert neutral["sync_duration"] == 1.0
    pal = sync_components(SyncFacts(verdict="drift", rate=25 / 23.976, confidence=0.9))
    assert pal["sync_duration"] < 0.01
    slop = sync_components(SyncFacts(verdict="in_sync", audio_delay_ms=0, confidence=0.9,
                                     duration_ratio=1.006))
    assert slop["sync_duration"] == 1.0


def test_far_offsets_still_rank():
    # g(r) is 0 at both 300 and 800 ms; the untrusted share keeps them in order at equal
    # confidence (and the surer of two equal ones lower), and leaves an estimate in sync alone
    far = [sync_components(SyncFacts(verdict="offset", audio_delay_ms=d, confidence=c))
           ["sync_offset"] for d, c in ((300.0, 0.9), (800.0, 0.9), (800.0, 0.95))]
    assert far[0] > far[1] > far[2] > 0.0
    near = sync_components(SyncFacts(verdict="in_sync", audio_delay_ms=0.0, confidence=0.5))
    assert near["sync_offset"] == pytest.approx(1.0 * 0.75 + 0.25 * 0.85)


def test_undecided_sync_still_ranks_two_timings():
    # A block jumping every 0.4 s exactly, a click at each jump: one period off pairs every
    # event as well, so no offset can be decided; but the version in sync pairs them with no
    # shift and the one 120 ms late does not, and the score says so without falling below 0.85.
    scorer = EmbeddedScorer()
    got = {}
    for d in (0.0, 120.0):
        y, sr, frames = periodic_av(d)
        scores, facts = scorer.score(y, sr=sr, frames=frames)
        assert facts.sync is not None and facts.sync.verdict == "cannot_tell"
        got[d] = (facts.sync.events_at_zero, scores.sync)
    assert got[0.0][0] == pytest.approx(1.0) and got[120.0][0] < 0.3
    assert got[0.0][1] > got[120.0][1] >= 0.85
    assert got[0.0][1] <= 0.85 + 0.05 + 1e-9


def test_components_hit_0_85_at_the_documented_points():
    base = dict(duration_s=5, sample_rate=48000, channels=1, silent=False,
                loudness_lufs=-20.0, noise_floor_db=-60.0, snr_db=20.0)
    c = alignment_components(AudioFacts(**base))
    assert c["noise"] == pytest.approx(0.85, abs=0.01)
    assert c["loudness"] == 1.0 and c["dropouts"] == 1.0
    assert alignment_components(AudioFacts(**{**base, "silent": True}))["noise"] == 0.0


def test_registry():
    assert get_scorer("embedded").name == "embedded"
    with pytest.raises(ParameterError, match="valid scorers: embedded"):
        get_scorer("imagebind-huge")


def test_improves_on_sees_a_gain_a_zero_component_hides():
    from avagent.reflection.scorers import Scores

    # a full-scale 60 Hz square wave: noise and hum at 0 keep alignment at 0 whatever else
    base = Scores(alignment=0.0, sync=1.0, details={"noise": 0.0001, "hum": 0.0,
                                                    "loudness": 0.55, "clipping": 0.0})
    level = Scores(alignment=0.0, sync=1.0, details={"noise": 0.0001, "hum": 0.0, "loudness": 1.0,
                                                     "clipping": 1.0, "content": 1.0, "bands": 1.0})
    assert level.overall <= base.overall + 0.01  # the overall score alone would not keep it
    assert level.improves_on(base, 0.01)
    rounding = level.model_copy(update={"details": {**level.details, "noise": 0.0}})
    assert rounding.improves_on(base, 0.01)  # 1e-4 lower is inside the slack, not damage
    # ... but not when anything got worse, a damage only the candidate has included
    damaged = level.model_copy(update={"details": {**level.details, "bands": 0.6}})
    assert not damaged.improves_on(base, 0.01)
    quieter = level.model_copy(update={"details": {**level.details, "loudness": 0.5}})
    assert not quieter.improves_on(base, 0.01)
    # nothing better by min_gain: not kept (a repeated version is no improvement)
    assert not base.improves_on(base, 0.01)
    # the overall rule still decides when the product moves
    assert Scores(alignment=0.5, sync=1.0).improves_on(Scores(alignment=0.3, sync=1.0), 0.01)
    assert not Scores(alignment=0.3, sync=0.9, details={"noise": 1.0}).improves_on(
        Scores(alignment=0.3, sync=1.0, details={"noise": 0.5}), 0.01)
