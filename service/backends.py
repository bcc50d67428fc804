"""The one place that turns Settings into each backend: which one a role uses, and its arguments.

A *role* is a slot of the loop that a backend fills: ``planner``, ``scorer`` and ``captioner``.
:func:`backend` answers, for a role, the backend's name (the Settings field of that role, or a
per-job override) and the keyword arguments its class takes from Settings. The CLI, the pipeline,
the worker and the queue's routing ask here instead of reading Settings fields themselves.

Adding a model backend (an LLM planner, a model captioner, the ImageBind scorer) is two lines:
its "module:Class" in the role's registry (``agent.planner.PLANNERS``,
``reflection.scorers.SCORERS``, the captioner registry) and, when it needs configuration, an
entry in :data:`KWARGS` that picks its Settings fields. The embedded backends take none.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from avagent.errors import ParameterError
from avagent.service.settings import Settings

if TYPE_CHECKING:
    from avagent.agent.captions import Captioners
    from avagent.agent.planner import Planner
    from avagent.reflection.scorers import Scorer

Role = Literal["planner", "scorer", "captioner"]
ROLES: tuple[Role, ...] = ("planner", "scorer", "captioner")
EMBEDDED = "embedded"  # the scorer's and captioner's default: runs offline on CPU
# Scorers that run on CPU in the worker itself (the learned critic is a tiny CPU model), so
# choosing them does not send jobs to the GPU queue.
CPU_SCORERS = frozenset({EMBEDDED, "learned"})


def _openai_server(settings: Settings, model: str) -> dict[str, Any]:
    """An OpenAI-compatible server (vLLM, llama.cpp): where it is and which model to ask."""
    return {"base_url": settings.llm_base_url, "api_key": settings.llm_api_key, "model": model}


def _llm_planner(s: Settings) -> dict[str, Any]:
    """The LLM planner: a server (planner_base_url, else llm_base_url) or, with neither, the
    embedded SmolLM2 on llama.cpp (planner_gguf / planner_lora / planner_threads)."""
    return {
        **_openai_server(s, s.planner_model),
        "base_url": s.planner_base_url or s.llm_base_url,
        "lora_path": s.planner_lora,
        "model_path": s.planner_gguf,
        "n_threads": s.planner_threads,
        "timeout_s": s.llm_timeout_s,
        "max_retries": s.llm_max_retries,
        "concurrency": s.llm_concurrency,
        "dialect": s.llm_dialect,
    }


def _imagebind(s: Settings) -> dict[str, Any]:
    """The ImageBind scorer: user-supplied weights, their calibration, device and batching."""
    return {
        "weights": s.imagebind_weights,
        "calibration": s.imagebind_calibration,
        "device": s.imagebind_device or None,
        "dtype": s.imagebind_dtype,
        "batch_size": s.imagebind_batch_size,
    }


def _learned(s: Settings) -> dict[str, Any]:
    """The learned critic: a calibrated AV-MAE checkpoint written by ``avagent train critic``
    (the scorer refuses a missing one with a BackendError naming AVAGENT_CRITIC_CHECKPOINT)."""
    return {"checkpoint": s.critic_checkpoint}


def llm_captioners(s: Settings) -> dict[str, Any]:
    """One set of keyword arguments for both LLM captioners (``get_captioners("llm", **kw)``):
    each takes its own modality's URL and model; an empty URL leaves that captioner unconfigured
    (it renders the embedded caption). A modality without a URL of its own uses llm_base_url."""
    return {
        "audio_base_url": s.audio_caption_base_url or s.llm_base_url,
        "audio_model": s.audio_caption_model,
        "video_base_url": s.video_caption_base_url or s.llm_base_url,
        "video_model": s.video_caption_model,
        "api_key": s.llm_api_key,
        "timeout_s": s.caption_timeout_s,
        "max_retries": s.llm_max_retries,
        "n_frames": s.caption_frames,
    }


# (role, backend name) -> the backend's keyword arguments from Settings.
KWARGS: dict[tuple[Role, str], Callable[[Settings], dict[str, Any]]] = {
    ("planner", "llm"): _llm_planner,
    ("planner", "vllm"): lambda s: _openai_server(s, s.planner_model),
    ("captioner", "llm"): llm_captioners,
    ("scorer", "imagebind"): _imagebind,
    ("scorer", "learned"): _learned,
}


@dataclass(frozen=True)
class Backend:
    """The backend a role uses: its registry name and the keyword arguments to build it with."""

    role: Role
    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)


def backend_name(settings: Settings, role: Role, override: Any = None) -> str:
    """The backend ``role`` uses: ``override`` (a job's or command's choice) when given, else
    the Settings field of that role."""
    if role not in ROLES:
        raise ParameterError(f"unknown backend role {role!r}; roles: {', '.join(ROLES)}")
    if override is not None and str(override).strip():
        return str(override).strip()
    return str(getattr(settings, role))


def backend(settings: Settings, role: Role, override: Any = None) -> Backend:
    """Name and keyword arguments of the backend ``role`` uses (see :func:`backend_name`)."""
    name = backend_name(settings, role, override)
    make = KWARGS.get((role, name))
    return Backend(role, name, make(settings) if make is not None else {})


def check_planner(name: str) -> str:
    """``name`` when it is a known planner; else a ParameterError listing the valid ones."""
    from avagent.agent.planner import PLANNERS

    if name not in PLANNERS:
        raise ParameterError(f"planner={name!r} is unknown; valid planners: {', '.join(PLANNERS)}")
    return name


def make_planner(settings: Settings, override: Any = None) -> Planner:
    from avagent.agent.planner import get_planner

    b = backend(settings, "planner", override)
    return get_planner(b.name, **b.kwargs)


def make_scorer(settings: Settings, override: Any = None) -> Scorer:
    from avagent.reflection.scorers import get_scorer

    b = backend(settings, "scorer", override)
    return get_scorer(b.name, **b.kwargs)


def make_captioners(settings: Settings, override: Any = None) -> Captioners:
    from avagent.agent.captions import get_captioners

    b = backend(settings, "captioner", override)
    return get_captioners(b.name, **b.kwargs)


def needs_gpu(settings: Settings, planner: Any = None) -> bool:
    """Whether a job (with its ``planner`` choice) needs a model backend, so the GPU queue:
    its planner is one of ``gpu_planners``, the scorer is not a CPU one (:data:`CPU_SCORERS`),
    or the captioner is not the embedded one."""
    gpu_planners = {p.strip() for p in settings.gpu_planners.split(",") if p.strip()}
    return (
        backend_name(settings, "planner", planner) in gpu_planners
        or backend_name(settings, "scorer") not in CPU_SCORERS
        or backend_name(settings, "captioner") != EMBEDDED
    )
