"""The action table: one literal mapping from public name to spec.

The planner's JSON schema is generated from this table, so adding an action is one entry here plus
its module. Entries reference their function as ``"module:function"`` and import it on first use,
which keeps ``import actions`` light (no noisereduce/numba import until an action runs).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from avagent.actions.base import ActionParams, parse_params
from avagent.audio import validate_audio
from avagent.errors import ParameterError

# What an action works on, for the planner, the graph, the oracle and the benchmark, which derive
# their lists from this table instead of naming actions again.
Family = Literal["noise", "tonal", "level", "timing", "repair"]
FAMILIES: tuple[Family, ...] = ("noise", "tonal", "level", "timing", "repair")


@dataclass(frozen=True)
class ActionSpec:
    """One row of the action table."""

    name: str
    family: Family
    summary: str
    target: str  # "module:function"
    params_target: str  # "module:ParamsModel"
    changes_timing: bool = False  # moves or stretches the sound: judged on sync, not on the mix
    _cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def func(self) -> Callable[..., np.ndarray]:
        if "func" not in self._cache:
            self._cache["func"] = _load(self.target)
        return self._cache["func"]

    @property
    def params(self) -> type[ActionParams]:
        if "params" not in self._cache:
            self._cache["params"] = _load(self.params_target)
        return self._cache["params"]

    def json_schema(self) -> dict[str, Any]:
        return self.params.model_json_schema()


def _load(target: str) -> Any:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


ACTIONS: dict[str, ActionSpec] = {
    spec.name: spec
    for spec in (
        ActionSpec(
            "spectral_subtraction",
            "noise",
            "Subtract an estimated stationary noise spectrum (hiss, fan, steady hum-free noise).",
            "avagent.actions.spectral_subtraction:spectral_subtraction",
            "avagent.actions.spectral_subtraction:SpectralSubtractionParams",
        ),
        ActionSpec(
            "wiener",
            "noise",
            "STFT Wiener filter with decision-directed a-priori SNR; gentle on speech.",
            "avagent.actions.wiener:wiener",
            "avagent.actions.wiener:WienerParams",
        ),
        ActionSpec(
            "wavelet_denoise",
            "noise",
            "Wavelet shrinkage (BayesShrink/VisuShrink) against broadband white-ish noise.",
            "avagent.actions.wavelet:wavelet_denoise",
            "avagent.actions.wavelet:WaveletDenoiseParams",
        ),
        ActionSpec(
            "spectral_gating",
            "noise",
            "Spectral gate (noisereduce's algorithm on our STFT), stationary or not (wind, crowd).",
            "avagent.actions.spectral_gating:spectral_gating",
            "avagent.actions.spectral_gating:SpectralGatingParams",
        ),
        ActionSpec(
            "neural_denoise",
            "noise",
            "Neural speech denoiser (DeepFilterNet3, or lighter RNNoise) with an attenuation "
            "limit and wet/dry mix; for speech only, never over music.",
            "avagent.actions.neural_denoise:neural_denoise",
            "avagent.actions.neural_denoise:NeuralDenoiseParams",
        ),
        ActionSpec(
            "declip",
            "repair",
            "Rebuild clipped peaks (runs at the clip level) by least-squares AR interpolation "
            "constrained beyond the clip level; before any level change.",
            "avagent.actions.declip:declip",
            "avagent.actions.declip:DeclipParams",
        ),
        ActionSpec(
            "remove_hum",
            "tonal",
            "Remove mains hum at 50/60 Hz and harmonics (tracked sinusoids); frequency found automatically.",
            "avagent.actions.hum:remove_hum",
            "avagent.actions.hum:RemoveHumParams",
        ),
        ActionSpec(
            "speed",
            "timing",
            "Shift audio in time (offset_ms > 0 delays it) and change its rate (drift, PAL).",
            "avagent.actions.speed:speed",
            "avagent.actions.speed:SpeedParams",
            changes_timing=True,
        ),
        ActionSpec(
            "pitch",
            "timing",
            "Shift pitch by semitones without changing duration (-0.72 undoes a PAL pitch rise).",
            "avagent.actions.pitch:pitch",
            "avagent.actions.pitch:PitchParams",
            changes_timing=True,
        ),
        ActionSpec(
            "volume",
            "level",
            "Bring loudness to target_lufs under a true-peak ceiling, or apply gain_db.",
            "avagent.actions.volume:volume",
            "avagent.actions.volume:VolumeParams",
        ),
        ActionSpec(
            "fill_blanks",
            "repair",
            "Find dropouts (10-500 ms gaps inside sound) and fill them from context.",
            "avagent.actions.fill_blanks:fill_blanks",
            "avagent.actions.fill_blanks:FillBlanksParams",
        ),
    )
}


def action_names(
    family: Family | None = None, *, changes_timing: bool | None = None
) -> tuple[str, ...]:
    """Names of the actions in ``family`` (all when None), optionally only those that do (or do
    not) change timing, in table order."""
    if family is not None and family not in FAMILIES:
        raise ParameterError(f"family={family!r} is not one of {', '.join(FAMILIES)}")
    return tuple(
        s.name
        for s in ACTIONS.values()
        if (family is None or s.family == family)
        and (changes_timing is None or s.changes_timing == changes_timing)
    )


def get_action(name: str) -> ActionSpec:
    """Return the spec for ``name``; unknown names list the valid ones."""
    try:
        return ACTIONS[name]
    except KeyError:
        valid = ", ".join(ACTIONS)
        raise ParameterError(f"unknown action {name!r}; valid actions: {valid}") from None


def apply_action(name: str, y: Any, *, sr: int, **params: Any) -> np.ndarray:
    """Validate ``y`` and ``params`` once, then run action ``name``.

    The output has the input's dtype and leading shape; its length equals the input's except
    for ``speed``, whose length is what its parameters ask for.
    """
    spec = get_action(name)
    y = validate_audio(y, sr=sr)
    checked = parse_params(spec.params, name, params)
    out = spec.func(y, sr=int(sr), **checked.model_dump())
    return np.asarray(out, dtype=y.dtype)


def plan_json_schema() -> dict[str, Any]:
    """JSON schema of a Plan: a list of steps, each one action with its parameters and reasoning.

    Built from the table so that a new action appears in the planner's schema automatically.
    """
    variants = []
    for spec in ACTIONS.values():
        params = spec.json_schema()
        params.pop("title", None)
        variants.append(
            {
                "type": "object",
                "properties": {
                    "action": {"const": spec.name},
                    "params": params,
                    "reasoning": {"type": "string"},
                },
                "required": ["action", "params", "reasoning"],
                "additionalProperties": False,
            }
        )
    return {
        "title": "Plan",
        "type": "object",
        "properties": {"steps": {"type": "array", "items": {"anyOf": variants}, "maxItems": 6}},
        "required": ["steps"],
        "additionalProperties": False,
    }
