"""One client for every LLM role, over the OpenAI chat-completions protocol.

The same code talks to vLLM on a GPU, to llama.cpp's server on a laptop and to any other
OpenAI-compatible server. What it adds over a bare HTTP call:

- a timeout on every call, retries with exponential backoff and jitter for the faults that pass
  (connection refused, timeouts, 429, 5xx), and a semaphore bounding concurrent requests;
- structured output: a pydantic model's JSON schema is sent in the dialect the server speaks
  (vLLM / OpenAI: ``{"type": "json_schema", "json_schema": {"name", "schema"}}``; llama.cpp:
  ``{"type": "json_object", "schema": ...}``), and the answer is validated again, on our side,
  with the same model;
- multimodal messages: content parts for text, images (``image_url`` with a data URI) and audio
  (``input_audio``), checked before they are sent;
- one error type: every failure is a :class:`~avagent.errors.BackendError` naming the URL and the
  reason; the caller decides the fallback.

>>> client = LLMClient("http://127.0.0.1:8000/v1", model="avagent-planner")  # doctest: +SKIP
>>> plan = client.complete_json(messages, PlanOut)                          # doctest: +SKIP
"""

from __future__ import annotations

import base64
import json
import logging
import random
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from avagent.errors import BackendError, ParameterError

logger = logging.getLogger(__name__)

__all__ = [
    "AudioPart",
    "ChatResult",
    "ImagePart",
    "LLMClient",
    "Message",
    "TextPart",
    "audio_part",
    "check_messages",
    "extract_json",
    "image_part",
    "text_part",
]

Dialect = Literal["auto", "openai", "vllm", "llamacpp", "none"]
DIALECTS: tuple[str, ...] = ("auto", "openai", "vllm", "llamacpp", "none")
T = TypeVar("T", bound=BaseModel)

# ----------------------------------------------------------------------------------------------
# Messages (OpenAI chat format, with the multimodal content parts vLLM accepts)


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TextPart(_Part):
    type: Literal["text"] = "text"
    text: str


class ImageURL(_Part):
    url: str = Field(description="https URL or data:image/...;base64,... URI")
    detail: Literal["auto", "low", "high"] | None = None


class ImagePart(_Part):
    type: Literal["image_url"] = "image_url"
    image_url: ImageURL


class InputAudio(_Part):
    data: str = Field(description="base64 of the encoded file")
    format: Literal["wav", "mp3", "flac", "ogg"] = "wav"


class AudioPart(_Part):
    type: Literal["input_audio"] = "input_audio"
    input_audio: InputAudio


class AudioURLPart(_Part):
    """vLLM's own audio part (``audio_url`` with a data URI), for servers that prefer it."""

    type: Literal["audio_url"] = "audio_url"
    audio_url: ImageURL


ContentPart = TextPart | ImagePart | AudioPart | AudioURLPart


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "user", "assistant"]
    content: str | list[ContentPart]


_MESSAGES = TypeAdapter(list[Message])


def text_part(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def image_part(data: bytes | str, *, mime: str = "image/png") -> dict[str, Any]:
    """An image content part: encoded image bytes (PNG/JPEG) become a data URI; a str is a URL."""
    url = data if isinstance(data, str) else f"data:{mime};base64,{base64.b64encode(data).decode()}"
    return {"type": "image_url", "image_url": {"url": url}}


def audio_part(data: bytes, *, format: str = "wav") -> dict[str, Any]:
    """An ``input_audio`` content part from an encoded file's bytes (WAV by default)."""
    return {
        "type": "input_audio",
        "input_audio": {"data": base64.b64encode(data).decode(), "format": format},
    }


def check_messages(messages: Sequence[dict[str, Any] | Message]) -> list[dict[str, Any]]:
    """Validate chat messages and return them as plain dicts; a bad one is a ParameterError."""
    if not messages:
        raise ParameterError("messages=[] must hold at least one message")
    try:
        parsed = _MESSAGES.validate_python(
            [m.model_dump() if isinstance(m, Message) else m for m in messages]
        )
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise ParameterError(f"messages[{where}]: {err['msg']}") from None
    return [m.model_dump(exclude_none=True) for m in parsed]


# ----------------------------------------------------------------------------------------------
# Answers


@dataclass
class ChatResult:
    text: str
    model: str
    finish_reason: str | None
    usage: dict[str, int] = field(default_factory=dict)
    latency_s: float = 0.0
    attempts: int = 1


_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.S)


def extract_json(text: str) -> Any:
    """The JSON value in ``text``: the whole text, a fenced block, or the first balanced object.

    Servers with structured output answer pure JSON; servers without it (dialect ``none``) often
    wrap it in prose or a code fence.
    """
    s = text.strip()
    try:
        return json.loads(s)
    except json.JSONDecodeError:
        pass
    m = _FENCE.search(s)
    if m:
        try:
            return json.loads(m.group(1))
        except json.JSONDecodeError:
            pass
    start = s.find("{")
    if start >= 0:
        try:
            value, _ = json.JSONDecoder().raw_decode(s[start:])
            return value
        except json.JSONDecodeError:
            pass
    raise ValueError(f"no JSON object in the answer: {_clip(text)!r}")


