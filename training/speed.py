"""``avagent train speed``: pretraining steps per second of the AV-MAE, model only.

Synthetic batches of the real input shapes (no data loading: the trainer's own summary reports
the data-wait share), full training steps (forward, backward, AdamW), timed after warm-up.
Prints one JSON line per model preset: samples/s and peak memory (CUDA allocator peak on a GPU,
process peak RSS on CPU). On a GPU::

    avagent train speed --device cuda --bf16 --models small,base --batch-size 256
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from typing import Any


def measure(model_name: str, *, device: str, bf16: bool, batch_size: int, steps: int,
            warmup: int = 3) -> dict[str, Any]:
    import torch

    from avagent.training.mae import AVMAE, MODEL_PRESETS

    cfg = MODEL_PRESETS[model_name]
    torch.manual_seed(0)
    model = AVMAE(cfg).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    B = batch_size
    audio = torch.randn(B, 1, cfg.n_mels, cfg.n_frames, device=device)
    video = torch.randn(B, 1, cfg.video_frames, cfg.video_side, cfg.video_side, device=device)
    na = torch.rand(B, cfg.n_audio, device=device)
    nv = torch.rand(B, cfg.n_video, device=device)
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    autocast = torch.autocast(device.split(":")[0], dtype=torch.bfloat16, enabled=bf16)

    def step() -> None:
        with autocast:
            loss = model(audio, video, na, nv)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    if cuda:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if cuda:
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    return {
        "model": model_name, "device": device, "bf16": bf16, "batch_size": B,
        "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 3),
        "threads": torch.get_num_threads(), "samples_per_s": round(B * steps / dt, 1),
        "peak_mib": round(torch.cuda.max_memory_allocated() / 2**20 if cuda else
                          resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "peak_kind": "cuda allocator" if cuda else "process RSS",
    }


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--models", default="tiny,small", help="presets to time (tiny,small)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (cpu)")
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=20, help="timed steps (20)")
    p.add_argument("--threads", type=int, default=0, help="torch threads on CPU (0: default)")


def run(args: argparse.Namespace) -> int:
    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    for name in [m for m in args.models.split(",") if m]:
        print(json.dumps(measure(name, device=args.device, bf16=args.bf16,
                                 batch_size=args.batch_size, steps=args.steps)), flush=True)
    return 0
