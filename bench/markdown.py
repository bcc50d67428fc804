"""Markdown pieces the benchmark pages share: tables, number cells, and where a run ran."""

from __future__ import annotations

import math
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A markdown table as lines: header, separator, one line per row."""
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(r) + " |" for r in rows)]


def number(v: Any, fmt: str = "{:+.1f}", dash: str = "–") -> str:
    """``fmt`` applied to ``v``; ``dash`` for a value not measured (None, NaN or infinite)."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return dash
    return fmt.format(v)


def percent(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.0f} %"


def machine() -> str:
    """The CPU model, logical CPU count and Python version, for a page's provenance line."""
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} logical CPUs (nproc), Python {platform.python_version()}"


def git_commit() -> str:
    """The short commit of the checkout the benchmark runs from, or "unknown"."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, cwd=REPO)
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"
