"""Planners map measured faults to actions; every plan fits the action table."""

from __future__ import annotations

import pytest

from avagent.agent.planner import PLANNERS, RulePlanner, get_planner, validate_plan
from avagent.agent.state import Plan, Round, Step
from avagent.errors import ParameterError
from avagent.perception.facts import AudioFacts, Dropout, Facts, NoiseKind, SyncFacts, VideoFacts
from avagent.reflection.scorers import Scores


def facts(audio=None, sync=None, video=True) -> Facts:
    a = dict(
        duration_s=10.0, sample_rate=48000, channels=2, silent=False, loudness_lufs=-20.0,
        true_peak_dbtp=-3.0, noise_floor_db=-70.0, snr_db=40.0,
    )
    a.update(audio or {})
    v = VideoFacts(duration_s=10.0, fps=25, width=1280, height=720, sample_fps=12.5,
                   motion_mean=0.1) if video else None
    s = SyncFacts(**sync) if sync else (SyncFacts(verdict="in_sync", audio_delay_ms=0.0,
                                                   confidence=0.9) if video else None)
    return Facts(audio=AudioFacts(**a), video=v, sync=s)


def actions_of(plan: Plan) -> list[str]:
    return [s.action for s in plan.steps]


def test_clean_clip_gets_the_empty_plan():
    plan = RulePlanner().plan(facts(), {}, [])
    assert plan.steps == []


@pytest.mark.parametrize(
    ("audio", "sync", "expected"),
    [
        ({"noise_kind": NoiseKind.BROADBAND, "snr_db": 5.0}, None, ["wiener"]),
        ({"noise_kind": NoiseKind.LOW_RUMBLE, "snr_db": 8.0}, None, ["spectral_gating"]),
        ({"noise_kind": NoiseKind.HUM, "hum_hz": 50.0, "hum_db": 25.0, "snr_db": 8.0}, None,
         ["remove_hum"]),
        ({"loudness_lufs": -40.0}, None, ["volume"]),
        ({"dropouts": [Dropout(start_s=1.0, end_s=1.1, kind="digital_silence")]}, None,
         ["fill_blanks"]),
        ({}, {"verdict": "offset", "audio_delay_ms": 300.0, "confidence": 0.9}, ["speed"]),
        ({}, {"verdict": "drift", "rate": 25 / 23.976, "confidence": 0.9}, ["speed"]),
        # Music with moderate noise is left alone: the picture explains it.
        ({"noise_kind": NoiseKind.BROADBAND, "snr_db": 15.0, "music_likelihood": 0.9}, None, []),
        # A shift on a guess is worse than none.
        ({}, {"verdict": "offset", "audio_delay_ms": 300.0, "confidence": 0.2}, []),
        ({}, {"verdict": "cannot_tell", "confidence": 0.0}, []),
        # Mixture: order is hum → fill → denoise → timing → loudness (the fill is calibrated on
        # its context: hum there is predictable where the programme is not; a shift would move
        # the spans).
        ({"noise_kind": NoiseKind.BROADBAND, "snr_db": 5.0, "loudness_lufs": -40.0,
          "dropouts": [Dropout(start_s=1.0, end_s=1.1, kind="gap")]},
         {"verdict": "offset", "audio_delay_ms": -200.0, "confidence": 0.9},
         ["fill_blanks", "wiener", "speed", "volume"]),
        ({"noise_kind": NoiseKind.HUM, "hum_hz": 50.0, "hum_db": 25.0, "snr_db": 8.0,
          "loudness_lufs": -42.0, "dropouts": [Dropout(start_s=1.0, end_s=1.1, kind="gap")]},
         None, ["remove_hum", "fill_blanks", "volume"]),
    ],
)
def test_rules_map_faults_to_actions(audio, sync, expected):
    plan = RulePlanner().plan(facts(audio, sync), {}, [])
    assert actions_of(plan) == expected
    assert all(s.reasoning for s in plan.steps)


def test_offset_sign_and_drift_rate():
    late = RulePlanner().plan(
        facts(sync={"verdict": "offset", "audio_delay_ms": 300.0, "confidence": 0.9}), {}, []
    )
    assert late.steps[0].params["offset_ms"] == -300.0  # sound late → move it earlier
    assert late.steps[0].params["target_duration_s"] == 10.0
    pal = RulePlanner().plan(facts(sync={"verdict": "drift", "rate": 25 / 23.976}), {}, [])
    assert pal.steps[0].params["rate"] == pytest.approx(23.976 / 25, abs=1e-6)
    assert "PAL" in pal.steps[0].reasoning


def test_feedback_tries_the_next_denoiser_and_drops_a_bad_shift():
    f = facts({"noise_kind": NoiseKind.BROADBAND, "snr_db": 5.0},
              {"verdict": "offset", "audio_delay_ms": 300.0, "confidence": 0.9})
    first = RulePlanner().plan(f, {}, [])
    r1 = Round(index=1, plan=first, scores=Scores(alignment=0.5, sync=0.4), improved=False)
    second = RulePlanner().plan(f, {}, [r1])
    assert actions_of(second) == ["spectral_gating"]
    assert any("not shifting" in n for n in second.notes)


