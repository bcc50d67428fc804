"""Sampling video frames as small grayscale arrays, one decoded frame at a time."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import av.error
import numpy as np

from avagent.errors import MediaError, ParameterError
from avagent.perception.frames import FrameSet
from avagent.service.media.container import (
    ESTIMATED_DURATION_FORMATS,
    TRUNCATED_RATIO,
    PathLike,
    as_path,
    is_cover_art,
    open_input,
    probe,
    stream_start,
    video_stream,
    why,
)

logger = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------
# Video frames


def iter_frames(path: PathLike, *, fps: float, width: int) -> Iterator[tuple[float, np.ndarray]]:
    """Decode video frames one at a time and yield about ``fps`` of them per second.

    The frame nearest to each point of a ``1/fps`` grid is kept (by timestamp, so variable
    frame rates work); a stream slower than ``fps`` yields each of its frames once. Only kept
    frames are scaled (area averaging) and converted to gray.

    Parameters
    ----------
    path : path-like
        Video file.
    fps : float
        Sampling rate in frames per second (> 0).
    width : int
        Output width in pixels; height follows the display aspect ratio.

    Yields
    ------
    (t_s, frame)
        Seconds from the start of the video stream, and a ``(H, width)`` uint8 gray frame.

    Raises
    ------
    MediaError
        When opening (eagerly, before the first ``next``): no video stream or unreadable file;
        while iterating: corrupt data.
    """
    container, stream, p = _open(path, fps, width)
    return ((t, g) for t, g, _ in _frames(container, stream, p, float(fps), int(width)))


def _open(
    path: PathLike, fps: float, width: int
) -> tuple[av.container.InputContainer, av.video.stream.VideoStream, Path]:
    """Validate the arguments and open the video stream (closed again on failure)."""
    if not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
        raise ParameterError(f"fps={fps!r} must be a positive number of frames per second")
    if isinstance(width, bool) or not isinstance(width, (int, np.integer)) or width < 1:
        raise ParameterError(f"width={width!r} must be a positive number of pixels")
    p = as_path(path)
    container = open_input(p)
    try:
        stream = video_stream(container)
        if stream is None or is_cover_art(stream):
            what = "only cover art" if stream is not None else "no video stream"
            raise MediaError(f"{p}: has {what}; a video is needed for frames")
    except BaseException:
        container.close()
        raise
    return container, stream, p


def _output_height(stream: av.video.stream.VideoStream, width: int) -> int:
    cc = stream.codec_context
    sar = stream.sample_aspect_ratio or cc.sample_aspect_ratio or Fraction(1)
    if sar <= 0:
        sar = Fraction(1)
    display_w = cc.width * float(sar)
    return max(1, round(width * cc.height / display_w)) if display_w > 0 else width


def _frames(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    path: Path,
    fps: float,
    width: int,
    colour: bool = False,
) -> Iterator[tuple[float, np.ndarray, np.ndarray | None]]:
    from av.video.reformatter import Interpolation, VideoReformatter

    with container:
        cc = stream.codec_context
        cc.thread_type = "AUTO"
        cc.thread_count = 0
        height = _output_height(stream, width)
        rate = stream.average_rate or stream.guessed_rate
        half_period = 0.5 / float(rate) if rate else 0.0
        origin = stream_start(stream)
        reformatter = VideoReformatter()  # reused: keeps its scaler context between frames
        next_k = 0
        count = 0
        last_t = -math.inf
        offset = 0.0
        try:
            for frame in container.decode(stream):
                if frame.pts is not None and frame.time_base is not None:
                    t = float(frame.pts * frame.time_base)
                else:
                    t = count * 2 * half_period  # no timestamps: assume a constant rate
                count += 1
                if origin is None:
                    origin = t
                t = t - origin + offset
                if t < last_t - half_period:
                    # Timestamps jumped back (a concatenated file): continue the timeline, as
                    # the audio decoder and remux() do.
                    offset += last_t + 2 * half_period - t
                    t = last_t + 2 * half_period
                last_t = t
                k = math.floor((t + half_period) * fps + 1e-9)
                if k < next_k:
                    continue
                next_k = k + 1
                small = reformatter.reformat(
                    frame, width=width, height=height, format="gray",
                    interpolation=Interpolation.AREA,
                )
                rgb = None
                if colour:  # same size, RGB (a flash may change hue more than grey level)
                    rgb = reformatter.reformat(
                        frame, width=width, height=height, format="rgb24",
                        interpolation=Interpolation.AREA,
                    ).to_ndarray()
                yield t, small.to_ndarray(), rgb
        except av.error.FFmpegError as exc:
            raise MediaError(f"{path}: corrupt or truncated video ({why(exc)})") from None


def load_frames(
    path: PathLike,
    *,
    fps: float = 25.0,
    width: int = 160,
    max_duration_s: float | None = None,
    colour: bool = False,
) -> FrameSet:
    """Sample a video's frames (see :func:`iter_frames`) into a :class:`FrameSet`.

    ``colour``: also keep each sampled frame in RGB at the same size (``FrameSet.colour``), for
    the sync estimator's visual events; 3x the memory of the grey frames.

    ``sample_fps`` is ``min(fps, native fps)``: a slower stream is not padded with copies.

    Raises
    ------
    MediaError
        No video stream (audio files, cover art only), unreadable, zero frames, too long.
    """
    p = as_path(path)
    info = probe(p, max_duration_s=max_duration_s)
    if not info.is_video:
        what = "only cover art" if info.has_video else "no video stream"
        raise MediaError(f"{p}: has {what}; a video is needed for frames")
    times: list[float] = []
    # filled in place (no list of frames stacked at the end: that held the film twice)
    expect = math.ceil((info.video_duration_s or info.duration_s) * min(fps, info.fps or fps)) + 2
    store: np.ndarray | None = None
    rgbs: list[np.ndarray] = []
    container, stream, p = _open(p, fps, width)
    for t, frame, rgb in _frames(container, stream, p, float(fps), int(width), colour):
        if store is None:
            store = np.empty((max(expect, 1), *frame.shape), frame.dtype)
        elif len(times) == store.shape[0]:
            store = np.concatenate([store, np.empty_like(store[: max(16, len(times) // 8)])])
        store[len(times)] = frame
        times.append(t)
        if rgb is not None:
            rgbs.append(rgb)
        if max_duration_s is not None and t > max_duration_s:
            raise MediaError(
                f"{p}: video runs past the limit of {max_duration_s:g} s (AVAGENT_MAX_DURATION_S)"
            )
    if store is None:
        raise MediaError(f"{p}: video stream has no decodable frames")
    native_fps = info.fps or fps
    video_dur = info.video_duration_s or info.duration_s
    if times[-1] < TRUNCATED_RATIO * video_dur - 0.5 and info.container not in (
        ESTIMATED_DURATION_FORMATS
    ):
        raise MediaError(
            f"{p}: truncated or corrupt: frames stop at {times[-1]:.2f} s of a declared "
            f"{video_dur:.2f} s"
        )
    return FrameSet(
        # a view when the estimate was close (no second copy), else a copy that frees the rest
        frames=store[: len(times)] if len(times) >= 0.9 * store.shape[0] else store[: len(times)].copy(),
        times_s=np.asarray(times, dtype=np.float64),
        sample_fps=float(min(fps, native_fps)),
        fps=float(native_fps),
        width=int(info.width or 0),
        height=int(info.height or 0),
        duration_s=float(video_dur),
        colour=np.stack(rgbs) if colour else None,
    )
