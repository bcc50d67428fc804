"""``avagent analyze INPUT``: what perception measures, as JSON (audio and video separately)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", type=Path, help="a video or audio file")
    p.add_argument("--compact", action="store_true", help="one line of JSON")


def run(args: argparse.Namespace) -> int:
    from avagent.service.pipeline import analyze_file

    data = analyze_file(args.input)
    print(json.dumps(data, indent=None if args.compact else 2, ensure_ascii=False))
    return 0
