"""ImageBind throughput with random weights: clips/s for the audio and vision towers, and scored
clips/s for the ``imagebind`` scorer (random weights are fine for speed; nothing is downloaded).

    python -m avagent.bench.imagebind_speed                      # huge, CUDA when present
    python -m avagent.bench.imagebind_speed --size small --threads 1
    python -m avagent.bench.imagebind_speed --device cuda --dtype float16 --batch 64

One "scored clip" is what the scorer embeds for a 10 s candidate: 8 picture windows (cached
across candidates of the same clip, counted once here) and 8 × 9 audio windows (lags −1…1 s in
0.25 s steps). Preprocessing (our numpy fbank and frame resizing) runs on the CPU and is timed
apart. Prints one JSON object per run; ``--json PATH`` also writes it.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

# Every tower at width 32, one block: the reduced model the tests use.
SMALL: dict[str, Any] = {
    "out_embed_dim": 32, "vision_embed_dim": 32, "vision_num_blocks": 1, "vision_num_heads": 2,
    "audio_embed_dim": 32, "audio_num_blocks": 1, "audio_num_heads": 2,
    "text_embed_dim": 16, "text_num_blocks": 1, "text_num_heads": 2,
    "depth_embed_dim": 16, "depth_num_blocks": 1, "depth_num_heads": 2,
    "thermal_embed_dim": 16, "thermal_num_blocks": 1, "thermal_num_heads": 2,
    "imu_embed_dim": 16, "imu_num_blocks": 1, "imu_num_heads": 2,
}


def _timed(fn: Any, *, sync: Any, min_s: float, min_iters: int = 2) -> float:
    """Seconds per call of ``fn`` (after one warm-up call), over at least ``min_s`` seconds."""
    fn()
    sync()
    n, t0 = 0, time.perf_counter()
    while n < min_iters or time.perf_counter() - t0 < min_s:
        fn()
        n += 1
    sync()
    return (time.perf_counter() - t0) / n


def run(size: str, device: str | None, dtype: str, batch: int, min_s: float,
        threads: int | None) -> dict[str, Any]:
    import torch

    from avagent.reflection import imagebind_model as ibm
    from avagent.reflection import imagebind_preprocess as pre

    if threads:
        torch.set_num_threads(threads)
    dev = device or ibm.default_device()
    t0 = time.perf_counter()
    torch.manual_seed(0)
    config = None if size == "huge" else SMALL
    model = ibm.build_model(config).to(device=dev, dtype=getattr(torch, dtype))
    build_s = time.perf_counter() - t0
    backend = ibm.ImageBindBackend(model, config=config or ibm.HUGE_CONFIG, device=dev,
                                   dtype=dtype)
    sync = torch.cuda.synchronize if dev.startswith("cuda") else (lambda: None)
    rng = np.random.default_rng(0)
    audio = rng.standard_normal((batch, 1, 128, 204)).astype(np.float32)
    vision = rng.standard_normal((batch, 3, 2, 224, 224)).astype(np.float32)
    a_s = _timed(lambda: backend.embed("audio", audio, batch_size=batch), sync=sync, min_s=min_s)
    v_s = _timed(lambda: backend.embed("vision", vision, batch_size=batch), sync=sync, min_s=min_s)
    # CPU preprocessing per 2 s clip (single thread of numpy/PIL).
    x16 = rng.standard_normal(16000 * 12).astype(np.float32) * 0.1
    starts = np.linspace(0.0, 9.0, 32)
    fb_s = _timed(lambda: pre.audio_clips(x16, starts), sync=lambda: None, min_s=0.5) / 32
    frames = rng.integers(0, 255, (25, 90, 160), dtype=np.uint8)
    times = np.arange(25) / 2.5
    im_s = _timed(lambda: pre.vision_clips(frames, times, np.arange(8.0)), sync=lambda: None,
                  min_s=0.5) / 8
    audio_cps, vision_cps = batch / a_s, batch / v_s
    per_scored = 72 / audio_cps + 8 / vision_cps + 72 * fb_s + 8 * im_s
    return {
        "size": size, "device": dev, "dtype": dtype, "batch": batch,
        "threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if dev.startswith("cuda") else None,
        "params_audio_vision": int(sum(p.numel() for p in model.parameters())),
        "build_s": round(build_s, 2),
        "audio_clips_per_s": round(audio_cps, 2),
        "vision_clips_per_s": round(vision_cps, 2),
        "fbank_ms_per_clip": round(1000 * fb_s, 3),
        "frames_ms_per_clip": round(1000 * im_s, 3),
        "scored_10s_clips_per_s": round(1.0 / per_scored, 3),
        "torch": torch.__version__,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=("huge", "small"), default="huge")
    ap.add_argument("--device", default=None, help="default: cuda when present, else cpu")
    ap.add_argument("--dtype", choices=("float32", "float16", "bfloat16"), default="float32")
    ap.add_argument("--batch", type=int, default=None, help="default: 64 on cuda, 4 on cpu")
    ap.add_argument("--min-s", type=float, default=5.0, help="time each tower at least this long")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--json", type=Path, default=None, help="also write the result here")
    args = ap.parse_args(argv)
    from avagent.reflection.imagebind_model import default_device

    dev = args.device or default_device()
    batch = args.batch or (64 if dev.startswith("cuda") else 4)
    result = run(args.size, dev, args.dtype, batch, args.min_s, args.threads)
    text = json.dumps(result)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