def _clip(text: str, n: int = 200) -> str:
    return text if len(text) <= n else text[:n] + "…"


# ----------------------------------------------------------------------------------------------
# The client

_RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class LLMClient:
    """A client for one OpenAI-compatible server and one model (or LoRA adapter name).

    Parameters
    ----------
    base_url : str
        The server's API root, e.g. ``http://vllm:8000/v1`` (a missing ``/v1`` is added).
    model : str
        The model or LoRA adapter name the server knows (vLLM: a ``--lora-modules`` name). Empty:
        the first model the server lists.
    api_key : str
        Sent as ``Authorization: Bearer``; vLLM without ``--api-key`` ignores it.
    timeout_s : float
        Per-request limit (connect, read and write).
    max_retries : int
        Extra attempts after a passing fault (connection, timeout, 429, 5xx); 0 disables them.
    backoff_s : float
        First retry delay; doubles per attempt, with up to 50 % random jitter, capped at 30 s.
    concurrency : int
        Requests in flight at once from this client (threads share it).
    dialect : {"auto", "openai", "vllm", "llamacpp", "none"}
        How structured output is asked for. ``auto`` asks ``/models`` who owns the model once
        (llama.cpp's server says ``me`` or ``llamacpp``) and otherwise uses ``json_schema``;
        ``none`` sends no ``response_format`` and relies on the prompt and our validation.
    transport : httpx.BaseTransport, optional
        For tests that need a fault no real server produces.
    """

    def __init__(
        self,
        base_url: str,
        model: str = "",
        *,
        api_key: str = "EMPTY",
        timeout_s: float = 60.0,
        max_retries: int = 2,
        backoff_s: float = 0.5,
        concurrency: int = 4,
        dialect: Dialect = "auto",
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not base_url or not base_url.startswith(("http://", "https://")):
            raise ParameterError(f"base_url={base_url!r} must be an http(s):// URL")
        if timeout_s <= 0:
            raise ParameterError(f"timeout_s={timeout_s} must be > 0")
        if max_retries < 0:
            raise ParameterError(f"max_retries={max_retries} must be ≥ 0")
        if concurrency < 1:
            raise ParameterError(f"concurrency={concurrency} must be ≥ 1")
        if dialect not in DIALECTS:
            raise ParameterError(f"dialect={dialect!r} is not one of {', '.join(DIALECTS)}")
        url = base_url.rstrip("/")
        self.base_url = url if url.endswith("/v1") else url + "/v1"
        self.model = model
        self.timeout_s = float(timeout_s)
        self.max_retries = int(max_retries)
        self.backoff_s = float(backoff_s)
        self.concurrency = int(concurrency)
        self._dialect: str = dialect
        self._semaphore = threading.BoundedSemaphore(self.concurrency)
        self._lock = threading.Lock()
        self._http = httpx.Client(
            timeout=httpx.Timeout(self.timeout_s),
            headers={"Authorization": f"Bearer {api_key}"} if api_key else {},
            transport=transport,
            limits=httpx.Limits(max_connections=max(self.concurrency, 1) + 2),
        )

    def __repr__(self) -> str:
        return f"LLMClient({self.base_url!r}, model={self.model!r}, dialect={self._dialect!r})"

    # -- lifecycle ---------------------------------------------------------------------------
    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> LLMClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- discovery ---------------------------------------------------------------------------
    def models(self) -> list[dict[str, Any]]:
        """The server's ``/models`` list (one try; a reachability probe)."""
        data = self._request("GET", "/models", None, retries=0)
        items = data.get("data") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise BackendError(f"{self.base_url}/models: answer has no 'data' list: {data!r:.200}")
        return items

    def ping(self) -> tuple[bool, str]:
        """(reachable, why) without raising: for ``avagent backends`` and readiness checks."""
        try:
            names = [str(m.get("id")) for m in self.models()]
        except BackendError as exc:
            return False, str(exc)
        if self.model and self.model not in names:
            return False, f"{self.base_url}: model {self.model!r} not served (serves {names})"
        return True, f"serves {', '.join(names) or 'nothing'}"

    @property
    def dialect(self) -> str:
        """The structured-output dialect in force (``auto`` is resolved on first use)."""
        with self._lock:
            if self._dialect == "auto":
                self._dialect = self._detect()
            return self._dialect

    def _detect(self) -> str:
        try:
            items = self.models()
        except BackendError:
            return "openai"  # the call that follows will report the server's state
        owners = {str(m.get("owned_by", "")).lower() for m in items}
        if owners & {"me", "llamacpp", "llama.cpp", "llama-cpp"}:
            return "llamacpp"
        if "vllm" in owners:
            return "vllm"
        return "openai"

    def _model_name(self) -> str:
        if not self.model:
            items = self.models()
            if not items:
                raise BackendError(f"{self.base_url}/models: the server lists no model")
            self.model = str(items[0]["id"])
        return self.model

    # -- chat --------------------------------------------------------------------------------
    def chat(
        self,
        messages: Sequence[dict[str, Any] | Message],
        *,
        max_tokens: int = 512,
        temperature: float = 0.0,
        seed: int | None = None,
        json_schema: dict[str, Any] | None = None,
        schema_name: str = "answer",
        extra: dict[str, Any] | None = None,
    ) -> ChatResult:
        """One chat completion; with ``json_schema`` the server is asked to follow it."""
        body: dict[str, Any] = {
            "model": self._model_name(),
            "messages": check_messages(messages),
            "max_tokens": int(max_tokens),
            "temperature": float(temperature),
        }
        if seed is not None:
            body["seed"] = int(seed)
        if json_schema is not None:
            rf = self._response_format(json_schema, schema_name)
            if rf is not None:
                body["response_format"] = rf
        body.update(extra or {})
        t0 = time.perf_counter()
        data, attempts = self._post_chat(body)
        try:
            choice = data["choices"][0]
            text = choice["message"]["content"] or ""
        except (KeyError, IndexError, TypeError):
            raise BackendError(
                f"{self.base_url}/chat/completions: answer is not a chat completion: {data!r:.200}"
            ) from None
        return ChatResult(
            text=text,
            model=str(data.get("model", body["model"])),
            finish_reason=choice.get("finish_reason"),
            usage={k: int(v) for k, v in (data.get("usage") or {}).items() if isinstance(v, int)},
            latency_s=time.perf_counter() - t0,
            attempts=attempts,
        )

    def complete_json(
        self,
        messages: Sequence[dict[str, Any] | Message],
        output: type[T],
        *,
        json_schema: dict[str, Any] | None = None,
        max_tokens: int = 512,
        temperature: float = 0.0,
        seed: int | None = None,
        extra: dict[str, Any] | None = None,
    ) -> T:
        """Ask for JSON following ``output``'s schema and validate the answer with ``output``.

        ``json_schema`` overrides the schema sent (e.g. the action table's plan schema, which is
        tighter than the model it is validated with); by default it is
        ``output.model_json_schema()``. An answer that is not JSON or does not fit is a
        BackendError quoting the start of the answer.
        """
        schema = json_schema if json_schema is not None else output.model_json_schema()
        result = self.chat(
            messages,
            max_tokens=max_tokens,
            temperature=temperature,
            seed=seed,
            json_schema=schema,
            schema_name=output.__name__,
            extra=extra,
        )
        where = f"{self.base_url} (model {self.model!r})"
        try:
            value = extract_json(result.text)
        except ValueError as exc:
            cut = " (cut off at max_tokens)" if result.finish_reason == "length" else ""
            raise BackendError(f"{where}: {exc}{cut}") from None
        try:
            return output.model_validate(value)
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err["loc"]) or "answer"
            raise BackendError(
                f"{where}: answer does not fit {output.__name__}: {loc}: {err['msg']} "
                f"(answer {_clip(result.text)!r})"
            ) from None

    def _response_format(self, schema: dict[str, Any], name: str) -> dict[str, Any] | None:
        dialect = self.dialect
        if dialect == "none":
            return None
        if dialect == "llamacpp":
            return {"type": "json_object", "schema": schema}
        safe = re.sub(r"[^A-Za-z0-9_-]", "_", name)[:64] or "answer"
        return {"type": "json_schema", "json_schema": {"name": safe, "schema": schema}}

    # -- transport ---------------------------------------------------------------------------
    def _post_chat(self, body: dict[str, Any]) -> tuple[dict[str, Any], int]:
        return self._request("POST", "/chat/completions", body, retries=self.max_retries, count=True)

    def _request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        *,
        retries: int,
        count: bool = False,
    ) -> Any:
        url = self.base_url + path
        last = ""
        for attempt in range(retries + 1):
            if attempt:
                delay = min(30.0, self.backoff_s * 2 ** (attempt - 1)) * (1 + 0.5 * random.random())
                logger.info("%s: retry %d/%d in %.2f s (%s)", url, attempt, retries, delay, last)
                time.sleep(delay)
            try:
                with self._semaphore:
                    resp = self._http.request(method, url, json=body)
            except httpx.TimeoutException:
                last = f"timed out after {self.timeout_s:g} s"
                continue
            except httpx.TransportError as exc:
                last = f"unreachable ({type(exc).__name__}: {exc})"
                continue
            if resp.status_code in _RETRY_STATUS:
                last = f"HTTP {resp.status_code}: {_clip(resp.text)}"
                continue
            if resp.status_code >= 400:
                raise BackendError(f"{url}: HTTP {resp.status_code}: {_clip(resp.text)}")
            try:
                data = resp.json()
            except ValueError:
                raise BackendError(f"{url}: answer is not JSON: {_clip(resp.text)!r}") from None
            return (data, attempt + 1) if count else data
        tries = f" after {retries + 1} attempts" if retries else ""
        raise BackendError(f"{url}: {last}{tries}")
