"""Long inputs, end to end in bounded memory: spool → perceive → excerpts → rounds → render.

:func:`avagent.service.pipeline.repair_file` sends inputs longer than ``stream_above_s`` here:

1. the audio is decoded once, block by block, into a :class:`~avagent.service.media.Spool` on
   scratch disk while windowed perception (:func:`avagent.perception.audio.analyze_stream`)
   measures it;
2. excerpts are placed over the film (on located dropouts first) and the picture is scanned once
   (:class:`~avagent.perception.longform.FrameScan`: video facts, and frames only inside the
   excerpts); sync is estimated per excerpt and combined;
3. the agent's rounds run on the excerpts (:mod:`avagent.agent.excerpts`);
4. the chosen plan is rendered over the whole spool in overlapping blocks
   (:func:`avagent.actions.stream.render`) into a second spool, which the writers read a block
   at a time (WAV/FLAC as it came, and the remuxed video).

Memory holds a few blocks, the excerpts and their frames, whatever the duration; scratch disk
holds two float32 copies of the track (4 bytes x channels x samples each).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from avagent.errors import MediaError
from avagent.memory import release
from avagent.service.settings import Settings

logger = logging.getLogger(__name__)

BLOCK_S = 10.0
Emit = Callable[[dict[str, Any]], None]


def perceive_long(path: Path, info: Any, settings: Settings, spool_dir: Path,
                  emit: Emit | None = None, *, speech_quality: bool = True) -> tuple[Any, Any]:
    """Decode ``path`` into a spool while perceiving it; scan the picture; place the excerpts.
    Returns ``(facts, excerpts)``."""
    from avagent.agent.excerpts import Excerpt, Excerpts, place
    from avagent.perception.audio import analyze_stream
    from avagent.perception.facts import Facts
    from avagent.perception.longform import FrameScan, combine_sync
    from avagent.perception.sync import estimate_sync
    from avagent.service import media

    duration = max(float(info.duration_s), 1e-6)
    spool: media.Spool | None = None

    def tee() -> Iterator[np.ndarray]:
        nonlocal spool
        for block, sr in media.iter_audio(path, max_duration_s=settings.max_duration_s,
                                          block_s=BLOCK_S):
            if spool is None:
                spool = media.Spool(spool_dir / "input.f32", block.shape[0], sr)
            spool.write(block)
            if emit is not None:
                emit({"stage": "perceive", "round": 0, "max_rounds": 0,
                      "fraction": round(0.05 * min(spool.duration_s / duration, 1.0), 4)})
            yield block

    sr0 = int(info.sample_rate or 0)
    audio = analyze_stream(tee(), sr=sr0 or 48000, speech_quality=speech_quality)
    assert spool is not None
    spool.close()
    if sr0 and sr0 != spool.sr:
        raise MediaError(f"{path}: sample rate changed while decoding")
    sr = spool.sr
    windows = place(spool.duration_s, evidence_s=[d.start_s for d in audio.dropouts])
    items = [Excerpt(start_s=a, stop_s=b) for a, b in windows]
    video = sync = None
    if info.is_video:
        first = media.iter_frames(path, fps=settings.frame_rate_hz, width=settings.frame_width)
        scan: FrameScan | None = None
        for t, frame in first:
            if scan is None:
                scan = FrameScan(windows, sample_fps=min(settings.frame_rate_hz,
                                                         info.fps or settings.frame_rate_hz),
                                 fps=float(info.fps or 0.0), width=int(info.width or 0),
                                 height=int(info.height or 0),
                                 duration_s=float(info.video_duration_s or duration))
            scan.add(t, frame)
        if scan is not None:
            video = scan.facts()
            parts = []
            for item, frames in zip(items, scan.excerpt_frames(), strict=True):
                item.frames = frames
                if frames is None:
                    parts.append((0.5 * (item.start_s + item.stop_s), None))
                    continue
                y = spool.read(round(item.start_s * sr), round(item.stop_s * sr))
                parts.append((0.5 * (item.start_s + item.stop_s),
                              estimate_sync(y, sr=sr, frames=frames)))
            sync = combine_sync(parts, audio_s=float(info.audio_duration_s or spool.duration_s),
                                video_s=float(info.video_duration_s or duration))
    release()  # perception's and the scan's temporaries back to the system before the rounds
    excerpts = Excerpts(read=spool.read, sr=sr, n=spool.shape[1], items=items,
                        loudness_lufs=audio.loudness_lufs, extra={"spool": spool})
    return Facts(audio=audio, video=video, sync=sync), excerpts


def scratch(settings: Settings) -> tempfile.TemporaryDirectory[str]:
    base = settings.scratch_dir
    if base is not None:
        Path(base).mkdir(parents=True, exist_ok=True)
    return tempfile.TemporaryDirectory(prefix="avagent-long-", dir=base)


def render_long(steps: list[tuple[str, dict[str, Any]]], excerpts: Any, spool_dir: Path,
                emit: Emit | None = None) -> Any:
    """The chosen plan over the whole spooled track, into a second spool (the writers' input)."""
    from avagent.actions.stream import render
    from avagent.service import media

    src = excerpts.extra["spool"]
    out = media.Spool(spool_dir / "output.f32", src.channels, src.sr)
    if not steps:
        blocks: Any = src.blocks(round(BLOCK_S * src.sr))
    else:
        blocks = render(steps, src.blocks(round(BLOCK_S * src.sr)), sr=src.sr,
                        channels=src.channels)
    for i, b in enumerate(blocks):
        out.write(b)
        if i % 30 == 29:
            release()
        if emit is not None:
            emit({"stage": "render", "round": 0, "max_rounds": 0,
                  "fraction": round(0.95 + 0.02 * min(out.n / max(src.n, 1), 1.0), 4)})
    return out.close()


def free_space_check(spool_dir: Path, info: Any) -> None:
    """Refuse before decoding when scratch cannot hold the two spools."""
    need = 2 * 4 * int(info.channels or 1) * int((info.sample_rate or 48000) * info.duration_s)
    have = shutil.disk_usage(spool_dir).free
    if have < need * 1.05:
        raise MediaError(
            f"scratch disk {spool_dir} has {have / 1e9:.1f} GB free; a "
            f"{info.duration_s / 60:.0f}-minute {info.channels}-channel input needs "
            f"{need / 1e9:.1f} GB (AVAGENT_SCRATCH_DIR)"
        )
