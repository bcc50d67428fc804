"""The web page's previews on long inputs: peak RSS and wall time of the worker's preview
rendering (:func:`avagent.service.previews.render`, one side), each in a fresh process.

Inputs are :func:`avagent.bench.long_media.make_input`'s (real speech and music, looped, with
a little hiss; 5.1 spreads them over the channels), written block by block. Run::

    python -m avagent.bench.preview_memory --minutes 10 60 120 --layouts mono 5.1

Numbers are printed as a markdown table; nothing is estimated.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_RENDER = """
import json, resource, sys
from pathlib import Path
import avagent.service.media, numpy, scipy.signal, soundfile  # noqa: F401 (imports counted apart)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
from avagent.service import previews
info = previews.render(Path(sys.argv[1]), Path(sys.argv[2]), "before", max_s=float(sys.argv[3]))
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({**info, "imports_mb": base / 1024, "peak_mb": peak / 1024}))
"""


def measure(path: Path, outdir: Path, max_s: float) -> dict[str, float]:
    """Render ``path``'s preview in a fresh child process: wall time and the child's own peak
    RSS in MB (``ru_maxrss`` of the child, read by itself at the end)."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _RENDER, str(path), str(outdir), str(max_s)],
                          capture_output=True, text=True, check=True)
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    return {**info, "wall_s": time.perf_counter() - t0}


def main(argv: list[str] | None = None) -> int:
    from avagent.bench.long_media import make_input

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, nargs="+", default=[10.0, 60.0])
    ap.add_argument("--layouts", nargs="+", default=["mono"], choices=["mono", "5.1"])
    ap.add_argument("--max-s", type=float, default=300.0, help="preview length (AVAGENT_PREVIEW_MAX_S)")
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args(argv)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="avagent-previews-"))
    print("| input | layout | preview s | columns | wall s | peak RSS MB | imports MB |")
    print("|---|---|---|---|---|---|---|")
    for layout in args.layouts:
        for minutes in sorted(args.minutes):
            src = work / f"long-{minutes:g}min-{layout}.wav"
            if not src.exists():
                make_input(src, minutes=minutes, layout=layout, video=False)
            r = measure(src, work / "out", args.max_s)
            print(f"| {minutes:g} min | {layout} | {r['preview_s']:.0f} | {r['columns']} | "
                  f"{r['wall_s']:.1f} | {r['peak_mb']:.0f} | {r['imports_mb']:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