def test_validate_plan_drops_steps_outside_the_table():
    plan = Plan(steps=[
        Step(action="reverb", params={}, reasoning="x"),
        Step(action="speed", params={"offset_ms": 99999}, reasoning="x"),
        Step(action="remove_hum", params={"fundamental_hz": 50.0}, reasoning="ok"),
    ])
    checked = validate_plan(plan)
    assert actions_of(checked) == ["remove_hum"]
    assert len(checked.notes) == 2 and "reverb" in checked.notes[0] and "99999" in checked.notes[1]


def test_registry():
    assert set(PLANNERS) >= {"rules", "random", "none"}
    with pytest.raises(ParameterError, match="valid planners: rules"):
        get_planner("gpt")
    assert get_planner("none").plan(facts(), {}, []).steps == []


def test_random_planner_is_reproducible_and_valid():
    a = get_planner("random").plan(facts(), {}, [])
    b = get_planner("random").plan(facts(), {}, [])
    assert a == b and 1 <= len(a.steps) <= 2


def test_reflection_feedback_adds_a_denoiser_for_noise_left():
    f = facts({"noise_kind": NoiseKind.HUM, "hum_hz": 50.0, "hum_db": 30.0, "snr_db": 3.0})
    first = RulePlanner().plan(f, {}, [])
    assert actions_of(first) == ["remove_hum"]
    r1 = Round(index=1, plan=first, improved=True,
               scores=Scores(alignment=0.77, sync=0.85, details={"noise": 0.77, "hum": 1.0}))
    second = RulePlanner().plan(f, {}, [r1])
    assert actions_of(second) == ["remove_hum", "wiener"]
    assert "noise left after round 1" in second.steps[1].reasoning


def test_a_rejected_round_does_not_take_its_level_fix_with_it():
    # issue 10: every plan with hum removal was rejected, and the volume step went with them.
    f = facts({"noise_kind": NoiseKind.HUM, "hum_hz": 60.0, "hum_db": 25.0, "snr_db": 8.0,
               "loudness_lufs": -1.0, "true_peak_dbtp": 0.5})
    first = RulePlanner().plan(f, {}, [])
    assert actions_of(first) == ["remove_hum", "volume"]
    rejected = Round(index=1, plan=first, improved=False, scores=Scores(alignment=0.1, sync=1.0))
    second = RulePlanner().plan(f, {}, [rejected])
    assert actions_of(second) == ["volume"]
    assert second.steps[0] == first.steps[1]  # the same level fix, alone
    assert any("round 1 was not kept" in n and "without remove_hum" in n for n in second.notes)
    # The round after goes back to the full plan (the level fix alone already ran) ...
    alone = Round(index=2, plan=second, improved=True, scores=Scores(alignment=0.3, sync=1.0))
    assert actions_of(RulePlanner().plan(f, {}, [rejected, alone])) == ["remove_hum", "volume"]
    # ... and a full plan rejected again does not repeat the level-only plan (that would end
    # the loop): the planner moves on with its usual choices.
    again = Round(index=3, plan=first, improved=False, scores=Scores(alignment=0.1, sync=1.0))
    assert actions_of(RulePlanner().plan(f, {}, [rejected, alone, again])) == ["remove_hum", "volume"]


def test_level_retry_keeps_new_families_and_leaves_kept_rounds_alone():
    f = facts({"noise_kind": NoiseKind.BROADBAND, "snr_db": 5.0, "loudness_lufs": -40.0},
              {"verdict": "offset", "audio_delay_ms": 300.0, "confidence": 0.9})
    first = RulePlanner().plan(f, {}, [])
    assert actions_of(first) == ["wiener", "speed", "volume"]
    # Kept: no retry, the usual next plan.
    kept = Round(index=1, plan=first, improved=True, scores=Scores(alignment=0.5, sync=0.9))
    assert actions_of(RulePlanner().plan(f, {}, [kept])) == ["spectral_gating", "speed", "volume"]
    # Rejected: the denoiser and the shift were both in it, so both are left out.
    rejected = kept.model_copy(update={"improved": False})
    assert actions_of(RulePlanner().plan(f, {}, [rejected])) == ["volume"]
    # A round without a level step, or with only one, is not a reason to retry.
    no_level = Round(index=1, plan=Plan(steps=first.steps[:1]), improved=False,
                     scores=Scores(alignment=0.5, sync=0.9))
    assert "volume" in actions_of(RulePlanner().plan(f, {}, [no_level]))
    assert len(RulePlanner().plan(f, {}, [no_level]).steps) == 3
    # The best round so far already holds a level fix: nothing was lost, the next denoiser runs.
    quiet = facts({"noise_kind": NoiseKind.BROADBAND, "snr_db": 5.0, "loudness_lufs": -40.0})
    r1 = Round(index=1, plan=RulePlanner().plan(quiet, {}, []), improved=True,
               scores=Scores(alignment=0.6, sync=1.0))
    r2 = Round(index=2, plan=RulePlanner().plan(quiet, {}, [r1]), improved=False,
               scores=Scores(alignment=0.3, sync=1.0))
    assert actions_of(r2.plan) == ["spectral_gating", "volume"]
    assert actions_of(RulePlanner().plan(quiet, {}, [r1, r2])) == ["spectral_subtraction", "volume"]
