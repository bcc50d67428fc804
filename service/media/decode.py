"""Decoding a file's audio onto the video's timeline (see :mod:`avagent.service.media`)."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import av
import av.error
import numpy as np

from avagent.errors import MediaError
from avagent.service.media.container import (
    ESTIMATED_DURATION_FORMATS,
    GAP_FILL_S,
    PADDING_TRIM_SAMPLES,
    TRUNCATED_RATIO,
    MediaInfo,
    PathLike,
    as_path,
    audio_stream,
    check_limits,
    open_input,
    read_info,
    stream_duration,
    stream_start,
    video_stream,
    why,
)

logger = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------
# Audio


def _frame_to_array(frame: av.AudioFrame) -> np.ndarray:
    """One decoded frame as float32 ``(channels, n)``, whatever its sample format."""
    arr = frame.to_ndarray()
    channels = frame.layout.nb_channels
    if not frame.format.is_planar:
        arr = arr.reshape(-1, channels).T
    kind = frame.format.name.rstrip("p")
    if kind == "flt":
        return arr.astype(np.float32, copy=False)
    if kind == "dbl":
        return arr.astype(np.float32)
    if kind == "u8":
        return (arr.astype(np.float32) - 128.0) / 128.0
    bits = {"s16": 15, "s32": 31, "s64": 63}.get(kind)
    if bits is None:
        raise MediaError(f"unsupported sample format {frame.format.name}")
    return (arr.astype(np.float64) / float(2**bits)).astype(np.float32)


def load_audio(path: PathLike, *, max_duration_s: float | None = None) -> tuple[np.ndarray, int]:
    """Decode the first audio stream at its native rate, all channels, as float32.

    Parameters
    ----------
    path : path-like
        Audio or video file.
    max_duration_s : float, optional
        Refuse files longer than this (seconds), before and while decoding.

    Returns
    -------
    y : np.ndarray
        ``(channels, n)`` float32 in [-1, 1] (mono is ``(1, n)``), on the video's timeline
        (see the module docstring).
    sr : int
        Native sample rate in Hz.

    Raises
    ------
    MediaError
        No audio stream, zero samples, corrupt or truncated data, too long.

    Examples
    --------
    >>> y, sr = load_audio("clip.mp4")  # doctest: +SKIP
    >>> y.shape, sr  # doctest: +SKIP
    ((2, 240000), 48000)
    """
    p = as_path(path)
    with open_input(p) as container:
        info = read_info(container, p)
        check_limits(info, max_duration_s)
        stream = audio_stream(container)
        if stream is None:
            raise MediaError(f"{p}: has no audio stream")
        vstream = video_stream(container) if info.is_video else None
        origin = stream_start(vstream) if vstream is not None else None
        y, sr = _decode_audio(container, stream, p, origin, max_duration_s)
    _check_complete(info, stream_declared=info.audio_duration_s, got_s=y.shape[1] / sr, path=p)
    return y, sr


def _decode_audio(
    container: av.container.InputContainer,
    stream: av.audio.stream.AudioStream,
    path: Path,
    origin: float | None,
    max_duration_s: float | None,
) -> tuple[np.ndarray, int]:
    stream.codec_context.thread_type = "AUTO"
    sr = int(stream.codec_context.sample_rate)
    if sr <= 0:
        raise MediaError(f"{path}: audio stream has no sample rate")
    limit = None if max_duration_s is None else math.ceil(max_duration_s * sr)
    chunks: list[np.ndarray] = []
    pos = 0  # samples placed so far
    channels: int | None = None
    bad_packets = 0
    packets = 0
    try:
        for packet in container.demux(stream):
            packets += 1
            try:
                frames = packet.decode()
            except av.error.FFmpegError as exc:
                # One damaged packet should not cost the whole file; many mean a corrupt one.
                bad_packets += 1
                logger.debug("%s: skipped an undecodable audio packet (%s)", path, why(exc))
                continue
            for frame in frames:
                if frame.sample_rate != sr:
                    raise MediaError(
                        f"{path}: sample rate changes mid-stream ({sr} -> {frame.sample_rate} Hz)"
                    )
                arr = _frame_to_array(frame)
                if channels is None:
                    channels = arr.shape[0]
                elif arr.shape[0] != channels:
                    raise MediaError(
                        f"{path}: channel count changes mid-stream ({channels} -> {arr.shape[0]})"
                    )
                if frame.pts is not None and frame.time_base is not None:
                    t = float(frame.pts * frame.time_base)
                    if origin is None:
                        origin = t  # audio-only: its own first sample is zero
                    start = round((t - origin) * sr)
                    if pos == 0 and not chunks:
                        if start < 0:
                            arr = arr[:, -start:]  # before the video starts: not shown, dropped
                        elif start > 0:
                            chunks.append(np.zeros((channels, start), np.float32))
                            pos = start
                    elif start - pos > GAP_FILL_S * sr:
                        logger.info(
                            "%s: %.3f s timestamp gap in the audio at %.3f s, filled with silence",
                            path, (start - pos) / sr, pos / sr,
                        )
                        chunks.append(np.zeros((channels, start - pos), np.float32))
                        pos = start
                if arr.shape[1]:
                    chunks.append(arr)
                    pos += arr.shape[1]
                if limit is not None and pos > limit:
                    raise MediaError(
                        f"{path}: audio runs past the limit of {max_duration_s:g} s "
                        "(AVAGENT_MAX_DURATION_S)"
                    )
    except av.error.FFmpegError as exc:
        raise MediaError(f"{path}: corrupt or truncated audio ({why(exc)})") from None
    if packets and bad_packets > max(2, packets // 10):
        raise MediaError(
            f"{path}: corrupt audio ({bad_packets} of {packets} packets could not be decoded)"
        )
    if not chunks or pos == 0:
        raise MediaError(f"{path}: audio stream has zero samples")
    y = np.concatenate(chunks, axis=1) if len(chunks) > 1 else chunks[0]
    y = _trim_padding(y, stream, sr, origin)
    return np.ascontiguousarray(y, dtype=np.float32), sr


def _trim_padding(
    y: np.ndarray, stream: av.audio.stream.AudioStream, sr: int, origin: float | None
) -> np.ndarray:
    declared = stream_duration(stream)
    if declared is None:
        return y
    start = stream_start(stream) or 0.0
    end = round((start + declared - (origin or 0.0)) * sr)
    excess = y.shape[1] - end
    if 0 < excess <= PADDING_TRIM_SAMPLES and end > 0:
        return y[:, :end]
    return y


def _check_complete(
    info: MediaInfo, *, stream_declared: float | None, got_s: float, path: Path
) -> None:
    if stream_declared is None or info.container in ESTIMATED_DURATION_FORMATS:
        return
    if got_s < TRUNCATED_RATIO * stream_declared - 0.1:
        raise MediaError(
            f"{path}: truncated or corrupt: decoded {got_s:.2f} s of a declared "
            f"{stream_declared:.2f} s"
        )
