"""Captioners over OpenAI-compatible servers: request shapes (each sees only its modality), the
real llama.cpp server with SmolLM2-135M, and the fallback to the embedded captions on faults."""

from __future__ import annotations

import base64
import io
import logging
import re
import socket
import time
import wave

import numpy as np
import pytest
from PIL import Image

from avagent.agent.captioners_llm import (
    AudioLLMCaptioner,
    VisionLLMCaptioner,
    reset_reports,
    sample_indices,
    wav_bytes,
)
from avagent.agent.captions import audio_caption, video_caption
from avagent.agent.perceive import perceive
from avagent.errors import ParameterError
from tests.agent.openai_stub import chat_reply
from tests.synth import moving_block_av


@pytest.fixture(autouse=True)
def _fresh_reports():
    reset_reports()
    yield
    reset_reports()


@pytest.fixture(scope="module")
def clip():
    rng = np.random.default_rng(7)
    y, sr, frames = moving_block_av(rng, 0.0, dur=4.0, sr=48000)
    facts = perceive(y, sr=sr, frames=frames, audio_duration_s=4.0)
    return y, sr, frames, facts


def _wav_info(data: bytes) -> tuple[int, int, int]:
    with wave.open(io.BytesIO(data)) as w:
        return w.getnchannels(), w.getframerate(), w.getnframes()


def test_wav_bytes_mono_16k_capped() -> None:
    y = np.zeros((2, 48000 * 3))
    assert _wav_info(wav_bytes(y, sr=48000, max_s=30.0)) == (1, 16000, 48000)
    assert _wav_info(wav_bytes(y, sr=48000, max_s=1.5)) == (1, 16000, 24000)


def test_sample_indices_spread() -> None:
    assert sample_indices(100, 4).tolist() == [12, 37, 62, 87]
    assert sample_indices(3, 8).tolist() == [0, 1, 2]


def test_unconfigured_is_the_embedded_caption(clip) -> None:
    y, sr, frames, facts = clip
    a, v = AudioLLMCaptioner(), VisionLLMCaptioner()
    assert not a.configured and not v.configured
    assert a.caption(facts.audio, y=y, sr=sr) == audio_caption(facts.audio)
    assert v.caption(facts.video, frames=frames) == video_caption(facts.video)
    assert a.last.source == v.last.source == "embedded"


def test_bad_arguments() -> None:
    with pytest.raises(ParameterError, match="n_frames=0"):
        VisionLLMCaptioner(n_frames=0)
    with pytest.raises(ParameterError, match="max_audio_s=0"):
        AudioLLMCaptioner(max_audio_s=0)
    with pytest.raises(ParameterError, match="base_url='ftp://x'"):
        AudioLLMCaptioner("ftp://x")


def test_audio_request_carries_only_sound(scripted, clip) -> None:
    y, sr, _frames, facts = clip
    scripted.replies = [(200, chat_reply("  Clicks   over a faint hiss. "), 0.0)]
    cap = AudioLLMCaptioner(scripted.url, "qwen2-audio")
    assert cap.caption(facts.audio, y=y, sr=sr) == "Clicks over a faint hiss."
    assert cap.last.source == "llm-audio" and cap.last.latency_s > 0
    body = scripted.requests[-1]["body"]
    assert body["model"] == "qwen2-audio"
    user = [m for m in body["messages"] if m["role"] == "user"]
    assert len(user) == 1
    parts = user[0]["content"]
    assert [p["type"] for p in parts] == ["text", "input_audio"]
    assert parts[1]["input_audio"]["format"] == "wav"
    wav = base64.b64decode(parts[1]["input_audio"]["data"])
    assert _wav_info(wav) == (1, 16000, 4 * 16000)
    # Nothing from the picture: no images, none of the video caption's facts.
    text = str(body)
    assert "image_url" not in text and video_caption(facts.video) not in text
    assert "fps" not in parts[0]["text"]


