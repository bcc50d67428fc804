"""``avagent actions``: the action table, as a table or as JSON (with parameter schemas)."""

from __future__ import annotations

import argparse
import json


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the table with parameter schemas")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from avagent.actions import ACTIONS

    if args.json:
        rows = [
            {"name": s.name, "family": s.family, "changes_timing": s.changes_timing,
             "summary": s.summary, "params": s.json_schema()}
            for s in ACTIONS.values()
        ]
        print(json.dumps(rows, indent=2))
        return 0
    table = Table(title="avagent actions")
    table.add_column("action", style="bold")
    table.add_column("family")
    table.add_column("parameters (default)")
    table.add_column("what it does")
    for spec in ACTIONS.values():
        params = ", ".join(
            f"{k}={f.default!r}" if not f.is_required() else f"{k} (required)"
            for k, f in spec.params.model_fields.items()
        )
        table.add_row(spec.name, spec.family, params, spec.summary)
    Console(width=160).print(table)
    return 0
