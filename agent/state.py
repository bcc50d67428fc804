"""The agent's state, its run context, the plan/round records that end up in report.json, and
the :class:`Planner` protocol (here, beside the records it reads and writes, so the planners in
:mod:`avagent.agent.planner` import it and nothing imports the planners to type it).

The context's other seams: the scorer (:class:`avagent.reflection.scorers.Scorer`) and the
captioners (:class:`avagent.agent.captions.Captioners`), each from its own registry.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Protocol, TypedDict

import numpy as np
from pydantic import BaseModel, Field

from avagent.agent.captions import Captioners
from avagent.perception.facts import Facts
from avagent.perception.frames import FrameSet
from avagent.reflection.scorers import Scorer, Scores

__all__ = ["AgentContext", "AgentState", "Plan", "Planner", "Round", "Scores", "Step"]


class Step(BaseModel):
    """One action of a plan, with parameters and a one-line reason a person can read."""

    action: str
    params: dict[str, Any] = Field(default_factory=dict)
    reasoning: str = ""


def _brief(value: Any) -> str:
    # Long lists (dropout spans) would drown a one-line summary: count them instead.
    if isinstance(value, (list, tuple)) and len(value) > 2:
        return f"[{len(value)} items]"
    return str(value)


class Plan(BaseModel):
    """An ordered list of steps. An empty plan ("leave it as it is") is a valid plan."""

    steps: list[Step] = Field(default_factory=list)
    planner: str = ""
    notes: list[str] = Field(default_factory=list, description="validation repairs, fallbacks")
    fallback: str | None = Field(None, description="why the guard replaced an LLM plan")

    def describe(self) -> str:
        if not self.steps:
            return "no action"
        return " → ".join(
            s.action + "(" + ", ".join(f"{k}={_brief(v)}" for k, v in s.params.items()) + ")"
            for s in self.steps
        )


class Round(BaseModel):
    index: int  # 1-based; round 0 is the untouched input (the baseline)
    plan: Plan
    scores: Scores
    improved: bool = Field(description="beat the best so far and became the candidate output")
    feedback: str = ""
    timings_s: dict[str, float] = Field(default_factory=dict)


class Planner(Protocol):
    """Turns facts, captions and the rounds so far into the next plan (registry:
    :data:`avagent.agent.planner.PLANNERS`, built by :func:`avagent.agent.planner.get_planner`)."""

    name: str

    def plan(self, facts: Facts, captions: dict[str, str], history: list[Round]) -> Plan: ...


ProgressFn = Callable[[dict[str, Any]], None]


@dataclass
class AgentContext:
    """Run-scoped dependencies, handed in by the service layer (the agent reads no Settings)."""

    planner: Planner
    scorer: Scorer
    max_rounds: int = 3
    threshold: float = 0.85
    perceive: Callable[..., Facts] | None = None  # default: agent.perceive.perceive
    captioners: Captioners = field(default_factory=Captioners)  # default: the embedded ones
    progress: ProgressFn | None = None
    job_id: str = "-"
    extra: dict[str, Any] = field(default_factory=dict)


def add_timings(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    """Reducer: node timings accumulate over rounds (seconds per stage)."""
    out = dict(a)
    for k, v in b.items():
        out[k] = out.get(k, 0.0) + v
    return out


class AgentState(TypedDict, total=False):
    # Inputs (never modified: every round starts from the ORIGINAL audio).
    audio: np.ndarray  # (channels, n) or (n,)
    sr: int
    frames: FrameSet | None
    # Perception.
    facts: Facts
    captions: dict[str, str]
    # Loop.
    baseline: Scores  # the untouched input, scored once: a repair must beat it
    round: int
    plan: Plan
    candidate: np.ndarray  # audio produced by this round's plan
    candidate_scores: Scores
    rounds: Annotated[list[Round], operator.add]
    best_round: int  # 0 = the untouched input
    best_audio: np.ndarray
    best_scores: Scores
    # A long input (see avagent.agent.excerpts): rounds run on excerpts, not on ``audio``.
    excerpts: Any
    candidate_steps: list[tuple[str, dict[str, Any]]]  # this round's plan, resolved
    best_steps: list[tuple[str, dict[str, Any]]]
    timings_s: Annotated[dict[str, float], add_timings]
