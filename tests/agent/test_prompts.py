"""The planner prompt carries captions, facts, the action table and the last round's reflection."""

from __future__ import annotations

import json

from avagent.actions import ACTIONS
from avagent.agent.planner import RulePlanner
from avagent.agent.prompts import (
    PlanAnswer,
    action_table,
    findings_brief,
    plan_answer,
    planner_messages,
)
from avagent.agent.state import Round
from avagent.perception.facts import Dropout, NoiseKind
from avagent.reflection.scorers import Scores
from tests.agent.test_planner import facts

CAPTIONS = {"audio": "Speech over hiss.", "video": "A person talking.", "sync": "Sound is late."}


def test_first_round_is_system_plus_user_with_everything_measured():
    f = facts({"noise_kind": NoiseKind.BROADBAND, "snr_db": 5.0,
               "dropouts": [Dropout(start_s=1.0, end_s=1.25, kind="gap")]},
              {"verdict": "offset", "audio_delay_ms": 300.0, "confidence": 0.9})
    msgs = planner_messages(f, CAPTIONS, [])
    assert [m["role"] for m in msgs] == ["system", "user"]
    system, user = msgs[0]["content"], msgs[1]["content"]
    for name in ACTIONS:  # every action, with its parameters and ranges
        assert f"- {name}(" in system
    assert "offset_ms: number -5000..5000 =0" in system
    assert "stationary: boolean =true" in system
    assert "Speech over hiss." in user and "A person talking." in user and "Sound is late." in user
    assert "snr_db=5.0" in user and "noise_kind=broadband" in user
    assert "verdict=offset audio_delay_ms=300.0" in user
    assert "[1.000, 1.250]" in user
    # Fits a 2048-token context with room for the answer (≈4 characters per token).
    assert sum(len(m["content"]) for m in msgs) < 4 * 1400


def test_later_round_adds_the_last_plan_and_its_reflection():
    f = facts({"noise_kind": NoiseKind.BROADBAND, "snr_db": 5.0})
    plan = RulePlanner().plan(f, {}, [])
    r1 = Round(index=1, plan=plan, scores=Scores(alignment=0.5, sync=0.9), improved=True,
               feedback="alignment 0.50 < 0.85")
    r2 = Round(index=2, plan=plan.model_copy(update={"steps": []}),
               scores=Scores(alignment=0.61, sync=0.93, details={"noise": 0.4}), improved=True,
               feedback="weak: noise")
    msgs = planner_messages(f, CAPTIONS, [r1, r2])
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user"]
    # only the LAST round is shown, opening with the findings it rested on
    assert json.loads(msgs[2]["content"]) == {"findings": findings_brief(f), "steps": []}
    assert "Round 2 result: alignment 0.61, sync 0.93 (noise 0.40)" in msgs[3]["content"]
    assert "weak: noise" in msgs[3]["content"]


def test_plan_answer_round_trips_through_the_answer_model():
    f = facts({"noise_kind": NoiseKind.HUM, "hum_hz": 50.0, "hum_db": 25.0, "snr_db": 8.0,
               "loudness_lufs": -40.0})
    plan = RulePlanner().plan(f, {}, [])
    back = PlanAnswer.model_validate_json(plan_answer(plan)).to_plan("llm")
    assert [(s.action, s.params) for s in back.steps] == [(s.action, s.params) for s in plan.steps]
    assert back.planner == "llm"


def test_action_table_is_one_line_per_action():
    assert len(action_table().splitlines()) == len(ACTIONS)


def test_findings_restate_each_family_and_open_the_answer():
    f = facts({"noise_kind": NoiseKind.HUM, "hum_hz": 50.0, "hum_db": 25.0, "snr_db": 8.0,
               "loudness_lufs": -40.0})
    text = findings_brief(f)
    for part in ("loudness -40.0 LUFS", "noise hum at 8 dB SNR", "hum 50 Hz at 25 dB",
                 "dropouts 0", "clipping none", "music"):
        assert part in text, (part, text)
    plan = RulePlanner().plan(f, {}, [])
    answer = plan_answer(plan, text)
    assert answer.startswith('{"findings": ') and answer.index('"findings"') < answer.index('"steps"')
    back = PlanAnswer.model_validate_json(answer)
    assert back.findings == text and len(back.steps) == len(plan.steps)
    assert PlanAnswer.model_validate_json('{"steps": []}').findings == ""  # optional


def test_facts_carry_the_floor_and_the_graded_sync_evidence():
    # The two measurements the rule planner and critic decide music beds and undecided timings
    # by reach the LLM planner too, and its rules say what they are for.
    f = facts({"noise_kind": NoiseKind.BROADBAND, "snr_db": 8.0, "floor_confidence": 0.95,
               "music_under_noise": 0.36},
              {"verdict": "cannot_tell", "confidence": 0.0, "events_at_zero": 0.34})
    user = planner_messages(f, CAPTIONS, [])[1]["content"]
    assert "floor_confidence=0.95" in user and "music_under_noise=0.36" in user
    assert "verdict=cannot_tell" in user and "events_at_zero=0.34" in user
    system = planner_messages(f, CAPTIONS, [])[0]["content"]
    assert "floor_confidence >= 0.9" in system and "never a reason to shift" in system
    assert "music_under_noise" in system
    assert "floor_confidence" not in planner_messages(facts({}), CAPTIONS, [])[1]["content"]
