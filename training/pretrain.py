"""``avagent train mae``: pretrain the audio-visual MAE on a manifest of pairs.

One process on CPU by default; under ``torchrun`` every process takes its share of each global
batch (DDP, gloo on CPU, nccl on GPUs)::

    avagent train mae --manifest out/manifest.jsonl --tiers accepted,improved --out runs/mae
    torchrun --nproc-per-node 2 -m avagent.service.cli train mae --manifest ... --out ...

Checkpoints (``OUT/last.pt``, ``OUT/best.pt``) hold the weights, the optimizer, both configs,
the step, the best loss and the loss curve; ``--resume`` continues a run exactly where it stopped
(same data order, same masks, same curve). A loss that is not finite stops the run with an error.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from avagent.errors import AvagentError, MediaError, ParameterError

logger = logging.getLogger(__name__)

CHECKPOINT_KIND = "avagent-av-mae"
CHECKPOINT_VERSION = 1


class TrainingError(AvagentError):
    """A training run cannot go on (non-finite loss, unusable checkpoint)."""


@dataclass
class TrainConfig:
    """One pretraining run. Every field is a CLI flag (``--batch-size`` for ``batch_size``)."""

    manifest: str = ""  # JSON-lines manifest of pairs (the service's batch manifest works)
    out: str = "runs/mae"  # folder for checkpoints and the log
    tiers: str = "accepted,improved"  # consistency tiers to keep ("all" keeps every line)
    model: str = "tiny"  # a preset of training.mae.MODEL_PRESETS
    model_overrides: dict[str, Any] = field(default_factory=dict)  # fields of MAEConfig to change
    batch_size: int = 32  # GLOBAL batch; each of W processes takes batch_size / W
    max_steps: int = 200  # optimizer steps
    lr: float = 1e-3  # peak learning rate (AdamW)
    min_lr: float = 1e-5  # end of the cosine decay
    warmup_steps: int = 20  # linear warm-up
    weight_decay: float = 0.05  # AdamW decoupled decay (MAE's setting)
    betas: tuple[float, float] = (0.9, 0.95)  # MAE's AdamW betas
    grad_clip: float = 1.0  # max global grad norm (0: off)
    num_workers: int = 2  # DataLoader worker processes per training process
    seed: int = 0  # data order, masks and initial weights
    log_every: int = 10  # steps between log lines
    ckpt_every: int = 100  # steps between checkpoints (and one at the end)
    device: str = "auto"  # auto: cuda when available, else cpu
    threads: int = 0  # torch intra-op threads per process (0: torch's default)
    bf16: bool = False  # bfloat16 autocast (GPUs; CPU works but is slow)
    resume: bool = False  # continue from OUT/last.pt
    stop_at: int = 0  # stop after this step with a checkpoint, as a pre-emption would (0: off)

    def tier_filter(self) -> tuple[str, ...] | None:
        return None if self.tiers == "all" else tuple(t for t in self.tiers.split(",") if t)


def model_config(cfg: TrainConfig) -> Any:
    from avagent.training.mae import MODEL_PRESETS

    if cfg.model not in MODEL_PRESETS:
        raise ParameterError(f"model={cfg.model!r}; valid: {', '.join(MODEL_PRESETS)}")
    try:
        return dataclasses.replace(MODEL_PRESETS[cfg.model], **cfg.model_overrides)
    except TypeError as exc:
        raise ParameterError(f"model_overrides={cfg.model_overrides}: {exc}") from None


# -- data ---------------------------------------------------------------------------------------
class EpochSampler:
    """Indices ``(epoch, i)`` of one rank's share, in a per-epoch permutation from ``seed``.

    Starting at ``start_step`` replays exactly the batches a run from step 0 would have seen
    from there on: what resume needs. Each global batch of ``batch`` samples is split into
    ``world`` contiguous shares, so one process on B samples sees the union of W processes' B/W.
    """

    def __init__(self, n: int, batch: int, *, rank: int, world: int, seed: int,
                 start_step: int = 0) -> None:
        if batch > n:
            raise ParameterError(f"batch_size={batch} is larger than the {n} pairs")
        self.n, self.batch, self.rank, self.world, self.seed = n, batch, rank, world, seed
        self.per_epoch = n // batch  # drop the ragged end: every step is a full batch
        self.start_step = start_step

    def __iter__(self) -> Iterator[tuple[int, int]]:
        step = self.start_step
        share = self.batch // self.world
        while True:
            epoch, k = divmod(step, self.per_epoch)
            order = np.random.default_rng([self.seed, epoch]).permutation(self.n)
            batch = order[k * self.batch : (k + 1) * self.batch]
            for i in batch[self.rank * share : (self.rank + 1) * share]:
                yield (epoch, int(i))
            step += 1


class MaskedPairs:
    """Wraps a :class:`PairDataset`: adds per-sample masking noise drawn from (seed, epoch, i)."""

    def __init__(self, ds: Any, seed: int, n_audio: int, n_video: int) -> None:
        self.ds, self.seed, self.n_audio, self.n_video = ds, seed, n_audio, n_video

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Any]:
        epoch, i = key
        item = self.ds[i]
        rng = np.random.default_rng([self.seed, epoch, i, 7])
        item["noise_a"] = rng.random(self.n_audio, dtype=np.float32)
        item["noise_v"] = rng.random(self.n_video, dtype=np.float32)
        return item


# -- distributed ----------------------------------------------------------------------------------
def _dist_setup(device: str) -> tuple[int, int, str]:
    import torch
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        local = int(os.environ.get("LOCAL_RANK", "0"))
        device = f"cuda:{local}"
        torch.cuda.set_device(local)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return rank, world, device


def _lr(cfg: TrainConfig, step: int) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    frac = (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * min(1.0, frac)))


# -- checkpoints ----------------------------------------------------------------------------------
def save_checkpoint(path: Path, model: Any, optimizer: Any, mcfg: Any, cfg: TrainConfig,
                    step: int, best: float, history: list[dict[str, float]]) -> None:
    import torch

    state = {
        "kind": CHECKPOINT_KIND, "version": CHECKPOINT_VERSION,
        "model": model.state_dict(), "optimizer": optimizer.state_dict() if optimizer else None,
        "mae_config": asdict(mcfg), "train_config": asdict(cfg),
        "step": step, "best_loss": best, "history": history,
    }
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A checkpoint written by :func:`save_checkpoint`; anything else is a clear error."""
    import pickle

    import torch

    try:
        state = torch.load(str(path), map_location="cpu", weights_only=False)
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as exc:
        raise TrainingError(f"checkpoint {path}: cannot read ({exc})") from None
    if not isinstance(state, dict) or state.get("kind") != CHECKPOINT_KIND:
        raise TrainingError(f"checkpoint {path}: not an avagent AV-MAE checkpoint")
    return state