def test_vision_request_carries_only_frames(scripted, clip) -> None:
    _y, _sr, frames, facts = clip
    scripted.replies = [(200, chat_reply("A white square jumps around a dark frame."), 0.0)]
    cap = VisionLLMCaptioner(scripted.url, "qwen2.5-vl", n_frames=4)
    assert cap.caption(facts.video, frames=frames) == "A white square jumps around a dark frame."
    assert cap.last.source == "llm-video"
    parts = scripted.requests[-1]["body"]["messages"][1]["content"]
    assert [p["type"] for p in parts] == ["text"] + ["image_url"] * 4
    assert "4 frames" in parts[0]["text"] and "4.0 s video" in parts[0]["text"]
    for p, i in zip(parts[1:], sample_indices(frames.frames.shape[0], 4), strict=True):
        head, b64 = p["image_url"]["url"].split(",", 1)
        assert head == "data:image/jpeg;base64"
        img = np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))))
        assert img.shape == frames.frames.shape[1:]
        assert np.abs(img.astype(int) - frames.frames[i]).mean() < 4  # that frame, JPEG'd
    text = str(scripted.requests[-1]["body"])
    assert "input_audio" not in text and audio_caption(facts.audio) not in text


def test_server_error_falls_back_reported_once(scripted, clip, caplog) -> None:
    y, sr, _frames, facts = clip
    scripted.replies = [(500, {"error": "boom"}, 0.0)] * 4
    cap = AudioLLMCaptioner(scripted.url, "m", max_retries=0, retry_after_s=0.0)
    with caplog.at_level(logging.DEBUG, logger="avagent.agent.captioners_llm"):
        assert cap.caption(facts.audio, y=y, sr=sr) == audio_caption(facts.audio)
        assert cap.caption(facts.audio, y=y, sr=sr) == audio_caption(facts.audio)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and scripted.url in warnings[0].getMessage()
    assert "HTTP 500" in cap.last.error and cap.last.source == "embedded"
    assert len(scripted.requests) == 2  # retry_after_s=0: the server is asked again


def test_failed_server_is_skipped_for_a_while(scripted, clip) -> None:
    _y, _sr, frames, facts = clip
    scripted.replies = [(503, {"error": "loading"}, 0.0)]
    cap = VisionLLMCaptioner(scripted.url, "m", max_retries=0, retry_after_s=60.0)
    cap.caption(facts.video, frames=frames)
    cap.caption(facts.video, frames=frames)
    assert len(scripted.requests) == 1 and "skipped" in cap.last.error


def test_slow_server_times_out_to_the_fallback(scripted, clip) -> None:
    y, sr, _frames, facts = clip
    scripted.replies = [(200, chat_reply("too late"), 3.0)]
    cap = AudioLLMCaptioner(scripted.url, "m", timeout_s=0.5, max_retries=0)
    t0 = time.perf_counter()
    assert cap.caption(facts.audio, y=y, sr=sr) == audio_caption(facts.audio)
    assert time.perf_counter() - t0 < 2.5
    assert "timed out" in cap.last.error


def test_empty_answer_falls_back(scripted, clip) -> None:
    _y, _sr, frames, facts = clip
    scripted.replies = [(200, chat_reply("   "), 0.0)]
    cap = VisionLLMCaptioner(scripted.url, "m", max_retries=0)
    assert cap.caption(facts.video, frames=frames) == video_caption(facts.video)
    assert "empty caption" in cap.last.error


def test_nothing_listening_falls_back(clip) -> None:
    y, sr, _frames, facts = clip
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    cap = AudioLLMCaptioner(f"http://127.0.0.1:{port}/v1", "m", max_retries=0, timeout_s=2.0)
    assert cap.caption(facts.audio, y=y, sr=sr) == audio_caption(facts.audio)
    assert "unreachable" in cap.last.error and f"127.0.0.1:{port}" in cap.last.error


def test_one_set_of_kwargs_builds_both_captioners(scripted) -> None:
    """The registry builds a pair from one dict: each takes its own modality's server."""
    kw = {"audio_base_url": scripted.url, "audio_model": "qwen2-audio",
          "video_base_url": "", "video_model": "qwen2.5-vl", "n_frames": 4}
    a, v = AudioLLMCaptioner(**kw), VisionLLMCaptioner(**kw)
    assert a.configured and a.model == "qwen2-audio"
    assert not v.configured and v.n_frames == 4  # no video server: embedded captions


