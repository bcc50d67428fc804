"""Plan accuracy against the known faults of the benchmark's cases, one planning call per case.

Every case of :func:`avagent.bench.suite.build_cases` carries the plan that undoes its fault
(``truth.plan()``). Perception runs once per case (cached on disk: the facts do not depend on the
planner); each planner then plans the first round from the same facts and captions, and the plan
is compared with the truth:

* **exact**: the set of actions equals the truth's (a clean case: the empty plan);
* **family exact**: the same, with actions mapped to their family (any denoiser counts as noise);
* **parameter error** on the actions both plans hold: |offset_ms| (ms), |rate − truth| (ppm),
  |target_lufs| (LU), |fundamental_hz| (Hz);
* for ``llm``: the share of plans the guard replaced (and why), and seconds per planning call.

Run: ``python -m avagent.bench.planner_accuracy --size small --planners rules,llm,random``
(``--json PATH`` keeps the raw rows; the planner-training issue reuses :func:`perceived_cases`,
:func:`score_plan` and :func:`evaluate`).
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from avagent.actions import get_action
from avagent.agent.state import Plan
from avagent.perception.facts import Facts

logger = logging.getLogger(__name__)

PARAMS: dict[tuple[str, str], tuple[float, float, str]] = {
    # (action, param): (scale to the unit shown, value when the plan leaves it out, unit)
    ("speed", "offset_ms"): (1.0, 0.0, "ms"),
    ("speed", "rate"): (1e6, 1.0, "ppm"),
    ("volume", "target_lufs"): (1.0, float("nan"), "LU"),
    ("remove_hum", "fundamental_hz"): (1.0, float("nan"), "Hz"),
}


@dataclass
class Perceived:
    id: str
    family: str
    facts: Facts
    captions: dict[str, str]
    truth: list[tuple[str, dict[str, Any]]]


def _cache_file(size: str, seed: int, digest: str) -> Path:
    from avagent.bench import media

    root = media.cache_root().parent / "bench"
    return root / f"planner-facts-{size}-{seed}-{digest[:12]}.json"


def perceived_cases(size: str = "small", seed: int = 0, *, cache: bool = True) -> list[Perceived]:
    """The suite's cases with their perception (facts, captions) and truth plans, cached by the
    suite's digest so a rerun skips perception."""
    from avagent.agent.captions import audio_caption, video_caption
    from avagent.agent.perceive import perceive
    from avagent.bench.suite import build_cases, case_digest

    cases = build_cases(size, seed)
    path = _cache_file(size, seed, case_digest(cases))
    if cache and path.is_file():
        rows = json.loads(path.read_text())
        return [Perceived(r["id"], r["family"], Facts.model_validate(r["facts"]), r["captions"],
                          [(a, p) for a, p in r["truth"]]) for r in rows]
    out = []
    for i, c in enumerate(cases):
        logger.info("perceiving %d/%d %s", i + 1, len(cases), c.id)
        facts = perceive(c.y, sr=c.sr, frames=c.source.frames, audio_duration_s=c.y.shape[-1] / c.sr)
        captions = {"audio": audio_caption(facts.audio),
                    "video": video_caption(facts.video) if facts.video is not None else ""}
        out.append(Perceived(c.id, c.family, facts, captions, c.truth.plan()))
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps([{"id": p.id, "family": p.family,
                                    "facts": p.facts.model_dump(mode="json"),
                                    "captions": p.captions, "truth": p.truth} for p in out]))
        tmp.replace(path)
    return out


