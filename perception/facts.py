"""Measured facts about a clip: what perception reports and what reflection re-measures.

These models are the contract between perception (``avagent.agent.perceive``), the planners, the
reflection scorers and the benchmark. They hold measurements, never opinions; captions are
rendered from them. Times are seconds from the start of the clip, levels are dBFS / LUFS.

Sign convention for sync: ``audio_delay_ms > 0`` means the sound arrives LATER than the
picture. The repair is ``speed(offset_ms=-audio_delay_ms)`` (``offset_ms > 0`` delays audio).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from avagent.perception.content import ContentPrint
from avagent.perception.tags import AudioTags


class NoiseKind(StrEnum):
    NONE = "none"  # no noise worth treating
    BROADBAND = "broadband"  # hiss, white/pink-ish, fans
    LOW_RUMBLE = "low_rumble"  # wind, traffic rumble, handling (energy below ~200 Hz, fluctuating)
    HUM = "hum"  # tonal mains hum at 50/60 Hz (+ harmonics)
    CLICKS = "clicks"  # impulsive
    BABBLE = "babble"  # crowd / competing speech


class Span(BaseModel):
    start_s: float
    end_s: float


class Dropout(Span):
    kind: Literal["digital_silence", "gap"]  # exact zeros, or a sudden near-silent hole


class AudioFacts(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    duration_s: float
    sample_rate: int
    channels: int
    silent: bool = Field(description="no usable signal at all (below -70 dBFS RMS)")
    loudness_lufs: float | None = Field(None, description="integrated loudness, BS.1770")
    true_peak_dbtp: float | None = None
    clipping_fraction: float = Field(0.0, description="fraction of samples at full scale")
    noise_floor_db: float = Field(description="level of the quietest frames, dBFS")
    snr_db: float = Field(description="estimated signal-to-noise ratio, dB")
    noise_kind: NoiseKind = NoiseKind.NONE
    noise_confidence: float = Field(0.0, ge=0.0, le=1.0)
    hum_hz: float | None = Field(None, description="mains fundamental when hum is present")
    hum_db: float | None = Field(None, description="hum level above the local noise floor, dB")
    speech_fraction: float = Field(0.0, ge=0.0, le=1.0, description="share of time with speech")
    music_likelihood: float = Field(
        0.0, ge=0.0, le=1.0, description="sustained tonal/harmonic content (music is not noise)"
    )
    floor_confidence: float | None = Field(
        None, ge=0.0, le=1.0,
        description="confidence that the quietest moments hold the same steady noise all through "
        "the clip (a noise apart from the programme, not its own quiet parts); measured where a "
        "noise was named",
    )
    speech_quality: dict[str, float] | None = Field(
        None, description="DNSMOS (sig, bak, ovrl) where speech is present"
    )
    dropouts: list[Dropout] = Field(default_factory=list)
    tags: AudioTags | None = Field(
        None, description="AudioSet tags (YAMNet) over the clip; None without the tagger"
    )
    music_under_noise: float | None = Field(
        None, ge=0.0, le=1.0,
        description="share of patches in which the tagger hears music or singing once the "
        "measured noise is taken down (a Wiener-filtered copy): a music bed under speech that "
        "the noise hid from the tags; measured only where speech in audible noise was heard "
        "without music",
    )
    # What a repair must keep (reflection's damage check); in memory only, never serialised.
    content: SkipJsonSchema[ContentPrint | None] = Field(None, exclude=True, repr=False)


class VideoFacts(BaseModel):
    duration_s: float
    fps: float = Field(description="native frame rate of the video stream")
    width: int
    height: int
    sample_fps: float = Field(description="rate at which frames were sampled for analysis")
    motion_mean: float = Field(description="mean frame-difference energy, 0..1")
    motion: list[float] = Field(default_factory=list, description="motion timeline at sample_fps")
    cuts_s: list[float] = Field(default_factory=list, description="scene cut times")
    active_spans: list[Span] = Field(default_factory=list, description="visually active spans")
    static: bool = Field(False, description="(nearly) no motion: a still or slides")


class SyncFacts(BaseModel):
    verdict: Literal["in_sync", "offset", "drift", "cannot_tell"]
    audio_delay_ms: float | None = Field(
        None, description="> 0: sound arrives late; None when it cannot be told"
    )
    confidence: float = Field(0.0, ge=0.0, le=1.0)
    rate: float | None = Field(
        None, description="audio clock / video clock; 1.0427 for a PAL speed-up (audio fast)"
    )
    window_delays_ms: list[float] = Field(
        default_factory=list, description="per-window estimates that the verdict checks agree"
    )
    duration_ratio: float | None = Field(
        None, description="audio stream duration / video stream duration"
    )
    events_at_zero: float | None = Field(
        None, ge=0.0, le=1.0,
        description="how well the sound's onsets pair with the picture's events as the clip "
        "stands (no shift), 0 (chance) .. 1 (as well as at the best lag); graded evidence kept "
        "even when it cannot decide an offset; None with too few events",
    )


class Facts(BaseModel):
    """Everything perception measured about one clip (video and sync are None for audio-only)."""

    audio: AudioFacts
    video: VideoFacts | None = None
    sync: SyncFacts | None = None
