"""Media I/O with PyAV (bundled FFmpeg): probe, decode audio, sample frames, write, remux.

Everything FFmpeg opens can be read (mp4, mkv, webm, mov, avi, ogv; wav, flac, ogg, mp3, m4a).
Audio is decoded at its native rate with all its channels as float32 ``(channels, n)``; nothing
is resampled. Video frames are decoded one at a time and only the sampled ones are kept, as small
grayscale arrays, so a long video never sits in memory.

Timeline. Audio and sampled frames share one clock whose zero is the start of the video stream
(``start_time`` of the first real video stream; for an audio-only file, its first audio sample):

* audio that starts after the video (a positive audio ``start_time``) is preceded by silence,
  audio before the video's start is dropped, and a timestamp gap of more than
  ``GAP_FILL_S`` inside the audio stream is filled with silence, so sample ``k`` plays at
  ``k / sr`` seconds on the video's timeline;
* encoder priming (AAC's 1024 leading samples) is removed by FFmpeg itself from the edit list /
  skip-samples side data; trailing encoder padding beyond the stream's declared duration (at most
  ``PADDING_TRIM_SAMPLES``) is trimmed;
* frame times are seconds on the same clock;
* timestamps that jump back (concatenated files) are continued, not obeyed, in frames and in
  remuxed packets, matching the audio, which is decoded as one continuous run.

:func:`remux` writes the new audio starting at the video's start, so a decode → remux round trip
keeps the audio where it was. The video packets are copied unchanged (no re-encode).

Truncation: :func:`probe` reads headers only; the decoders compare what they got with the
declared duration (mp4/mov, mkv/webm, flac declare one) and raise on less than 90 %. Ogg and WAV
durations come from the data actually present, so a cut file there decodes as a shorter file.

Every failure is a :class:`~avagent.errors.MediaError` naming the file and what is wrong. Writes
go to a temporary file in the destination's folder and are renamed into place on success; a
destination that is one of the inputs is refused.
"""

from __future__ import annotations

import logging
import math
import os
import secrets
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error
import numpy as np

from avagent.audio import validate_audio
from avagent.errors import MediaError, ParameterError
from avagent.perception.frames import FrameSet

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]

