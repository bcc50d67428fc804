"""The agent's speed on a 10 s 720p video: full repair against decoding alone, on one core.

A 10 s 1280x720 H.264/AAC clip is made once from the real Big Buck Bunny sample (looped to 10 s,
cached beside the media), then corrupted with hum, dropouts and a -42 LUFS level so that the
loop has real work. A child process pinned to one CPU, with every math pool at one thread,
times (a) decoding: probe, audio decode, sampled frames — what any tool must do — and (b)
``repair_file``: decode, the loop, writing the WAV, the remuxed video and the report. Each is
the median of ``runs`` runs after one warm-up.

Run alone: ``python -m avagent.bench.speed`` (prints the JSON); ``--sync``: the share of the
repair spent in the sync estimate and its activity cue instead (:func:`measure_sync`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from avagent.bench import media

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")
FAULTS: list[tuple[str, dict[str, Any]]] = [("hum", {"fundamental_hz": 50.0, "snr_db": 5.0}), ("dropouts", {"count": 3}),
          ("quiet", {"target_lufs": -42.0})]


def clip_720p(seconds: float = 10.0) -> Path:
    """The cached 10 s 720p clip (made from the bunny sample on first use)."""
    import av
    import numpy as np

    out = media.cache_root() / "bench" / f"bunny-{seconds:g}s-720p.mp4"
    if out.exists():
        return out
    src = media.path("bunny", "bigbuckbunny.mp4")
    out.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(src)) as inp:
        vs = inp.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in inp.decode(vs)]
        fps = float(vs.average_rate or 25)
    from avagent.service import media as av_media

    y, sr = av_media.load_audio(src)
    n_frames = round(seconds * fps)
    n_audio = round(seconds * sr)
    reps = -(-n_audio // y.shape[-1])
    audio = np.tile(y, (1, reps))[:, :n_audio].astype(np.float32)
    tmp = out.with_suffix(".part.mp4")
    with av.open(str(tmp), "w") as oc:
        v = oc.add_stream("libx264", rate=round(fps))
        v.width, v.height, v.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        v.options = {"preset": "veryfast", "crf": "23"}
        a = oc.add_stream("aac", rate=sr)
        a.layout = "stereo"
        for i in range(n_frames):
            frame = av.VideoFrame.from_ndarray(frames[i % len(frames)], format="rgb24")
            for p in v.encode(frame):
                oc.mux(p)
        for p in v.encode():
            oc.mux(p)
        stereo = audio[:2] if audio.shape[0] >= 2 else np.repeat(audio, 2, axis=0)
        hop = 1024
        for s in range(0, n_audio, hop):
            chunk = np.ascontiguousarray(stereo[:, s : s + hop])
            af = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
            af.sample_rate = sr
            for p in a.encode(af):
                oc.mux(p)
        for p in a.encode():
            oc.mux(p)
    tmp.replace(out)
    return out


def _child(path: str, runs: int) -> dict[str, Any]:
    import statistics
    import time

    import numpy as np

    from avagent.bench import corrupt
    from avagent.service import media as av_media
    from avagent.service.pipeline import RepairOptions, repair_file
    from avagent.service.settings import get_settings

    settings = get_settings()
    work = Path(tempfile.mkdtemp(prefix="avagent-speed-"))
    clean, sr = av_media.load_audio(path)
    bad, _ = corrupt.mixture(clean, sr=sr, faults=FAULTS, seed=3)
    src = work / "clip.mp4"
    av_media.remux(path, np.asarray(bad, np.float32), sr, src)
    info = av_media.probe(src)

    def decode() -> None:
        av_media.probe(src, max_duration_s=settings.max_duration_s)
        av_media.load_audio(src, max_duration_s=settings.max_duration_s)
        av_media.load_frames(src, fps=settings.frame_rate_hz, width=settings.frame_width)

    report: dict[str, Any] = {}

    def repair() -> None:
        report.update(repair_file(src, work / "out", RepairOptions(), settings=settings))

    times: dict[str, list[float]] = {"decode": [], "repair": []}
    for name, fn in (("decode", decode), ("repair", repair)):
        fn()  # warm-up: imports, caches
        for _ in range(runs):
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    d, r = statistics.median(times["decode"]), statistics.median(times["repair"])
    return {
        "duration_s": info.duration_s, "width": info.width, "height": info.height,
        "decode_s": d, "repair_s": r, "ratio": r / d, "rtf": info.duration_s / r, "runs": runs,
        "rounds": len(report.get("rounds", [])), "plan": report.get("summary", ""),
        "stages_s": report.get("timings_s", {}),
    }


def _pinned(call: str) -> dict[str, Any]:
    """``bench.speed.<call>`` (a Python call expression) in a child pinned to one core, with
    every math pool at one thread; its JSON result."""
    env = {**os.environ, **{v: "1" for v in THREAD_VARS}}
    cmd = [sys.executable, "-c",
           f"import json; from bench import speed; print(json.dumps(speed.{call}))"]
    if sys.platform.startswith("linux"):
        cmd = ["taskset", "-c", "0", *cmd]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False,
                          cwd=Path(__file__).resolve().parents[1])
    if proc.returncode != 0:
        raise RuntimeError(f"speed child failed: {proc.stderr.strip()[-800:]}")
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def measure(runs: int = 3) -> dict[str, Any]:
    """Time decode vs full repair in a child pinned to one core; returns numbers and a paragraph."""
    res = _pinned(f"_child({str(clip_720p())!r}, {runs})")
    stages = ", ".join(f"{k} {v:.2f} s" for k, v in res["stages_s"].items() if k != "total")
    res["text"] = (
        f"A {res['duration_s']:.1f} s {res['width']}x{res['height']} H.264/AAC clip (the real "
        "bunny sample looped, with hum, three dropouts and a -42 LUFS level planted), one CPU "
        f"core (`taskset -c 0`, math pools at one thread), median of {res['runs']} runs: "
        f"decoding its audio and sampled frames takes {res['decode_s']:.2f} s; the full repair "
        f"({res['rounds']} round(s): {res['plan']}) takes {res['repair_s']:.2f} s, "
        f"**{res['ratio']:.2f}×** the decode and **{res['rtf']:.1f}×** real time. "
        f"Stages of the last run: {stages}. Reproduce: `python -m avagent.bench.speed`."
    )
    return res


def _sync_child(path: str) -> dict[str, Any]:
    """One repair (after a warm-up) of the clip with hum+dropouts+quiet and with the sound
    300 ms late, timing every ``estimate_sync`` call and its activity cue inside it."""
    import time

    import numpy as np

    import avagent.agent.perceive as perceive
    import avagent.perception.sync as sync
    from avagent.bench import corrupt
    from avagent.service import media as av_media
    from avagent.service.pipeline import RepairOptions, repair_file
    from avagent.service.settings import get_settings

    acc = {"sync_s": 0.0, "sync_calls": 0, "activity_s": 0.0}

    def timed(fn: Any, key: str) -> Any:
        def run(*a: Any, **k: Any) -> Any:
            t0 = time.perf_counter()
            out = fn(*a, **k)
            acc[key] += time.perf_counter() - t0
            acc["sync_calls"] += key == "sync_s"
            return out
        return run

    sync.activity_sync = timed(sync.activity_sync, "activity_s")
    perceive.estimate_sync = sync.estimate_sync = timed(sync.estimate_sync, "sync_s")
    settings = get_settings()
    work = Path(tempfile.mkdtemp(prefix="avagent-speed-sync-"))
    clean, sr = av_media.load_audio(path)
    res: dict[str, Any] = {}
    for label, faults in (("hum+dropouts+quiet", FAULTS),
                          ("offset+300ms", [("offset", {"audio_delay_ms": 300.0})])):
        bad, _ = corrupt.mixture(clean, sr=sr, faults=faults, seed=3)
        src = work / f"{label}.mp4"
        av_media.remux(path, np.asarray(bad, np.float32), sr, src)
        repair_file(src, work / "warm", RepairOptions(), settings=settings)
        acc.update(sync_s=0.0, sync_calls=0, activity_s=0.0)
        t0 = time.perf_counter()
        repair_file(src, work / "out", RepairOptions(), settings=settings)
        total = time.perf_counter() - t0
        res[label] = {"repair_s": round(total, 3), **{k: round(v, 4) for k, v in acc.items()},
                      "sync_share": round(acc["sync_s"] / total, 3),
                      "activity_share": round(acc["activity_s"] / total, 4)}
    return res


def measure_sync() -> dict[str, Any]:
    """The sync estimate's share of the repair's time, in a child pinned to one core."""
    return _pinned(f"_sync_child({str(clip_720p())!r})")


if __name__ == "__main__":
    # --sync: the sync estimate's share of the repair (docs/sync.md) instead of decode vs repair
    print(json.dumps(measure_sync() if "--sync" in sys.argv[1:] else measure(), indent=2))
