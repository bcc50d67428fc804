"""Settings → keyword arguments of the LLM-backed agent parts (the agent itself reads no Settings)."""

from __future__ import annotations

from typing import Any

from avagent.service.settings import Settings


def planner_kwargs(settings: Settings, name: str) -> dict[str, Any]:
    """Constructor arguments for planner ``name`` (only ``llm`` takes any)."""
    if name != "llm":
        return {}
    base_url = settings.planner_base_url or settings.llm_base_url
    return {
        "base_url": base_url,
        "model": settings.planner_model,
        "api_key": settings.llm_api_key,
        "lora_path": settings.planner_lora,
        "model_path": settings.planner_gguf,
        "n_threads": settings.planner_threads,
        "timeout_s": settings.llm_timeout_s,
        "max_retries": settings.llm_max_retries,
        "concurrency": settings.llm_concurrency,
        "dialect": settings.llm_dialect,
    }
