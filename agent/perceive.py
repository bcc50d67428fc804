"""Perceive: measure the sound and the picture SEPARATELY, then how they line up.

The audio report never sees the frames and the video report never hears the audio, as the
paper's two captioners do; only the sync estimate looks at both.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from avagent.audio import validate_audio
from avagent.perception.audio import analyze_audio
from avagent.perception.facts import Facts
from avagent.perception.frames import FrameSet
from avagent.perception.sync import estimate_sync
from avagent.perception.video import analyze_video

logger = logging.getLogger(__name__)


def perceive(
    y: np.ndarray,
    *,
    sr: int,
    frames: FrameSet | None,
    audio_duration_s: float | None = None,
    speech_quality: bool = True,
    timings: dict[str, float] | None = None,
) -> Facts:
    """Measure one clip: audio facts, video facts and audio-visual sync.

    Parameters
    ----------
    y : np.ndarray
        Audio ``(..., n)`` at its native rate and channels.
    sr : int
        Sample rate in Hz.
    frames : FrameSet or None
        Sampled frames; ``None`` for audio-only input (then ``video`` and ``sync`` are None).
    audio_duration_s : float, optional
        Declared duration of the audio stream (for the audio/video duration ratio).
    speech_quality : bool
        Run DNSMOS where speech is present (the costliest step).
    timings : dict, optional
        Filled with seconds per stage.

    Returns
    -------
    Facts
    """
    y = validate_audio(y, sr=sr)
    t = time.perf_counter()
    audio = analyze_audio(y, sr=sr, speech_quality=speech_quality, timings=timings)
    t_audio = time.perf_counter()
    video = sync = None
    if frames is not None and frames.frames.shape[0] > 0:
        video = analyze_video(frames)
        t_video = time.perf_counter()
        sync = estimate_sync(y, sr=sr, frames=frames, audio_duration_s=audio_duration_s)
        if timings is not None:
            timings["video"] = round(t_video - t_audio, 4)
            timings["sync"] = round(time.perf_counter() - t_video, 4)
    if timings is not None:
        timings["audio"] = round(t_audio - t, 4)
        timings["total"] = round(time.perf_counter() - t, 4)
    logger.debug("perceived %.1f s clip in %.3f s", audio.duration_s, time.perf_counter() - t)
    return Facts(audio=audio, video=video, sync=sync)
