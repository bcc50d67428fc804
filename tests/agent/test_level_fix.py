"""A level fix is not lost because another step of the same plan was rejected (issue 10).

The whole loop with the real embedded parts on a quiet organ chord built on 50 Hz harmonics:
perception reads it as mains hum, so the first plan removes the "hum" (the chord itself) and
normalises the level; that round is rejected, and the level fix must not go with it."""

from __future__ import annotations

import numpy as np
import pytest

from avagent.agent.graph import run_agent
from avagent.agent.planner import TARGET_LUFS, RulePlanner
from avagent.agent.state import AgentContext
from avagent.loudness import loudness_lufs
from avagent.reflection.scorers import COMPONENT_SLACK, get_scorer

SR = 48000


def organ_chord(seconds: float = 6.0, seed: int = 0) -> np.ndarray:
    """100, 150, 200 and 300 Hz swelling at 0.7 Hz, hiss 25 dB below, -30 dBFS peak."""
    t = np.arange(int(seconds * SR)) / SR
    swell = 0.6 + 0.4 * np.sin(2 * np.pi * 0.7 * t)
    y = sum(np.sin(2 * np.pi * f * t) for f in (100, 150, 200, 300)) * swell
    hiss = np.random.default_rng(seed).standard_normal(t.size)
    y = y / np.sqrt(np.mean(y**2)) + 10 ** (-25 / 20) * hiss
    return (y / np.max(np.abs(y)) * 10 ** (-30 / 20)).astype(np.float32)[None]


@pytest.fixture(scope="module")
def organ_run():
    y = organ_chord()
    ctx = AgentContext(planner=RulePlanner(), scorer=get_scorer("embedded"), max_rounds=3)
    return y, run_agent(y, sr=SR, frames=None, context=ctx)


def test_the_planner_retries_the_level_fix_without_the_rejected_steps(organ_run):
    y, res = organ_run
    assert loudness_lufs(y, sr=SR) < -40
    first, second = res.rounds[0], res.rounds[1]
    assert [s.action for s in first.plan.steps] == ["remove_hum", "volume"]
    assert not first.improved
    assert first.scores.details["noise"] < res.baseline.details["noise"] - 0.01  # what it cost
    # The next round is the same level fix alone: louder, and no worse in anything else.
    assert second.plan.steps == [first.plan.steps[1]]
    assert any("round 1 was not kept" in n for n in second.plan.notes)
    assert second.scores.details["loudness"] > res.baseline.details["loudness"] + 0.5
    assert all(second.scores.details.get(k, 1.0) >= v - COMPONENT_SLACK
               for k, v in res.baseline.details.items())


def test_the_level_fix_reaches_the_output(organ_run):
    _, res = organ_run
    assert res.chosen_round == 2
    assert loudness_lufs(res.audio, sr=SR) == pytest.approx(TARGET_LUFS, abs=0.5)