def build_model(state: dict[str, Any]) -> Any:
    """The model a checkpoint describes, with its weights (on CPU, eval mode)."""
    from avagent.training.mae import AVMAE, MAEConfig

    model = AVMAE(MAEConfig(**state["mae_config"]))
    model.load_state_dict(state["model"])
    return model.eval()


# -- the loop ---------------------------------------------------------------------------------------
def train(cfg: TrainConfig) -> dict[str, Any]:
    """Run (or resume) pretraining; returns the summary also written to ``OUT/summary.json``."""
    import torch
    from torch.utils.data import DataLoader

    from avagent.training.data import PairDataset, check_pairs, read_manifest
    from avagent.training.mae import AVMAE

    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    rank, world, device = _dist_setup(cfg.device)
    if cfg.batch_size % world:
        raise ParameterError(f"batch_size={cfg.batch_size} must divide by the {world} processes")
    mcfg = model_config(cfg)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    pairs = read_manifest(cfg.manifest, tiers=cfg.tier_filter())
    check_pairs(pairs, cfg.manifest)

    torch.manual_seed(cfg.seed)
    model = AVMAE(mcfg).to(device)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "pos" not in n]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2 or "pos" in n]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=cfg.lr, betas=cfg.betas)
    step, best, history = 0, math.inf, []
    if cfg.resume and (out / "last.pt").exists():
        state = load_checkpoint(out / "last.pt")
        if state["mae_config"] != asdict(mcfg):
            raise TrainingError(f"{out / 'last.pt'}: its model config differs from this run's")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        step, best, history = state["step"], state["best_loss"], state["history"]
        logger.info("resumed %s at step %d", out / "last.pt", step)
    ddp = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        ddp = DistributedDataParallel(model, device_ids=[device] if "cuda" in device else None)

    sampler = EpochSampler(len(pairs), cfg.batch_size, rank=rank, world=world, seed=cfg.seed,
                           start_step=step)
    data = MaskedPairs(PairDataset(pairs, cfg.manifest), cfg.seed, mcfg.n_audio, mcfg.n_video)
    loader = DataLoader(data, batch_size=cfg.batch_size // world, sampler=sampler,
                        num_workers=cfg.num_workers, persistent_workers=cfg.num_workers > 0,
                        pin_memory="cuda" in device,
                        prefetch_factor=4 if cfg.num_workers > 0 else None)
    autocast = torch.autocast(device.split(":")[0], dtype=torch.bfloat16, enabled=cfg.bf16)
    wait_s = step_s = 0.0
    samples = 0
    t_run = time.perf_counter()
    it = iter(loader)
    model.train()
    end = min(cfg.max_steps, cfg.stop_at) if cfg.stop_at > 0 else cfg.max_steps
    while step < end:
        t0 = time.perf_counter()
        try:
            batch = next(it)
        except MediaError as exc:  # from a worker: the message carries its traceback
            raise MediaError(_worker_message(exc)) from None
        t1 = time.perf_counter()
        for g in opt.param_groups:
            g["lr"] = _lr(cfg, step)
        with autocast:
            losses = ddp(batch["audio"].to(device, non_blocking=True),
                         batch["video"].to(device, non_blocking=True),
                         batch["noise_a"].to(device), batch["noise_v"].to(device))
        loss = losses["loss"]
        if not torch.isfinite(loss):
            raise TrainingError(f"loss is {loss.item()} at step {step} (lr {_lr(cfg, step):.2e});"
                                " the run stops: lower --lr or check the inputs")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        step += 1
        t2 = time.perf_counter()
        wait_s += t1 - t0
        step_s += t2 - t0
        samples += cfg.batch_size
        row = {k: float(v.detach()) for k, v in losses.items()}
        if world > 1:
            import torch.distributed as dist

            vec = torch.tensor([row[k] for k in sorted(row)], dtype=torch.float64)
            dist.all_reduce(vec)
            row = {k: float(x) / world for k, x in zip(sorted(row), vec.tolist(), strict=True)}
        row["step"] = step
        history.append(row)
        best = min(best, row["loss"])
        if rank == 0 and (step % cfg.log_every == 0 or step == end):
            logger.info("step %d loss %.4f (audio %.3f video %.3f nce %.3f) data wait %.0f%%",
                        step, row["loss"], row["recon_audio"], row["recon_video"],
                        row["contrastive"], 100 * wait_s / max(step_s, 1e-9))
        if rank == 0 and (step % cfg.ckpt_every == 0 or step == end):
            save_checkpoint(out / "last.pt", model, opt, mcfg, cfg, step, best, history)
            if row["loss"] <= best:
                save_checkpoint(out / "best.pt", model, None, mcfg, cfg, step, best, history)
    elapsed = time.perf_counter() - t_run
    summary = {
        "steps": step, "final_loss": history[-1]["loss"] if history else None, "best_loss": best,
        "pairs": len(pairs), "world_size": world, "device": device,
        "samples_per_s": samples / elapsed if elapsed > 0 else None,
        "data_wait_share": wait_s / step_s if step_s > 0 else None,
        "peak_rss_mib": _peak_rss_mib(),
        "peak_cuda_mib": (torch.cuda.max_memory_allocated() / 2**20
                          if "cuda" in device else None),
    }
    if rank == 0:
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def _worker_message(exc: Exception) -> str:
    """The original one-line message of an error re-raised by a DataLoader worker."""
    lines = [x for x in str(exc).splitlines() if x.strip()]
    last = lines[-1] if lines else str(exc)
    return last.split("MediaError: ", 1)[-1]


