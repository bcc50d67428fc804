"""Actions benchmark: how well each action repairs known faults on real recordings, and how fast.

Run ``python -m avagent.bench.actions --out docs/actions.md`` (about 5 minutes on 2 cores; ``--quick`` for
a one-minute smoke test). Clean sources are real speech and music (:mod:`avagent.bench.signals`), faults
come from :mod:`avagent.bench.corrupt`, scores from :mod:`avagent.bench.metrics`. Noise actions run with their
DEFAULT parameters, which is what a user gets; a "tuned" variant is listed only where one parameter
obviously fits the noise (``spectral_gating stationary=False`` for fluctuating noise).

Timings run in a child process pinned to one CPU with every BLAS/OpenMP/numba pool at one thread.
An action whose module is missing or broken is reported as such instead of stopping the run.

The parts: :mod:`~avagent.bench.action_cases` (configuration, targets, results),
:mod:`~avagent.bench.action_repairs` (the measurements), :mod:`~avagent.bench.action_timing`
(the one-core timing child), :mod:`~avagent.bench.action_summary` and
:mod:`~avagent.bench.action_page` (the markdown page).
"""

from __future__ import annotations

import os

# One thread everywhere, set before numpy loads (the timings must mean "one core").
for _var in (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMBA_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from avagent.bench.action_cases import Config, Results, action_status, case_clips  # noqa: E402
from avagent.bench.action_page import render  # noqa: E402
from avagent.bench.action_repairs import (  # noqa: E402
    bench_fill,
    bench_lowcut,
    bench_noise,
    bench_pitch,
    bench_speed,
    bench_volume,
)
from avagent.bench.action_summary import summary  # noqa: E402
from avagent.bench.action_timing import bench_timing, timing_child  # noqa: E402

logger = logging.getLogger(__name__)


def run_benchmark(cfg: Config, *, timing: bool = True) -> Results:
    t0 = time.perf_counter()
    res = Results(config=cfg, status=action_status())
    for name, why in res.status.items():
        if why is not None:
            logger.warning("action %s missing: %s", name, why)
    clips = case_clips(cfg)
    bench_noise(res, clips)
    bench_lowcut(res, clips)
    bench_speed(res, clips)
    bench_pitch(res, clips)
    bench_volume(res, clips)
    bench_fill(res, clips)
    if timing:
        bench_timing(res)
    res.seconds = time.perf_counter() - t0
    return res


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/actions.md"))
    parser.add_argument("--quick", action="store_true", help="fewer clips and SNRs (~1 min)")
    parser.add_argument("--no-timing", action="store_true", help="skip the speed table")
    parser.add_argument("--timing-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.timing_child:
        logging.disable(logging.WARNING)
        print(json.dumps(timing_child(args.timing_child)))
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    cfg = Config.quick() if args.quick else Config.full()
    res = run_benchmark(cfg, timing=not args.no_timing)
    command = "python -m avagent.bench.actions --out " + str(args.out) + (" --quick" if args.quick else "")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(res, command))
    for target, measured, verdict in summary(res):
        print(f"{verdict:10s} {target}: {measured}")
    print(f"wrote {args.out} in {res.seconds:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
