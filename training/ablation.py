"""``avagent train ablation``: does pretraining on repaired pairs beat raw and randomly edited ones?

The AVAgent paper's ablation (its Tables 2 and 5) at a size two CPU cores run in about half an
hour. One labelled dataset (:mod:`avagent.training.avdata`), split by clip:

* **pretraining clips** (``--pretrain`` of them), in four versions of their sound:
  ``raw`` (corrupted with the benchmark's faults), ``repaired`` (the agent's output: the full
  perceive → plan → act → reflect loop with the rules planner, driven as ``bench/systems.py``
  drives it, in a process pool), ``random`` (the ``random`` planner's plan applied to the
  corrupted sound, without reflection: the paper's randomly edited pairs) and ``clean`` (the
  originals, the ceiling). The picture is the same in all four;
* **probe clips** (``--probe`` of them, disjoint): clean, labelled; a stratified 60/40 split for
  the linear probe and the fine-tune.

The same model and schedule is pretrained on each version with each seed; the page gets
mean ± std over seeds. Every pretraining set keeps all its pairs (tiers "all"), so the four sets
are the same size and differ only in their sound.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

VARIANTS = ("raw", "repaired", "random", "clean")
DOC_BEGIN = "<!-- ablation:begin -->"
DOC_END = "<!-- ablation:end -->"


def _frameset(clip: Any) -> Any:
    from avagent.perception.frames import FrameSet
    from avagent.training import avdata

    t = clip.frames.shape[0]
    return FrameSet(clip.frames, np.arange(t) / avdata.FPS, avdata.FPS, avdata.FPS,
                    avdata.SIDE, avdata.SIDE, t / avdata.FPS)


def _repair_one(args: tuple[Path, int, int]) -> dict[str, Any]:
    """Repair clip ``index`` with the agent (rules) and edit it with the random planner."""
    import soundfile as sf

    from avagent.actions import apply_action
    from avagent.agent.captions import audio_caption, video_caption
    from avagent.agent.graph import run_agent
    from avagent.agent.perceive import perceive
    from avagent.agent.planner import get_planner
    from avagent.agent.state import AgentContext
    from avagent.reflection.scorers import get_scorer
    from avagent.training import avdata

    root, index, seed = args
    clip = avdata.make_clip(index, seed)
    base = root / "clips" / clip.id
    done = Path(f"{base}.repair.json")
    if done.exists():
        return json.loads(done.read_text())
    raw, sr = sf.read(f"{base}.raw.wav", dtype="float64")
    y = raw[None, :]
    frames = _frameset(clip)
    t0 = time.perf_counter()
    # DNSMOS is the costliest perception step and only grades speech: off for a dataset pass.
    facts = perceive(y, sr=sr, frames=frames, audio_duration_s=y.shape[-1] / sr,
                     speech_quality=False)
    context = AgentContext(planner=get_planner("rules"), scorer=get_scorer("embedded"),
                           max_rounds=3, threshold=0.85, job_id=f"ablation:{clip.id}",
                           perceive=lambda *a, **k: facts)
    result = run_agent(y, sr=sr, frames=frames, context=context)
    chosen = result.rounds[result.chosen_round - 1].plan if result.chosen_round else None
    tier = ("accepted" if result.accepted else "improved" if result.chosen_round else "rejected")
    captions = {"audio": audio_caption(facts.audio),
                "video": video_caption(facts.video) if facts.video else ""}
    rplan = get_planner("random", seed=seed).plan(facts, captions, [])
    edited = y
    for s in rplan.steps:
        edited = apply_action(s.action, edited, sr=sr, **s.params)
    n = y.shape[-1]
    for name, out in (("repaired", np.asarray(result.audio)), ("random", edited)):
        out = np.asarray(out, np.float64).reshape(-1)
        out = out[:n] if out.size >= n else np.pad(out, (0, n - out.size))
        sf.write(f"{base}.{name}.wav", np.clip(out, -1, 1).astype(np.float32), sr,
                 subtype="FLOAT")
    meta = {"id": clip.id, "label": clip.label, "tier": tier,
            "plan": [s.action for s in chosen.steps] if chosen else [],
            "random_plan": [s.action for s in rplan.steps],
            "scores": {"alignment": result.scores.alignment, "sync": result.scores.sync},
            "seconds": round(time.perf_counter() - t0, 3)}
    done.write_text(json.dumps(meta))
    return meta


def repair(root: Path, count: int, *, seed: int, jobs: int) -> list[dict[str, Any]]:
    work = [(root, i, seed) for i in range(count)]
    with ProcessPoolExecutor(jobs) as pool:
        return list(pool.map(_repair_one, work, chunksize=4))


def write_manifests(root: Path, out: Path, metas: list[dict[str, Any]]) -> dict[str, Path]:
    from avagent.training.avdata import manifest_line

    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for v in VARIANTS:
        lines = [manifest_line(root, m["id"], root / "clips" / f"{m['id']}.{v}.wav", m["label"],
                               tier=m["tier"] if v == "repaired" else "accepted")
                 for m in metas]
        paths[v] = out / f"{v}.jsonl"
        paths[v].write_text("".join(json.dumps(x) + "\n" for x in lines))
    return paths


def _mean_std(xs: list[float]) -> str:
    a = np.asarray(xs) * 100
    return f"{a.mean():.1f} ± {a.std(ddof=1) if a.size > 1 else 0.0:.1f}"


def render(results: dict[str, Any]) -> str:
    rows = ["| pretraining pairs | linear probe top-1 (%) | fine-tune top-1 (%) | final MAE loss |",
            "| --- | --- | --- | --- |"]
    for v in VARIANTS:
        runs = results["runs"].get(v) or []
        if not runs:
            continue
        rows.append(f"| {v} | {_mean_std([r['linear_top1'] for r in runs])} | "
                    f"{_mean_std([r['finetune_top1'] for r in runs])} | "
                    f"{np.mean([r['final_loss'] for r in runs]):.3f} |")
    s = results["setup"]
    return "\n".join([
        DOC_BEGIN,
        f"Command: `{results['command']}` ({results['wall_s'] / 60:.0f} min on this machine, "
        f"shared with other jobs). Seeds {s['seeds']}; {s['pretrain']} pretraining pairs, "
        f"{s['probe_train']} probe-training and {s['probe_test']} probe-test clips (10 classes, "
        f"chance 10 %); model `{s['model']}`, {s['steps']} steps of batch {s['batch_size']}.",
        "",
        *rows,
        "",
        f"Repairs: {results['repair']['tiers']} (tiers of the agent's output); the agent changed "
        f"{results['repair']['changed']} of {s['pretrain']} clips; the random planner edited all.",
        DOC_END,
    ])


def write_doc(doc: Path, block: str) -> None:
    text = doc.read_text() if doc.exists() else "# Training\n"
    if DOC_BEGIN in text and DOC_END in text:
        head, rest = text.split(DOC_BEGIN, 1)
        text = head + block + rest.split(DOC_END, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    doc.write_text(text)


def _pretrain_one(args: tuple[Any, ...]) -> dict[str, Any]:
    """One pretraining run; a run that already finished (summary and last.pt at max_steps) is
    read back instead, so an interrupted ablation resumes without retraining."""
    from avagent.training.pretrain import load_checkpoint, train

    cfg = args[0]
    done = Path(cfg.out) / "summary.json"
    last = Path(cfg.out) / "last.pt"
    if done.exists() and last.exists() and load_checkpoint(last)["step"] == cfg.max_steps:
        return dict(json.loads(done.read_text()))
    return train(cfg)


def _probe_one(args: tuple[Any, ...]) -> dict[str, float]:
    import torch

    from avagent.training.probe import evaluate

    checkpoint, train_set, test_set, pcfg = args
    torch.set_num_threads(1)
    return evaluate(checkpoint, train_set, test_set, pcfg)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pretrain", type=int, default=300, help="pretraining clips (300)")
    p.add_argument("--probe", type=int, default=300, help="labelled probe clips (300)")
    p.add_argument("--seeds", default="0,1,2", help="pretraining seeds (0,1,2)")
    p.add_argument("--data-seed", type=int, default=0, help="seed of the dataset (0)")
    p.add_argument("--steps", type=int, default=150, help="pretraining steps per run (150)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--model", default="tiny", help="model preset (tiny)")
    p.add_argument("--finetune-epochs", type=int, default=5)
    p.add_argument("--jobs", type=int, default=2, help="processes (2)")
    p.add_argument("--out", type=Path, default=Path.home() / ".cache/avagent/runs/ablation")
    p.add_argument("--doc", default="docs/training.md", help="page to update, or '-'")
    p.add_argument("--variants", default=",".join(VARIANTS))


def run(args: argparse.Namespace) -> int:
    import sys

    import torch

    from avagent.training import avdata
    from avagent.training.pretrain import TrainConfig
    from avagent.training.probe import ProbeConfig, load_labelled, split

    t_start = time.perf_counter()
    argv = sys.argv[sys.argv.index("ablation") + 1:] if "ablation" in sys.argv else []
    command = "avagent train ablation " + " ".join(argv)
    root = avdata.generate(args.pretrain + args.probe, seed=args.data_seed, jobs=args.jobs)
    t0 = time.perf_counter()
    metas = repair(root, args.pretrain, seed=args.data_seed, jobs=args.jobs)
    repair_s = time.perf_counter() - t0
    manifests = write_manifests(root, args.out, metas)
    probe_lines = (root / "clean.jsonl").read_text().splitlines()[
        args.pretrain : args.pretrain + args.probe]
    (args.out / "probe.jsonl").write_text("\n".join(probe_lines) + "\n")
    pcfg = ProbeConfig(finetune_epochs=args.finetune_epochs, num_workers=args.jobs)
    train_set, test_set = split(load_labelled(args.out / "probe.jsonl", args.jobs), 0.4)
    torch.set_num_threads(args.jobs)

    seeds = [int(s) for s in args.seeds.split(",")]
    variants = [v for v in args.variants.split(",") if v]
    cfgs = [TrainConfig(manifest=str(manifests[v]), out=str(args.out / v / f"seed{s}"),
                        tiers="all", model=args.model, batch_size=args.batch_size,
                        max_steps=args.steps, warmup_steps=max(1, args.steps // 10), seed=s,
                        num_workers=1, threads=1, log_every=50, ckpt_every=args.steps)
            for v in variants for s in seeds]
    with ProcessPoolExecutor(args.jobs) as pool:
        summaries = list(pool.map(_pretrain_one, [(c,) for c in cfgs]))
        probes = list(pool.map(_probe_one, [(Path(c.out) / "last.pt", train_set, test_set, pcfg)
                                            for c in cfgs]))
    results: dict[str, Any] = {"runs": {}, "command": command}
    for cfg, summary, probe in zip(cfgs, summaries, probes, strict=True):
        v = Path(cfg.manifest).stem
        row = {"seed": cfg.seed, **probe, "final_loss": summary["final_loss"],
               "samples_per_s": summary["samples_per_s"],
               "data_wait_share": summary["data_wait_share"]}
        logger.info("%s seed %d: %s", v, cfg.seed, row)
        results["runs"].setdefault(v, []).append(row)
    tiers: dict[str, int] = {}
    for m in metas:
        tiers[m["tier"]] = tiers.get(m["tier"], 0) + 1
    results["repair"] = {"seconds": round(repair_s, 1), "tiers": tiers,
                         "changed": sum(1 for m in metas if m["plan"]),
                         "plans": [m["plan"] for m in metas]}
    results["setup"] = {"seeds": seeds, "pretrain": args.pretrain,
                        "probe_train": int(train_set["label"].shape[0]),
                        "probe_test": int(test_set["label"].shape[0]), "model": args.model,
                        "steps": args.steps, "batch_size": args.batch_size,
                        "train_config": asdict(cfgs[0])}
    results["wall_s"] = time.perf_counter() - t_start
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    block = render(results)
    print(block)
    if args.doc != "-":
        write_doc(Path(args.doc), block)
    return 0
