"""Decoding a file's audio onto the video's timeline (see :mod:`avagent.service.media`)."""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Iterator
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
    blocks: list[np.ndarray] = []
    sr = 0
    for block, rate in iter_audio(path, max_duration_s=max_duration_s, block_s=None):
        blocks.append(block)
        sr = rate
    y = np.concatenate(blocks, axis=1) if len(blocks) > 1 else blocks[0]
    return np.ascontiguousarray(y, dtype=np.float32), sr


def iter_audio(
    path: PathLike, *, max_duration_s: float | None = None, block_s: float | None = 10.0
) -> Iterator[tuple[np.ndarray, int]]:
    """:func:`load_audio` as a stream of ``(block (channels, m) float32, sr)``: the same samples
    in the same order, ``block_s`` seconds each (the last shorter; ``None``: as decoded), so a
    film is read in bounded memory. The checks are the same; a truncated file raises after its
    last block.
    """
    p = as_path(path)
    with open_input(p) as container:
        info = read_info(container, p)
        check_limits(info, max_duration_s)
        stream = audio_stream(container)
        if stream is None:
            raise MediaError(f"{p}: has no audio stream")
        vstream = video_stream(container) if info.is_video else None
        clock = {"origin": stream_start(vstream) if vstream is not None else None}
        sr = int(stream.codec_context.sample_rate)
        got = 0
        raw = _decode_audio(container, stream, p, clock, max_duration_s)
        size = None if block_s is None else max(1, round(block_s * sr))
        for block in _trimmed(_reblocked(raw, size), stream, sr, clock):
            got += block.shape[1]
            yield block, sr
    _check_complete(info, stream_declared=info.audio_duration_s, got_s=got / sr, path=p)


def _reblocked(chunks: Iterator[np.ndarray], size: int | None) -> Iterator[np.ndarray]:
    if size is None:
        yield from chunks
        return
    buf: list[np.ndarray] = []
    have = 0
    for c in chunks:
        buf.append(c)
        have += c.shape[1]
        if have >= size:
            cat = np.concatenate(buf, axis=1)
            whole = (have // size) * size
            for i in range(0, whole, size):
                yield cat[:, i : i + size]
            rest = cat[:, whole:]
            buf, have = ([rest] if rest.shape[1] else []), rest.shape[1]
    if have:
        yield np.concatenate(buf, axis=1)


def _decode_audio(
    container: av.container.InputContainer,
    stream: av.audio.stream.AudioStream,
    path: Path,
    clock: dict[str, float | None],
    max_duration_s: float | None,
) -> Iterator[np.ndarray]:
    """Decoded chunks on the video's timeline; sets ``clock["origin"]`` (the timeline's zero)
    from the first frame of an audio-only file."""
    origin = clock["origin"]
    stream.codec_context.thread_type = "AUTO"
    sr = int(stream.codec_context.sample_rate)
    if sr <= 0:
        raise MediaError(f"{path}: audio stream has no sample rate")
    limit = None if max_duration_s is None else math.ceil(max_duration_s * sr)
    pos = 0  # samples placed so far
    started = False
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
                        origin = clock["origin"] = t  # audio-only: its own first sample is zero
                    start = round((t - origin) * sr)
                    if pos == 0 and not started:
                        if start < 0:
                            arr = arr[:, -start:]  # before the video starts: not shown, dropped
                        elif start > 0:
                            started = True
                            yield np.zeros((channels, start), np.float32)
                            pos = start
                    elif start - pos > GAP_FILL_S * sr:
                        logger.info(
                            "%s: %.3f s timestamp gap in the audio at %.3f s, filled with silence",
                            path, (start - pos) / sr, pos / sr,
                        )
                        yield np.zeros((channels, start - pos), np.float32)
                        pos = start
                if arr.shape[1]:
                    started = True
                    yield arr
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
    if pos == 0:
        raise MediaError(f"{path}: audio stream has zero samples")


def _trimmed(
    blocks: Iterator[np.ndarray], stream: av.audio.stream.AudioStream, sr: int,
    clock: dict[str, float | None],
) -> Iterator[np.ndarray]:
    """Drop trailing encoder padding: at most PADDING_TRIM_SAMPLES beyond the declared end
    (held back until the stream ends, so the blocks stay bounded)."""
    declared = stream_duration(stream)
    first = next(blocks, None)
    if first is None:
        return
    blocks = itertools.chain([first], blocks)
    if declared is None:
        yield from blocks
        return
    start = stream_start(stream) or 0.0
    end = round((start + declared - (clock["origin"] or 0.0)) * sr)
    if end <= 0:
        yield from blocks
        return
    pos = 0
    held: list[np.ndarray] = []  # samples past `end`, not yet known to be padding
    over = 0
    for b in blocks:
        if held or pos + b.shape[1] > end:
            cut = max(0, end - pos)
            if cut:
                yield b[:, :cut]
            held.append(b[:, cut:])
            over += b.shape[1] - cut
            if over > PADDING_TRIM_SAMPLES:  # real audio past the declared end: keep it all
                yield from held
                held = []
                yield from blocks
                return
        else:
            yield b
        pos += b.shape[1]


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
