"""The agent loop as a LangGraph ``StateGraph``: perceive → plan → act → reflect ⟲.

Rules the graph enforces (the paper's, plus ours):
- every round applies its plan to the ORIGINAL audio, never to the last round's output;
- the untouched input is scored once (round 0) and a round is kept only if it beats the best so
  far by ``MIN_GAIN``: a clean clip comes out untouched because nothing beats it;
- the loop stops when the best version passes the threshold on both scores, when the planner has
  nothing new to try (an empty or repeated plan is not run again), or at ``max_rounds`` (a
  budget, not an exception).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from avagent.actions import apply_action
from avagent.actions.registry import action_names
from avagent.agent.state import AgentContext, AgentState, Plan, Round, Step
from avagent.errors import AvagentError
from avagent.perception.facts import Facts
from avagent.perception.frames import FrameSet
from avagent.reflection.scorers import Scores

logger = logging.getLogger(__name__)

MIN_GAIN = 0.01  # a repair must beat the best so far by this much in overall score
TIMING_ACTIONS = frozenset(action_names(changes_timing=True))  # re-measure sync after these


def perceive(state: AgentState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    ctx = runtime.context
    _progress(ctx, "perceive", 0, 0.05)
    t0 = time.perf_counter()
    if ctx.perceive is not None:
        perceive_fn = ctx.perceive
    else:
        from avagent.agent.perceive import perceive as perceive_fn
    if state.get("excerpts") is not None:
        return _perceive_excerpts(state, ctx, t0)
    y, sr = state["audio"], state["sr"]
    facts: Facts = perceive_fn(
        y, sr=sr, frames=state.get("frames"), audio_duration_s=y.shape[-1] / sr
    )
    frames = state.get("frames")
    captions = ctx.captioners.describe(facts, y=y, sr=sr, frames=frames)
    # the untouched input is scored like every candidate; perception's facts spare re-measuring
    baseline, _ = ctx.scorer.score(y, sr=sr, frames=frames, facts=facts)
    logger.info("[%s] perceived: %s | baseline %s", ctx.job_id, captions["audio"], _fmt(baseline))
    return {
        "facts": facts,
        "captions": captions,
        "baseline": baseline,
        "best_round": 0,
        "best_audio": y,
        "best_scores": baseline,
        "round": 0,
        "timings_s": {"perceive": time.perf_counter() - t0},
    }


def _perceive_excerpts(state: AgentState, ctx: AgentContext, t0: float) -> dict[str, Any]:
    """A long input: perception ran over the whole stream already; the baseline is the
    untouched excerpts' scores (see :mod:`avagent.agent.excerpts`)."""
    ex = state["excerpts"]
    facts = state["facts"]
    first = ex.items[0]
    captions = ctx.captioners.describe(facts, y=ex.segment(first, []), sr=state["sr"],
                                       frames=first.frames)
    baseline = ex.score_input(ctx.scorer)
    logger.info("[%s] perceived (%d excerpts): %s | baseline %s", ctx.job_id, len(ex.items),
                captions["audio"], _fmt(baseline))
    return {"captions": captions, "baseline": baseline, "best_round": 0, "best_audio": None,
            "best_steps": [], "best_scores": baseline, "round": 0,
            "timings_s": {"perceive": time.perf_counter() - t0}}


