"""Captioners over OpenAI-compatible multimodal LLM servers, each seeing only its own modality.

``llm-audio`` sends the sound track, and nothing else, as an ``input_audio`` content part (base64
WAV, 16 kHz mono PCM16: what Qwen2-Audio and Qwen2.5-Omni on vLLM take; Crab+ is built on the
latter). ``llm-video`` sends sampled frames, and nothing else, as ``image_url`` parts with JPEG
data URIs (Qwen2.5-VL, Video-LLaVA on vLLM). Neither prompt mentions the other modality, so a
planner reading both captions sees a mismatch the way the paper's two mLLM captioners let it.

The embedded captions (:mod:`avagent.agent.captions`, rendered from measured facts) are the
fallback: when no server is configured, and when the server fails (unreachable, timeout, 4xx/5xx,
an empty answer). A failing server is reported once per process with its URL, then skipped for
``retry_after_s`` so a batch does not pay the timeout on every clip.
"""

from __future__ import annotations

import io
import logging
import threading
import time
import wave
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from avagent.agent.captions import audio_caption, video_caption
from avagent.errors import BackendError, ParameterError
from avagent.perception.facts import AudioFacts, VideoFacts
from avagent.perception.frames import FrameSet

logger = logging.getLogger(__name__)

AUDIO_SR = 16000  # Qwen2-Audio's (Whisper) front end; vLLM resamples anything else anyway

AUDIO_SYSTEM = (
    "You are an experienced sound editor. You are given only a sound recording; you cannot see "
    "any picture. Describe what you hear."
)
AUDIO_PROMPT = (
    "Describe this sound track in one paragraph for a sound editor: what it contains (speech, "
    "music, ambience, effects), any background noise and its kind (hiss, hum, wind, crowd), the "
    "level (quiet, normal, loud), distortion or clipping, and dropouts or gaps. Speak only of "
    "the sound."
)
VISION_SYSTEM = (
    "You are an experienced film editor. You are given only still frames from a video; you "
    "cannot hear any sound. Describe what you see."
)
VISION_PROMPT = (
    "These {n} frames are sampled from a {dur:.1f} s video at {times}. Describe the picture in "
    "one paragraph for a sound editor: the scene, who or what is visible, what moves or happens "
    "and when (people speaking, objects hitting, cuts between shots). Speak only of the picture."
)


@dataclass
class CaptionRun:
    """What the last caption call did (for report.json ``backends`` and the latency table)."""

    source: str  # "llm-audio" / "llm-video" when the server answered, else "embedded"
    latency_s: float = 0.0
    error: str = ""
    model: str = ""


# Per process: servers already reported as failing, and until when each is skipped.
_REPORTED: set[str] = set()
_DOWN_UNTIL: dict[str, float] = {}
_STATE_LOCK = threading.Lock()


