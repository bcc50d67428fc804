"""Captions: each report rendered to one paragraph of plain English, as the paper's mLLM does.

The audio caption only speaks of sound and the video caption only of the picture, so a planner
reading both sees a mismatch the way a person comparing two descriptions would.

Captioners are interchangeable, one registry (:data:`CAPTIONERS`, ``name -> "module:Class"``,
imported lazily; :func:`get_captioner`), one protocol per modality:

* :class:`AudioCaptioner` ``caption(facts: AudioFacts, *, y, sr) -> str`` sees the sound only
  (the measured facts and the waveform, for an audio LLM);
* :class:`VideoCaptioner` ``caption(facts: VideoFacts, *, frames) -> str`` sees the picture only
  (the measured facts and the sampled frames, for a vision LLM).

The graph reaches them through ``AgentContext.captioners`` (:class:`Captioners`), whose
:meth:`Captioners.describe` hands each one its own modality and nothing else. The embedded
captioners (:func:`audio_caption`, :func:`video_caption` over the facts) are the first entries.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol

import numpy as np

from avagent.errors import ParameterError
from avagent.perception.facts import AudioFacts, Facts, NoiseKind, SyncFacts, VideoFacts
from avagent.perception.frames import FrameSet
from avagent.perception.tags import AudioTags

Modality = Literal["audio", "video"]

_NOISE_WORDS = {
    NoiseKind.BROADBAND: "steady broadband hiss",
    NoiseKind.LOW_RUMBLE: "low-frequency rumble (wind or traffic)",
    NoiseKind.HUM: "tonal mains hum",
    NoiseKind.CLICKS: "impulsive clicks",
    NoiseKind.BABBLE: "background babble",
}


def _loudness_word(lufs: float) -> str:
    if lufs < -35:
        return "very quiet"
    if lufs < -26:
        return "quiet"
    if lufs <= -10:
        return "normal level"
    return "very loud"


def _spans(spans: list[tuple[float, float]], limit: int = 4) -> str:
    parts = [f"{a:.2f}–{b:.2f} s" for a, b in spans[:limit]]
    more = f" and {len(spans) - limit} more" if len(spans) > limit else ""
    return ", ".join(parts) + more


def _count(n: int, word: str) -> str:
    names = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five"}
    return f"{names.get(n, str(n))} {word}{'' if n == 1 else 's'}"


def audio_caption(a: AudioFacts) -> str:
    """One paragraph describing the sound track (never the picture)."""
    if a.silent:
        return f"Silent sound track ({a.duration_s:.1f} s, below -70 dBFS throughout)."
    if a.speech_fraction >= 0.2:
        content = "Speech"
        if a.music_likelihood >= 0.5:
            content = "Speech with music"
    elif a.music_likelihood >= 0.5:
        content = "Music"
    else:
        content = "Non-speech sound (ambience or effects)"
    s = [f"{content}, {a.duration_s:.1f} s, {a.channels} channel{'s' if a.channels > 1 else ''}"]
    s[0] += f" at {a.sample_rate} Hz"
    first = s[0]
    if a.noise_kind is NoiseKind.NONE:
        first += f"; no noise worth treating (about {a.snr_db:.0f} dB SNR)"
    elif a.noise_kind is NoiseKind.HUM:
        first += f" with {_NOISE_WORDS[a.noise_kind]}"
    else:
        first += f" over {_NOISE_WORDS[a.noise_kind]} at about {a.snr_db:.0f} dB SNR"
    parts = [first]
    if a.hum_hz is not None and a.hum_db is not None:
        parts.append(f"mains hum at {a.hum_hz:.0f} Hz, {a.hum_db:.0f} dB above the floor")
    parts.append(f"noise floor {a.noise_floor_db:.0f} dBFS")
    if a.loudness_lufs is not None:
        parts.append(
            f"loudness {a.loudness_lufs:.0f} LUFS ({_loudness_word(a.loudness_lufs)}), "
            f"peak {a.true_peak_dbtp:.1f} dBTP"
        )
    if a.clipping_fraction > 1e-4:
        parts.append(f"clipped ({100 * a.clipping_fraction:.2f} % of samples at full scale)")
    if a.dropouts:
        spans = [(d.start_s, d.end_s) for d in a.dropouts]
        parts.append(f"{_count(len(spans), 'dropout')} at {_spans(spans)}")
    else:
        parts.append("no dropouts")
    if a.speech_fraction >= 0.05:
        parts.append(f"speech in {100 * a.speech_fraction:.0f} % of the time")
    if a.speech_quality:
        q = a.speech_quality
        parts.append(
            f"speech quality (DNSMOS) {q.get('ovrl', 0):.1f}/5 overall, "
            f"{q.get('sig', 0):.1f} signal, {q.get('bak', 0):.1f} background"
        )
    if a.tags is not None:
        parts.append(_tags_phrase(a.tags))
    return "; ".join(parts) + "."


def _tags_phrase(t: AudioTags) -> str:
    heard = sorted(((v, g) for g, v in t.groups.items() if v >= 0.1), reverse=True)
    groups = ", ".join(f"{g} {100 * v:.0f} %" for v, g in heard[:5]) or "nothing definite"
    top = ", ".join(name for name, _ in t.top[:3])
    return f"heard (AudioSet tags, share of the clip): {groups}; top classes {top}"


def video_caption(v: VideoFacts) -> str:
    """One paragraph describing the picture (never the sound)."""
    head = f"Video {v.width}x{v.height} at {v.fps:.3g} fps, {v.duration_s:.1f} s"
    if v.static:
        body = "a still picture or slides with (almost) no motion"
    else:
        # motion_mean is change per sampled frame: per 80 ms (12.5 fps, where these levels
        # were set), so that smooth motion reads about the same at any sampling rate
        per_80ms = v.motion_mean * (v.sample_fps / 12.5 if v.sample_fps > 0 else 1.0)
        level = (
            "little motion"
            if per_80ms < 0.01
            else ("moderate motion" if per_80ms < 0.04 else "strong motion")
        )
        body = level
        if v.active_spans:
            spans = [(s.start_s, s.end_s) for s in v.active_spans]
            body += f", visibly active at {_spans(spans)}"
    cuts = (
        f"{_count(len(v.cuts_s), 'scene cut')} at " + ", ".join(f"{c:.2f} s" for c in v.cuts_s[:6])
        if v.cuts_s
        else "a single continuous shot"
    )
    return f"{head}: {body}; {cuts}."


def sync_caption(s: SyncFacts) -> str:
    """One sentence on how sound and picture line up (for the planner, beside both captions)."""
    if s.verdict == "cannot_tell":
        return "Whether sound and picture are in sync cannot be told from this clip."
    if s.verdict == "in_sync":
        return f"Sound and picture are in sync (within {abs(s.audio_delay_ms or 0):.0f} ms)."
    if s.verdict == "drift":
        rate = f"audio clock {s.rate:.4f}× the video's" if s.rate else "a changing offset"
        start = (
            f", offset at the start {s.audio_delay_ms:+.0f} ms"
            if s.audio_delay_ms is not None
            else ""
        )
        return f"Sound drifts against the picture: {rate}{start}."
    d = s.audio_delay_ms or 0.0
    when = "late" if d > 0 else "early"
    return f"Sound is {abs(d):.0f} ms {when} against the picture (confidence {s.confidence:.2f})."


# --------------------------------------------------------------------------- captioners


class AudioCaptioner(Protocol):
    """Describes the sound track. Gets the audio facts and the audio, never the picture."""

    name: str
    modality: ClassVar[Modality]

    def caption(self, facts: AudioFacts, *, y: np.ndarray, sr: int) -> str: ...


class VideoCaptioner(Protocol):
    """Describes the picture. Gets the video facts and the sampled frames, never the sound."""

    name: str
    modality: ClassVar[Modality]

    def caption(self, facts: VideoFacts, *, frames: FrameSet | None) -> str: ...


class EmbeddedAudioCaptioner:
    """The offline default: :func:`audio_caption` of the measured facts."""

    name = "embedded-audio"
    modality: ClassVar[Modality] = "audio"

    def caption(self, facts: AudioFacts, *, y: np.ndarray, sr: int) -> str:
        return audio_caption(facts)


class EmbeddedVideoCaptioner:
    """The offline default: :func:`video_caption` of the measured facts."""

    name = "embedded-video"
    modality: ClassVar[Modality] = "video"

    def caption(self, facts: VideoFacts, *, frames: FrameSet | None) -> str:
        return video_caption(facts)


CAPTIONERS: dict[str, str] = {
    "embedded-audio": "avagent.agent.captions:EmbeddedAudioCaptioner",
    "embedded-video": "avagent.agent.captions:EmbeddedVideoCaptioner",
    # Multimodal LLMs behind OpenAI-compatible servers; embedded captions when unset or down.
    "llm-audio": "avagent.agent.captioners_llm:AudioLLMCaptioner",
    "llm-video": "avagent.agent.captioners_llm:VisionLLMCaptioner",
}


def get_captioner(name: str, *, modality: Modality | None = None, **kwargs: Any) -> Any:
    """Instantiate captioner ``name``; an unknown name (or one of the other modality) raises
    :class:`ParameterError` listing the valid ones."""
    valid = [n for n in CAPTIONERS if modality is None or _modality_of(n) == modality]
    if name not in valid:
        kind = f"{modality} captioner" if modality else "captioner"
        raise ParameterError(f"unknown {kind} {name!r}; valid: {', '.join(valid)}")
    module, _, cls = CAPTIONERS[name].partition(":")
    return getattr(importlib.import_module(module), cls)(**kwargs)


def get_captioners(name: str = "embedded", **kwargs: Any) -> Captioners:
    """The pair a captioner backend name stands for (``Settings.captioner``): its
    ``"{name}-audio"`` and ``"{name}-video"`` entries, each built with ``kwargs``."""
    backends = sorted({n.rsplit("-", 1)[0] for n in CAPTIONERS})
    if f"{name}-audio" not in CAPTIONERS or f"{name}-video" not in CAPTIONERS:
        raise ParameterError(f"unknown captioner {name!r}; valid: {', '.join(backends)}")
    return Captioners(
        audio=get_captioner(f"{name}-audio", modality="audio", **kwargs),
        video=get_captioner(f"{name}-video", modality="video", **kwargs),
    )


def _modality_of(name: str) -> Modality:
    module, _, cls = CAPTIONERS[name].partition(":")
    return getattr(importlib.import_module(module), cls).modality


@dataclass
class Captioners:
    """The audio and video captioner of one run (``AgentContext.captioners``)."""

    audio: AudioCaptioner = field(default_factory=EmbeddedAudioCaptioner)
    video: VideoCaptioner = field(default_factory=EmbeddedVideoCaptioner)

    def describe(
        self, facts: Facts, *, y: np.ndarray, sr: int, frames: FrameSet | None
    ) -> dict[str, str]:
        """``{"audio": ..., "video": ...}``: each captioner sees only its own modality; the
        video caption is empty when there is no picture."""
        return {
            "audio": self.audio.caption(facts.audio, y=y, sr=sr),
            "video": (
                self.video.caption(facts.video, frames=frames) if facts.video is not None else ""
            ),
        }

