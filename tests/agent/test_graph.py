"""The loop's logic, driven by scripted planners/scorers: shape, stopping, best-round, original audio."""

from __future__ import annotations

import numpy as np
import pytest

from avagent.agent.graph import build_graph, run_agent
from avagent.agent.planner import RulePlanner
from avagent.agent.state import AgentContext, Plan, Step
from avagent.errors import BackendError
from avagent.perception.facts import AudioFacts, Facts
from avagent.reflection.scorers import Scores

SR = 16000


def _facts(**audio) -> Facts:
    base = dict(
        duration_s=1.0, sample_rate=SR, channels=1, silent=False, loudness_lufs=-20.0,
        true_peak_dbtp=-3.0, noise_floor_db=-80.0, snr_db=40.0,
    )
    base.update(audio)
    return Facts(audio=AudioFacts(**base))


class ScriptedPlanner:
    name = "scripted"

    def __init__(self, plans):
        self.plans = list(plans)
        self.calls = 0

    def plan(self, facts, captions, history):
        p = self.plans[min(self.calls, len(self.plans) - 1)]
        self.calls += 1
        return p


class ScriptedScorer:
    """Scores the input (round 0, given perception's facts) and then the candidates in the
    order given; records what it was shown."""

    name = "scripted"

    def __init__(self, baseline, rounds):
        self.baseline = baseline
        self.rounds = list(rounds)
        self.inputs: list[np.ndarray] = []  # round 0: the untouched input
        self.seen: list[np.ndarray] = []  # candidates

    def score(self, y, *, sr, frames=None, facts=None, before=None, timing_changed=False):
        if facts is not None:
            self.inputs.append(y)
            return Scores(alignment=self.baseline, sync=1.0), facts
        self.seen.append(np.array(y, copy=True))
        a = self.rounds[len(self.seen) - 1]
        return Scores(alignment=a, sync=1.0), before


def _gain(db: float) -> Plan:
    return Plan(steps=[Step(action="volume", params={"gain_db": db}, reasoning="test")])


def _ctx(planner, scorer, **kw) -> AgentContext:
    return AgentContext(planner=planner, scorer=scorer, perceive=lambda y, **k: _facts(), **kw)


@pytest.fixture
def tone(rng) -> np.ndarray:
    t = np.arange(SR) / SR
    return (0.1 * np.sin(2 * np.pi * 440 * t) + 0.001 * rng.standard_normal(SR)).astype(np.float32)


def test_graph_shape_snapshot():
    g = build_graph().get_graph()
    assert set(g.nodes) == {"__start__", "perceive", "plan", "act", "reflect", "finish", "__end__"}
    edges = {(e.source, e.target, e.conditional) for e in g.edges}
    assert edges == {
        ("__start__", "perceive", False),
        ("perceive", "plan", False),
        ("plan", "act", True),
        ("plan", "finish", True),
        ("act", "reflect", False),
        ("reflect", "plan", True),
        ("reflect", "finish", True),
        ("finish", "__end__", False),
    }


def test_clean_input_comes_out_untouched(tone):
    planner = ScriptedPlanner([Plan()])
    scorer = ScriptedScorer(baseline=0.95, rounds=[])
    res = run_agent(tone, sr=SR, frames=None, context=_ctx(planner, scorer))
    assert res.chosen_round == 0
    assert res.audio is tone
    assert len(res.rounds) == 1 and not res.rounds[0].plan.steps
    assert res.accepted
    assert scorer.seen == []  # an empty plan is not re-measured
    assert len(scorer.inputs) == 1 and scorer.inputs[0] is tone  # round 0: the same method


def test_every_round_starts_from_the_original_audio(tone):
    planner = ScriptedPlanner([_gain(6.0), _gain(6.0 + 1e-3), _gain(6.0 + 2e-3)])
    scorer = ScriptedScorer(baseline=0.5, rounds=[0.6, 0.7, 0.8])
    run_agent(tone, sr=SR, frames=None, context=_ctx(planner, scorer, max_rounds=3))
    assert len(scorer.seen) == 3
    want = 10 ** (6.0 / 20)
    for y in scorer.seen:  # gains do not compound: each round saw original × ~2
        ratio = np.sqrt(np.mean(y**2) / np.mean(tone**2))
        assert ratio == pytest.approx(want, rel=1e-3)


def test_best_round_is_kept_and_loop_stops_when_passing(tone):
    planner = ScriptedPlanner([_gain(1.0), _gain(2.0), _gain(3.0)])
    scorer = ScriptedScorer(baseline=0.4, rounds=[0.7, 0.5, 0.9])
    res = run_agent(tone, sr=SR, frames=None, context=_ctx(planner, scorer, max_rounds=3))
    assert [r.improved for r in res.rounds] == [True, False, True]
    assert res.chosen_round == 3 and res.accepted
    planner2 = ScriptedPlanner([_gain(1.0), _gain(2.0), _gain(3.0)])
    scorer2 = ScriptedScorer(baseline=0.4, rounds=[0.9, 0.95, 0.99])
    res2 = run_agent(tone, sr=SR, frames=None, context=_ctx(planner2, scorer2, max_rounds=3))
    assert len(res2.rounds) == 1 and res2.chosen_round == 1  # passed: no more rounds


