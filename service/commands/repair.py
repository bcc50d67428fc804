"""``avagent repair INPUT... -o OUTDIR``: repair files, folders and globs, with progress."""

from __future__ import annotations

import argparse
import glob
import logging
import sys
from pathlib import Path
from typing import Any

from avagent.errors import AvagentError, MediaError, ParameterError

logger = logging.getLogger(__name__)

MEDIA_SUFFIXES = {
    ".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v", ".ogv",
    ".wav", ".flac", ".ogg", ".mp3", ".m4a", ".opus", ".aac",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="files, folders or glob patterns")
    p.add_argument("-o", "--outdir", required=True, type=Path, help="where outputs are written")
    p.add_argument("--planner", default=None, help="rules (default), llm, random, none")
    p.add_argument("--planner-lora", type=Path, default=None, metavar="GGUF",
                   help="LoRA adapter (GGUF) for the embedded LLM planner")
    p.add_argument("--llm-url", default=None, metavar="URL",
                   help="OpenAI-compatible server for the LLM planner (default: embedded model)")
    p.add_argument("--max-rounds", type=int, default=None, help="plan/act/reflect rounds (3)")
    p.add_argument("--threshold", type=float, default=None, help="accept when both scores ≥ (0.85)")
    p.add_argument(
        "--outputs", default="wav,video,report", help="comma list of wav, video, report"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar or table")


def expand_inputs(items: list[str]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Files, folders (their media files, sorted) and glob patterns → paths, plus problems."""
    found: list[Path] = []
    problems: list[tuple[str, str]] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            kids = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in MEDIA_SUFFIXES)
            if not kids:
                problems.append((item, "folder holds no media files"))
            found.extend(kids)
        elif p.exists():
            found.append(p)
        elif any(c in item for c in "*?["):
            matches = sorted(Path(m) for m in glob.glob(item, recursive=True) if Path(m).is_file())
            if not matches:
                problems.append((item, "pattern matches no file"))
            found.extend(matches)
        else:
            problems.append((item, "no such file or folder"))
    seen: set[Path] = set()
    unique = []
    for f in found:
        r = f.resolve()
        if r not in seen:
            seen.add(r)
            unique.append(f)
    return unique, problems


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from avagent.service.pipeline import RepairOptions, repair_file
    from avagent.service.settings import get_settings

    settings = get_settings()
    overrides = {"planner_lora": args.planner_lora, "planner_base_url": args.llm_url}
    if any(v is not None for v in overrides.values()):
        settings = settings.model_copy(
            update={k: v for k, v in overrides.items() if v is not None}
        )
    options = RepairOptions.from_settings(
        settings, planner=args.planner, max_rounds=args.max_rounds, threshold=args.threshold,
        outputs=[o.strip() for o in args.outputs.split(",") if o.strip()],
    )
    options.check()
    if args.planner_lora is not None and not args.planner_lora.is_file():
        raise ParameterError(f"--planner-lora {str(args.planner_lora)!r} is not a file")
    files, problems = expand_inputs(args.inputs)
    err = Console(stderr=True)
    for item, why in problems:
        print(f"avagent repair: {item}: {why}", file=sys.stderr)
    if not files:
        return 2
    outdir: Path = args.outdir
    if outdir.exists() and not outdir.is_dir():
        raise MediaError(f"output {outdir} exists and is not a folder")

    rows: list[dict[str, Any]] = []
    failures = len(problems)
    show = not args.quiet and sys.stderr.isatty()
    with Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(), console=err, disable=not show, transient=True,
    ) as bar:
        total = bar.add_task("files", total=len(files))
        for i, f in enumerate(files):
            clip = bar.add_task(f"{f.name}", total=1.0)

            def on_progress(ev: dict[str, Any], clip: Any = clip, name: str = f.name) -> None:
                bar.update(clip, completed=ev.get("fraction", 0.0),
                           description=f"{name} · {ev.get('stage')} r{ev.get('round', 0)}")

            try:
                report = repair_file(f, outdir, options, settings=settings, progress=on_progress)
                rows.append({"file": f.name, "ok": True, "report": report})
            except AvagentError as exc:
                failures += 1
                rows.append({"file": f.name, "ok": False, "error": str(exc)})
                bar.stop()  # one plain line (rich would wrap it), then the bar resumes
                print(f"avagent repair: {f}: {exc}", file=sys.stderr)
                bar.start()
            finally:
                bar.remove_task(clip)
                bar.update(total, completed=i + 1)

    if not args.quiet:
        table = Table(title=f"avagent repair → {outdir}")
        for col in ("file", "result", "alignment", "sync", "rounds", "time"):
            table.add_column(col)
        for r in rows:
            if r["ok"]:
                rep = r["report"]
                table.add_row(
                    r["file"], rep["summary"].split(";")[0],
                    f"{rep['baseline']['alignment']:.2f} → {rep['scores']['alignment']:.2f}",
                    f"{rep['baseline']['sync']:.2f} → {rep['scores']['sync']:.2f}",
                    str(len(rep["rounds"])), f"{rep['timings_s']['total']:.1f} s",
                )
            else:
                table.add_row(r["file"], f"[red]failed: {r['error']}[/red]", "", "", "", "")
        Console(width=140).print(table)
    return 1 if failures else 0
