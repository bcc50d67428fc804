"""Latency of the model-backed captioners and of the ImageBind scorer on this machine.

    python -m avagent.bench.model_latency [--calls 3] [--threads 1]

Captioners: against the embedded SmolLM2-135M-Instruct on llama.cpp's OpenAI server (started
and stopped here, one thread), per call, with what came back (a caption, or the server's refusal
and the embedded fallback). A text-only request with the same prompts shows what the model says
when it can answer. ImageBind: the ``imagebind`` scorer at the tests' reduced size (random
weights, calibrated on synthetic clips), per 10 s candidate, first call (picture embedded) and
later calls (picture cached). Prints a markdown table.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


def _row(what: str, times: list[float], outcome: str) -> str:
    med = statistics.median(times) if times else float("nan")
    return f"| {what} | {len(times)} | {med:.3f} | {max(times):.3f} | {outcome} |"


def captioners(calls: int, threads: int) -> list[str]:
    from avagent.agent.captioners_llm import (
        AUDIO_PROMPT,
        AUDIO_SYSTEM,
        AudioLLMCaptioner,
        VisionLLMCaptioner,
        reset_reports,
    )
    from avagent.agent.llm import LLMClient
    from avagent.agent.llm_local import LocalLlamaServer
    from avagent.agent.perceive import perceive
    from tests.synth import moving_block_av

    y, sr, frames = moving_block_av(np.random.default_rng(7), 0.0, dur=4.0)
    facts = perceive(y, sr=sr, frames=frames, audio_duration_s=4.0)
    rows = []
    with LocalLlamaServer(n_threads=threads) as server:
        url = server.base_url
        for cap, run in ((AudioLLMCaptioner(url, retry_after_s=0.0, max_retries=0),
                          lambda c: c.caption(facts.audio, y=y, sr=sr)),
                         (VisionLLMCaptioner(url, retry_after_s=0.0, max_retries=0, n_frames=4),
                          lambda c: c.caption(facts.video, frames=frames))):
            times, outcome = [], ""
            for _ in range(calls):
                reset_reports()
                t0 = time.perf_counter()
                text = run(cap)
                times.append(time.perf_counter() - t0)
                outcome = (f"{cap.last.source}: {text[:70]!r}" if cap.last.source != "embedded"
                           else f"fallback to embedded: {cap.last.error[:110]}")
            rows.append(_row(f"{cap.name} → llama.cpp SmolLM2-135M", times, outcome))
        with LLMClient(url, max_retries=0, dialect="none") as client:
            times, text = [], ""
            for _ in range(calls):
                r = client.chat([{"role": "system", "content": AUDIO_SYSTEM},
                                 {"role": "user", "content": AUDIO_PROMPT}],
                                max_tokens=200, temperature=0.0, seed=0)
                times.append(r.latency_s)
                text = " ".join(r.text.split())
            rows.append(_row("same audio prompt, text only (no sound attached)", times,
                             f"{text[:90]!r}"))
    return rows


def imagebind(calls: int, threads: int) -> list[str]:
    import torch

    from avagent.bench.imagebind_speed import SMALL
    from avagent.reflection import imagebind_model as ibm
    from avagent.reflection.imagebind import ImageBindScorer, calibrate
    from tests.synth import moving_block_av

    torch.set_num_threads(threads)
    rng = np.random.default_rng(11)
    clips = [moving_block_av(rng, 0.0, dur=10.0) for _ in range(3)]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "small.pt"
        torch.manual_seed(0)
        model = ibm.build_model(SMALL)
        ibm.save_checkpoint(path, model, SMALL)
        cal = calibrate(ibm.load_imagebind(path, device="cpu"), clips)
        ibm.save_checkpoint(path, model, SMALL, calibration=cal.model_dump())
        scorer = ImageBindScorer(path, device="cpu")
        y, sr, frames = clips[0]
        t0 = time.perf_counter()
        scorer.score_audio(y, sr=sr, frames=frames)
        first = time.perf_counter() - t0
        later: list[float] = []
        for k in range(calls):
            t0 = time.perf_counter()
            scorer.score_audio(y * (0.5 + 0.1 * k), sr=sr, frames=frames)
            later.append(time.perf_counter() - t0)
    return [_row("imagebind scorer, reduced size, 10 s clip, first call (load + picture)",
                 [first], "8 picture + 72 audio windows"),
            _row("imagebind scorer, reduced size, 10 s candidate, picture cached", later,
                 "72 audio windows")]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--skip", choices=("captioners", "imagebind"), default=None)
    args = ap.parse_args(argv)
    rows: list[Any] = ["| what | calls | median s | max s | outcome |", "| --- | --- | --- | --- | --- |"]
    if args.skip != "captioners":
        rows += captioners(args.calls, args.threads)
    if args.skip != "imagebind":
        rows += imagebind(args.calls, args.threads)
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
