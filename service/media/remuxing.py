"""Remuxing: the new audio encoded beside the copied video packets, starting at the video's start."""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error
import numpy as np

from avagent.errors import MediaError
from avagent.service.media.container import (
    BRAND_KEYS,
    PathLike,
    as_path,
    audio_stream,
    check_limits,
    is_cover_art,
    open_input,
    read_info,
    stream_start,
    video_stream,
    why,
)
from avagent.service.media.spool import Spool
from avagent.service.media.write import as_channels_first, atomic_output, refuse_overwrite

logger = logging.getLogger(__name__)

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
    src = as_path(video_path)
    dest = as_path(out_path)
    refuse_overwrite(dest, [src])
    arr = y if isinstance(y, Spool) else as_channels_first(y, sr)  # a Spool: read in blocks
    sr = int(sr)
    with open_input(src) as inp:
        info = read_info(inp, src)
        check_limits(info, None)
        vin = video_stream(inp)
        if vin is None or is_cover_art(vin):
            raise MediaError(f"{src}: has no video stream to copy into {dest.name}")
        ain = audio_stream(inp)
        origin = stream_start(vin) or 0.0
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
                    f"{dest}: cannot write ({why(exc)}); the {vin.codec_context.name} video "
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
            {k: v for k, v in inp.metadata.items() if k.lower() not in BRAND_KEYS}
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
