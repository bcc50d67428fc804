"""One clip, end to end: decode → agent → write outputs atomically → report.json.

The CLI and the Celery worker both call :func:`repair_file`; the agent itself only sees arrays.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from avagent import __version__
from avagent.errors import MediaError, ParameterError
from avagent.service.backends import (
    backend_name,
    check_planner,
    make_captioners,
    make_planner,
    make_scorer,
)
from avagent.service.settings import ROUNDS_RANGE, THRESHOLD_RANGE, Settings, get_settings

logger = logging.getLogger(__name__)

OUTPUT_KINDS = ("wav", "video", "report")


@dataclass
class RepairOptions:
    planner: str = "rules"
    max_rounds: int = 3
    threshold: float = 0.85
    outputs: tuple[str, ...] = OUTPUT_KINDS

    @classmethod
    def from_settings(cls, settings: Settings, *, planner: Any = None, max_rounds: Any = None,
                      threshold: Any = None, outputs: Any = None) -> RepairOptions:
        """A job's or command's choices (None: not given) over the Settings defaults."""
        return cls(
            planner=backend_name(settings, "planner", planner),
            max_rounds=int(settings.max_rounds if max_rounds is None else max_rounds),
            threshold=float(settings.threshold if threshold is None else threshold),
            outputs=OUTPUT_KINDS if outputs is None else tuple(outputs),
        )

    def check(self) -> None:
        """The options' rules (the API's schemas check the same ones: see ``RepairOptionsIn``)."""
        check_planner(self.planner)
        lo, hi = ROUNDS_RANGE
        if not lo <= int(self.max_rounds) <= hi:
            raise ParameterError(f"max_rounds={self.max_rounds} must be within {lo}..{hi}")
        lo_t, hi_t = THRESHOLD_RANGE
        if not lo_t <= float(self.threshold) <= hi_t:
            raise ParameterError(f"threshold={self.threshold} must be within {lo_t:g}..{hi_t:g}")
        bad = [o for o in self.outputs if o not in OUTPUT_KINDS]
        if bad or not self.outputs:
            raise ParameterError(
                f"outputs={list(self.outputs)!r}: choose from {', '.join(OUTPUT_KINDS)}"
            )


def output_paths(input_path: Path, outdir: Path, ext: str | None) -> dict[str, Path]:
    stem = input_path.stem
    paths = {
        "wav": outdir / f"{stem}.repaired.wav",
        "report": outdir / f"{stem}.report.json",
    }
    if ext:
        paths["video"] = outdir / f"{stem}.repaired{ext}"
    return paths


def analyze_file(path: Path, *, settings: Settings | None = None) -> dict[str, Any]:
    """Perception only: the measured facts and the two captions, as plain data."""
    from avagent.agent.perceive import perceive
    from avagent.service import media

    settings = settings or get_settings()
    path = Path(path)
    info = media.probe(path, max_duration_s=settings.max_duration_s)
    y, sr = media.load_audio(path, max_duration_s=settings.max_duration_s)
    frames = (
        media.load_frames(path, fps=settings.frame_rate_hz, width=settings.frame_width)
        if info.is_video
        else None
    )
    facts = perceive(y, sr=sr, frames=frames, audio_duration_s=y.shape[-1] / sr)
    captions = make_captioners(settings).describe(facts, y=y, sr=sr, frames=frames)
    return {
        "input": str(path),
        "captions": captions,
        "analysis": facts.model_dump(mode="json"),
    }


def repair_file(
    input_path: Path | str,
    outdir: Path | str,
    options: RepairOptions | None = None,
    *,
    settings: Settings | None = None,
    progress: Callable[[dict[str, Any]], None] | None = None,
    job_id: str | None = None,
) -> dict[str, Any]:
    """Repair one file; write ``<stem>.repaired.wav``, ``<stem>.repaired.<ext>`` (video inputs)
    and ``<stem>.report.json`` into ``outdir``; return the report.

    Raises :class:`MediaError` for unreadable media and :class:`ParameterError` for bad options.
    Nothing is written unless the repair succeeds, and every file is written atomically.
    """
    from avagent.agent.graph import run_agent
    from avagent.agent.state import AgentContext
    from avagent.service import media

    settings = settings or get_settings()
    options = options or RepairOptions.from_settings(settings)
    options.check()
    job_id = job_id or uuid.uuid4().hex[:8]
    input_path = Path(input_path)
    outdir = Path(outdir)
    t_start = time.perf_counter()

    def emit(event: dict[str, Any]) -> None:
        if progress is not None:
            progress(event)

    emit({"stage": "decode", "round": 0, "max_rounds": options.max_rounds, "fraction": 0.0})
    info = media.probe(input_path, max_duration_s=settings.max_duration_s)
    y, sr = media.load_audio(input_path, max_duration_s=settings.max_duration_s)
    frames = None
    if info.is_video:
        frames = media.load_frames(
            input_path, fps=settings.frame_rate_hz, width=settings.frame_width
        )
    t_decoded = time.perf_counter()

    context = AgentContext(
        planner=make_planner(settings, options.planner),
        scorer=make_scorer(settings),
        captioners=make_captioners(settings),
        max_rounds=int(options.max_rounds),
        threshold=float(options.threshold),
        progress=emit,
        job_id=job_id,
    )
    result = run_agent(y, sr=sr, frames=frames, context=context)
    t_agent = time.perf_counter()

    emit({"stage": "write", "round": len(result.rounds), "max_rounds": options.max_rounds,
          "fraction": 0.97})
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MediaError(f"cannot create output folder {outdir}: {exc}") from exc
    paths = output_paths(input_path, outdir, input_path.suffix if info.is_video else None)
    audio_out = np.asarray(result.audio, dtype=np.float32)
    written: dict[str, str] = {}
    if "wav" in options.outputs:
        written["wav"] = str(media.write_audio(paths["wav"], audio_out, sr))
    if "video" in options.outputs and "video" in paths:
        written["video"] = str(media.remux(input_path, audio_out, sr, paths["video"]))
    t_written = time.perf_counter()

    timings = {
        "decode": t_decoded - t_start,
        **result.timings_s,
        "write": t_written - t_agent,
    }
    timings["total"] = time.perf_counter() - t_start
    report = build_report(
        input_path=input_path,
        info=info,
        result=result,
        options=options,
        settings=settings,
        timings=timings,
        outputs=written,
    )
    if "report" in options.outputs:
        report["outputs"]["report"] = str(paths["report"])
        with media.atomic_output(paths["report"]) as tmp:
            tmp.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    emit({"stage": "done", "round": len(result.rounds), "max_rounds": options.max_rounds,
          "fraction": 1.0})
    logger.info("[%s] %s: %s", job_id, input_path.name, report["summary"])
    return report


def build_report(
    *,
    input_path: Path,
    info: Any,
    result: Any,
    options: RepairOptions,
    settings: Settings,
    timings: dict[str, float],
    outputs: dict[str, str],
) -> dict[str, Any]:
    chosen = result.chosen_round
    chosen_plan = result.rounds[chosen - 1].plan if chosen > 0 else None
    if chosen_plan is None:
        done = "left untouched (nothing beat the input)"
        if result.baseline.passes(options.threshold) and not any(r.plan.steps for r in result.rounds):
            done = "left untouched (nothing wrong found)"
    else:
        done = "repaired with " + chosen_plan.describe()
    verdict = "accepted" if result.accepted else "below threshold"
    summary = (
        f"{done}; alignment {result.scores.alignment:.2f}, sync {result.scores.sync:.2f} "
        f"({verdict})"
    )
    return {
        "avagent_version": __version__,
        "input": str(input_path),
        "media": {
            "container": info.container,
            "duration_s": info.duration_s,
            "sample_rate": info.sample_rate,
            "channels": info.channels,
            "video": info.is_video,
            "fps": info.fps,
            "width": info.width,
            "height": info.height,
        },
        "captions": result.captions,
        "analysis": result.facts.model_dump(mode="json"),
        "baseline": result.baseline.model_dump(),
        "rounds": [
            {
                "index": r.index,
                "planner": r.plan.planner,
                "plan": [s.model_dump() for s in r.plan.steps],
                "notes": r.plan.notes,
                "fallback": r.plan.fallback,
                "scores": r.scores.model_dump(),
                "improved": r.improved,
                "feedback": r.feedback,
            }
            for r in result.rounds
        ],
        "chosen_round": chosen,
        "accepted": result.accepted,
        "scores": result.scores.model_dump(),
        "summary": summary,
        "options": {
            "planner": options.planner,
            "max_rounds": options.max_rounds,
            "threshold": options.threshold,
        },
        "backends": {
            "perception": "embedded",
            "captioner": backend_name(settings, "captioner"),
            "planner": options.planner,
            "scorer": backend_name(settings, "scorer"),
        },
        "timings_s": {k: round(v, 4) for k, v in timings.items()},
        "realtime_factor": round(info.duration_s / max(timings["total"], 1e-9), 2),
        "outputs": dict(outputs),
    }