def score_plan(plan: Sequence[tuple[str, dict[str, Any]]],
               truth: Sequence[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """Compare a plan with the truth plan: exact action set, family set, parameter errors."""
    got = {a for a, _ in plan}
    want = {a for a, _ in truth}
    fam = lambda names: {get_action(n).family for n in names if n in _known()}  # noqa: E731
    errors: dict[str, float] = {}
    mine = {a: p for a, p in plan}
    for action, params in truth:
        if action not in mine:
            continue
        for name, value in params.items():
            key = (action, name)
            if key not in PARAMS or not isinstance(value, (int, float)):
                continue
            scale, missing, _ = PARAMS[key]
            pred = mine[action].get(name)
            pred = missing if pred is None else float(pred)
            if pred == pred:  # not NaN: the plan set it, or its default is comparable
                errors[f"{action}.{name}"] = abs(pred - float(value)) * scale
    return {"exact": got == want, "family_exact": fam(got) == fam(want),
            "missed": sorted(want - got), "extra": sorted(got - want), "param_error": errors}


def _known() -> set[str]:
    from avagent.actions import ACTIONS

    return set(ACTIONS)


def evaluate(name: str, cases: Sequence[Perceived], *,
             make: Callable[[], Any] | None = None) -> dict[str, Any]:
    """Plan every case with planner ``name`` (or ``make()``), score it, and summarise."""
    from avagent.agent.planner import get_planner

    planner = make() if make is not None else get_planner(name)
    rows = []
    for p in cases:
        t0 = time.perf_counter()
        proposal = None
        if hasattr(planner, "propose") and hasattr(planner, "guarded"):
            from avagent.errors import BackendError

            try:
                proposal = planner.propose(p.facts, p.captions, [])
            except BackendError as exc:
                proposal = exc
            seconds = time.perf_counter() - t0
            plan: Plan = planner.guarded(proposal, p.facts, p.captions, [])
        else:
            plan = planner.plan(p.facts, p.captions, [])
            seconds = time.perf_counter() - t0
        steps = [(s.action, dict(s.params)) for s in plan.steps]
        row = {"id": p.id, "family": p.family, "plan": steps, "planner": plan.planner,
               "fallback": plan.fallback, "seconds": seconds, **score_plan(steps, p.truth)}
        if isinstance(proposal, Plan):
            raw = [(s.action, dict(s.params)) for s in proposal.steps]
            row["proposal"] = raw
            row["proposal_score"] = score_plan(raw, p.truth)
        rows.append(row)
        logger.info("%s %s: %s (%s)", name, p.id, steps, "exact" if row["exact"] else "wrong")
    close = getattr(planner, "close", None)
    if callable(close):
        close()
    return {"planner": name, "rows": rows, **summarise(rows)}


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(rows)
    errs: dict[str, list[float]] = {}
    for r in rows:
        for k, v in r["param_error"].items():
            errs.setdefault(k, []).append(v)
    out: dict[str, Any] = {
        "n": n,
        "exact": sum(r["exact"] for r in rows) / n if n else None,
        "family_exact": sum(r["family_exact"] for r in rows) / n if n else None,
        "param_error_median": {k: statistics.median(v) for k, v in sorted(errs.items())},
        "param_error_n": {k: len(v) for k, v in sorted(errs.items())},
        "seconds_median": statistics.median(r["seconds"] for r in rows) if n else None,
        "seconds_max": max((r["seconds"] for r in rows), default=None),
    }
    fallbacks = [r["fallback"] for r in rows if r.get("fallback")]
    if any("proposal" in r or r.get("fallback") for r in rows):
        out["guard_replaced"] = len(fallbacks) / n if n else None
        out["guard_reasons"] = dict(Counter(f.split(":", 1)[0] for f in fallbacks))
        raw = [r["proposal_score"] for r in rows if "proposal_score" in r]
        out["proposal_exact"] = sum(s["exact"] for s in raw) / len(raw) if raw else None
        out["proposal_family_exact"] = (
            sum(s["family_exact"] for s in raw) / len(raw) if raw else None)
        out["empty_proposals"] = sum(1 for r in rows if r.get("proposal") == []) / n if n else None
    return out


def render(results: list[dict[str, Any]]) -> str:
    """A markdown table of the summaries (one row per planner)."""
    keys = sorted({k for r in results for k in r["param_error_median"]})
    head = ["planner", "cases", "action set exact", "family set exact",
            *[f"median err {k}" for k in keys], "s / plan (median)", "guard replaced"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        cells = [r["planner"], str(r["n"]), f"{r['exact']:.2f}", f"{r['family_exact']:.2f}"]
        for k in keys:
            v = r["param_error_median"].get(k)
            unit = PARAMS[tuple(k.split("."))][2]  # type: ignore[index]
            cells.append("—" if v is None else f"{v:.3g} {unit} (n={r['param_error_n'][k]})")
        cells.append(f"{r['seconds_median']:.3f}")
        g = r.get("guard_replaced")
        cells.append("—" if g is None else f"{g:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="small", choices=("tiny", "small", "full"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--planners", default="rules,llm,random")
    ap.add_argument("--json", type=Path, default=None, help="write the raw rows here")
    ap.add_argument("--limit", type=int, default=0, help="first N cases only (0: all)")
    ap.add_argument("--stride", type=int, default=1,
                    help="every k-th case (a spread over sources and faults when time is short)")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    t0 = time.perf_counter()
    cases = perceived_cases(args.size, args.seed)
    cases = cases[:: max(1, args.stride)]
    if args.limit:
        cases = cases[: args.limit]
    print(f"{len(cases)} cases ({args.size}, seed {args.seed}, stride {args.stride}); perception {time.perf_counter() - t0:.0f} s")
    results = []
    for name in [n.strip() for n in args.planners.split(",") if n.strip()]:
        t1 = time.perf_counter()
        res = evaluate(name, cases)
        res["wall_s"] = time.perf_counter() - t1
        results.append(res)
        extra = ""
        if "guard_replaced" in res:
            extra = (f"; unguarded proposals exact {res['proposal_exact']}, empty "
                     f"{res['empty_proposals']:.2f}; guard reasons {res['guard_reasons']}")
        print(f"{name}: exact {res['exact']:.2f}, family {res['family_exact']:.2f}, "
              f"{res['wall_s']:.1f} s{extra}")
    print(render(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
