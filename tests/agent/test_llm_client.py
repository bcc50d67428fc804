"""The LLM client against real servers: llama.cpp's OpenAI server with SmolLM2 (structured plans,
multimodal message shapes) and a tiny scripted HTTP server for the faults no real model server
produces on demand (a 500, a stall, garbage)."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import pytest
from pydantic import BaseModel

from avagent.agent.llm import (
    LLMClient,
    audio_part,
    check_messages,
    extract_json,
    image_part,
    text_part,
)
from avagent.errors import BackendError, ParameterError
from tests.agent.openai_stub import Scripted, chat_reply


class Answer(BaseModel):
    answer: str


MSG = [{"role": "user", "content": "hi"}]


def _client(url: str, **kw: Any) -> LLMClient:
    kw.setdefault("dialect", "vllm")
    kw.setdefault("backoff_s", 0.01)
    return LLMClient(url, model="m", **kw)


def test_unreachable_port_is_a_backend_error_naming_the_url() -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    client = _client(f"http://127.0.0.1:{port}/v1", max_retries=1)
    with pytest.raises(BackendError, match=rf"127\.0\.0\.1:{port}/v1/chat/completions: unreachable"):
        client.chat(MSG)


def test_500_is_retried_then_succeeds(scripted: Scripted) -> None:
    scripted.replies = [(500, {"error": "boom"}, 0.0), (503, {"error": "busy"}, 0.0),
                        (200, chat_reply('{"answer": "ok"}'), 0.0)]
    out = _client(scripted.url, max_retries=2).chat(MSG)
    assert out.text == '{"answer": "ok"}'
    assert out.attempts == 3
    assert len(scripted.requests) == 3


def test_500_after_all_retries_names_status_and_attempts(scripted: Scripted) -> None:
    scripted.replies = [(500, {"error": "boom"}, 0.0)] * 2
    with pytest.raises(BackendError, match=r"HTTP 500.*boom.*after 2 attempts"):
        _client(scripted.url, max_retries=1).chat(MSG)


def test_4xx_is_not_retried(scripted: Scripted) -> None:
    scripted.replies = [(400, {"error": "bad schema"}, 0.0)]
    with pytest.raises(BackendError, match=r"HTTP 400.*bad schema"):
        _client(scripted.url, max_retries=3).chat(MSG)
    assert len(scripted.requests) == 1


def test_timeout(scripted: Scripted) -> None:
    scripted.replies = [(200, chat_reply("{}"), 2.0)]
    t0 = time.perf_counter()
    with pytest.raises(BackendError, match=r"timed out after 0\.3 s"):
        _client(scripted.url, timeout_s=0.3, max_retries=0).chat(MSG)
    assert time.perf_counter() - t0 < 1.5


def test_garbage_and_non_chat_answers(scripted: Scripted) -> None:
    scripted.replies = [(200, b"<html>proxy</html>", 0.0), (200, {"hello": 1}, 0.0)]
    client = _client(scripted.url, max_retries=0)
    with pytest.raises(BackendError, match="answer is not JSON"):
        client.chat(MSG)
    with pytest.raises(BackendError, match="not a chat completion"):
        client.chat(MSG)


def test_structured_answer_is_validated_on_our_side(scripted: Scripted) -> None:
    scripted.replies = [
        (200, chat_reply('Sure! ```json\n{"answer": "fenced"}\n```'), 0.0),
        (200, chat_reply('{"answer": 3}'), 0.0),
        (200, chat_reply('{"answ', finish="length"), 0.0),
    ]
    client = _client(scripted.url, max_retries=0)
    assert client.complete_json(MSG, Answer).answer == "fenced"
    sent = scripted.requests[0]["body"]["response_format"]
    assert sent["type"] == "json_schema"
    assert sent["json_schema"]["name"] == "Answer"
    assert sent["json_schema"]["schema"] == Answer.model_json_schema()
    with pytest.raises(BackendError, match=r"does not fit Answer: answer: Input should be a valid string"):
        client.complete_json(MSG, Answer)
    with pytest.raises(BackendError, match=r"cut off at max_tokens"):
        client.complete_json(MSG, Answer)


def test_dialects_shape_response_format(scripted: Scripted) -> None:
    scripted.replies = [(200, {"object": "list", "data": [{"id": "m", "owned_by": "me"}]}, 0.0),
                        (200, chat_reply('{"answer": "a"}'), 0.0),
                        (200, chat_reply('{"answer": "b"}'), 0.0)]
    auto = LLMClient(scripted.url, model="m", dialect="auto")
    assert auto.complete_json(MSG, Answer).answer == "a"
    assert auto.dialect == "llamacpp"
    rf = scripted.requests[1]["body"]["response_format"]
    assert rf == {"type": "json_object", "schema": Answer.model_json_schema()}
    LLMClient(scripted.url, model="m", dialect="none").complete_json(MSG, Answer)
    assert "response_format" not in scripted.requests[2]["body"]


def test_concurrency_is_bounded(scripted: Scripted) -> None:
    scripted.replies = [(200, chat_reply('{"answer": "x"}'), 0.3) for _ in range(4)]
    client = _client(scripted.url, concurrency=2, max_retries=0)
    t0 = time.perf_counter()
    threads = [threading.Thread(target=client.chat, args=(MSG,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # 4 requests of 0.3 s, two at a time: at least two waves.
    assert time.perf_counter() - t0 >= 0.55


def test_multimodal_messages_are_checked_and_sent(scripted: Scripted) -> None:
    msgs = [
        {"role": "system", "content": "describe"},
        {"role": "user", "content": [text_part("what is this?"), image_part(b"\x89PNG.."),
                                     audio_part(b"RIFF....", format="wav")]},
    ]
    _client(scripted.url, max_retries=0).chat(msgs)
    parts = scripted.requests[0]["body"]["messages"][1]["content"]
    assert [p["type"] for p in parts] == ["text", "image_url", "input_audio"]
    assert parts[1]["image_url"]["url"].startswith("data:image/png;base64,")
    assert parts[2]["input_audio"]["format"] == "wav"
    with pytest.raises(ParameterError, match="messages"):
        check_messages([{"role": "robot", "content": "x"}])
    with pytest.raises(ParameterError, match="messages"):
        check_messages([{"role": "user", "content": [{"type": "video", "video": "x"}]}])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"base_url": "localhost:8000"}, "base_url"), ({"timeout_s": 0}, "timeout_s"),
     ({"concurrency": 0}, "concurrency"), ({"dialect": "tgi"}, "dialect"),
     ({"max_retries": -1}, "max_retries")],
)
def test_bad_client_settings(kwargs: dict[str, Any], match: str) -> None:
    kwargs = {"base_url": "http://127.0.0.1:1/v1", **kwargs}
    with pytest.raises(ParameterError, match=match):
        LLMClient(**kwargs)


def test_extract_json() -> None:
    assert extract_json('{"a": 1}') == {"a": 1}
    assert extract_json('Here: {"a": {"b": 2}} done') == {"a": {"b": 2}}
    with pytest.raises(ValueError, match="no JSON"):
        extract_json("no json here")


# ----------------------------------------------------------------------------------------------
# The real local server: SmolLM2-135M-Instruct on llama.cpp (fixture in conftest.py)


class Colour(BaseModel):
    name: str
    warm: bool


def test_real_server_structured_answer_and_discovery(llama_server) -> None:
    client = LLMClient(llama_server.base_url, "", timeout_s=120, max_retries=0)
    assert client.ping()[0]
    assert client.dialect == "llamacpp"
    msgs = [{"role": "system", "content": "Answer in JSON."},
            {"role": "user", "content": "Name one colour and say whether it is warm."}]
    out = client.complete_json(msgs, Colour, max_tokens=64)
    assert isinstance(out, Colour) and out.name  # schema-constrained, validated by us
    assert client.model == llama_server.alias  # taken from /models when not given
    res = client.chat(msgs, max_tokens=8)
    assert res.usage["completion_tokens"] <= 8 and res.finish_reason in {"length", "stop"}


def test_real_server_timeout_and_unknown_model(llama_server) -> None:
    ok, why = LLMClient(llama_server.base_url, "no-such-model").ping()
    assert not ok and "'no-such-model' not served" in why
    # Short generation: the server finishes it after we hang up, before the next test's call.
    slow = LLMClient(llama_server.base_url, llama_server.alias, timeout_s=0.05, max_retries=0)
    with pytest.raises(BackendError, match=r"timed out after 0\.05 s"):
        slow.chat([{"role": "user", "content": "Write a long story."}], max_tokens=32)
