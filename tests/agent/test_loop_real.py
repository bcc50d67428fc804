"""The whole loop with the real embedded parts (perception, rules, scorer) on planted faults."""

from __future__ import annotations

import numpy as np
import pytest

from avagent.agent.graph import run_agent
from avagent.agent.planner import get_planner
from avagent.agent.state import AgentContext
from avagent.perception.sync import estimate_sync
from avagent.reflection.scorers import get_scorer
from tests.synth import moving_block_av


def _ctx(**kw) -> AgentContext:
    return AgentContext(planner=get_planner("rules"), scorer=get_scorer("embedded"), **kw)


@pytest.mark.parametrize("delay_ms", [300.0, -200.0])
def test_loop_fixes_a_known_offset(delay_ms):
    y, sr, frames = moving_block_av(np.random.default_rng(5), delay_ms)
    res = run_agent(y.astype(np.float32), sr=sr, frames=frames, context=_ctx())
    assert res.chosen_round >= 1
    steps = res.rounds[res.chosen_round - 1].plan.steps
    speed = next(s for s in steps if s.action == "speed")
    assert speed.params["offset_ms"] == pytest.approx(-delay_ms, abs=25)
    left = estimate_sync(res.audio, sr=sr, frames=frames, audio_duration_s=res.audio.shape[-1] / sr)
    assert left.audio_delay_ms is None or abs(left.audio_delay_ms) <= 40
    assert res.audio.shape == y.shape  # fitted to the picture's duration
    assert res.scores.sync > res.baseline.sync


def test_loop_leaves_unrelated_audio_unshifted():
    y, sr, frames = moving_block_av(np.random.default_rng(6), 0.0, unrelated_audio=True)
    res = run_agent(y.astype(np.float32), sr=sr, frames=frames, context=_ctx())
    for r in res.rounds:
        assert all(s.action != "speed" for s in r.plan.steps)
    assert res.facts.sync is not None and res.facts.sync.verdict == "cannot_tell"
