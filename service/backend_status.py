"""Where each role's backend stands: configured, reachable, and the fallback in force (for
``avagent backends``; the backends themselves are built by :mod:`avagent.service.backends`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from avagent.service.backends import llm_captioners
from avagent.service.settings import Settings


def _probe(base_url: str, model: str, settings: Settings) -> tuple[bool, str]:
    from avagent.agent.llm import LLMClient
    from avagent.errors import AvagentError

    try:
        client = LLMClient(base_url, model, api_key=settings.llm_api_key,
                           timeout_s=min(settings.llm_timeout_s, 5.0), max_retries=0)
    except AvagentError as exc:
        return False, str(exc)
    with client:
        return client.ping()


def _embedded_planner(settings: Settings) -> tuple[bool, str]:
    from avagent.agent.llm_local import llama_server_available, smollm2_path
    from avagent.errors import AvagentError

    if not llama_server_available():
        return False, "llama-cpp-python[server] is not installed"
    try:
        model = settings.planner_gguf or smollm2_path()
    except AvagentError as exc:
        return False, str(exc)
    if not model.is_file():
        return False, f"planner_gguf={str(model)!r} is not a file"
    lora = settings.planner_lora
    if lora is not None and not lora.is_file():
        return False, f"planner_lora={str(lora)!r} is not a file"
    return True, f"{model.name} on llama.cpp, {settings.planner_threads} thread(s)" + (
        f", LoRA {lora}" if lora else ", no adapter")


def describe_backends(settings: Settings, *, probe: bool = True) -> list[dict[str, Any]]:
    """Each role's configured backend, whether it answers, and the fallback in force.

    ``probe=False`` reports the configuration without touching the network.
    """
    rows: list[dict[str, Any]] = []
    planner_url = settings.planner_base_url or settings.llm_base_url
    if settings.planner == "llm" and planner_url:
        ok, why = _probe(planner_url, settings.planner_model, settings) if probe else (None, "")
        rows.append({"role": "planner", "backend": f"llm {planner_url} model="
                     f"{settings.planner_model or '(first listed)'}", "reachable": ok,
                     "detail": why, "fallback": "rules (on every failed or unsafe plan)"
                     if ok or ok is None else "rules (server down)"})
    elif settings.planner == "llm":
        ok, why = _embedded_planner(settings)
        rows.append({"role": "planner", "backend": "llm embedded", "reachable": ok, "detail": why,
                     "fallback": "rules (on every failed or unsafe plan)" if ok
                     else "rules (embedded model unavailable)"})
    else:
        rows.append({"role": "planner", "backend": settings.planner, "reachable": True,
                     "detail": "in process", "fallback": "none needed"})
    kw = llm_captioners(settings)
    for role, modality in (("audio captioner", "audio"), ("video captioner", "video")):
        url, model = kw[f"{modality}_base_url"], kw[f"{modality}_model"]
        if settings.captioner == "llm" and url:
            ok, why = _probe(url, model, settings) if probe else (None, "")
            rows.append({"role": role, "backend": f"llm {url} model={model or '(first listed)'}",
                         "reachable": ok, "detail": why,
                         "fallback": "embedded captions" + ("" if ok or ok is None
                                                            else " (server down)")})
        else:
            rows.append({"role": role, "backend": "embedded", "reachable": True,
                         "detail": "captions rendered from measured facts"
                         + (" (llm: no server URL for it)" if settings.captioner == "llm" else ""),
                         "fallback": "none needed"})
    if settings.scorer == "imagebind":
        ckpt = settings.imagebind_weights
        ok = bool(ckpt and Path(ckpt).is_file())
        rows.append({"role": "scorer", "backend": "imagebind", "reachable": ok,
                     "detail": f"weights {ckpt}" if ckpt else "AVAGENT_IMAGEBIND_WEIGHTS not set",
                     "fallback": "none needed" if ok
                     else "none: repairs fail with a BackendError until the weights exist"})
    elif settings.scorer == "learned":
        ckpt = settings.critic_checkpoint
        ok = bool(ckpt and Path(ckpt).is_file())
        rows.append({"role": "scorer", "backend": "learned", "reachable": ok,
                     "detail": (f"checkpoint {ckpt}" + ("" if ok else " (not a file)")) if ckpt
                     else "AVAGENT_CRITIC_CHECKPOINT not set",
                     "fallback": "none needed" if ok
                     else "none: repairs fail with a BackendError until the checkpoint exists"})
    else:
        rows.append({"role": "scorer", "backend": settings.scorer, "reachable": True,
                     "detail": "in process", "fallback": "none needed"})
    return rows
