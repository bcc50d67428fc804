"""The README's first command: corrupt a real video in known ways, repair it, show the report.

Run with ``python -m avagent.bench.demo [--out demo-out]``. The clean original is the ground truth, so
the demo prints what was planted, what the agent found and did, and the SI-SDR before/after.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from avagent.bench import corrupt, media, metrics

FAULTS = [
    ("hum", {"fundamental_hz": 50.0, "snr_db": 5.0}),
    ("dropouts", {"count": 3}),
    ("quiet", {"target_lufs": -42.0}),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("demo-out"), help="output folder")
    parser.add_argument("--video", type=Path, default=None, help="a clean video to corrupt")
    args = parser.parse_args(argv)

    from avagent.service import media as av_media
    from avagent.service.cli import main as cli_main

    src = args.video or media.path("videos", "mp4.mp4")
    args.out.mkdir(parents=True, exist_ok=True)
    clean, sr = av_media.load_audio(src)
    bad, truth = corrupt.mixture(clean, sr=sr, faults=FAULTS, seed=7)
    corrupted = args.out / "input" / f"{src.stem}.corrupted{src.suffix}"
    corrupted.parent.mkdir(parents=True, exist_ok=True)
    av_media.remux(src, np.asarray(bad, dtype=np.float32), sr, corrupted)
    print(f"planted in {corrupted}: " + ", ".join(f"{f}{p}" for f, p in FAULTS))
    print("the known inverse: " + " → ".join(s.action for s in truth.repair))
    print(f"$ avagent repair {corrupted} -o {args.out}\n")
    code = cli_main(["repair", str(corrupted), "-o", str(args.out)])
    if code != 0:
        return code

    report = json.loads((args.out / f"{corrupted.stem}.report.json").read_text())
    print("\naudio caption:", report["captions"]["audio"])
    print("video caption:", report["captions"]["video"])
    for r in report["rounds"]:
        print(f"round {r['index']}  alignment {r['scores']['alignment']:.2f}  "
              f"sync {r['scores']['sync']:.2f}  {'kept' if r['improved'] else 'not kept'}")
        for s in r["plan"]:
            print(f"   {s['action']}({_short(s['params'])}) — {s['reasoning']}")
    print("summary:", report["summary"])

    # Ground truth: the decoded input and output against the clean original.
    got, _ = av_media.load_audio(Path(report["outputs"]["wav"]))
    inp, _ = av_media.load_audio(corrupted)
    n = min(clean.shape[-1], got.shape[-1], inp.shape[-1])
    before = metrics.si_sdr(clean[..., :n], inp[..., :n])
    after = metrics.si_sdr(clean[..., :n], got[..., :n])
    print(f"\nagainst the clean original: SI-SDR {before:.1f} dB → {after:.1f} dB; "
          f"loudness {metrics.loudness_lufs(inp, sr=sr):.1f} → {metrics.loudness_lufs(got, sr=sr):.1f} LUFS; "
          f"dropouts left: {metrics.gap_residue(got, sr=sr).count}")
    print(f"outputs: {', '.join(report['outputs'].values())}")
    return 0


def _short(params: dict) -> str:
    text = ", ".join(f"{k}={v}" for k, v in params.items())
    return text if len(text) < 70 else text[:67] + "..."


if __name__ == "__main__":
    sys.exit(main())
