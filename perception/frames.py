"""Sampled video frames as the agent and reflection see them (decoded by ``avagent.service.media``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FrameSet:
    """Grayscale frames sampled at a fixed rate, with the native stream's metadata.

    ``frames`` is ``(T, H, W)`` uint8, small (e.g. 160 px wide) so a 10-minute video fits in
    memory; ``times_s`` holds each frame's presentation time in seconds. ``colour``, when the
    decoder supplies it, is the same frames in colour, ``(T, H', W', 3)`` uint8 RGB (any size:
    what a scorer or vision captioner that reads colour wants); perception reads gray only.
    """

    frames: np.ndarray  # (T, H, W) uint8
    times_s: np.ndarray  # (T,) float64, seconds
    sample_fps: float  # rate the frames were sampled at
    fps: float  # native frame rate of the stream
    width: int  # native width
    height: int  # native height
    duration_s: float  # duration of the video stream
    colour: np.ndarray | None = None  # (T, H', W', 3) uint8 RGB, optional

    def __post_init__(self) -> None:
        if self.frames.ndim != 3 or self.frames.shape[0] != self.times_s.shape[0]:
            raise ValueError(
                f"frames {self.frames.shape} and times_s {self.times_s.shape} do not match"
            )
        c = self.colour
        if c is not None and (c.ndim != 4 or c.shape[-1] != 3 or c.shape[0] != self.frames.shape[0]):
            raise ValueError(f"colour {c.shape} must be (T, H, W, 3) with T={self.frames.shape[0]}")
