"""``avagent apply ACTION INPUT OUTPUT --param k=v ...``: one action on one file.

For users who already know the fault. OUTPUT's suffix decides what is written: ``.wav`` or
``.flac`` gives the processed audio at the input's sample rate and channel count; a video suffix
(for a video input) gives the video with its video stream copied and the processed audio as its
sound track. The input is never overwritten.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from avagent.errors import ParameterError

logger = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", metavar="ACTION", help="action name (see `avagent actions`)")
    p.add_argument("input", metavar="INPUT", type=Path, help="audio or video file")
    p.add_argument(
        "output",
        metavar="OUTPUT",
        type=Path,
        help=".wav/.flac for audio; a video suffix (.mp4, .mkv, ...) to remux a video input",
    )
    p.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="action parameter; VALUE is read as JSON when it parses (3, -1.5, true, null), "
        "else as text. Repeat for several.",
    )
    p.add_argument(
        "--subtype",
        choices=["PCM_16", "PCM_24", "PCM_32", "FLOAT"],
        default=None,
        help="sample encoding of a .wav/.flac OUTPUT (default PCM_16)",
    )


def parse_params(items: list[str]) -> dict[str, Any]:
    """``["gain_db=-3", "mode=fast"]`` -> ``{"gain_db": -3, "mode": "fast"}``.

    >>> parse_params(["gain_db=-3", "stationary=true", "name=hum"])
    {'gain_db': -3, 'stationary': True, 'name': 'hum'}
    """
    params: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ParameterError(f"--param {item!r} must look like KEY=VALUE")
        if key in params:
            raise ParameterError(f"--param {key} is given twice")
        try:
            params[key] = json.loads(raw)
        except ValueError:
            params[key] = raw
    return params


def run(args: argparse.Namespace) -> int:
    from avagent.actions import apply_action, get_action
    from avagent.service import media
    from avagent.service.settings import get_settings

    params = parse_params(args.param)
    get_action(args.action)  # unknown names fail before any decoding
    src: Path = args.input
    dest: Path = args.output
    media.refuse_overwrite(dest, [src])
    suffix = dest.suffix.lower()
    is_audio_out = suffix in media.AUDIO_WRITE_EXTS
    if not is_audio_out and suffix not in media.VIDEO_EXTS:
        raise ParameterError(
            f"OUTPUT {dest} has an unknown suffix {suffix or '(none)'!r}: use .wav or .flac "
            f"for audio, or one of {', '.join(sorted(media.VIDEO_EXTS))} for a video"
        )
    if not is_audio_out and args.subtype:
        raise ParameterError(f"--subtype applies to .wav/.flac outputs, not {suffix}")

    settings = get_settings()
    info = media.probe(src, max_duration_s=settings.max_duration_s)
    if not is_audio_out and not info.is_video:
        raise ParameterError(
            f"OUTPUT {dest} is a video but INPUT {src} has no video stream; "
            "write .wav or .flac instead"
        )
    y, sr = media.load_audio(src, max_duration_s=settings.max_duration_s)
    logger.info("action=%s input=%s params=%s", args.action, src, params)
    out = apply_action(args.action, y, sr=sr, **params)
    if is_audio_out:
        media.write_audio(dest, out, sr, subtype=args.subtype, inputs=[src])
    else:
        media.remux(src, out, sr, dest)
    print(
        f"{args.action}: {src} -> {dest} ({out.shape[-1] / sr:.2f} s, {sr} Hz, "
        f"{out.shape[0] if out.ndim > 1 else 1} ch)"
    )
    return 0
