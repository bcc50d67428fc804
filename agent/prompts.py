"""The planner's prompt: what an LLM planner reads, and the exact form of its answer.

One builder, two users: :class:`~avagent.agent.llm_planner.LLMPlanner` sends
:func:`planner_messages` to the server, and the planner-training data (``avagent train
planner-data``) writes the same messages with :func:`plan_answer` as the assistant's target, so
a tuned model sees at run time exactly what it was trained on.

The conversation (the paper's plan → act → reflect turns, keeping only the last round so the
prompt fits a 2048-token context):

1. ``system``: the job, the sign conventions, the action table with parameter ranges and units;
2. ``user``: the two captions (each made from one modality only), the sync sentence, the measured
   facts in compact ``key=value`` form, and the request for a plan;
3. on a later round, ``assistant``: the last round's plan as JSON, then ``user``: its scores, the
   reflection feedback and the request for a better plan (applied to the ORIGINAL audio again).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, Field

from avagent.actions import ACTIONS
from avagent.agent.state import Plan, Round, Step
from avagent.perception.facts import Facts
from avagent.perception.noise import SEPARATE_FLOOR
from avagent.perception.tags import MUSIC_SHARE

__all__ = [
    "PROMPT_VERSION",
    "PlanAnswer",
    "action_table",
    "facts_brief",
    "findings_brief",
    "plan_answer",
    "planner_messages",
]

# Bump when the wording changes: training data records it, so an adapter tuned on one version is
# not silently used with another.
PROMPT_VERSION = "planner-v2"  # v2: the answer opens with "findings"

MAX_DROPOUTS_SHOWN = 8


class PlanAnswer(BaseModel):
    """What the planner must answer (validated on our side after the server's schema).

    ``findings`` comes first: the measurements the plan rests on, restated next to the decision
    (:func:`findings_brief`). A small model decides "which actions, or none" at the first token
    of ``steps``; with the facts restated just before it, it reads them from its own last words
    instead of from a prompt 1,500 tokens long. Optional, so a server that leaves it out still
    gives a plan.
    """

    findings: str = Field("", max_length=600)
    steps: list[Step] = Field(default_factory=list, max_length=6)

    def to_plan(self, planner: str) -> Plan:
        return Plan(steps=list(self.steps), planner=planner)


SYSTEM = f"""You are an experienced sound editor repairing the sound track of a video.
You read a description of the sound (made without seeing the picture), a description of the \
picture (made without hearing the sound) and measured facts, then choose repair actions with \
real parameters. Fix only what is measured as wrong: a clean clip gets an empty plan.
Rules:
- audio_delay_ms > 0 means the sound is LATE; fix it with speed(offset_ms = -audio_delay_ms).
- Shift or change speed only when sync is measured as offset or drift, never when it cannot be told.
- Denoise only when noise is measured (noise_kind not none); music is not noise. Under music, \
denoise only a noise apart from it: floor_confidence >= {SEPARATE_FLOOR:g} and no hum.
- neural_denoise is for speech without music: not where the tags hear music, nor where \
music_under_noise (music heard once the noise is taken down) is {MUSIC_SHARE / 3:.2g} or more.
- events_at_zero (0 chance .. 1 best lag) grades how well sound and picture pair as they stand; \
it is evidence for a score, never a reason to shift.
- Apply actions in this order: declip, remove_hum, fill_blanks, denoise, speed/pitch, volume last.
Answer with JSON only: {{"findings": "the measurements your plan rests on", \
"steps": [{{"action": NAME, "params": {{...}}, "reasoning": "why"}}]}}.
Actions (parameter: type, range, default):
"""


def _param_line(name: str, schema: dict[str, Any]) -> str:
    # Optional parameters are anyOf [X, null]: describe X, say "or null".
    options = schema.get("anyOf")
    nullable = False
    if options:
        real = [o for o in options if o.get("type") != "null"]
        nullable = len(real) < len(options)
        schema = {**real[0], "default": schema.get("default")} if real else schema
    kind = schema.get("type", "any")
    if "enum" in schema:
        kind = "|".join(str(v) for v in schema["enum"])
    elif kind == "array":
        kind = "list of [start_s, end_s]"
    rng = ""
    lo = schema.get("minimum", schema.get("exclusiveMinimum"))
    hi = schema.get("maximum")
    if lo is not None or hi is not None:
        rng = f" {_num(lo)}..{_num(hi)}"
    default = schema.get("default")
    dflt = f" ={_num(default)}" if default is not None else (" =null" if nullable else "")
    return f"{name}: {kind}{rng}{dflt}"


def _num(v: Any) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return "" if v is None else str(v)


def action_table() -> str:
    """One line per action: name, parameters (type, range, default; units in the names), summary."""
    lines = []
    for spec in ACTIONS.values():
        props = spec.json_schema().get("properties", {})
        params = "; ".join(_param_line(k, v) for k, v in props.items())
        lines.append(f"- {spec.name}({params}): {spec.summary}")
    return "\n".join(lines)


def _r(v: Any, nd: int = 2) -> Any:
    return round(v, nd) if isinstance(v, float) else v


def facts_brief(facts: Facts) -> str:
    """The measured facts as compact ``key=value`` lines (timelines and long lists left out)."""
    a = facts.audio
    audio: dict[str, Any] = {
        "duration_s": a.duration_s, "sample_rate": a.sample_rate, "channels": a.channels,
        "silent": a.silent, "loudness_lufs": a.loudness_lufs, "true_peak_dbtp": a.true_peak_dbtp,
        "clipping_fraction": a.clipping_fraction, "noise_floor_db": a.noise_floor_db,
        "snr_db": a.snr_db, "noise_kind": a.noise_kind.value,
        "noise_confidence": a.noise_confidence, "hum_hz": a.hum_hz, "hum_db": a.hum_db,
        "speech_fraction": a.speech_fraction, "music_likelihood": a.music_likelihood,
        "floor_confidence": a.floor_confidence, "music_under_noise": a.music_under_noise,
    }
    if a.speech_quality:
        audio["dnsmos_ovrl"] = a.speech_quality.get("ovrl")
    lines = ["audio: " + _kv(audio)]
    if a.dropouts:
        spans = ", ".join(f"[{d.start_s:.3f}, {d.end_s:.3f}]" for d in a.dropouts[:MAX_DROPOUTS_SHOWN])
        more = f" (+{len(a.dropouts) - MAX_DROPOUTS_SHOWN} more)" if len(a.dropouts) > MAX_DROPOUTS_SHOWN else ""
        lines.append(f"dropouts_s: {spans}{more}")
    else:
        lines.append("dropouts_s: none")
    if facts.video is not None:
        v = facts.video
        lines.append("video: " + _kv({
            "duration_s": v.duration_s, "fps": v.fps, "size": f"{v.width}x{v.height}",
            "motion_mean": v.motion_mean, "cuts": len(v.cuts_s), "static": v.static,
        }))
    if facts.sync is not None:
        s = facts.sync
        lines.append("sync: " + _kv({
            "verdict": s.verdict, "audio_delay_ms": s.audio_delay_ms,
            "confidence": s.confidence, "rate": s.rate, "duration_ratio": s.duration_ratio,
            "events_at_zero": s.events_at_zero,
        }))
    return "\n".join(lines)


def _kv(d: dict[str, Any]) -> str:
    out = []
    for k, v in d.items():
        if v is None:
            continue
        v = _r(v, 4) if k in {"rate", "duration_ratio", "clipping_fraction"} else _r(v)
        out.append(f"{k}={str(v).lower() if isinstance(v, bool) else v}")
    return " ".join(out)


def findings_brief(facts: Facts) -> str:
    """The measurements a plan rests on, one clause per fault family, in the answer's words:
    what the model restates before it chooses (copied from the facts, never a decision)."""
    a = facts.audio
    parts = [f"loudness {a.loudness_lufs:.1f} LUFS" if a.loudness_lufs is not None
             else "loudness unmeasured"]
    if a.true_peak_dbtp is not None:
        parts[0] += f", peak {a.true_peak_dbtp:.1f} dBTP"
    parts.append(f"noise {a.noise_kind.value}" + (f" at {a.snr_db:.0f} dB SNR"
                                                  if a.snr_db is not None else ""))
    parts.append(f"hum {a.hum_hz:g} Hz at {a.hum_db:.0f} dB" if a.hum_hz and a.hum_db is not None
                 else "hum none")
    parts.append(f"dropouts {len(a.dropouts)}")
    parts.append(f"clipping {a.clipping_fraction:.4f}" if a.clipping_fraction else "clipping none")
    parts.append(f"music {a.music_likelihood:.2f}")
    s = facts.sync
    if s is None:
        parts.append("sync not measured")
    elif s.verdict in ("offset", "in_sync") and s.audio_delay_ms is not None:
        parts.append(f"sync {s.verdict} {s.audio_delay_ms:+.0f} ms at confidence {s.confidence:.2f}")
    elif s.verdict == "drift" and s.rate is not None:
        parts.append(f"sync drift rate {s.rate:.4f}")
    else:
        parts.append(f"sync {s.verdict}")
    return "; ".join(parts)


def plan_answer(plan: Plan | Sequence[Step], findings: str | None = None) -> str:
    """The assistant's answer for ``plan``, exactly as the planner is asked to write it (compact
    JSON, keys in schema order): the SFT target and the reflection turn's previous answer.
    ``findings`` (:func:`findings_brief` of the facts) opens the answer when given."""
    steps = plan.steps if isinstance(plan, Plan) else list(plan)
    body: dict[str, Any] = {} if findings is None else {"findings": findings}
    body["steps"] = [{"action": s.action, "params": s.params, "reasoning": s.reasoning}
                     for s in steps]
    return json.dumps(body, ensure_ascii=False, separators=(", ", ": "))


def _situation(facts: Facts, captions: dict[str, str]) -> str:
    parts = [
        f"Sound (heard only): {captions.get('audio', '').strip() or 'no description'}",
        f"Picture (seen only): {captions.get('video', '').strip() or 'no picture (audio only)'}",
    ]
    if captions.get("sync"):
        parts.append(f"Sync: {captions['sync'].strip()}")
    parts.append("Measured facts:\n" + facts_brief(facts))
    parts.append("Plan the repair as JSON.")
    return "\n".join(parts)


def _reflection(last: Round) -> str:
    s = last.scores
    details = ", ".join(f"{k} {v:.2f}" for k, v in sorted(s.details.items()))
    return (
        f"Round {last.index} result: alignment {s.alignment:.2f}, sync {s.sync:.2f}"
        + (f" ({details})" if details else "")
        + f". Feedback: {last.feedback or 'none'}.\n"
        "Both scores must reach the threshold. Your new plan is applied to the ORIGINAL audio, "
        "not to the last result. Keep what helped, change what did not. Plan again as JSON."
    )


def planner_messages(
    facts: Facts, captions: dict[str, str], history: Sequence[Round] = ()
) -> list[dict[str, str]]:
    """The chat messages for one planning call (and for one SFT example).

    Parameters
    ----------
    facts : Facts
        What perception measured.
    captions : dict
        ``{"audio": ..., "video": ..., "sync": ...}`` (missing keys are said to be missing).
    history : sequence of Round
        Earlier rounds of this clip; only the last one is shown (its plan, scores, feedback).

    Returns
    -------
    list of {"role", "content"} dicts: system, user, and for a later round assistant + user.
    """
    messages = [
        {"role": "system", "content": SYSTEM + action_table()},
        {"role": "user", "content": _situation(facts, captions)},
    ]
    if history:
        last = history[-1]
        messages.append({"role": "assistant",
                         "content": plan_answer(last.plan, findings_brief(facts))})
        messages.append({"role": "user", "content": _reflection(last)})
    return messages
