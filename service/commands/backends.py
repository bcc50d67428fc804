"""``avagent backends``: each role's configured backend, whether it answers, the fallback in force."""

from __future__ import annotations

import argparse
import json


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--planner", default=None, help="report for this planner instead of Settings'")
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    p.add_argument("--no-probe", action="store_true", help="do not contact any server")


def run(args: argparse.Namespace) -> int:
    from avagent.service.backend_status import describe_backends
    from avagent.service.settings import get_settings

    settings = get_settings()
    if args.planner:
        from avagent.agent.planner import PLANNERS
        from avagent.errors import ParameterError

        if args.planner not in PLANNERS:
            raise ParameterError(
                f"planner={args.planner!r} is unknown; valid planners: {', '.join(PLANNERS)}")
        settings = settings.model_copy(update={"planner": args.planner})
    rows = describe_backends(settings, probe=not args.no_probe)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="avagent backends")
    for col in ("role", "backend", "reachable", "detail", "fallback in force"):
        table.add_column(col)
    for r in rows:
        ok = {True: "yes", False: "NO", None: "not probed"}[r["reachable"]]
        table.add_row(*(escape(str(v)) for v in (r["role"], r["backend"], ok, r["detail"],
                                                r["fallback"])))
    Console(width=160).print(table)
    return 0
