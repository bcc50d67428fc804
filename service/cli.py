"""The ``avagent`` command line: one entry point, one module per subcommand.

Each subcommand lives in ``service/commands/<name>.py`` and exposes ``add_arguments(parser)`` and
``run(args) -> int``. Modules are imported only for the subcommand that runs, so ``avagent
actions`` does not pay for the agent's imports.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from avagent import __version__
from avagent.errors import AvagentError

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "actions": ("avagent.service.commands.actions", "print the table of repair actions"),
    "apply": ("avagent.service.commands.apply", "run one action on an audio or video file"),
    "analyze": ("avagent.service.commands.analyze", "print what perception finds in a file, as JSON"),
    "repair": ("avagent.service.commands.repair", "repair the sound of videos and audio files"),
    "bench": ("avagent.service.commands.bench", "measure every system against the clean truth"),
    "serve": ("avagent.service.commands.serve", "run the HTTP API (and a worker) on this machine"),
    "worker": ("avagent.service.commands.worker", "run a queue worker that repairs submitted jobs"),
    "keys": ("avagent.service.commands.keys", "create, list and revoke API keys"),
    "train": ("avagent.service.commands.train", "pretraining and fine-tuning tools (mae, probe, ...)"),
    "backends": ("avagent.service.commands.backends", "list model backends, reachability, fallbacks"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="avagent",
        description="Repair the sound of videos like a sound editor would, and explain it.",
    )
    parser.add_argument("--version", action="version", version=f"avagent {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_) in COMMANDS.items():
        try:
            command = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
            continue  # subcommand not built in this version: not offered, not in the help
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(_module=module)
        command.add_arguments(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_module", None):
        parser.print_help()
        return 2
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(importlib.import_module(args._module).run(args) or 0)
    except AvagentError as exc:
        print(f"avagent {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"avagent {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`avagent actions --json | head`): stop quietly, as cat does.
        # Output still buffered would fail again at exit, so stdout goes to /dev/null.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell reports for a command killed by the pipe


if __name__ == "__main__":
    raise SystemExit(main())