def test_worse_repairs_leave_the_input(tone):
    planner = ScriptedPlanner([_gain(1.0), _gain(2.0)])
    scorer = ScriptedScorer(baseline=0.8, rounds=[0.6, 0.7])
    res = run_agent(tone, sr=SR, frames=None, context=_ctx(planner, scorer, max_rounds=2))
    assert res.chosen_round == 0 and res.audio is tone
    assert len(res.rounds) == 2  # the budget ends the loop, not an exception
    assert not res.accepted


def test_repeated_plan_stops_the_loop(tone):
    planner = ScriptedPlanner([_gain(1.0)])
    scorer = ScriptedScorer(baseline=0.4, rounds=[0.5, 0.5, 0.5])
    res = run_agent(tone, sr=SR, frames=None, context=_ctx(planner, scorer, max_rounds=3))
    assert len(res.rounds) == 1  # the repeated plan is not run (or recorded) again
    assert len(scorer.seen) == 1


def test_planner_failure_falls_back_to_rules(tone):
    class Broken:
        name = "broken"

        def plan(self, facts, captions, history):
            raise BackendError("server down")

    scorer = ScriptedScorer(baseline=0.95, rounds=[])
    res = run_agent(tone, sr=SR, frames=None, context=_ctx(Broken(), scorer))
    assert any("rule plan used" in n for n in res.rounds[0].plan.notes)
    assert res.rounds[0].plan.planner == RulePlanner.name


def test_failing_step_is_skipped_with_a_note(tone):
    bad = Plan(steps=[Step(action="volume", params={}, reasoning="neither target nor gain")])
    planner = ScriptedPlanner([bad])
    scorer = ScriptedScorer(baseline=0.5, rounds=[0.5])
    res = run_agent(tone, sr=SR, frames=None, context=_ctx(planner, scorer, max_rounds=1))
    assert res.rounds[0].plan.steps == []
    assert any("volume skipped" in n for n in res.rounds[0].plan.notes)


def test_each_captioner_sees_only_its_own_modality(tone):
    from avagent.agent.captions import Captioners
    from avagent.perception.facts import VideoFacts
    from avagent.perception.frames import FrameSet

    seen: dict[str, dict] = {}

    class AudioOnly:
        name, modality = "rec-audio", "audio"

        def caption(self, facts, **kw):
            seen["audio"] = {"facts": type(facts).__name__, **kw}
            return "sound"

    class VideoOnly:
        name, modality = "rec-video", "video"

        def caption(self, facts, **kw):
            seen["video"] = {"facts": type(facts).__name__, **kw}
            return "picture"

    frames = FrameSet(np.zeros((4, 8, 8), np.uint8), np.arange(4) / 4.0, 4.0, 25.0, 8, 8, 1.0)
    video = VideoFacts(width=8, height=8, fps=25.0, sample_fps=4.0, duration_s=1.0, motion_mean=0.0,
                       static=True)
    facts = _facts().model_copy(update={"video": video})
    ctx = AgentContext(planner=ScriptedPlanner([Plan()]), scorer=ScriptedScorer(0.95, []),
                       perceive=lambda y, **k: facts,
                       captioners=Captioners(audio=AudioOnly(), video=VideoOnly()))
    res = run_agent(tone, sr=SR, frames=frames, context=ctx)
    assert res.captions == {"audio": "sound", "video": "picture"}
    assert seen["audio"]["facts"] == "AudioFacts" and set(seen["audio"]) == {"facts", "y", "sr"}
    assert seen["audio"]["y"] is tone and seen["audio"]["sr"] == SR
    assert seen["video"] == {"facts": "VideoFacts", "frames": frames}


def test_captioner_registry_names_the_valid_ones():
    from avagent.agent.captions import CAPTIONERS, EmbeddedAudioCaptioner, get_captioner
    from avagent.errors import ParameterError

    assert isinstance(get_captioner("embedded-audio", modality="audio"), EmbeddedAudioCaptioner)
    with pytest.raises(ParameterError, match="embedded-audio") as err:
        get_captioner("whisper")
    assert all(n in str(err.value) for n in CAPTIONERS)
    with pytest.raises(ParameterError, match="embedded-video"):
        get_captioner("embedded-audio", modality="video")
    from avagent.agent.captions import EmbeddedVideoCaptioner, get_captioners

    pair = get_captioners("embedded")  # Settings.captioner names the pair
    assert isinstance(pair.audio, EmbeddedAudioCaptioner)
    assert isinstance(pair.video, EmbeddedVideoCaptioner)
    with pytest.raises(ParameterError, match="valid: embedded"):
        get_captioners("llm")
