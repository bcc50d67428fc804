"""The full suite's real-noise cases alone (applause, rain, traffic, engine: issue 11), with the
systems that tell the story: ``none``, Wiener, non-stationary gating, DeepFilterNet3, the rule
agent and the oracle. A quick check between full runs (about 5 minutes on 2 cores):

    python -m avagent.bench.real_noises [out.json]

Prints one line per case; the table in docs/actions.md was measured with it.
"""

from __future__ import annotations

import json
import sys
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from avagent.bench import suite
from avagent.bench.run import run_case

SYSTEMS = ("none", "wiener", "spectral_gating", "deepfilternet3", "rules", "oracle")


def _one(index: int) -> dict[str, Any]:
    return run_case("full", 0, index, SYSTEMS, False)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # the real noises are the last faults of each source (suite.fault_specs): their indices
    # follow from the spec counts, without corrupting the whole suite here as well as in workers
    n_real, idx, start = len(suite.NOISE_KINDS_REAL), [], 0
    for si, src in enumerate(suite.sources("full")):
        start += len(suite.source_faults("full", si, src))
        if not src.timing_only:
            idx += range(start - n_real, start)
    out = []
    with ProcessPoolExecutor(2) as ex:
        for e in ex.map(_one, idx):
            s = e["systems"]
            r = s["rules"]
            cols = " ".join(f"{n}={s[n]['si_sdr_out']:6.1f}" for n in SYSTEMS)
            print(f"{e['id']:40s} {cols} acceptable={r['acceptable']} "
                  f"plan={[p[0] for p in r['plan']]}", flush=True)
            out.append(e)
    if argv:
        with open(argv[0], "w") as fh:
            json.dump(out, fh)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
