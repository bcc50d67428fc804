"""Long inputs at constant memory: peak RSS and wall time of ``avagent repair`` against decoding.

Builds long inputs from the real sample media (speech from ``alsa-utils``, music from Lugaru,
looped, with a little seeded hiss; 5.1 puts speech in the centre, music left/right, ambience in
the surrounds, LFE a low hum-free bass), with a small picture (h264, 160x90, 5 fps) when asked,
written block by block so making a 2-hour file needs no more memory than a 10-second one. Then,
for each input, in a fresh process each (``/usr/bin/time``-free: ``resource.getrusage`` of the
child):

* ``decode``: decode the whole audio track and sample the frames the way the pipeline does;
* ``repair``: ``avagent repair`` (rules planner, default settings).

Run::

    python -m avagent.bench.long_media --minutes 1 10 --layouts mono 5.1 --out docs/performance.md

Numbers are printed and written to the markdown table; nothing is estimated.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

SR = 48000
BLOCK_S = 10.0
LAYOUTS = {"mono": 1, "5.1": 6}


def _sources() -> tuple[np.ndarray, np.ndarray]:
    import soundfile as sf

    from avagent.bench import media

    root = media.cache_root()
    for name in ("speech", "lugaru"):
        media.fetch(name)
    speech, sr_s = sf.read(root / "speech" / "Front_Center.wav", dtype="float32", always_2d=True)
    music, sr_m = sf.read(root / "lugaru" / "Music2.ogg", dtype="float32", always_2d=True)
    from scipy.signal import resample_poly

    def at48(x: np.ndarray, sr: int) -> np.ndarray:
        x = x.mean(axis=1)
        return x if sr == SR else resample_poly(x, SR, sr).astype(np.float32)

    # speech with 1 s pauses between takes, so VAD sees speech and pauses
    sp = at48(speech, sr_s)
    sp = np.concatenate([sp, np.zeros(SR, np.float32)])
    return sp, at48(music, sr_m)


def _looped(src: np.ndarray, start: int, n: int) -> np.ndarray:
    idx = (start + np.arange(n)) % src.size
    return src[idx]


def make_input(path: Path, *, minutes: float, layout: str, video: bool, seed: int = 0) -> Path:
    """Write a ``minutes`` long WAV (audio only) or MP4 (h264 + AAC) built from real media."""
    import av

    channels = LAYOUTS[layout]
    speech, music = _sources()
    rng = np.random.default_rng(seed)
    total = round(minutes * 60 * SR)
    block = int(BLOCK_S * SR)

    def audio_block(start: int, n: int) -> np.ndarray:
        sp = 0.3 * _looped(speech, start, n)
        mu = 0.08 * _looped(music, start, n)
        hiss = rng.standard_normal((channels, n)).astype(np.float32) * 0.003
        if channels == 1:
            return (sp + mu)[None, :] + hiss
        out = hiss
        out[0] += mu
        out[1] += 0.9 * mu
        out[2] += sp
        out[3] += 0.05 * mu
        out[4] += 0.3 * mu
        out[5] += 0.25 * mu
        return out

    path.parent.mkdir(parents=True, exist_ok=True)
    if not video:
        import soundfile as sf

        with sf.SoundFile(str(path), "w", SR, channels, "PCM_16", format="WAV") as f:
            for start in range(0, total, block):
                f.write(audio_block(start, min(block, total - start)).T)
        return path
    fps = 5
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264" if "libx264" in av.codecs_available else "mpeg4", rate=fps)
        vs.width, vs.height, vs.pix_fmt = 160, 90, "yuv420p"
        a = out.add_stream("aac", rate=SR)
        a.layout = "mono" if channels == 1 else "5.1"
        a.bit_rate = 64_000 * channels
        frame_i = 0
        for start in range(0, total, block):
            n = min(block, total - start)
            y = audio_block(start, n)
            af = av.AudioFrame.from_ndarray(np.ascontiguousarray(y), format="fltp", layout=a.layout)
            af.sample_rate = SR
            af.pts = start
            af.time_base = Fraction(1, SR)
            for p in a.encode(af):
                out.mux(p)
            while frame_i < (start + n) / SR * fps:
                img = np.full((90, 160, 3), (frame_i * 7) % 255, np.uint8)
                img[:, (frame_i * 3) % 160] = 255
                vf = av.VideoFrame.from_ndarray(img, format="rgb24")
                vf.pts = frame_i
                for p in vs.encode(vf):
                    out.mux(p)
                frame_i += 1
        for p in a.encode(None):
            out.mux(p)
        for p in vs.encode(None):
            out.mux(p)
    return path


_DECODE = """
import sys
from avagent.service import media
from avagent.service.settings import get_settings
s = get_settings()
p = sys.argv[1]
info = media.probe(p, max_duration_s=None)
n = 0
for block, sr in media.iter_audio(p, block_s=60.0):
    n += block.shape[-1]
