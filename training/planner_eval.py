"""``avagent train planner-eval``: plan accuracy of planners on the planner data's test split
(and on the benchmark's cases), first-round plans from the same facts and captions.

Scoring is the benchmark's (:func:`avagent.bench.planner_accuracy.score_plan`): action set exact,
family set exact, parameter errors. On the test split the reference is the correct OBSERVABLE plan
the model was trained on (the truth kept to what perception measured); on the benchmark it is the
fault's full truth plan.

Planners: ``rules``, ``random``, ``llm`` (embedded SmolLM2 on llama.cpp, no adapter) and
``llm+lora`` (the same with ``--lora`` GGUF); the LLM rows also give the unguarded proposal's
accuracy (``proposal_exact``) and how often the guard replaced the plan.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from avagent.errors import ParameterError

logger = logging.getLogger(__name__)


def split_cases(data: str | Path, *, split: str = "test", limit: int | None = None,
               seed: int = 0) -> list[Any]:
    """First-round records of ``split`` as the benchmark's ``Perceived`` (truth = target plan)."""
    from avagent.bench.planner_accuracy import Perceived
    from avagent.perception.facts import Facts
    from avagent.training.planner_data import read_jsonl

    path = Path(data) / "records.jsonl"
    if not path.is_file():
        raise ParameterError(f"{path} does not exist: run `avagent train planner-data` first")
    rows = [r for r in read_jsonl(path) if r["split"] == split and not r["history"]]
    if limit is not None and limit < len(rows):
        keep = sorted(np.random.default_rng(seed).permutation(len(rows))[:limit])
        rows = [rows[int(i)] for i in keep]
    return [Perceived(r["id"], r["family"], Facts.model_validate(r["facts"]), r["captions"],
                      [(s["action"], dict(s["params"])) for s in r["target"]["steps"]])
            for r in rows]


def planner_factory(name: str, lora: str | Path | None = None) -> Any:
    """A zero-argument maker for planner ``name`` (``llm+lora`` needs ``lora``)."""
    from avagent.agent.planner import get_planner

    if name == "llm+lora":
        if lora is None or not Path(lora).is_file():
            raise ParameterError(f"planner 'llm+lora' needs --lora GGUF (got {lora!r})")
        return lambda: get_planner("llm", lora_path=Path(lora))
    return lambda: get_planner(name)


def run_eval(planners: list[str], cases: list[Any], lora: str | Path | None = None
             ) -> list[dict[str, Any]]:
    from avagent.bench.planner_accuracy import evaluate

    return [evaluate(name, cases, make=planner_factory(name, lora)) for name in planners]


def table(results: list[dict[str, Any]]) -> str:
    from avagent.bench.planner_accuracy import render

    return render(results)


# -- command line -----------------------------------------------------------------------------------
def add_arguments(p: Any) -> None:
    p.add_argument("--data", default="runs/planner-data", help="planner-data folder")
    p.add_argument("--planners", default="rules,random,llm,llm+lora",
                   help="comma list of rules, random, none, llm, llm+lora")
    p.add_argument("--lora", default=None, help="GGUF LoRA for llm+lora")
    p.add_argument("--split", default="test", choices=("train", "validation", "test"))
    p.add_argument("--limit", type=int, default=None, help="at most N cases (seeded sample)")
    p.add_argument("--stride", type=int, default=1,
                   help="with --bench: every Nth case (a spread over the suite's families)")
    p.add_argument("--bench", default=None, choices=("tiny", "small", "full"),
                   help="evaluate on the benchmark suite of this size instead of the split")
    p.add_argument("--json", default=None, help="write the rows and summaries here")


def run(args: Any) -> int:
    if args.bench:
        from avagent.bench.planner_accuracy import perceived_cases

        if args.stride < 1:
            raise ParameterError(f"--stride={args.stride} must be >= 1")
        cases = perceived_cases(args.bench)[:: args.stride]
        if args.limit is not None:
            cases = cases[: args.limit]
    else:
        cases = split_cases(args.data, split=args.split, limit=args.limit)
    planners = [p.strip() for p in args.planners.split(",") if p.strip()]
    results = run_eval(planners, cases, args.lora)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=1, default=str) + "\n")
    print(table(results))
    return 0
