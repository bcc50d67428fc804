"""Opening and probing media files: what streams a file has, its durations, and the checks before decoding."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import av
import av.error

from avagent.errors import MediaError

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]

AUDIO_EXTS: frozenset[str] = frozenset(
    {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aac", ".aiff", ".aif", ".wma"}
)
VIDEO_EXTS: frozenset[str] = frozenset(
    {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".ogv", ".mpg", ".mpeg", ".ts", ".3gp",
     ".flv", ".wmv"}
)
GAP_FILL_S = 0.1  # timestamp gaps above this are missing audio, below it container jitter
PADDING_TRIM_SAMPLES = 2048  # at most this much trailing audio beyond the declared duration
TRUNCATED_RATIO = 0.9  # decoding less than this share of the declared duration means truncated

# Formats whose declared duration is an estimate (from a bitrate), not a fact: no truncation
# check there, or a valid VBR mp3 would be refused.
ESTIMATED_DURATION_FORMATS = frozenset({"mp3", "aac", "ac3", "eac3", "dts", "mpeg"})
# Demuxers that open still images: a PNG renamed .mp4 must not count as a video.
_IMAGE_FORMATS = frozenset({"image2", "image2pipe"})
BRAND_KEYS = frozenset({"major_brand", "minor_version", "compatible_brands", "encoder"})



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


def as_path(path: PathLike) -> Path:
    return Path(os.fspath(path))


def open_input(path: Path) -> av.container.InputContainer:
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
            f"{path}: not a media file FFmpeg can read, or corrupt/truncated ({why(exc)})"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise MediaError(f"{path}: cannot open ({exc})") from None
    if container.format.name in _IMAGE_FORMATS or container.format.name.endswith("_pipe"):
        container.close()
        raise MediaError(
            f"{path}: is a still image ({container.format.name}), not an audio or video file"
        )
    return container


def why(exc: BaseException) -> str:
    if isinstance(exc, av.error.FFmpegError):
        return exc.strerror or str(exc)
    return str(exc)


def is_cover_art(stream: av.stream.Stream) -> bool:
    disp = stream.disposition
    return bool(disp & av.stream.Disposition.attached_pic)


def video_stream(container: av.container.InputContainer) -> av.video.stream.VideoStream | None:
    """The first real video stream, else the first one (cover art), else None."""
    videos = [s for s in container.streams.video if s.codec_context is not None]
    for s in videos:
        if not is_cover_art(s):
            return s
    return videos[0] if videos else None


def audio_stream(container: av.container.InputContainer) -> av.audio.stream.AudioStream | None:
    audios = [s for s in container.streams.audio if s.codec_context is not None]
    return audios[0] if audios else None


def stream_duration(stream: av.stream.Stream) -> float | None:
    if stream.duration is not None and stream.time_base is not None and stream.duration > 0:
        return float(stream.duration * stream.time_base)
    return None


def stream_start(stream: av.stream.Stream) -> float | None:
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


def read_info(container: av.container.InputContainer, path: Path) -> MediaInfo:
    astream = audio_stream(container)
    vstream = video_stream(container)
    real_video = vstream is not None and not is_cover_art(vstream)
    audio_dur = stream_duration(astream) if astream is not None else None
    video_dur = stream_duration(vstream) if real_video and vstream is not None else None
    if container.duration is not None and container.duration > 0:
        duration = container.duration / av.time_base
    else:
        duration = max(audio_dur or 0.0, video_dur or 0.0)
    if duration <= 0 and (astream is not None or real_video):
        try:
            duration = _scan_duration(container)
        except av.error.FFmpegError as exc:
            raise MediaError(f"{path}: corrupt or truncated container ({why(exc)})") from None
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


def check_limits(info: MediaInfo, max_duration_s: float | None) -> None:
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
    p = as_path(path)
    with open_input(p) as container:
        info = read_info(container, p)
    check_limits(info, max_duration_s)
    return info