if info.is_video:
    for _ in media.iter_frames(p, fps=s.frame_rate_hz, width=s.frame_width):
        pass
"""


def _measure(cmd: list[str], env: dict[str, str]) -> dict[str, float]:
    """Wall time and the child's peak RSS (ru_maxrss of RUSAGE_CHILDREN, one child per call)."""
    t0 = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr.strip()[-2000:]}")
    # ru_maxrss of children is the max over all children so far: run each measurement in its
    # own `python -m avagent.bench.long_media --one` so the max is this one's
    return {"wall_s": wall, "peak_mb": max(peak, before) / 1024.0, "stdout": proc.stdout}


def measure_one(kind: str, path: Path, outdir: Path) -> dict[str, float]:
    """Run one measurement in a child and print JSON (called as ``--one KIND PATH OUTDIR``)."""
    env = dict(os.environ, AVAGENT_MAX_DURATION_S="30000", OMP_NUM_THREADS="1")
    if kind == "decode":
        cmd = [sys.executable, "-c", _DECODE, str(path)]
    else:
        cmd = [sys.executable, "-m", "avagent.service.cli", "repair", str(path), "-o", str(outdir)]
    r = _measure(cmd, env)
    return {"wall_s": round(r["wall_s"], 2), "peak_mb": round(r["peak_mb"], 1)}


def _fresh(kind: str, path: Path, outdir: Path) -> dict[str, float]:
    cmd = [sys.executable, "-m", "avagent.bench.long_media", "--one", kind, str(path), str(outdir)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.strip()[-2000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(minutes: list[float], layouts: list[str], *, video: bool, workdir: Path) -> list[dict]:
    rows = []
    for layout in layouts:
        for m in minutes:
            ext = ".mp4" if video else ".wav"
            src = workdir / f"long_{layout}_{m:g}min{ext}"
            if not src.exists():
                t0 = time.perf_counter()
                make_input(src, minutes=m, layout=layout, video=video)
                print(f"made {src.name} in {time.perf_counter() - t0:.1f} s", flush=True)
            dec = _fresh("decode", src, workdir / "out")
            rep = _fresh("repair", src, workdir / "out")
            row = {
                "input": src.name,
                "minutes": m,
                "layout": layout,
                "video": video,
                "decode_s": dec["wall_s"],
                "decode_mb": dec["peak_mb"],
                "repair_s": rep["wall_s"],
                "repair_mb": rep["peak_mb"],
                "ratio": round(rep["wall_s"] / max(dec["wall_s"], 1e-9), 2),
                "realtime": round(m * 60 / max(rep["wall_s"], 1e-9), 1),
            }
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def markdown(rows: list[dict]) -> str:
    head = (
        "| input | layout | picture | decode s | decode peak MB | repair s | repair peak MB "
        "| repair / decode | × real time |\n|---|---|---|---|---|---|---|---|---|\n"
    )
    body = "".join(
        f"| {r['minutes']:g} min | {r['layout']} | {'yes' if r['video'] else 'no'} "
        f"| {r['decode_s']:.1f} | {r['decode_mb']:.0f} | {r['repair_s']:.1f} "
        f"| {r['repair_mb']:.0f} | {r['ratio']:.2f} | {r['realtime']:.1f} |\n"
        for r in rows
    )
    return head + body


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--one", nargs=3, metavar=("KIND", "PATH", "OUTDIR"), help=argparse.SUPPRESS)
    ap.add_argument("--minutes", type=float, nargs="+", default=[1.0, 10.0])
    ap.add_argument("--layouts", nargs="+", default=["mono", "5.1"], choices=sorted(LAYOUTS))
    ap.add_argument("--audio-only", action="store_true", help="WAV inputs, no picture")
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "avagent_long")
    ap.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = ap.parse_args(argv)
    if args.one:
        kind, path, outdir = args.one
        print(json.dumps(measure_one(kind, Path(path), Path(outdir))))
        return 0
    rows = run(args.minutes, args.layouts, video=not args.audio_only, workdir=args.workdir)
    print(markdown(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
