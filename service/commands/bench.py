"""``avagent bench``: every system on a seeded suite of corrupted real clips, against the truth.

Writes ``OUT/cases.json`` (every case and system), plots (``OUT/*.png``), the benchmark page
(``--doc``, default ``docs/benchmarks.md``) and the agent's page (``--agent-doc``, default
``docs/agent.md``, with the one-core speed check unless ``--no-speed``).
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
from pathlib import Path
from typing import Any

from avagent.errors import ParameterError

logger = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--size", choices=("tiny", "small", "full"), default="small",
                   help="tiny: 4 cases (tests); small: a few minutes; full: the published table")
    p.add_argument("--seed", type=int, default=0, help="seed of the suite (0)")
    p.add_argument("--systems", default=None,
                   help="comma list of systems (default: all that can run here)")
    p.add_argument("--out", type=Path, default=Path("docs/benchmarks"),
                   help="folder for cases.json and the plots (docs/benchmarks)")
    p.add_argument("--doc", default="docs/benchmarks.md",
                   help="the benchmark page to write, or '-' for none")
    p.add_argument("--agent-doc", default="docs/agent.md",
                   help="the agent's page to write, or '-' for none")
    p.add_argument("--jobs", type=int, default=1,
                   help="worker processes, one case at a time each (1; real-time factors are "
                        "per process, so they fall when jobs exceed free cores)")
    p.add_argument("--no-critic", action="store_true", help="skip re-scoring outputs")
    p.add_argument("--no-speed", action="store_true", help="skip the one-core speed check")
    p.add_argument("--from-json", type=Path, default=None,
                   help="re-render the pages from an earlier cases.json instead of running")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _command(argv: list[str]) -> str:
    return "avagent bench " + " ".join(shlex.quote(a) for a in argv)


def run(args: argparse.Namespace) -> int:
    from avagent.bench.report import write_report

    argv = sys.argv[sys.argv.index("bench") + 1:] if "bench" in sys.argv else []
    command = _command(argv)
    doc = None if args.doc == "-" else Path(args.doc)
    agent_doc = None if args.agent_doc == "-" else Path(args.agent_doc)
    if args.from_json is not None:
        try:
            results: dict[str, Any] = json.loads(args.from_json.read_text())
        except (OSError, ValueError) as exc:
            raise ParameterError(f"--from-json {args.from_json}: {exc}") from None
        command = results.get("meta", {}).get("command", command)
    else:
        results = _run(args)
        results["meta"]["command"] = command
    speed = results.get("speed")  # a re-render keeps the measured speed, never re-measures
    if agent_doc is not None and not args.no_speed and args.from_json is None:
        from avagent.bench.speed import measure

        if not args.quiet:
            print("speed check: 10 s 720p clip on one core ...", file=sys.stderr)
        speed = measure()
        results["speed"] = speed
    written = write_report(results, out_dir=args.out, doc=doc, command=command,
                           agent_doc=agent_doc, speed=speed)
    for t in results_targets(results):
        print(t)
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


def _run(args: argparse.Namespace) -> dict[str, Any]:
    from avagent.bench.run import run_bench

    systems = tuple(s.strip() for s in args.systems.split(",") if s.strip()) if args.systems else None
    if not 1 <= args.jobs <= 64:
        raise ParameterError(f"--jobs {args.jobs} must be within 1..64")
    if args.quiet:
        return run_bench(args.size, seed=args.seed, systems=systems, critic=not args.no_critic,
                         jobs=args.jobs)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("bench {task.fields[case]}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), transient=True) as bar:
        task = bar.add_task("cases", total=None, case="building the suite")

        def on_case(i: int, n: int, case_id: str) -> None:
            bar.update(task, total=n, completed=i, case=case_id)

        return run_bench(args.size, seed=args.seed, systems=systems, critic=not args.no_critic,
                         jobs=args.jobs, on_case=on_case)


def results_targets(results: dict[str, Any]) -> list[str]:
    from avagent.bench.report import benchmark_targets

    return [f"{row[2]:>10}  {row[0]}: {row[1]}" for row in benchmark_targets(results)]
