"""The rule planner's sync step for drift read from content: rate and start offset together."""

from __future__ import annotations

import numpy as np
import pytest

from avagent.actions.speed import speed
from avagent.agent.planner import RulePlanner
from tests.agent.test_planner import facts


def test_drift_with_a_start_offset_shifts_too():
    f = facts(sync={"verdict": "drift", "rate": 1.03, "audio_delay_ms": 200.0, "confidence": 0.8})
    step = RulePlanner().plan(f, {}, []).steps[0]
    assert step.action == "speed"
    assert step.params["rate"] == pytest.approx(1 / 1.03, abs=1e-6)
    assert step.params["offset_ms"] == -200.0 and "shift" in step.reasoning
    # applied: a click heard at 0.2 + t / 1.03 s comes back to t
    sr, t = 8000, 6.0
    y = np.zeros(int(10 * sr))
    y[int((0.2 + t / 1.03) * sr)] = 1.0
    out = speed(y, sr=sr, **step.params)
    assert abs(np.argmax(np.abs(out)) / sr - t) < 0.01


@pytest.mark.parametrize(("delay", "conf"), [(20.0, 0.8), (200.0, 0.1), (None, 0.8)])
def test_drift_without_a_clear_start_offset_only_changes_rate(delay, conf):
    f = facts(sync={"verdict": "drift", "rate": 1.03, "audio_delay_ms": delay, "confidence": conf})
    step = RulePlanner().plan(f, {}, []).steps[0]
    assert "offset_ms" not in step.params and step.params["rate"] == pytest.approx(1 / 1.03)
