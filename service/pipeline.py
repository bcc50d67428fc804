"""One clip, end to end: decode → agent → write outputs atomically → report.json.

The CLI and the Celery worker both call :func:`repair_file`; the agent itself only sees arrays.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
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
    audio_format: str = "wav"  # the repaired audio file: wav or flac
    subtype: str | None = None  # its sample encoding; None keeps the input's (see subtype_for)

    @classmethod
    def from_settings(cls, settings: Settings, *, planner: Any = None, max_rounds: Any = None,
                      threshold: Any = None, outputs: Any = None, audio_format: Any = None,
                      subtype: Any = None) -> RepairOptions:
        """A job's or command's choices (None: not given) over the Settings defaults."""
        return cls(
            planner=backend_name(settings, "planner", planner),
            max_rounds=int(settings.max_rounds if max_rounds is None else max_rounds),
            threshold=float(settings.threshold if threshold is None else threshold),
            outputs=OUTPUT_KINDS if outputs is None else tuple(outputs),
            audio_format=str(audio_format or "wav").lower().lstrip("."),
            subtype=None if subtype is None else str(subtype).upper(),
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
        from avagent.service.media.write import AUDIO_WRITE_EXTS, subtypes

        if f".{self.audio_format}" not in AUDIO_WRITE_EXTS:
            raise ParameterError(f"format={self.audio_format!r}: choose wav or flac")
        allowed = subtypes(f".{self.audio_format}")
        if self.subtype is not None and self.subtype not in allowed:
            raise ParameterError(
                f"subtype={self.subtype!r} is not available for {self.audio_format}; use one of "
                f"{', '.join(allowed)}"
            )
        bad = [o for o in self.outputs if o not in OUTPUT_KINDS]
        if bad or not self.outputs:
            raise ParameterError(
                f"outputs={list(self.outputs)!r}: choose from {', '.join(OUTPUT_KINDS)}"
            )


OUTPUT_MARKERS = (".repaired.", ".report.json")  # names our outputs carry (repair skips them)


def is_output_name(name: str) -> bool:
    """True for a file name that ``repair`` writes (``x.repaired.wav``, ``x.report.json``)."""
    return any(m in name for m in OUTPUT_MARKERS)


def output_paths(
    input_path: Path, outdir: Path, ext: str | None, audio_ext: str = ".wav", *,
    stem: str | None = None,
) -> dict[str, Path]:
    """Where a repair of ``input_path`` writes; ``stem`` defaults to the input's stem (a batch
    keys its outputs by the source's whole name, extension included, so ``a.wav`` and ``a.flac``
    never meet)."""
    stem = stem or input_path.stem
    paths = {
        "wav": outdir / f"{stem}.repaired{audio_ext}",
        "report": outdir / f"{stem}.report.json",
    }
    if ext:
        paths["video"] = outdir / f"{stem}.repaired{ext}"
    return paths


def streams(info: Any, settings: Settings) -> bool:
    """Whether an input takes the streamed path: longer than ``stream_above_s`` for stereo,
    scaled by channel count (memory grows with channels x seconds: 5.1 streams 3x sooner)."""
    return float(info.duration_s) * max(int(info.channels or 1), 1) > 2.0 * settings.stream_above_s


def analyze_file(path: Path, *, settings: Settings | None = None) -> dict[str, Any]:
    """Perception only: the measured facts and the two captions, as plain data."""
    from avagent.agent.perceive import perceive
    from avagent.service import media

    settings = settings or get_settings()
    path = Path(path)
    info = media.probe(path, max_duration_s=settings.max_duration_s)
    if streams(info, settings):  # a film: measured from the stream
        from avagent.service import longform

        with longform.scratch(settings) as tmp:
            longform.free_space_check(Path(tmp), info)
            facts, ex = longform.perceive_long(path, info, settings, Path(tmp))
            first = ex.items[0]
            captions = make_captioners(settings).describe(
                facts, y=ex.segment(first, []), sr=ex.sr, frames=first.frames)
        return {"input": str(path), "captions": captions,
                "analysis": facts.model_dump(mode="json")}
    y, sr = media.load_audio(path, max_duration_s=settings.max_duration_s)
    frames = (
        media.load_frames(path, fps=settings.frame_rate_hz, width=settings.frame_width,
                          colour=settings.frame_colour)
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
    output_stem: str | None = None,
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
    streamed = streams(info, settings)
    context = AgentContext(
        planner=make_planner(settings, options.planner),
        scorer=make_scorer(settings),
        captioners=make_captioners(settings),
        max_rounds=int(options.max_rounds),
        threshold=float(options.threshold),
        progress=emit,
        job_id=job_id,
    )
    stream_info: dict[str, Any] | None = None  # how a long input was judged and rendered
    with ExitStack() as stack:
        audio_out: Any
        if streamed:  # a film: blocks, excerpts and spools on scratch disk (service/longform.py)
            from avagent.agent.graph import run_agent_excerpts
            from avagent.service import longform

            spool_dir = Path(stack.enter_context(longform.scratch(settings)))
            longform.free_space_check(spool_dir, info)
            facts, excerpts = longform.perceive_long(input_path, info, settings, spool_dir, emit)
            sr = excerpts.sr
            t_decoded = time.perf_counter()
            result = run_agent_excerpts(excerpts, facts=facts, sr=sr, context=context)
            stream_info = {"excerpts_s": [[e.start_s, e.stop_s] for e in excerpts.items],
                           "steps": [[n, p] for n, p in result.steps or []]}
            t_render = time.perf_counter()
            audio_out = longform.render_long(result.steps or [], excerpts, spool_dir, emit)
            stream_info["render_s"] = round(time.perf_counter() - t_render, 4)
        else:
            y, sr = media.load_audio(input_path, max_duration_s=settings.max_duration_s)
            frames = None
            if info.is_video:
                frames = media.load_frames(
                    input_path, fps=settings.frame_rate_hz, width=settings.frame_width,
                    colour=settings.frame_colour,
                )
            t_decoded = time.perf_counter()
            result = run_agent(y, sr=sr, frames=frames, context=context)
            audio_out = np.asarray(result.audio, dtype=np.float32)
        t_agent = time.perf_counter()
        written, paths = _write_outputs(input_path, outdir, info, options, audio_out, sr,
                                        output_stem, emit, len(result.rounds))
    t_written = time.perf_counter()


    timings = {
        "decode": t_decoded - t_start,
        **result.timings_s,
        **({"render": stream_info["render_s"]} if stream_info else {}),
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
    if stream_info is not None:
        report["streamed"] = stream_info
    # Where each caption came from (an LLM captioner falls back to the embedded one).
    report["backends"]["captions_from"] = {
        m: getattr(getattr(getattr(context.captioners, m), "last", None), "source", "embedded")
        for m in ("audio", "video")
    }
    if "report" in options.outputs:
        report["outputs"]["report"] = str(paths["report"])
        with media.atomic_output(paths["report"]) as tmp:
            tmp.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    emit({"stage": "done", "round": len(result.rounds), "max_rounds": options.max_rounds,
          "fraction": 1.0})
    logger.info("[%s] %s: %s", job_id, input_path.name, report["summary"])
    return report


def _write_outputs(input_path: Path, outdir: Path, info: Any, options: RepairOptions,
                   audio_out: Any, sr: int, output_stem: str | None,
                   emit: Callable[[dict[str, Any]], None], rounds: int
                   ) -> tuple[dict[str, str], dict[str, Path]]:
    """The repaired audio file and the remuxed video (``audio_out``: an array or a Spool)."""
    from avagent.service import media

    emit({"stage": "write", "round": rounds, "max_rounds": options.max_rounds, "fraction": 0.97})
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MediaError(f"cannot create output folder {outdir}: {exc}") from exc
    audio_ext = f".{options.audio_format}"
    paths = output_paths(input_path, outdir, input_path.suffix if info.is_video else None,
                         audio_ext, stem=output_stem)
    written: dict[str, str] = {}
    if "wav" in options.outputs:
        # written as it came: rate, channels, layout and bit depth of the input, unless chosen
        subtype = options.subtype or media.subtype_for(audio_ext, info.audio_subtype)
        written["wav"] = str(
            media.write_audio(
                paths["wav"], audio_out, sr, subtype=subtype, layout=info.audio_layout,
                inputs=[input_path],
            )
        )
    if "video" in options.outputs and "video" in paths:
        written["video"] = str(media.remux(input_path, audio_out, sr, paths["video"]))
    return written, paths


UNMEASURED_SYNC = ("cannot_tell", "no_picture")


def sync_verdict_of(facts: Any) -> str:
    """What perception said about sync: in_sync, offset, drift, cannot_tell, or no_picture."""
    sync = getattr(facts, "sync", None)
    return "no_picture" if sync is None else str(sync.verdict)


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
    sync_verdict = sync_verdict_of(result.facts)
    sync_text = (f"sync {result.scores.sync:.2f}" if sync_verdict not in UNMEASURED_SYNC
                 else f"sync {sync_verdict.replace('_', ' ')}")
    summary = f"{done}; alignment {result.scores.alignment:.2f}, {sync_text} ({verdict})"
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
        # The sync score of an unmeasured clip is a neutral prior, not a measured pass: say so.
        "sync_verdict": sync_verdict,
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
