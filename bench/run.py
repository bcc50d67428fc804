"""Run the benchmark: every system on every case of a suite, metrics against the clean truth.

``avagent bench --size small|full`` (see :mod:`service.commands.bench`) calls :func:`run_bench`
and then :mod:`bench.report`. The JSON it returns holds every case and every system's row, so a
report can be re-rendered without re-running (``avagent bench --from-json``).
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import platform
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import suite
from bench.evaluate import critic_check, critic_scores, evaluate, input_metrics, judge
from bench.systems import DEFAULT_SYSTEMS, CaseContext, available, run_system

logger = logging.getLogger(__name__)

# Systems whose outputs the critic (the embedded scorer) re-scores: a spread from untouched to
# ceiling, so the rank correlation sees bad, half-repaired and good versions of every case.
CRITIC_SYSTEMS = ("none", "wiener", "spectral_gating", "deepfilternet3", "random", "rules",
                  "oracle")


def _git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, cwd=Path(__file__).resolve().parents[1],
                              check=False).stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def run_bench(
    size: str = "small",
    *,
    seed: int = 0,
    systems: tuple[str, ...] | None = None,
    critic: bool = True,
    on_case: Callable[[int, int, str], None] | None = None,
) -> dict[str, Any]:
    """Build the suite and run ``systems`` (default: all that can run here) on every case."""
    wanted = tuple(systems or DEFAULT_SYSTEMS)
    status = available(wanted)
    unknown = [n for n, why in status.items() if why and why.startswith("unknown")]
    if unknown:
        from avagent.errors import ParameterError

        raise ParameterError(f"systems {unknown} are unknown; valid: {', '.join(DEFAULT_SYSTEMS)}")
    runnable = [n for n in wanted if status[n] is None]
    for n, why in status.items():
        if why:
            logger.warning("system %s cannot run here: %s", n, why)
    t0 = time.perf_counter()
    cases = suite.build_cases(size, seed=seed)
    build_s = time.perf_counter() - t0
    rows: list[dict[str, Any]] = []
    for i, case in enumerate(cases):
        if on_case:
            on_case(i, len(cases), case.id)
        ctx = CaseContext(case)
        entry: dict[str, Any] = {
            "id": case.id,
            "family": case.family,
            "faults": sorted(suite.fault_families(case)),
            "source": case.source.name,
            "video_kind": case.source.kind,
            "content": case.source.content,
            "duration_s": round(case.y.shape[-1] / case.sr, 3),
            "truth": case.truth.model_dump(mode="json", exclude={"parts"}),
            "input": input_metrics(case),
            "systems": {},
        }
        for name in runnable:
            out = run_system(name, ctx)
            row = evaluate(case, out, in_metrics=entry["input"])
            if out.scores is not None:
                row["agent_scores"] = out.scores
                row["accepted"] = out.accepted
            if critic and name in CRITIC_SYSTEMS and out.y is not None:
                row["critic"] = critic_scores(ctx, out)
            entry["systems"][name] = row
        oracle = entry["systems"].get("oracle", {}).get("si_sdr_out")
        for row in entry["systems"].values():
            row["acceptable"] = judge(row, oracle)
        rows.append(entry)
    if on_case:
        on_case(len(cases), len(cases), "done")
    flat = [{**r, "video_kind": e["video_kind"], "family": e["family"]}
            for e in rows for r in e["systems"].values()]
    return {
        "meta": {
            "size": size,
            "seed": seed,
            "cases": len(cases),
            "digest": suite.case_digest(cases),
            "systems": runnable,
            "unavailable": {n: why for n, why in status.items() if why},
            "critic_systems": [n for n in CRITIC_SYSTEMS if n in runnable] if critic else [],
            "date": _dt.date.today().isoformat(),
            "commit": _git_commit(),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, Python "
                       f"{platform.python_version()}",
            "build_s": round(build_s, 1),
            "run_s": round(time.perf_counter() - t0, 1),
        },
        "critic": critic_check(flat) if critic else None,
        "cases": rows,
    }
