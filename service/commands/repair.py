"""``avagent repair INPUT... -o OUTDIR``: repair files, folders and globs, with progress."""

from __future__ import annotations

import argparse
import glob
import logging
import os
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
    p.add_argument("--scorer", default=None, help="embedded (default), imagebind or learned")
    p.add_argument("--captioner", default=None, help="embedded (default) or llm")
    p.add_argument("--imagebind-weights", type=Path, default=None, metavar="PTH",
                   help="ImageBind checkpoint for --scorer imagebind (AVAGENT_IMAGEBIND_WEIGHTS)")
    p.add_argument("--critic-checkpoint", type=Path, default=None, metavar="PT",
                   help="critic.pt of `avagent train critic` for --scorer learned "
                        "(AVAGENT_CRITIC_CHECKPOINT)")
    p.add_argument("--max-rounds", type=int, default=None, help="plan/act/reflect rounds (3)")
    p.add_argument("--threshold", type=float, default=None, help="accept when both scores ≥ (0.85)")
    p.add_argument(
        "--outputs", default="wav,video,report", help="comma list of wav, video, report"
    )
    p.add_argument("--format", default=None, help="repaired audio file: wav (default) or flac")
    p.add_argument("--subtype", default=None, help="PCM_16, PCM_24, PCM_32, FLOAT (default: the input's)")
    p.add_argument("--quiet", action="store_true", help="no progress bar or table")


def expand_inputs(items: list[str]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Files, folders (their media files, sorted) and glob patterns → paths, plus problems.

    Folders and patterns skip our own outputs (``*.repaired.*``), so repairing a folder into
    itself twice does not repair the first run's results; a file named on its own is taken."""
    from avagent.service.pipeline import is_output_name

    found: list[Path] = []
    problems: list[tuple[str, str]] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            kids = sorted(f for f in p.rglob("*") if f.is_file()
                          and f.suffix.lower() in MEDIA_SUFFIXES and not is_output_name(f.name))
            if not kids:
                problems.append((item, "folder holds no media files"))
            found.extend(kids)
        elif p.exists():
            found.append(p)
        elif any(c in item for c in "*?["):
            matches = sorted(Path(m) for m in glob.glob(item, recursive=True)
                             if Path(m).is_file() and not is_output_name(Path(m).name))
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


def plan_outputs(files: list[Path], outdir: Path, audio_ext: str = ".wav") -> list[Path]:
    """The output folder of each input: ``outdir`` mirrors the inputs' folders relative to their
    common root (one folder in, flat out). Two inputs whose outputs would meet (``a/x.wav`` and
    ``a/x.flac``) are refused before any work, naming both."""
    from avagent.service.pipeline import output_paths

    parents = [f.resolve().parent for f in files]
    root = Path(os.path.commonpath(parents)) if parents else Path(".")
    folders = [outdir / p.relative_to(root) for p in parents]
    claimed: dict[Path, Path] = {}
    for f, folder in zip(files, folders, strict=True):
        for out in (o.resolve() for o in output_paths(f, folder, f.suffix, audio_ext).values()):
            other = claimed.setdefault(out, f)
            if other != f:
                raise ParameterError(
                    f"{other} and {f} would both write {out}: repair them into different "
                    "output folders (-o)")
    for f in files:
        if f.resolve() in claimed:  # an input named like another input's output
            raise ParameterError(f"{f} would be overwritten by the repair of {claimed[f.resolve()]}")
    return folders


def _sync_cell(rep: dict[str, Any]) -> str:
    verdict = rep.get("sync_verdict", "")
    if verdict in ("cannot_tell", "no_picture"):
        return verdict.replace("_", " ")  # not a measured pass: no number that reads like one
    return f"{rep['baseline']['sync']:.2f} → {rep['scores']['sync']:.2f}"


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from avagent.service.pipeline import RepairOptions, repair_file
    from avagent.service.settings import get_settings

    settings = get_settings()
    overrides = {"planner_lora": args.planner_lora, "planner_base_url": args.llm_url,
                 "scorer": args.scorer, "captioner": args.captioner,
                 "imagebind_weights": args.imagebind_weights,
                 "critic_checkpoint": args.critic_checkpoint}
    if any(v is not None for v in overrides.values()):
        settings = settings.model_copy(
            update={k: v for k, v in overrides.items() if v is not None}
        )
    options = RepairOptions.from_settings(
        settings, planner=args.planner, max_rounds=args.max_rounds, threshold=args.threshold,
        outputs=[o.strip() for o in args.outputs.split(",") if o.strip()],
        audio_format=args.format, subtype=args.subtype,
    )
    options.check()
    from avagent.service.backends import make_captioners, make_scorer

    make_scorer(settings)  # an unknown scorer or captioner name fails here, once, not per file
    make_captioners(settings)
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
    folders = plan_outputs(files, outdir, f".{options.audio_format}")

    rows: list[dict[str, Any]] = []
    failures = len(problems)
    show = not args.quiet and sys.stderr.isatty()
    with Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(), console=err, disable=not show, transient=True,
    ) as bar:
        total = bar.add_task("files", total=len(files))
        for i, (f, folder) in enumerate(zip(files, folders, strict=True)):
            clip = bar.add_task(f"{f.name}", total=1.0)

            def on_progress(ev: dict[str, Any], clip: Any = clip, name: str = f.name) -> None:
                bar.update(clip, completed=ev.get("fraction", 0.0),
                           description=f"{name} · {ev.get('stage')} r{ev.get('round', 0)}")

            try:
                report = repair_file(f, folder, options, settings=settings, progress=on_progress)
                rows.append({"file": str(f), "ok": True, "report": report})
            except AvagentError as exc:
                failures += 1
                rows.append({"file": str(f), "ok": False, "error": str(exc)})
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
                    _sync_cell(rep),
                    str(len(rep["rounds"])), f"{rep['timings_s']['total']:.1f} s",
                )
            else:
                table.add_row(r["file"], f"[red]failed: {r['error']}[/red]", "", "", "", "")
        Console(width=140).print(table)
    return 1 if failures else 0
