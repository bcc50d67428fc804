"""``avagent train SUBCOMMAND ...``: the training tools, one module per subcommand.

The table below is the only place a training subcommand is registered: each module exposes
``add_arguments(parser)`` and ``run(args) -> int``, and is imported only when its subcommand runs,
so ``avagent --help`` never imports torch. Multi-GPU and multi-node runs go through torch's own
launcher, e.g. ``torchrun --nproc-per-node 2 -m avagent.service.cli train mae ...``.
"""

from __future__ import annotations

import argparse
import importlib

from avagent.errors import ParameterError

# subcommand -> (module, one-line help). Other training tools add one line here.
TRAIN_COMMANDS: dict[str, tuple[str, str]] = {
    "avdata": ("avagent.training.avdata",
               "generate the labelled audio-visual dataset (cached outside the repo)"),
    "mae": ("avagent.training.pretrain",
            "pretrain the audio-visual masked autoencoder on a manifest of pairs"),
    "probe": ("avagent.training.probe",
              "linear-probe and fine-tune top-1 of a pretrained MAE on the labelled dataset"),
    "critic": ("avagent.training.critic",
               "calibrate a pretrained MAE as an audio-picture critic (reflection scorer 'learned')"),
    "speed": ("avagent.training.speed",
              "samples/s and peak memory of pretraining steps (CPU, or one GPU with --bf16)"),
    "ablation": ("avagent.training.ablation",
                 "pretrain on raw / repaired / random / clean pairs and probe each (3 seeds)"),
    "planner-data": ("avagent.training.planner_data",
                     "write planner SFT data (prompt -> correct plan) from clips with known faults"),
    "planner": ("avagent.training.sft", "LoRA-tune the LLM planner on planner SFT data"),
    "planner-export": ("avagent.training.planner_export",
                       "export a planner LoRA for vLLM (PEFT folder) and llama.cpp (GGUF)"),
    "planner-eval": ("avagent.training.planner_eval",
                     "plan accuracy of planners on the test split (action set, parameter error)"),
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    lines = [f"  {name:<10} {help_}" for name, (_, help_) in TRAIN_COMMANDS.items()]
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = "subcommands:\n" + "\n".join(lines) + "\n\n`avagent train NAME --help` for each."
    p.add_argument("subcommand", metavar="NAME", help="one of: " + ", ".join(TRAIN_COMMANDS))
    p.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)


def build_subparser(name: str) -> tuple[argparse.ArgumentParser, str]:
    """The parser of one training subcommand and its module name; unknown names list the valid."""
    if name not in TRAIN_COMMANDS:
        raise ParameterError(
            f"train subcommand {name!r} is unknown; choose one of {', '.join(TRAIN_COMMANDS)}"
        )
    module, help_ = TRAIN_COMMANDS[name]
    parser = argparse.ArgumentParser(prog=f"avagent train {name}", description=help_)
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise
        raise ParameterError(f"train subcommand {name!r} is not built in this version") from None
    mod.add_arguments(parser)
    return parser, module


def run(args: argparse.Namespace) -> int:
    parser, module = build_subparser(args.subcommand)
    sub_args = parser.parse_args(args.rest)
    return int(importlib.import_module(module).run(sub_args) or 0)
