"""The systems the benchmark runs side by side on every case.

* ``none``: the input as it is (what doing nothing scores).
* one entry per action of the table, alone, with its default parameters (``volume`` normalises
  to the rule planner's delivery target, since it has no default target).
* peers a user would pick instead (:mod:`avagent.bench.peers`): noisereduce, RNNoise, DeepFilterNet3.
* agents: the full loop (perceive → plan → act → reflect) with the ``random`` planner (the
  paper's baseline), the ``rules`` planner, and the LLM planner when one is configured.
* ``oracle``: the known inverse of the fault from the truth record (the ceiling).

Every system maps a case to an :class:`Output`; a system that fails on a case is recorded with
its error rather than stopping the run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from avagent.actions.registry import Family, action_names
from avagent.bench.suite import Case

DENOISE_ACTIONS = action_names("noise")
# Every action that does not move the sound, alone, by family (the report's column order);
# volume has no default target, so it gets the rule planner's delivery target.
_SINGLE_FAMILIES: tuple[Family, ...] = ("noise", "tonal", "repair", "level")
_SINGLE_PARAMS: dict[str, dict[str, Any]] = {"volume": {"target_lufs": -18.0}}
SINGLE_ACTIONS: dict[str, dict[str, Any]] = {
    a: _SINGLE_PARAMS.get(a, {})
    for family in _SINGLE_FAMILIES
    for a in action_names(family, changes_timing=False)
}
PEERS = ("noisereduce", "rnnoise", "deepfilternet3")
AGENTS = ("random", "rules")
DEFAULT_SYSTEMS = ("none", *SINGLE_ACTIONS, *PEERS, *AGENTS, "oracle")


@dataclass
class Output:
    system: str
    y: np.ndarray | None
    seconds: float
    plan: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    rounds: int = 0
    scores: dict[str, float] | None = None  # the agent's own reflection scores of its output
    accepted: bool | None = None
    error: str | None = None


class CaseContext:
    """What several systems of one case share: the perception of the input, measured once."""

    def __init__(self, case: Case) -> None:
        self.case = case
        self._facts: Any = None
        self.perceive_s = 0.0

    def facts(self) -> Any:
        if self._facts is None:
            from avagent.agent.perceive import perceive

            t0 = time.perf_counter()
            c = self.case
            self._facts = perceive(c.y, sr=c.sr, frames=c.source.frames,
                                   audio_duration_s=c.y.shape[-1] / c.sr)
            self.perceive_s = time.perf_counter() - t0
        return self._facts


def _action(name: str, params: dict[str, Any]) -> Callable[[CaseContext], Output]:
    def run(ctx: CaseContext) -> Output:
        from avagent.actions import apply_action

        t0 = time.perf_counter()
        y = apply_action(name, ctx.case.y, sr=ctx.case.sr, **params)
        return Output(name, y, time.perf_counter() - t0, plan=[(name, dict(params))])

    return run


def _peer(name: str) -> Callable[[CaseContext], Output]:
    def run(ctx: CaseContext) -> Output:
        from avagent.bench.peers import run_peer

        t0 = time.perf_counter()
        y = run_peer(name, ctx.case.y, sr=ctx.case.sr)
        return Output(name, y, time.perf_counter() - t0)

    return run


def _none(ctx: CaseContext) -> Output:
    return Output("none", ctx.case.y, 0.0)


def _oracle(ctx: CaseContext) -> Output:
    from avagent.actions import apply_action

    t0 = time.perf_counter()
    y = ctx.case.y
    plan = ctx.case.truth.plan()
    for name, params in plan:  # the truth's repair plan (dropout spans included)
        y = apply_action(name, y, sr=ctx.case.sr, **params)
    return Output("oracle", y, time.perf_counter() - t0, plan=plan)


def _agent(planner_name: str) -> Callable[[CaseContext], Output]:
    def run(ctx: CaseContext) -> Output:
        from avagent.agent.graph import run_agent
        from avagent.agent.planner import get_planner
        from avagent.agent.state import AgentContext
        from avagent.reflection.scorers import get_scorer

        facts = ctx.facts()  # measured once per case, outside the timing; added back below
        context = AgentContext(
            planner=get_planner(planner_name),
            scorer=get_scorer("embedded"),
            max_rounds=3,
            threshold=0.85,
            perceive=lambda *a, **k: facts,
            job_id=f"bench:{ctx.case.id}",
        )
        t0 = time.perf_counter()
        result = run_agent(ctx.case.y, sr=ctx.case.sr, frames=ctx.case.source.frames,
                           context=context)
        seconds = time.perf_counter() - t0 + ctx.perceive_s
        chosen = result.rounds[result.chosen_round - 1].plan if result.chosen_round else None
        plan = [(s.action, dict(s.params)) for s in chosen.steps] if chosen else []
        return Output(
            planner_name, np.asarray(result.audio), seconds, plan=plan, rounds=len(result.rounds),
            scores={"alignment": result.scores.alignment, "sync": result.scores.sync},
            accepted=result.accepted,
        )

    return run


SYSTEMS: dict[str, Callable[[CaseContext], Output]] = {
    "none": _none,
    **{name: _action(name, params) for name, params in SINGLE_ACTIONS.items()},
    **{name: _peer(name) for name in PEERS},
    **{name: _agent(name) for name in AGENTS},
    "oracle": _oracle,
}


def available(names: tuple[str, ...] | list[str]) -> dict[str, str | None]:
    """name -> None when the system can run here, else the reason it cannot."""
    out: dict[str, str | None] = {}
    peer_reasons: dict[str, str | None] = {}
    if any(n in PEERS for n in names):
        from avagent.bench.peers import peer_status

        peer_reasons = peer_status()
    for n in names:
        if n not in SYSTEMS:
            out[n] = f"unknown system; valid: {', '.join(SYSTEMS)}"
        elif n in PEERS:
            out[n] = peer_reasons.get(n)
        else:
            out[n] = None
    return out


def run_system(name: str, ctx: CaseContext) -> Output:
    try:
        out = SYSTEMS[name](ctx)
    except Exception as exc:  # one broken system on one case is a result, not a crash
        return Output(name, None, 0.0, error=f"{type(exc).__name__}: {exc}")
    if out.y is not None and not np.all(np.isfinite(out.y)):
        return Output(name, None, out.seconds, error="output is not finite")
    return out
