"""``avagent train probe``: how good a pretrained AV-MAE's features are, on a labelled dataset.

Two standard readings, both top-1 accuracy on held-out clips:

* **linear probe**: the encoder is frozen; a logistic regression on the mean-pooled audio and
  video embeddings (concatenated, standardised) is fitted on the training clips;
* **fine-tune**: encoder and a linear head are trained end to end (no masking) for a few epochs.

The labelled manifest is any manifest whose lines carry ``label`` (``avagent train avdata``
writes ``clean.jsonl`` and ``raw.jsonl``). Without ``--test-manifest`` its lines are split
deterministically and stratified: a ``test_share`` of each class, spread over the manifest.
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from avagent.errors import MediaError, ParameterError

logger = logging.getLogger(__name__)


@dataclass
class ProbeConfig:
    linear_steps: int = 300  # full-batch Adam steps of the logistic regression
    linear_lr: float = 0.05  # its learning rate
    linear_wd: float = 1e-3  # its L2 penalty
    finetune_epochs: int = 5  # end-to-end epochs (0: skip the fine-tune)
    finetune_lr: float = 3e-4  # encoder learning rate (the head gets 10x)
    batch_size: int = 32  # fine-tune batch
    seed: int = 0  # head init and fine-tune order
    num_workers: int = 2  # feature-loading processes


def load_labelled(manifest: str | Path, num_workers: int = 2) -> dict[str, Any]:
    """Every pair of a labelled manifest as tensors: audio, video, label."""
    import torch
    from torch.utils.data import DataLoader

    from avagent.training.data import PairDataset, check_pairs, read_manifest

    pairs = read_manifest(manifest)
    missing = [p.line for p in pairs if p.label is None]
    if missing:
        raise MediaError(f"manifest {manifest}: lines {missing[:5]} have no 'label'")
    check_pairs(pairs, manifest)
    loader = DataLoader(PairDataset(pairs, manifest), batch_size=64, num_workers=num_workers)
    parts = list(loader)
    return {k: torch.cat([torch.as_tensor(b[k]) for b in parts]) for k in ("audio", "video",
                                                                          "label")}


def split(data: dict[str, Any], test_share: float) -> tuple[dict[str, Any], dict[str, Any]]:
    import torch

    if not 0 < test_share < 1:
        raise ParameterError(f"test_share={test_share} must be between 0 and 1")
    # Stratified and spread: within each class (in manifest order) clip k is held out when
    # floor((k+1)·share) steps past floor(k·share), so each class gives floor(n·share) clips.
    labels = data["label"]
    test = torch.zeros(labels.shape[0], dtype=torch.bool)
    for c in labels.unique():
        idx = torch.nonzero(labels == c).flatten()
        k = torch.arange(idx.numel(), dtype=torch.float64)
        test[idx[torch.floor((k + 1) * test_share) > torch.floor(k * test_share)]] = True
    return ({k: v[~test] for k, v in data.items()}, {k: v[test] for k, v in data.items()})


def _embed(model: Any, data: dict[str, Any], batch: int = 128) -> Any:
    import torch

    out = []
    with torch.no_grad():
        for i in range(0, data["label"].shape[0], batch):
            a, v = model.embed(data["audio"][i : i + batch], data["video"][i : i + batch])
            out.append(torch.cat([a, v], dim=1))
    return torch.cat(out)


def linear_probe(model: Any, train: dict[str, Any], test: dict[str, Any],
                 cfg: ProbeConfig) -> float:
    """Top-1 of a logistic regression on frozen embeddings."""
    import torch

    model.eval()
    xtr, xte = _embed(model, train), _embed(model, test)
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-6
    xtr, xte = (xtr - mu) / sd, (xte - mu) / sd
    n_cls = int(max(train["label"].max(), test["label"].max())) + 1
    g = torch.Generator().manual_seed(cfg.seed)
    head = torch.nn.Linear(xtr.shape[1], n_cls)
    with torch.no_grad():
        head.weight.normal_(0, 0.01, generator=g)
        head.bias.zero_()
    opt = torch.optim.Adam(head.parameters(), lr=cfg.linear_lr, weight_decay=cfg.linear_wd)
    for _ in range(cfg.linear_steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(head(xtr), train["label"]).backward()
        opt.step()
    with torch.no_grad():
        return float((head(xte).argmax(1) == test["label"]).float().mean())


class _Classifier:
    def __init__(self, model: Any, n_cls: int) -> None:
        import torch

        self.model = model
        self.head = torch.nn.Linear(2 * model.cfg.dim, n_cls)

    def __call__(self, audio: Any, video: Any) -> Any:
        import torch

        a, v = self.model.embed(audio, video)
        return self.head(torch.cat([a, v], dim=1))


def finetune(model: Any, train: dict[str, Any], test: dict[str, Any], cfg: ProbeConfig) -> float:
    """Top-1 after training encoder + linear head end to end (the model is changed in place)."""
    import torch

    torch.manual_seed(cfg.seed)
    n_cls = int(max(train["label"].max(), test["label"].max())) + 1
    clf = _Classifier(model, n_cls)
    opt = torch.optim.AdamW([{"params": model.parameters(), "lr": cfg.finetune_lr},
                             {"params": clf.head.parameters(), "lr": cfg.finetune_lr * 10}],
                            weight_decay=0.05)
    n = train["label"].shape[0]
    g = torch.Generator().manual_seed(cfg.seed)
    for _ in range(cfg.finetune_epochs):
        model.train()
        order = torch.randperm(n, generator=g)
        for i in range(0, n - cfg.batch_size + 1, cfg.batch_size):
            idx = order[i : i + cfg.batch_size]
            loss = torch.nn.functional.cross_entropy(
                clf(train["audio"][idx], train["video"][idx]), train["label"][idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, test["label"].shape[0], 128):
            pred = clf(test["audio"][i : i + 128], test["video"][i : i + 128]).argmax(1)
            correct += int((pred == test["label"][i : i + 128]).sum())
    return correct / test["label"].shape[0]


def evaluate(checkpoint: str | Path, train: dict[str, Any], test: dict[str, Any],
             cfg: ProbeConfig) -> dict[str, float]:
    """Linear-probe and fine-tune top-1 of one checkpoint."""
    from avagent.training.pretrain import build_model, load_checkpoint

    state = load_checkpoint(checkpoint)
    out = {"linear_top1": linear_probe(build_model(state), train, test, cfg)}
    if cfg.finetune_epochs > 0:
        out["finetune_top1"] = finetune(build_model(state), train, test, cfg)
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="a checkpoint of `avagent train mae`")
    p.add_argument("--manifest", required=True, help="labelled manifest (lines carry 'label')")
    p.add_argument("--test-manifest", default=None,
                   help="held-out labelled manifest (default: split --manifest)")
    p.add_argument("--test-share", type=float, default=0.4,
                   help="share of --manifest held out when no --test-manifest (0.4)")
    p.add_argument("--linear-steps", type=int, default=ProbeConfig.linear_steps)
    p.add_argument("--finetune-epochs", type=int, default=ProbeConfig.finetune_epochs)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num-workers", type=int, default=2)


def run(args: argparse.Namespace) -> int:
    import torch

    torch.set_num_threads(max(1, torch.get_num_threads()))
    cfg = ProbeConfig(linear_steps=args.linear_steps, finetune_epochs=args.finetune_epochs,
                      seed=args.seed, num_workers=args.num_workers)
    data = load_labelled(args.manifest, cfg.num_workers)
    if args.test_manifest:
        train, test = data, load_labelled(args.test_manifest, cfg.num_workers)
    else:
        train, test = split(data, args.test_share)
    result = evaluate(args.checkpoint, train, test, cfg)
    print(json.dumps({**result, "train": int(train["label"].shape[0]),
                      "test": int(test["label"].shape[0])}))
    return 0