def plan(state: AgentState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    ctx = runtime.context
    n = state["round"] + 1
    _progress(ctx, "plan", n, 0.1 + 0.8 * (n - 1) / ctx.max_rounds)
    t0 = time.perf_counter()
    history = state.get("rounds", [])
    try:
        new_plan = ctx.planner.plan(state["facts"], state["captions"], history)
    except AvagentError as exc:
        from avagent.agent.planner import RulePlanner

        logger.warning("[%s] planner %s failed (%s); using rules", ctx.job_id, ctx.planner.name, exc)
        new_plan = RulePlanner().plan(state["facts"], state["captions"], history)
        new_plan.notes.append(f"planner {ctx.planner.name!r} failed ({exc}); rule plan used")
    logger.info("[%s] round %d plan: %s", ctx.job_id, n, new_plan.describe())
    return {"plan": new_plan, "round": n, "timings_s": {"plan": time.perf_counter() - t0}}


def act(state: AgentState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    ctx = runtime.context
    n = state["round"]
    _progress(ctx, "act", n, 0.1 + 0.8 * (n - 0.66) / ctx.max_rounds)
    t0 = time.perf_counter()
    if state.get("excerpts") is not None:
        return _act_excerpts(state, ctx, t0)
    y = state["audio"]  # the ORIGINAL, every round
    sr = state["sr"]
    kept: list[Step] = []
    notes = list(state["plan"].notes)
    for step in state["plan"].steps:
        try:
            y = apply_action(step.action, y, sr=sr, **step.params)
            kept.append(step)
        except AvagentError as exc:
            logger.warning("[%s] action %s failed: %s", ctx.job_id, step.action, exc)
            notes.append(f"step {step.action} skipped: {exc}")
    done = state["plan"].model_copy(update={"steps": kept, "notes": notes})
    return {"candidate": y, "plan": done, "timings_s": {"act": time.perf_counter() - t0}}


def _act_excerpts(state: AgentState, ctx: AgentContext, t0: float) -> dict[str, Any]:
    """The plan on every excerpt; a step that fails is skipped as on a short clip."""
    ex = state["excerpts"]
    kept: list[Step] = []
    notes = list(state["plan"].notes)
    steps = list(state["plan"].steps)
    try:
        out = ex.apply([(s.action, s.params) for s in steps])
        kept = steps
    except AvagentError:  # find the failing steps one by one, as a short clip does
        out = (ex.input_excerpts(), [])
        for step in steps:
            try:
                out = ex.apply([(s.action, s.params) for s in [*kept, step]])
                kept.append(step)
            except AvagentError as exc:
                logger.warning("[%s] action %s failed: %s", ctx.job_id, step.action, exc)
                notes.append(f"step {step.action} skipped: {exc}")
    done = state["plan"].model_copy(update={"steps": kept, "notes": notes})
    return {"candidate": out[0], "candidate_steps": out[1], "plan": done,
            "timings_s": {"act": time.perf_counter() - t0}}


def reflect(state: AgentState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    ctx = runtime.context
    n = state["round"]
    _progress(ctx, "reflect", n, 0.1 + 0.8 * (n - 0.33) / ctx.max_rounds)
    t0 = time.perf_counter()
    current_plan: Plan = state["plan"]
    timing = any(s.action in TIMING_ACTIONS for s in current_plan.steps)
    if not current_plan.steps:
        scores = state["baseline"]  # nothing was done: the candidate is the input
    elif state.get("excerpts") is not None:
        scores = state["excerpts"].score(ctx.scorer, state["candidate"], timing_changed=timing)
    else:
        scores, _ = ctx.scorer.score(
            state["candidate"],
            sr=state["sr"],
            frames=state.get("frames"),
            before=state["facts"],
            timing_changed=timing,
        )
    best: Scores = state["best_scores"]
    improved = bool(current_plan.steps) and scores.improves_on(best, MIN_GAIN)
    feedback = round_feedback(scores, ctx.threshold, improved)
    record = Round(
        index=n, plan=current_plan, scores=scores, improved=improved, feedback=feedback
    )
    logger.info("[%s] round %d scores %s (%s)", ctx.job_id, n, _fmt(scores), feedback)
    update: dict[str, Any] = {"rounds": [record], "timings_s": {"reflect": time.perf_counter() - t0}}
    if improved:
        excerpts = state.get("excerpts") is not None  # a film keeps its plan, not its excerpts
        update.update(best_round=n, best_audio=None if excerpts else state["candidate"],
                      best_scores=scores, best_steps=state.get("candidate_steps", []))
    return update


def route_after_plan(
    state: AgentState, runtime: Runtime[AgentContext]
) -> Literal["act", "finish"]:
    """Stop when the planner has nothing new: repeating a plan would change nothing."""
    if state["round"] == 1:
        return "act"  # the first plan always runs (an empty one is scored as the input)
    new = state["plan"]
    if not new.steps or any(_same(r.plan, new) for r in state.get("rounds", [])):
        return "finish"
    return "act"


def route_after_reflect(
    state: AgentState, runtime: Runtime[AgentContext]
) -> Literal["plan", "finish"]:
    ctx = runtime.context
    rounds = state.get("rounds", [])
    if state["best_scores"].passes(ctx.threshold):
        return "finish"
    if state["round"] >= ctx.max_rounds:
        return "finish"
    last = rounds[-1].plan if rounds else None
    if last is None or not last.steps:
        return "finish"  # the planner sees nothing (more) to do
    return "plan"


def finish(state: AgentState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    _progress(runtime.context, "finish", state["round"], 0.95)
    return {}


def build_graph() -> Any:
    """Compile the agent graph (nodes: perceive, plan, act, reflect, finish)."""
    g = StateGraph(AgentState, context_schema=AgentContext)
    g.add_node("perceive", perceive)
    g.add_node("plan", plan)
    g.add_node("act", act)
    g.add_node("reflect", reflect)
    g.add_node("finish", finish)
    g.add_edge(START, "perceive")
    g.add_edge("perceive", "plan")
    g.add_conditional_edges("plan", route_after_plan, {"act": "act", "finish": "finish"})
    g.add_edge("act", "reflect")
    g.add_conditional_edges("reflect", route_after_reflect, {"plan": "plan", "finish": "finish"})
    g.add_edge("finish", END)
    return g.compile()


@dataclass
class AgentResult:
    audio: np.ndarray  # the chosen version (the input itself when nothing beat it)
    facts: Facts
    captions: dict[str, str]
    baseline: Scores
    rounds: list[Round]
    chosen_round: int  # 0 = untouched input
    scores: Scores
    accepted: bool
    timings_s: dict[str, float]
    # the chosen plan with whole-clip parameters resolved (a long input is rendered with it)
    steps: list[tuple[str, dict[str, Any]]] | None = None


_GRAPH: Any = None


def run_agent(
    audio: np.ndarray, *, sr: int, frames: FrameSet | None, context: AgentContext
) -> AgentResult:
    """Run the loop on decoded audio (and sampled frames) and return the chosen version."""
    return _invoke({"audio": audio, "sr": int(sr), "frames": frames}, context)


def run_agent_excerpts(
    excerpts: Any, *, facts: Facts, sr: int, context: AgentContext
) -> AgentResult:
    """Run the loop on a long input's :class:`~avagent.agent.excerpts.Excerpts` (perception
    already measured the whole stream: ``facts``). ``audio`` of the result is None; render
    ``result.steps`` over the whole track."""
    return _invoke({"audio": None, "sr": int(sr), "frames": None,  # type: ignore[typeddict-item]
                    "excerpts": excerpts, "facts": facts}, context)


def _invoke(state: AgentState, context: AgentContext) -> AgentResult:
    """Run the compiled graph on ``state`` and gather what it chose."""
    global _GRAPH
    if _GRAPH is None:
        _GRAPH = build_graph()
    out = _GRAPH.invoke(
        state, context=context, config={"recursion_limit": 6 * context.max_rounds + 10}
    )
    best: Scores = out["best_scores"]
    return AgentResult(
        audio=out.get("best_audio"),  # type: ignore[arg-type]
        facts=out["facts"],
        captions=out["captions"],
        baseline=out["baseline"],
        rounds=out.get("rounds", []),
        chosen_round=out["best_round"],
        scores=best,
        accepted=best.passes(context.threshold),
        timings_s={k: round(v, 4) for k, v in out.get("timings_s", {}).items()},
        steps=out.get("best_steps", []) if state.get("excerpts") is not None else None,
    )


def _same(a: Plan, b: Plan) -> bool:
    return [(s.action, s.params) for s in a.steps] == [(s.action, s.params) for s in b.steps]


def round_feedback(s: Scores, threshold: float, improved: bool) -> str:
    weak = [k for k, v in s.details.items() if v < threshold and not k.endswith("confidence")]
    parts = []
    if s.alignment < threshold:
        parts.append(f"alignment {s.alignment:.2f} < {threshold}")
    if s.sync < threshold:
        parts.append(f"sync {s.sync:.2f} < {threshold}")
    if weak:
        parts.append("weak: " + ", ".join(weak))
    parts.append("kept as best" if improved else "not better than the best so far")
    return "; ".join(parts)


def _fmt(s: Scores) -> str:
    return f"alignment={s.alignment:.3f} sync={s.sync:.3f}"


def _progress(ctx: AgentContext, stage: str, rnd: int, fraction: float) -> None:
    if ctx.progress is not None:
        ctx.progress(
            {"stage": stage, "round": rnd, "max_rounds": ctx.max_rounds, "fraction": fraction}
        )