def wav_bytes(y: np.ndarray, *, sr: int, max_s: float) -> bytes:
    """``y`` (``(..., n)``) as a mono 16 kHz PCM16 WAV file of at most ``max_s`` seconds."""
    from scipy.signal import resample_poly

    x = np.asarray(y, dtype=np.float64)
    if x.ndim > 1:
        x = x.reshape(-1, x.shape[-1]).mean(axis=0)
    x = x[: round(max_s * sr)]
    if sr != AUDIO_SR:
        from math import gcd

        g = gcd(int(sr), AUDIO_SR)
        x = resample_poly(x, AUDIO_SR // g, int(sr) // g)
    pcm = (np.clip(x, -1.0, 1.0) * 32767.0).round().astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(AUDIO_SR)
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


def jpeg_bytes(frame: np.ndarray, *, quality: int = 85) -> bytes:
    """One frame (``(H, W)`` gray or ``(H, W, 3)`` RGB, uint8) as JPEG bytes."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(frame, dtype=np.uint8)).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def sample_indices(n_frames: int, k: int) -> np.ndarray:
    """``k`` frame indices spread evenly (centres of ``k`` equal spans) over ``n_frames``."""
    k = min(k, n_frames)
    return np.unique(((np.arange(k) + 0.5) * n_frames / k).astype(int).clip(0, n_frames - 1))


class _LLMCaptioner:
    """Shared machinery: the client, the once-per-process report, the fallback."""

    name: str
    modality: ClassVar[str]

    def __init__(
        self,
        base_url: str = "",
        model: str = "",
        *,
        audio_base_url: str | None = None,
        audio_model: str | None = None,
        video_base_url: str | None = None,
        video_model: str | None = None,
        api_key: str = "EMPTY",
        timeout_s: float = 60.0,
        max_retries: int = 1,
        max_tokens: int = 200,
        retry_after_s: float = 60.0,
        n_frames: int = 8,
        max_audio_s: float = 30.0,
    ) -> None:
        # One set of keyword arguments builds both captioners of a pair (the registry's
        # get_captioners): each takes its own modality's ``*_base_url`` / ``*_model`` when given.
        own = {"audio": (audio_base_url, audio_model), "video": (video_base_url, video_model)}
        url, name = own[self.modality]
        base_url = base_url if url is None else url
        model = model if name is None else name
        if max_tokens < 1:
            raise ParameterError(f"max_tokens={max_tokens} must be >= 1")
        if not 1 <= n_frames <= 64:
            raise ParameterError(f"n_frames={n_frames} must be within 1..64")
        if max_audio_s <= 0:
            raise ParameterError(f"max_audio_s={max_audio_s} must be > 0")
        self.base_url = base_url
        self.model = model
        self.max_tokens = int(max_tokens)
        self.retry_after_s = float(retry_after_s)
        self.n_frames = int(n_frames)
        self.max_audio_s = float(max_audio_s)
        self.client: Any = None
        if base_url:
            from avagent.agent.llm import LLMClient

            self.client = LLMClient(base_url, model, api_key=api_key, timeout_s=timeout_s,
                                    max_retries=max_retries, concurrency=2, dialect="none")
        self.last = CaptionRun(source="embedded")

    @property
    def configured(self) -> bool:
        return self.client is not None

    def _ask(self, parts: list[dict[str, Any]], system: str) -> str:
        """One chat call; raises BackendError for any failure, including an empty answer."""
        messages = [{"role": "system", "content": system}, {"role": "user", "content": parts}]
        result = self.client.chat(messages, max_tokens=self.max_tokens, temperature=0.0, seed=0)
        text = " ".join(result.text.split())
        if not text:
            raise BackendError(f"{self.client.base_url}: empty caption (finish {result.finish_reason})")
        self.last.model = result.model
        return text

    def _with_fallback(self, build: Any, embedded: Any) -> str:
        if self.client is None:
            self.last = CaptionRun(source="embedded")
            return str(embedded())
        url = self.client.base_url
        now = time.monotonic()
        with _STATE_LOCK:
            skip = _DOWN_UNTIL.get(url, 0.0) > now
        if skip:
            self.last = CaptionRun(source="embedded", error=f"{url} skipped (failed recently)")
            return str(embedded())
        t0 = time.perf_counter()
        try:
            parts, system = build()
            text = self._ask(parts, system)
        except BackendError as exc:
            with _STATE_LOCK:
                first = url not in _REPORTED
                _REPORTED.add(url)
                _DOWN_UNTIL[url] = time.monotonic() + self.retry_after_s
            (logger.warning if first else logger.debug)(
                "%s captioner at %s failed (%s); using the embedded caption", self.modality, url, exc
            )
            self.last = CaptionRun(source="embedded", latency_s=time.perf_counter() - t0,
                                   error=str(exc))
            return str(embedded())
        self.last = CaptionRun(source=self.name, latency_s=time.perf_counter() - t0,
                               model=self.last.model)
        return text

    def close(self) -> None:
        if self.client is not None:
            self.client.close()


class AudioLLMCaptioner(_LLMCaptioner):
    """Audio caption from an audio LLM (``input_audio``); sees the sound and nothing else."""

    name = "llm-audio"
    modality: ClassVar[str] = "audio"

    def messages(self, y: np.ndarray, *, sr: int) -> tuple[list[dict[str, Any]], str]:
        from avagent.agent.llm import audio_part, text_part

        wav = wav_bytes(y, sr=sr, max_s=self.max_audio_s)
        return [text_part(AUDIO_PROMPT), audio_part(wav, format="wav")], AUDIO_SYSTEM

    def caption(self, facts: AudioFacts, *, y: np.ndarray, sr: int) -> str:
        """The sound track's caption (the first ``max_audio_s`` seconds go to the server)."""
        return self._with_fallback(lambda: self.messages(y, sr=sr), lambda: audio_caption(facts))


class VisionLLMCaptioner(_LLMCaptioner):
    """Video caption from a vision LLM (frames as images); sees the picture and nothing else."""

    name = "llm-video"
    modality: ClassVar[str] = "video"

    def messages(self, frames: FrameSet) -> tuple[list[dict[str, Any]], str]:
        from avagent.agent.llm import image_part, text_part

        if frames.frames.shape[0] == 0:
            raise BackendError("no frames to caption")
        # Colour frames when the decoder supplied them (``FrameSet.colour``), else the gray ones.
        pictures = getattr(frames, "colour", None)
        pictures = frames.frames if pictures is None else pictures
        idx = sample_indices(frames.frames.shape[0], self.n_frames)
        times = ", ".join(f"{frames.times_s[i]:.1f} s" for i in idx)
        prompt = VISION_PROMPT.format(n=idx.size, dur=frames.duration_s, times=times)
        images = [image_part(jpeg_bytes(pictures[i]), mime="image/jpeg") for i in idx]
        return [text_part(prompt), *images], VISION_SYSTEM

    def caption(self, facts: VideoFacts, *, frames: FrameSet | None) -> str:
        """The picture's caption from ``n_frames`` frames spread over the clip."""
        if frames is None:
            self.last = CaptionRun(source="embedded", error="no frames")
            return video_caption(facts)
        return self._with_fallback(lambda: self.messages(frames), lambda: video_caption(facts))


def reset_reports() -> None:
    """Forget which servers were reported down (tests; a long-lived process after a fix)."""
    with _STATE_LOCK:
        _REPORTED.clear()
        _DOWN_UNTIL.clear()