def test_registered_as_the_llm_pair(scripted) -> None:
    from avagent.agent.captions import get_captioners

    pair = get_captioners("llm", audio_base_url=scripted.url, video_base_url="")
    assert isinstance(pair.audio, AudioLLMCaptioner) and pair.audio.configured
    assert isinstance(pair.video, VisionLLMCaptioner) and not pair.video.configured


@pytest.mark.media
def test_repair_uses_the_llm_captions_and_reports_their_source(scripted, video_path,
                                                               tmp_path) -> None:
    """Settings → service/backends → the graph: the audio caption comes from the (scripted)
    audio server, the video one falls back (its server is down), report.json says which."""
    from avagent.service.pipeline import RepairOptions, repair_file
    from avagent.service.settings import Settings

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    scripted.replies = [(200, chat_reply("A voice over a low hum."), 0.0)]
    settings = Settings(cache_dir=tmp_path, captioner="llm", audio_caption_base_url=scripted.url,
                        audio_caption_model="qwen2-audio", video_caption_base_url=dead,
                        llm_max_retries=0, caption_timeout_s=2.0)
    report = repair_file(video_path, tmp_path / "out", settings=settings,
                         options=RepairOptions.from_settings(settings, max_rounds=1,
                                                             outputs=["report"]))
    assert report["captions"]["audio"] == "A voice over a low hum."
    assert report["captions"]["video"].startswith("Video ")  # the embedded caption
    assert report["backends"]["captioner"] == "llm"
    assert report["backends"]["captions_from"] == {"audio": "llm-audio", "video": "embedded"}
    sent = [r["body"] for r in scripted.requests if r["path"].endswith("/chat/completions")]
    assert len(sent) == 1 and "image_url" not in str(sent[0])


# What llama.cpp's server (llama-cpp-python 0.3.36) answers for a text model: its request types
# know no `input_audio` part (a validation error, sent as a 500), and its chat formatter cannot
# render a content list with images for a model without a vision projector.
AUDIO_REFUSAL = r"HTTP 500: .*validation errors"
VIDEO_REFUSAL = r"HTTP 500: .*can only concatenate str"


def test_real_llama_cpp_server_with_a_text_model(llama_server, clip) -> None:
    """SmolLM2-135M on llama.cpp's real OpenAI server: a text-only model, so it refuses both
    media request shapes (the fallback then gives the embedded caption), while the same prompt
    without media is answered (the refusal is about the parts, not the server)."""
    from avagent.agent.captioners_llm import AUDIO_PROMPT, AUDIO_SYSTEM
    from avagent.agent.llm import LLMClient

    y, sr, frames, facts = clip
    url = llama_server.base_url
    audio = AudioLLMCaptioner(url, max_retries=0, retry_after_s=0.0)
    assert audio.caption(facts.audio, y=y, sr=sr) == audio_caption(facts.audio)
    assert audio.last.source == "embedded" and re.search(AUDIO_REFUSAL, audio.last.error)
    video = VisionLLMCaptioner(url, max_retries=0, retry_after_s=0.0, n_frames=2)
    assert video.caption(facts.video, frames=frames) == video_caption(facts.video)
    assert video.last.source == "embedded" and re.search(VIDEO_REFUSAL, video.last.error)
    with LLMClient(url, max_retries=0, dialect="none") as client:
        r = client.chat([{"role": "system", "content": AUDIO_SYSTEM},
                         {"role": "user", "content": AUDIO_PROMPT}], max_tokens=40, seed=0)
    assert r.text.strip() and r.usage.get("completion_tokens", 0) > 0


def test_avagent_backends_reports_each_captioner(scripted, tmp_path) -> None:
    from avagent.service.backend_status import describe_backends
    from avagent.service.settings import Settings

    scripted.replies = [(200, {"object": "list", "data": [{"id": "qwen2-audio"}]}, 0.0)]
    s = Settings(cache_dir=tmp_path, captioner="llm", audio_caption_base_url=scripted.url,
                 audio_caption_model="qwen2-audio")
    rows = {r["role"]: r for r in describe_backends(s)}
    audio, video = rows["audio captioner"], rows["video captioner"]
    assert audio["reachable"] is True and scripted.url in audio["backend"]
    assert audio["fallback"] == "embedded captions"
    assert video["backend"] == "embedded" and "no server URL" in video["detail"]
