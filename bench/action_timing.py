"""Actions benchmark: timings, in a child process pinned to one CPU with every pool at one thread."""

from __future__ import annotations

import json
import logging
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from avagent.bench import corrupt, signals
from avagent.bench.action_cases import SR, TARGET_RT, TARGET_RT_SLOW, Results, action_status, run

logger = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------
# Timing (child process, one core)

TIMING_CASES: tuple[tuple[str, str, dict[str, Any], float], ...] = (
    ("spectral_subtraction", "spectral_subtraction", {}, TARGET_RT),
    ("wiener", "wiener", {}, TARGET_RT),
    ("wavelet_denoise", "wavelet_denoise", {}, TARGET_RT),
    ("spectral_gating", "spectral_gating", {}, TARGET_RT),
    ("spectral_gating (stationary=False)", "spectral_gating", {"stationary": False}, TARGET_RT),
    ("remove_hum", "remove_hum", {}, TARGET_RT),
    ("speed (offset_ms=300)", "speed", {"offset_ms": 300.0}, TARGET_RT),
    ("speed (rate=23.976/25, varispeed)", "speed", {"rate": 23.976 / 25}, TARGET_RT),
    ("pitch (semitones=-0.71)", "pitch", {"semitones": -0.71}, TARGET_RT_SLOW),
    ("volume (target_lufs=-23)", "volume", {"target_lufs": -23.0}, TARGET_RT),
    ("fill_blanks", "fill_blanks", {}, TARGET_RT),
)


def timing_child(runs: int) -> list[dict[str, Any]]:
    """Time every case on a 10 s 48 kHz stereo clip (music + pink noise at 10 dB, 4 dropouts)."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    status = action_status()
    clip = signals.music("tabla", duration_s=10.0, channels=2)
    noisy = corrupt.add_noise(clip.y, sr=SR, kind="pink", snr_db=10.0, seed=1)[0]
    with_gaps = corrupt.dropouts(noisy, sr=SR, count=4, seed=1)[0].astype(np.float32)
    duration = clip.duration_s
    rows = []
    for label, name, params, target in TIMING_CASES:
        row: dict[str, Any] = {"case": label, "action": name, "target": target}
        if status.get(name) is not None:
            row["missing"] = status[name]
            rows.append(row)
            continue
        try:
            run(name, with_gaps, params)  # warm-up: imports, JIT, caches
            cpu, wall = [], []
            for _ in range(runs):
                t0, c0 = time.perf_counter(), time.process_time()
                run(name, with_gaps, params)
                cpu.append(time.process_time() - c0)
                wall.append(time.perf_counter() - t0)
            # CPU time of a one-thread process is what one core spends, whatever else the
            # shared machine runs; wall time is shown beside it.
            row["seconds"] = statistics.median(cpu)
            row["wall_seconds"] = statistics.median(wall)
            row["ratio"] = duration / row["seconds"]
        except Exception as exc:
            row["missing"] = f"{type(exc).__name__}: {exc}"
        rows.append(row)
    return rows


def bench_timing(res: Results) -> None:
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        env[var] = "1"
    root = Path(__file__).resolve().parent.parent
    load_before = os.getloadavg()[0]
    proc = subprocess.run(
        [sys.executable, "-m", "avagent.bench.actions", "--timing-child", str(res.config.timing_runs)],
        capture_output=True,
        text=True,
        env=env,
        cwd=root,
    )
    res.timing_load = (load_before, os.getloadavg()[0])
    if proc.returncode != 0:
        res.errors.append(f"timing child failed: {proc.stderr.strip()[-500:]}")
        return
    res.timing = json.loads(proc.stdout.strip().splitlines()[-1])
