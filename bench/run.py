"""Run the benchmark: every system on every case of a suite, metrics against the clean truth.

``avagent bench --size small|full`` (see :mod:`avagent.service.commands.bench`) calls :func:`run_bench`
and then :mod:`avagent.bench.report`. The JSON it returns holds every case and every system's row, so a
report can be re-rendered without re-running (``avagent bench --from-json``).
"""

from __future__ import annotations

import datetime as _dt
import functools
import logging
import os
import platform
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from avagent.bench import suite
from avagent.bench.evaluate import critic_check, critic_scores, evaluate, input_metrics, judge
from avagent.bench.systems import DEFAULT_SYSTEMS, CaseContext, available, run_system

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


@functools.lru_cache(maxsize=2)
def _cases(size: str, seed: int) -> list[suite.Case]:
    return suite.build_cases(size, seed=seed)


def run_case(size: str, seed: int, index: int, systems: tuple[str, ...], critic: bool
             ) -> dict[str, Any]:
    """Every system on case ``index`` of the suite (a worker process builds the suite once)."""
    case = _cases(size, seed)[index]
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
    for name in systems:
        out = run_system(name, ctx)
        row = evaluate(case, out, in_metrics=entry["input"])
        if out.scores is not None:
            row["agent_scores"] = out.scores
            row["accepted"] = out.accepted
        if critic and name in CRITIC_SYSTEMS and out.y is not None:
            try:
                row["critic"] = critic_scores(ctx, out)
            except Exception as exc:  # a scorer failure is a result on this case, not a crash
                row["critic_error"] = f"{type(exc).__name__}: {exc}"
        entry["systems"][name] = row
    oracle = entry["systems"].get("oracle", {}).get("si_sdr_out")
    timing_only = suite.fault_families(case) <= {"offset", "drift", "pal"}
    for row in entry["systems"].values():
        row["acceptable"] = judge(row, oracle, timing_only=timing_only,
                                  clean_lufs=entry["input"]["lufs_clean"])
    return entry


def run_bench(
    size: str = "small",
    *,
    seed: int = 0,
    systems: tuple[str, ...] | None = None,
    critic: bool = True,
    jobs: int = 1,
    on_case: Callable[[int, int, str], None] | None = None,
) -> dict[str, Any]:
    """Build the suite and run ``systems`` (default: all that can run here) on every case,
    in ``jobs`` worker processes."""
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
    suite.warm_numba_cache()  # alone, before building cases and starting workers
    t0 = time.perf_counter()
    cases = _cases(size, seed)
    build_s = time.perf_counter() - t0
    rows: list[dict[str, Any]] = [{} for _ in cases]
    if on_case:
        on_case(0, len(cases), cases[0].id if cases else "done")
    if jobs <= 1:
        for i in range(len(cases)):
            rows[i] = run_case(size, seed, i, tuple(runnable), critic)
            if on_case:
                on_case(i + 1, len(cases), cases[i + 1].id if i + 1 < len(cases) else "done")
    else:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        with ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn")) as pool:
            futures = {pool.submit(run_case, size, seed, i, tuple(runnable), critic): i
                       for i in range(len(cases))}
            for done, fut in enumerate(as_completed(futures), start=1):
                rows[futures[fut]] = fut.result()
                if on_case:
                    on_case(done, len(cases), cases[futures[fut]].id)
    flat = [{**r, "video_kind": e["video_kind"], "family": e["family"], "case_id": e["id"],
             "timing": bool(set(e["faults"]) & {"offset", "drift", "pal"})}
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
            "jobs": jobs,
            "run_s": round(time.perf_counter() - t0, 1),
        },
        "critic": critic_check(flat) if critic else None,
        "cases": rows,
    }
