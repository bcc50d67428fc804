"""Calibrate the ``imagebind`` scorer for a set of weights on videos whose sound is known good.

    python -m avagent.bench.imagebind_calibrate --weights imagebind_huge.pth VIDEO... [--out PATH]

Each video must be in sync and carry its own sound (the benchmark's clean sources are). The
scorer's two scores are then probabilities against these clips: alignment = the share of
MISMATCHED pairs (one video's sound under another's frames) less similar than the candidate;
sync = the share of SHIFTED pairs (sound displaced by ±0.5 and ±1 s) whose zero-lag peak is
less pronounced. Writes ``<weights>.calibration.json`` (found by the scorer without further
settings) and prints the calibration's own pass rates at 0.85.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("videos", nargs="+", type=Path)
    ap.add_argument("--weights", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=None, help="default: <weights>.calibration.json")
    ap.add_argument("--device", default=None)
    ap.add_argument("--fps", type=float, default=2.0, help="frames sampled per second")
    ap.add_argument("--width", type=int, default=320, help="sampled frame width")
    args = ap.parse_args(argv)

    from avagent.errors import AvagentError
    from avagent.reflection.imagebind import calibrate
    from avagent.reflection.imagebind_model import load_imagebind
    from avagent.service import media

    try:
        backend = load_imagebind(args.weights, device=args.device)
        clips = []
        for v in args.videos:
            y, sr = media.load_audio(v)
            clips.append((y, sr, media.load_frames(v, fps=args.fps, width=args.width)))
        cal = calibrate(backend, clips)
    except AvagentError as exc:
        print(f"avagent: {exc}", file=sys.stderr)
        return 2
    out = args.out or args.weights.with_name(args.weights.name + ".calibration.json")
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(cal.model_dump_json(indent=1))
    tmp.replace(out)
    summary = cal.model_dump(exclude={"mismatched_quantiles", "shifted_quantiles"})
    print(json.dumps({"written": str(out), **summary}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