def _peak_rss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- CLI ----------------------------------------------------------------------------------------------
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--manifest", required=True, help="JSON-lines manifest of pairs")
    p.add_argument("--config", type=Path, default=None,
                   help="JSON file of TrainConfig fields; flags given here override it")
    for f in dataclasses.fields(TrainConfig):
        if f.name in ("manifest", "model_overrides", "betas"):
            continue
        flag = "--" + f.name.replace("_", "-")
        if f.type in ("bool", bool):
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=None)
        else:
            kind = {"int": int, "float": float}.get(str(f.type), str)
            p.add_argument(flag, type=kind, default=None, help=f"(default {f.default})")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="override a model field, e.g. --set dim=96 (repeatable)")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    base: dict[str, Any] = {}
    if args.config is not None:
        try:
            base = json.loads(args.config.read_text())
        except (OSError, ValueError) as exc:
            raise ParameterError(f"--config {args.config}: {exc}") from None
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = set(base) - names
    if unknown:
        raise ParameterError(f"--config {args.config}: unknown fields {sorted(unknown)}")
    for name in names:
        value = getattr(args, name, None)
        if value is not None:
            base[name] = value
    overrides = dict(base.get("model_overrides") or {})
    for item in args.set:
        key, _, value = item.partition("=")
        try:
            overrides[key] = json.loads(value)
        except ValueError:
            overrides[key] = value
    base["model_overrides"] = overrides
    if "betas" in base:
        base["betas"] = tuple(base["betas"])
    return TrainConfig(**base)


def run(args: argparse.Namespace) -> int:
    summary = train(config_from_args(args))
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(summary))
    return 0