AUDIO_EXTS: frozenset[str] = frozenset(
    {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aac", ".aiff", ".aif", ".wma"}
)
VIDEO_EXTS: frozenset[str] = frozenset(
    {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".ogv", ".mpg", ".mpeg", ".ts", ".3gp",
     ".flv", ".wmv"}
)
# What write_audio can write, and its default and allowed sample encodings.
AUDIO_WRITE_EXTS: frozenset[str] = frozenset({".wav", ".flac"})
_SUBTYPES = {".wav": ("PCM_16", "PCM_24", "PCM_32", "FLOAT"), ".flac": ("PCM_16", "PCM_24")}

GAP_FILL_S = 0.1  # timestamp gaps above this are missing audio, below it container jitter
PADDING_TRIM_SAMPLES = 2048  # at most this much trailing audio beyond the declared duration
_TRUNCATED_RATIO = 0.9  # decoding less than this share of the declared duration means truncated

# Formats whose declared duration is an estimate (from a bitrate), not a fact: no truncation
# check there, or a valid VBR mp3 would be refused.
_ESTIMATED_DURATION_FORMATS = frozenset({"mp3", "aac", "ac3", "eac3", "dts", "mpeg"})
# Demuxers that open still images: a PNG renamed .mp4 must not count as a video.
_IMAGE_FORMATS = frozenset({"image2", "image2pipe"})
_BRAND_KEYS = frozenset({"major_brand", "minor_version", "compatible_brands", "encoder"})

# Audio codec for a remuxed track, by output suffix: (codec for <= 2 channels, for more).
_REMUX_AUDIO_CODEC: dict[str, tuple[str, str]] = {
    ".mp4": ("aac", "aac"),
    ".m4v": ("aac", "aac"),
    ".mov": ("aac", "aac"),
    ".3gp": ("aac", "aac"),
    ".mkv": ("aac", "aac"),
    ".ts": ("aac", "aac"),
    ".flv": ("aac", "aac"),
    ".webm": ("libopus", "libopus"),
    ".ogv": ("libopus", "libopus"),
    ".ogg": ("libopus", "libopus"),
    ".avi": ("libmp3lame", "ac3"),
    ".mpg": ("libmp3lame", "ac3"),
    ".mpeg": ("libmp3lame", "ac3"),
}
_BITRATE_PER_CHANNEL = {"aac": 96_000, "libopus": 64_000}
# AVI cannot say "skip the encoder's priming samples" (mp4, mkv and ogg can), so the decoded
# audio would come late by this many samples (encoder + decoder delay, measured with FFmpeg 8).
# Dropping them from the start keeps every later sample on time.
_AVI_PRIMING_SAMPLES = {"libmp3lame": 1105, "ac3": 256}


@dataclass(frozen=True)
class MediaInfo:
    """What :func:`probe` finds in a file, without decoding it.

    Durations are seconds. ``has_video`` counts any video stream, cover art included;
    :attr:`is_video` only a real one. The ``video_*`` fields describe the real video stream
    when there is one, else the cover art.
    """

    path: Path
    container: str  # FFmpeg demuxer name, e.g. "mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm"
    duration_s: float
    has_audio: bool
    has_video: bool
    sample_rate: int | None
    channels: int | None
    audio_codec: str | None
    audio_duration_s: float | None
    fps: float | None
    width: int | None
    height: int | None
    video_codec: str | None
    video_duration_s: float | None
    cover_art_only: bool = False  # the only video stream is an attached picture

    @property
    def is_video(self) -> bool:
        """True when the file has a real video stream (not just cover art / an attached pic)."""
        return self.has_video and not self.cover_art_only


# --------------------------------------------------------------------------------------------
# Opening and probing


def _as_path(path: PathLike) -> Path:
    return Path(os.fspath(path))


def _open_input(path: Path) -> av.container.InputContainer:
    if not path.exists():
        raise MediaError(f"{path}: no such file")
    if path.is_dir():
        raise MediaError(f"{path}: is a folder, not a media file")
    if path.stat().st_size == 0:
        raise MediaError(f"{path}: file is empty (0 bytes)")
    try:
        container = av.open(str(path), mode="r")
    except av.error.FFmpegError as exc:
        raise MediaError(
            f"{path}: not a media file FFmpeg can read, or corrupt/truncated ({_why(exc)})"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise MediaError(f"{path}: cannot open ({exc})") from None
    if container.format.name in _IMAGE_FORMATS or container.format.name.endswith("_pipe"):
        container.close()
        raise MediaError(
            f"{path}: is a still image ({container.format.name}), not an audio or video file"
        )
    return container


def _why(exc: BaseException) -> str:
    if isinstance(exc, av.error.FFmpegError):
        return exc.strerror or str(exc)
    return str(exc)


def _is_cover_art(stream: av.stream.Stream) -> bool:
    disp = stream.disposition
    return bool(disp & av.stream.Disposition.attached_pic)


def _video_stream(container: av.container.InputContainer) -> av.video.stream.VideoStream | None:
    """The first real video stream, else the first one (cover art), else None."""
    videos = [s for s in container.streams.video if s.codec_context is not None]
    for s in videos:
        if not _is_cover_art(s):
            return s
    return videos[0] if videos else None


def _audio_stream(container: av.container.InputContainer) -> av.audio.stream.AudioStream | None:
    audios = [s for s in container.streams.audio if s.codec_context is not None]
    return audios[0] if audios else None


def _stream_duration(stream: av.stream.Stream) -> float | None:
    if stream.duration is not None and stream.time_base is not None and stream.duration > 0:
        return float(stream.duration * stream.time_base)
    return None


def _stream_start(stream: av.stream.Stream) -> float | None:
    if stream.start_time is not None and stream.time_base is not None:
        return float(stream.start_time * stream.time_base)
    return None


def _scan_duration(container: av.container.InputContainer) -> float:
    """End of the last packet, by demuxing (no decoding); used when no header says."""
    end = 0.0
    for packet in container.demux():
        if packet.pts is None or packet.time_base is None:
            continue
        t = float((packet.pts + (packet.duration or 0)) * packet.time_base)
        end = max(end, t)
    container.seek(0)
    return end


def _info(container: av.container.InputContainer, path: Path) -> MediaInfo:
    astream = _audio_stream(container)
    vstream = _video_stream(container)
    real_video = vstream is not None and not _is_cover_art(vstream)
    audio_dur = _stream_duration(astream) if astream is not None else None
    video_dur = _stream_duration(vstream) if real_video and vstream is not None else None
    if container.duration is not None and container.duration > 0:
        duration = container.duration / av.time_base
    else:
        duration = max(audio_dur or 0.0, video_dur or 0.0)
    if duration <= 0 and (astream is not None or real_video):
        try:
            duration = _scan_duration(container)
        except av.error.FFmpegError as exc:
            raise MediaError(f"{path}: corrupt or truncated container ({_why(exc)})") from None
    fps = None
    if vstream is not None and real_video:
        rate = vstream.average_rate or vstream.guessed_rate or vstream.base_rate
        fps = float(rate) if rate else None
    return MediaInfo(
        path=path,
        container=container.format.name,
        duration_s=float(duration),
        has_audio=astream is not None,
        has_video=vstream is not None,
        sample_rate=int(astream.codec_context.sample_rate) if astream is not None else None,
        channels=int(astream.codec_context.channels) if astream is not None else None,
        audio_codec=astream.codec_context.codec.canonical_name if astream is not None else None,
        audio_duration_s=(audio_dur if audio_dur is not None else float(duration))
        if astream is not None
        else None,
        fps=fps,
        width=int(vstream.codec_context.width) if vstream is not None else None,
        height=int(vstream.codec_context.height) if vstream is not None else None,
        video_codec=vstream.codec_context.codec.canonical_name if vstream is not None else None,
        video_duration_s=(video_dur if video_dur is not None else float(duration))
        if real_video
        else None,
        cover_art_only=vstream is not None and not real_video,
    )


def _check(info: MediaInfo, max_duration_s: float | None) -> None:
    if not info.has_audio and not info.has_video:
        raise MediaError(f"{info.path}: has neither an audio nor a video stream")
    if info.duration_s <= 0:
        raise MediaError(f"{info.path}: has zero length (duration 0 s)")
    if max_duration_s is not None and info.duration_s > max_duration_s:
        raise MediaError(
            f"{info.path}: duration {info.duration_s:.1f} s is above the limit of "
            f"{max_duration_s:g} s (AVAGENT_MAX_DURATION_S)"
        )


def probe(path: PathLike, *, max_duration_s: float | None = None) -> MediaInfo:
    """Read a file's streams and durations without decoding it.

    Parameters
    ----------
    path : path-like
        Any file FFmpeg opens.
    max_duration_s : float, optional
        Refuse files longer than this (seconds).

    Returns
    -------
    MediaInfo

    Raises
    ------
    MediaError
        Missing, empty, unreadable or corrupt file, no audio or video stream, zero length, or
        longer than ``max_duration_s``.
    """
    p = _as_path(path)
    with _open_input(p) as container:
        info = _info(container, p)
    _check(info, max_duration_s)
    return info


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
    p = _as_path(path)
    with _open_input(p) as container:
        info = _info(container, p)
        _check(info, max_duration_s)
        stream = _audio_stream(container)
        if stream is None:
            raise MediaError(f"{p}: has no audio stream")
        vstream = _video_stream(container) if info.is_video else None
        origin = _stream_start(vstream) if vstream is not None else None
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
                logger.debug("%s: skipped an undecodable audio packet (%s)", path, _why(exc))
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
        raise MediaError(f"{path}: corrupt or truncated audio ({_why(exc)})") from None
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
    declared = _stream_duration(stream)
    if declared is None:
        return y
    start = _stream_start(stream) or 0.0
    end = round((start + declared - (origin or 0.0)) * sr)
    excess = y.shape[1] - end
    if 0 < excess <= PADDING_TRIM_SAMPLES and end > 0:
        return y[:, :end]
    return y


def _check_complete(
    info: MediaInfo, *, stream_declared: float | None, got_s: float, path: Path
) -> None:
    if stream_declared is None or info.container in _ESTIMATED_DURATION_FORMATS:
        return
    if got_s < _TRUNCATED_RATIO * stream_declared - 0.1:
        raise MediaError(
            f"{path}: truncated or corrupt: decoded {got_s:.2f} s of a declared "
            f"{stream_declared:.2f} s"
        )


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
    if not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
        raise ParameterError(f"fps={fps!r} must be a positive number of frames per second")
    if isinstance(width, bool) or not isinstance(width, (int, np.integer)) or width < 1:
        raise ParameterError(f"width={width!r} must be a positive number of pixels")
    p = _as_path(path)
    container = _open_input(p)
    try:
        stream = _video_stream(container)
        if stream is None or _is_cover_art(stream):
            what = "only cover art" if stream is not None else "no video stream"
            raise MediaError(f"{p}: has {what}; a video is needed for frames")
    except BaseException:
        container.close()
        raise
    return _frames(container, stream, p, float(fps), int(width))


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
) -> Iterator[tuple[float, np.ndarray]]:
    from av.video.reformatter import Interpolation, VideoReformatter

    with container:
        cc = stream.codec_context
        cc.thread_type = "AUTO"
        cc.thread_count = 0
        height = _output_height(stream, width)
        rate = stream.average_rate or stream.guessed_rate
        half_period = 0.5 / float(rate) if rate else 0.0
        origin = _stream_start(stream)
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
                yield t, small.to_ndarray()
        except av.error.FFmpegError as exc:
            raise MediaError(f"{path}: corrupt or truncated video ({_why(exc)})") from None


def load_frames(
    path: PathLike,
    *,
    fps: float = 12.5,
    width: int = 160,
    max_duration_s: float | None = None,
) -> FrameSet:
    """Sample a video's frames (see :func:`iter_frames`) into a :class:`FrameSet`.

    ``sample_fps`` is ``min(fps, native fps)``: a slower stream is not padded with copies.

    Raises
    ------
    MediaError
        No video stream (audio files, cover art only), unreadable, zero frames, too long.
    """
    p = _as_path(path)
    info = probe(p, max_duration_s=max_duration_s)
    if not info.is_video:
        what = "only cover art" if info.has_video else "no video stream"
        raise MediaError(f"{p}: has {what}; a video is needed for frames")
    times: list[float] = []
    frames: list[np.ndarray] = []
    for t, frame in iter_frames(p, fps=fps, width=width):
        times.append(t)
        frames.append(frame)
        if max_duration_s is not None and t > max_duration_s:
            raise MediaError(
                f"{p}: video runs past the limit of {max_duration_s:g} s (AVAGENT_MAX_DURATION_S)"
            )
    if not frames:
        raise MediaError(f"{p}: video stream has no decodable frames")
    native_fps = info.fps or fps
    video_dur = info.video_duration_s or info.duration_s
    if times[-1] < _TRUNCATED_RATIO * video_dur - 0.5 and info.container not in (
        _ESTIMATED_DURATION_FORMATS
    ):
        raise MediaError(
            f"{p}: truncated or corrupt: frames stop at {times[-1]:.2f} s of a declared "
            f"{video_dur:.2f} s"
        )
    return FrameSet(
        frames=np.stack(frames),
        times_s=np.asarray(times, dtype=np.float64),
        sample_fps=float(min(fps, native_fps)),
        fps=float(native_fps),
        width=int(info.width or 0),
        height=int(info.height or 0),
        duration_s=float(video_dur),
    )


# --------------------------------------------------------------------------------------------
# Writing


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.resolve() == b.resolve():
            return True
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def refuse_overwrite(output: PathLike, inputs: Iterable[PathLike]) -> None:
    """Raise :class:`MediaError` when ``output`` is the same file as any of ``inputs``."""
    out = _as_path(output)
    for inp in inputs:
        if _same_file(out, _as_path(inp)):
            raise MediaError(f"refusing to overwrite input {inp}: choose another output path")


@contextmanager
def atomic_output(path: PathLike, *, inputs: Iterable[PathLike] = ()) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it to ``path`` when the block succeeds.

    The temporary file keeps ``path``'s suffix (FFmpeg picks the format from it) and is deleted
    when the block raises. Parent folders are created. ``inputs`` are files that must never be
    overwritten.

    Examples
    --------
    >>> with atomic_output("out/clip.wav") as tmp:  # doctest: +SKIP
    ...     soundfile.write(tmp, y.T, sr)
    """
    dest = _as_path(path)
    refuse_overwrite(dest, inputs)
    if dest.is_dir():
        raise MediaError(f"{dest}: is a folder; give a file name to write")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MediaError(f"{dest}: cannot create its folder ({exc})") from None
    tmp = dest.with_name(f".{dest.stem}.{secrets.token_hex(4)}.tmp{dest.suffix}")
    try:
        yield tmp
        if not tmp.exists():
            raise MediaError(f"{dest}: nothing was written")
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _as_channels_first(y: Any, sr: Any) -> np.ndarray:
    arr = validate_audio(y, sr=sr)
    if arr.ndim == 1:
        arr = arr[np.newaxis, :]
    if arr.ndim != 2:
        raise ParameterError(f"y must be shaped (n,) or (channels, n), got {arr.shape}")
    return arr


def write_audio(
    path: PathLike,
    y: Any,
    sr: int,
    *,
    subtype: str | None = None,
    inputs: Iterable[PathLike] = (),
) -> Path:
    """Write ``y`` as WAV or FLAC (chosen by the suffix), atomically.

    Parameters
    ----------
    path : path-like
        Destination ending in ``.wav`` or ``.flac``.
    y : np.ndarray
        ``(n,)`` or ``(channels, n)`` float samples in [-1, 1]; integer encodings clip outside.
    sr : int
        Sample rate in Hz.
    subtype : str, optional
        ``"PCM_16"`` (default), ``"PCM_24"``, ``"PCM_32"`` or ``"FLOAT"`` (WAV only).
    inputs : paths
        Files that must not be overwritten (the destination may not be one of them).

    Returns
    -------
    Path
        ``path``.
    """
    import soundfile as sf

    dest = _as_path(path)
    suffix = dest.suffix.lower()
    if suffix not in AUDIO_WRITE_EXTS:
        raise ParameterError(
            f"cannot write audio as {dest.name!r}: use a .wav or .flac file name"
        )
    subtype = (subtype or "PCM_16").upper()
    if subtype not in _SUBTYPES[suffix]:
        raise ParameterError(
            f"subtype={subtype!r} is not available for {suffix}; use one of "
            f"{', '.join(_SUBTYPES[suffix])}"
        )
    arr = _as_channels_first(y, sr)
    if subtype != "FLOAT":
        peak = float(np.max(np.abs(arr)))
        if peak > 1.0:
            logger.warning("%s: peak %.2f above full scale, clipped for %s", dest, peak, subtype)
            arr = np.clip(arr, -1.0, 1.0)
    fmt = "WAV" if suffix == ".wav" else "FLAC"
    with atomic_output(dest, inputs=inputs) as tmp:
        try:
            sf.write(str(tmp), arr.T, int(sr), subtype=subtype, format=fmt)
        except (OSError, RuntimeError, sf.LibsndfileError) as exc:
            raise MediaError(f"{dest}: cannot write ({exc})") from None
    return dest


def _pick_audio_codec(suffix: str, channels: int, default: str | None) -> str:
    pair = _REMUX_AUDIO_CODEC.get(suffix)
    if pair is not None:
        return pair[0] if channels <= 2 else pair[1]
    if default and default != "none":
        return default
    raise MediaError(f"no audio codec known for {suffix!r} outputs")


def _encoder_rate(codec: str, sr: int) -> int:
    rates = av.Codec(codec, "w").audio_rates
    if not rates or sr in rates:
        return sr
    higher = [r for r in rates if r >= sr]
    return min(higher) if higher else max(rates)


def remux(
    video_path: PathLike,
    y: Any,
    sr: int,
    out_path: PathLike,
) -> Path:
    """Write ``out_path``: the video stream of ``video_path`` copied bit for bit, audio ``y``.

    The new audio is encoded with a codec the output container takes (mp4/mov/mkv: AAC,
    webm/ogv: Opus, avi: MP3 or AC-3 above two channels), starting at the video's start. It is
    cut at the input's duration so the output is not longer than the input. Container and
    stream metadata (language, handler, creation time) are copied; other streams (extra audio
    tracks, subtitles) are not.

    Parameters
    ----------
    video_path : path-like
        Source with a real video stream; never overwritten.
    y : np.ndarray
        ``(n,)`` or ``(channels, n)`` float audio.
    sr : int
        Its sample rate in Hz (resampled only if the codec cannot take it, e.g. Opus at 44.1k).
    out_path : path-like
        Destination; its suffix picks the container.

    Returns
    -------
    Path
        ``out_path``.
    """
    src = _as_path(video_path)
    dest = _as_path(out_path)
    refuse_overwrite(dest, [src])
    arr = _as_channels_first(y, sr)
    sr = int(sr)
    with _open_input(src) as inp:
        info = _info(inp, src)
        _check(info, None)
        vin = _video_stream(inp)
        if vin is None or _is_cover_art(vin):
            raise MediaError(f"{src}: has no video stream to copy into {dest.name}")
        ain = _audio_stream(inp)
        origin = _stream_start(vin) or 0.0
        # The output may not outlast the input (plus one audio frame of slack).
        end_s = max(info.duration_s, info.video_duration_s or 0.0, info.audio_duration_s or 0.0)
        end_s += 0.05
        with atomic_output(dest, inputs=[src]) as tmp:
            try:
                _write_remux(inp, vin, ain, arr, sr, origin, end_s, tmp, dest)
            except MediaError:
                raise
            except (av.error.FFmpegError, ValueError) as exc:
                raise MediaError(
                    f"{dest}: cannot write ({_why(exc)}); the {vin.codec_context.name} video "
                    f"of {src.name} may not fit a {dest.suffix} container"
                ) from None
    return dest


def _write_remux(
    inp: av.container.InputContainer,
    vin: av.video.stream.VideoStream,
    ain: av.audio.stream.AudioStream | None,
    arr: np.ndarray,
    sr: int,
    origin: float,
    end_s: float,
    tmp: Path,
    dest: Path,
) -> None:
    channels = arr.shape[0]
    out = av.open(str(tmp), mode="w")
    try:
        out.metadata.update(
            {k: v for k, v in inp.metadata.items() if k.lower() not in _BRAND_KEYS}
        )
        vout = out.add_stream_from_template(vin, opaque=True)
        vout.time_base = vin.time_base
        vout.metadata.update({k: v for k, v in vin.metadata.items() if k.lower() != "encoder"})
        vout.disposition = vin.disposition

        codec = _pick_audio_codec(dest.suffix.lower(), channels, out.default_audio_codec)
        if ain is not None and ain.codec_context.channels == channels:
            layout = ain.codec_context.layout.name
        else:
            layout = {1: "mono", 2: "stereo"}.get(channels, f"{channels}c")
        aout = out.add_stream(codec, rate=_encoder_rate(codec, sr), layout=layout)
        assert isinstance(aout, av.audio.stream.AudioStream)
        per_channel = _BITRATE_PER_CHANNEL.get(codec)
        if per_channel:
            aout.bit_rate = min(per_channel * channels, 512_000)
        if ain is not None:
            aout.metadata.update(
                {k: v for k, v in ain.metadata.items() if k.lower() != "encoder"}
            )
        logger.debug("%s: video %s copied, audio as %s %s", dest, vin.codec_context.name,
                     codec, layout)
        if dest.suffix.lower() == ".avi" and aout.rate == sr:
            arr = arr[:, _AVI_PRIMING_SAMPLES.get(codec, 0) :]

        # Interleave by time (audio up to half a second ahead of the video) so muxers that
        # buffer stay small; audio past the input's end is cut once the video's end is known.
        audio_tb = Fraction(1, sr)
        audio_start = round(origin * sr)
        chunk = 4096
        pos = 0
        unwrap = _DtsUnwrap()
        video_end = origin
        for packet in inp.demux(vin):
            if packet.dts is None and packet.pts is None:
                continue  # the demuxer's final empty packet
            unwrap(packet)
            if packet.pts is not None:
                t = float(packet.pts * packet.time_base)
                video_end = max(video_end, t + float((packet.duration or 0) * packet.time_base))
            else:
                t = video_end
            ahead = min(arr.shape[1], round((min(t + 0.5, max(end_s, video_end)) - origin) * sr))
            while pos < ahead:
                _encode_chunk(out, aout, arr[:, pos : min(pos + chunk, ahead)],
                              audio_start + pos, sr, audio_tb, layout)
                pos = min(pos + chunk, ahead)
            packet.stream = vout
            out.mux(packet)
        end = min(arr.shape[1], max(pos, round((max(video_end, end_s) - origin) * sr)))
        if end < arr.shape[1]:
            logger.info("%s: audio cut from %.3f s to the input's %.3f s", dest,
                        arr.shape[1] / sr, end / sr)
        while pos < end:
            _encode_chunk(out, aout, arr[:, pos : min(pos + chunk, end)], audio_start + pos, sr,
                          audio_tb, layout)
            pos = min(pos + chunk, end)
        out.mux(aout.encode(None))
    finally:
        out.close()


class _DtsUnwrap:
    """Keep copied packets' timestamps increasing when a file's timestamps jump back.

    Concatenated files restart their timestamps; muxers refuse that. Later packets are shifted
    to continue after the last one (the packet bytes are untouched).
    """

    def __init__(self) -> None:
        self.offset = 0
        self.last: int | None = None

    def __call__(self, packet: av.Packet) -> None:
        ts = packet.dts if packet.dts is not None else packet.pts
        if ts is None:
            return
        if self.last is not None and ts + self.offset < self.last:
            self.offset = self.last + max(int(packet.duration or 0), 1) - ts
            logger.info("timestamps jump back at packet %s; continuing the timeline", ts)
        if self.offset:
            if packet.dts is not None:
                packet.dts += self.offset
            if packet.pts is not None:
                packet.pts += self.offset
        self.last = ts + self.offset


def _encode_chunk(
    out: av.container.OutputContainer,
    aout: av.audio.stream.AudioStream,
    block: np.ndarray,
    pts: int,
    sr: int,
    time_base: Fraction,
    layout: str,
) -> None:
    frame = av.AudioFrame.from_ndarray(
        np.ascontiguousarray(block, dtype=np.float32), format="fltp", layout=layout
    )
    frame.sample_rate = sr
    frame.time_base = time_base
    frame.pts = pts
    out.mux(aout.encode(frame))
