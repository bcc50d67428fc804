"""Reflection scorers: how well does a version of the audio fit its picture? Both in [0, 1].

``embedded`` (default, CPU, offline) re-measures the candidate audio and turns the facts into two
calibrated scores. Formulas (each component is 1.0 when nothing is wrong; 0.85 is "a careful
listener would accept this"; constants are calibrated on the benchmark, see docs/agent.md):

alignment = noise · hum · loudness · dropouts · clipping, where
    noise    = σ((snr_db − 14) / 3.5)              0.85 at 20 dB SNR, 0.5 at 14 dB
    hum      = σ((10 − hum_db) / 3)                 only when a hum line is found
    loudness = exp(−(d / 8)²)                       d = LU outside [−33, −9] LUFS
    dropouts = 0.6 ** n_dropouts
    clipping = max(0, 1 − 200 · clipping_fraction)
sync = c · g(r) + (1 − c) · 0.85 / (1 + (r / 1000)²),  g(r) = 0.85 ** ((r / 40)²), r = |residual_ms|,
    c = 0.5 + 0.5 · confidence for an estimate that passed perception's gates;
    "cannot tell" gives 0.85: undecidable is not penalised, so the loop never forces a
    guessed shift. It gets up to ``EVENTS_BONUS`` (0.05) more by how well the onsets pair with
    the picture's events as the clip stands (``SyncFacts.events_at_zero``, 0 at chance, 1 as
    well as at the best lag): evidence too weak to decide an offset (a tabla groove pairs one
    stroke off almost as well) still ranks two timings of one clip, and it never lowers a
    score below 0.85. A rate fault perception detected (verdict "drift": clock drift, PAL left in)
    multiplies by exp(−(|rate − 1| / 0.01)²); container slop of a few tens of ms between the
    stream durations is normal and not penalised.
Audio-only inputs get sync = 1 (nothing to be in sync with). A candidate whose own estimate
cannot tell, of an input whose estimate was decided (an offset, or in sync), is given the
input's delay moved by the shift its content print measured against the input, at the input's
confidence (:func:`shifted_sync`): a shift the picture asked for reads in sync, one in the wrong
direction twice as far off.
A candidate (scored with ``before``, the input's facts) is also judged on damage, multiplied into
alignment: ``content = exp(−(lost / 0.25)²)``, ``lost`` the largest share of patches in which the
tags heard music, singing or speech in the input and no longer do; ``bands = exp(−c · mean((drop /
10)²))`` over the mel bands within 40 dB of the input's loudest, ``drop`` dB by which a band fell
more than 10 dB beyond the median change, ``c`` the input's noise component (a clean input's band
removed is damage, a noisy input's noise band removed is the repair). Over a music bed the tags
heard with no noise class (the planner's veto) and no steady floor of its own
(:func:`~avagent.perception.noise.noise_apart_from_programme`), ``music_bed = noise_in /
noise_out`` takes back any credit for "less noise"; so does ``quiet_enough`` (the same ratio) where the input's noise
component is already acceptable (≥ 0.85): no repair scores above an untouched clean input.
The input's content print (:mod:`avagent.perception.content`) judges the programme itself:
``kept = exp(−(max(0, 0.7 · (1 − n) − r) / 0.15)²)``, ``r`` the correlation of candidate and
input mel maps, ``n`` the input's noise share (1 / (1 + 10^(snr/10))): a speech denoiser over
music keeps r ≈ 0.1–0.4 of it, a Wiener filter 0.7–1. ``moved`` = exp(−(max(0, |lag| − 10 ms) /
40 ms)²) · exp(−(max(0, |pitch| − 5 cents) / 20 cents)²): the programme moved in time or pitch
with no sync verdict to explain it (an offset or drift explains a shift; a drift, pitch) was
changed on a guess, which is worse than not at all. ``programme = exp(−(max(0, lost − 0.5) /
0.1)²)``, ``lost`` the share of the input's loud cells (10 dB over their band's floor) that the
candidate holds 6 dB lower: noise lives at the floor, so this holds however noisy the input,
where ``kept``'s allowance lets a speech denoiser over noisy music pass.

One interface, :class:`Scorer`: ``score(y, *, sr, frames=None, facts=None, before=None,
timing_changed=False) -> (Scores, Facts)`` scores the untouched input (round 0) and every
candidate the same way. ``facts`` are measurements of ``y`` itself when the caller has them
(perception's, for the input); a scorer may use them or measure ``y`` and ``frames`` (colour
frames in ``frames.colour`` when the decoder supplied them) itself. Registry: :data:`SCORERS`.
"""

from __future__ import annotations

import importlib
import math
from typing import Any, Protocol

import numpy as np
from pydantic import BaseModel, Field

from avagent.errors import ParameterError
from avagent.perception.content import ContentChange
from avagent.perception.facts import AudioFacts, Facts, SyncFacts
from avagent.perception.frames import FrameSet
from avagent.perception.noise import noise_apart_from_programme

ACCEPT = 0.85  # the value every component is calibrated to at "just acceptable"
SYNC_SEARCH_S = 1.0  # perception.sync.MAX_LAG_S: the offsets an estimate can point to
EVENTS_BONUS = 0.05  # most an undecided sync gains from its events pairing at no shift
COMPONENT_SLACK = 1e-3  # a component this much lower is "no worse" (details are rounded to 1e-4)
# Loudness a careful listener accepts without correction (the rule planner acts outside it).
LOUDNESS_LOW_LUFS = -33.0
LOUDNESS_HIGH_LUFS = -9.0


class Scores(BaseModel):
    """Reflection's verdict on one version of the audio, both in [0, 1]."""

    alignment: float = Field(ge=0.0, le=1.0)
    sync: float = Field(ge=0.0, le=1.0)
    details: dict[str, float] = Field(default_factory=dict, description="score components")

    @property
    def overall(self) -> float:
        # The loop keeps the round with the best overall score; both must pass the threshold.
        return 0.5 * (self.alignment + self.sync)

    def passes(self, threshold: float) -> bool:
        return self.alignment >= threshold and self.sync >= threshold

    def improves_on(self, best: Scores, min_gain: float) -> bool:
        """Whether this version should replace ``best``: its overall score is higher by
        ``min_gain``, or it is no worse in any component (within :data:`COMPONENT_SLACK`; a
        component one of them lacks counts as 1, so a damage component only the candidate has
        counts against it) and better in one by ``min_gain``, with no lower overall score.

        The second rule is for a product hidden behind a zero: alignment multiplies its
        components, so with noise or hum at 0 (a full-scale 60 Hz square wave) a loudness or
        clipping fix leaves alignment at 0 and would never be kept on the overall score."""
        if self.overall > best.overall + min_gain:
            return True
        if self.overall < best.overall:
            return False
        keys = {k for k in (*self.details, *best.details) if not k.endswith("confidence")}
        mine = {k: self.details.get(k, 1.0) for k in keys}
        theirs = {k: best.details.get(k, 1.0) for k in keys}
        if any(mine[k] < theirs[k] - COMPONENT_SLACK for k in keys):
            return False
        return any(mine[k] > theirs[k] + min_gain for k in keys)


class Scorer(Protocol):
    name: str

    def score(
        self,
        y: np.ndarray,
        *,
        sr: int,
        frames: FrameSet | None = None,
        facts: Facts | None = None,
        before: Facts | None = None,
        timing_changed: bool = False,
    ) -> tuple[Scores, Facts]:
        """Score audio ``y`` against its picture ``frames``; also return the facts it used.

        ``facts``: measurements of ``y`` itself, when the caller already has them (round 0:
        perception's facts of the input). ``before``: the facts of the untouched input, for a
        candidate (what did not change need not be re-measured: the picture, and the sync
        unless ``timing_changed``). Round 0 and every candidate go through this one method.
        """
        ...


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def alignment_components(a: AudioFacts) -> dict[str, float]:
    if a.silent:
        return {"noise": 0.0, "hum": 1.0, "loudness": 0.0, "dropouts": 1.0, "clipping": 1.0}
    noise = _sigmoid((a.snr_db - 14.0) / 3.5)
    hum = _sigmoid((10.0 - a.hum_db) / 3.0) if a.hum_hz is not None and a.hum_db else 1.0
    loud = 1.0
    if a.loudness_lufs is not None:
        d = max(0.0, LOUDNESS_LOW_LUFS - a.loudness_lufs, a.loudness_lufs - LOUDNESS_HIGH_LUFS)
        loud = math.exp(-((d / 8.0) ** 2))
    drop = 0.6 ** len(a.dropouts)
    clip = max(0.0, 1.0 - 200.0 * a.clipping_fraction)
    return {"noise": noise, "hum": hum, "loudness": loud, "dropouts": drop, "clipping": clip}


def sync_components(s: SyncFacts | None) -> dict[str, float]:
    if s is None:
        return {"sync_offset": 1.0, "sync_duration": 1.0, "sync_confidence": 1.0}
    if s.audio_delay_ms is None:  # cannot tell: neutral, graded by the events at no shift
        c, offset = 0.0, ACCEPT
        if s.verdict == "cannot_tell" and s.events_at_zero is not None:
            offset += EVENTS_BONUS * float(s.events_at_zero)
    else:
        # An estimate that passed perception's gates (a clear peak, windows that agree) is
        # trusted at least half-way; its confidence buys the rest.
        c = 0.5 + 0.5 * float(s.confidence)
        r = abs(s.audio_delay_ms)
        g = ACCEPT ** ((r / 40.0) ** 2)
        # the untrusted share is neutral, less so the further off the estimate points (half
        # way at the edge of the search, 1 s): two unsure estimates 300 and 800 ms off still
        # rank, where g alone is 0 for both
        offset = c * g + (1.0 - c) * ACCEPT / (1.0 + (r / (1000.0 * SYNC_SEARCH_S)) ** 2)
    dur = 1.0
    if s.verdict == "drift" and s.rate is not None:
        dur = math.exp(-((abs(s.rate - 1.0) / 0.01) ** 2))
    return {"sync_offset": offset, "sync_duration": dur, "sync_confidence": c}


class EmbeddedScorer:
    """Signal-based scorer: re-measures the audio (and sync when timing changed)."""

    name = "embedded"

    def score(
        self,
        y: np.ndarray,
        *,
        sr: int,
        frames: FrameSet | None = None,
        facts: Facts | None = None,
        before: Facts | None = None,
        timing_changed: bool = False,
    ) -> tuple[Scores, Facts]:
        if facts is None:
            facts = self._measure(y, sr=sr, frames=frames, before=before,
                                  timing_changed=timing_changed)
        if before is None:
            return scores_from_facts(facts), facts
        change = content_change(before.audio, facts.audio, before.sync)
        facts = facts.model_copy(update={"sync": shifted_sync(before.sync, facts.sync, change)})
        scores = with_damage(scores_from_facts(facts), damage_components(
            before.audio, facts.audio, sync=before.sync, change=change))
        return scores, facts

    @staticmethod
    def _measure(
        y: np.ndarray, *, sr: int, frames: FrameSet | None, before: Facts | None,
        timing_changed: bool,
    ) -> Facts:
        from avagent.perception.audio import analyze_audio

        audio = analyze_audio(y, sr=sr, speech_quality=False)  # alignment never reads it
        video = before.video if before is not None else None
        sync = before.sync if before is not None else None
        if frames is not None and (timing_changed or before is None):
            from avagent.perception.sync import estimate_sync
            from avagent.perception.video import analyze_video

            if video is None:
                video = analyze_video(frames)
            sync = estimate_sync(y, sr=sr, frames=frames, audio_duration_s=y.shape[-1] / sr)
        return Facts(audio=audio, video=video, sync=sync)


def scores_from_facts(facts: Facts) -> Scores:
    """The embedded scorer's formulas (module docstring) over measured facts."""
    comp = alignment_components(facts.audio)
    scomp = sync_components(facts.sync) if facts.video is not None else sync_components(None)
    alignment = float(np.prod(list(comp.values())))
    sync = scomp["sync_offset"] * scomp["sync_duration"]
    details = {**comp, **scomp}
    return Scores(alignment=_clip01(alignment), sync=_clip01(sync), details=_rounded(details))


# Damage: what a repair removed that the input had. Content the tags heard in the input (music,
# singing, speech) that the candidate lost, and bands the input carried that fell far more than
# the overall level did. A band drop is damage in proportion to how clean the input was (its
# noise component): removing noise bands from a noisy input is the repair, from a clean one not.
CONTENT_LOSS = 0.25  # share of patches lost at which the content component is exp(-1)
BAND_DROP_DB = 10.0  # a band this much below the level change is removed content
BAND_RANGE_DB = 40.0  # bands within this of the input's loudest band are content
TAGS_TRUSTED_HUM = 0.85  # the input's hum component from which its tags count as content evidence


# The programme itself, compared print to print (perception.content): a candidate whose mel map
# no longer follows its input's lost the content (a speech denoiser over music keeps ~0.1 of the
# correlation, a Wiener filter over the same noisy music 0.7-1); one moved in time or pitch with
# no sync or rate fault to explain it was changed on a guess.
KEPT_CORRELATION = 0.7  # the least correlation a repair keeps of a clean input's map ...
KEPT_SCALE = 0.15  # ... and how fast the component falls below it
LAG_FREE_MS = 10.0  # one frame either side: measurement, not a move
LAG_SCALE_MS = 40.0  # an unexplained shift this much beyond it is exp(-1)
CENTS_FREE = 5.0
CENTS_SCALE = 20.0
# The programme's loud cells (perception.content.programme_lost): a Wiener filter over music at
# 0 dB SNR lowers up to ~0.45 of them (its smoothed gain lags the strokes), a speech denoiser
# over music 0.35-0.97 (most above 0.6), over speech in applause or ambience at 0-5 dB 0.36.
PROGRAMME_FREE = 0.5  # share of the programme's loud cells a repair may lower ...
PROGRAMME_SCALE = 0.1  # ... and how fast the component falls beyond it


def noise_energy_share(snr_db: float) -> float:
    """Share of the input's energy that its SNR estimate calls noise."""
    return 1.0 / (1.0 + 10.0 ** (snr_db / 10.0))


def content_change(before: AudioFacts, after: AudioFacts, sync: SyncFacts | None = None
                   ) -> ContentChange | None:
    """The candidate against its input's content print; None without prints. Where the
    input's ``sync`` found a drift, the candidate may have undone it or not: it is compared on
    both clocks and the better match counts (the sync score judges the rate)."""
    if before.content is None or after.content is None or before.silent:
        return None
    from avagent.perception.content import compare

    change = compare(before.content, after.content)
    if sync is not None and sync.verdict == "drift" and sync.rate:
        undone = compare(before.content, after.content, rate=sync.rate)
        change = max(change, undone, key=lambda c: c.correlation)
    return change


def shifted_sync(before: SyncFacts | None, after: SyncFacts | None,
                 change: ContentChange | None) -> SyncFacts | None:
    """The candidate's sync: its own estimate where it decided one; where it cannot tell and
    the input's estimate was decided (an offset or in sync, not a drift), the input's delay
    moved by the shift the candidate made against the input (``lag_ms`` > 0: sound later), at
    the input's confidence. A shift that cannot be measured (the content is gone) infers
    nothing."""
    if (after is None or after.audio_delay_ms is not None or before is None
            or before.audio_delay_ms is None or before.verdict not in ("offset", "in_sync")
            or change is None or change.lag_ms is None):
        return after
    from avagent.perception.sync import IN_SYNC_MS

    delay = float(before.audio_delay_ms) + change.lag_ms
    return after.model_copy(update={
        "verdict": "in_sync" if abs(delay) <= IN_SYNC_MS else "offset",
        "audio_delay_ms": round(delay, 1), "confidence": before.confidence,
        "window_delays_ms": [],
    })


def print_components(before: AudioFacts, change: ContentChange | None,
                     sync: SyncFacts | None = None) -> dict[str, float]:
    """``kept``, ``moved`` and ``programme`` in [0, 1] from the content prints (empty without
    them). ``programme``: the input's loud cells the candidate removed
    (:func:`~avagent.perception.content.programme_lost`) beyond ``PROGRAMME_FREE``.

    ``kept = exp(-(max(0, 0.7 (1 - n) - r) / 0.15)^2)``: ``r`` the correlation of the two mel
    dB maps, ``n`` the input's noise share (its SNR estimate): a noisy input's clean copy
    correlates less with it, and may. ``moved``: the largest shift over the clip's halves
    beyond 10 ms (scale 40 ms) and the pitch change beyond 5 cents (scale 20 cents), each
    unless the input's sync verdict explains it (an offset or drift: a shift; a drift: pitch).
    """
    if change is None:
        return {}
    need = KEPT_CORRELATION * (1.0 - noise_energy_share(before.snr_db))
    kept = math.exp(-((max(0.0, need - change.correlation) / KEPT_SCALE) ** 2))
    verdict = sync.verdict if sync is not None else None
    moved = 1.0
    if verdict not in ("offset", "drift") and change.lag_ms is not None:
        moved *= math.exp(-((max(0.0, abs(change.lag_ms) - LAG_FREE_MS) / LAG_SCALE_MS) ** 2))
    if verdict != "drift":
        moved *= math.exp(-((max(0.0, abs(change.pitch_cents) - CENTS_FREE) / CENTS_SCALE) ** 2))
    programme = math.exp(-((max(0.0, change.lost - PROGRAMME_FREE) / PROGRAMME_SCALE) ** 2))
    return {"kept": kept, "moved": moved, "programme": programme}


def damage_components(before: AudioFacts, after: AudioFacts, sync: SyncFacts | None = None,
                      change: ContentChange | None = None) -> dict[str, float]:
    """``content``, ``bands``, ``kept``, ``moved`` and ``programme`` in [0, 1] (``music_bed`` or
    ``quiet_enough`` where they apply): 1 when the candidate kept what
    the input had (``sync``: the input's, which explains a shift or a rate change; ``change``:
    :func:`content_change`, measured here when not given)."""
    from avagent.perception.tags import CONTENT_GROUPS, music_bed

    if before.silent:
        return {}
    if change is None:
        change = content_change(before, after, sync)
    prints = print_components(before, change, sync)
    tb, ta = before.tags, after.tags
    if tb is None or ta is None:
        return prints
    comps = alignment_components(before)
    # Mains hum's harmonics are heard by the tagger as music (a real clip read music 0.3 clean,
    # 0.6 with hum planted): under a measured hum the input's tags are no evidence of programme
    # content, so removing the hum must not read as music lost or as a music bed denoised.
    tags_trusted = comps.get("hum", 1.0) >= TAGS_TRUSTED_HUM
    lost = max(
        [max(0.0, tb.share(g) - ta.share(g)) for g in (*CONTENT_GROUPS, "speech")], default=0.0
    ) if tags_trusted else 0.0
    content = math.exp(-((lost / CONTENT_LOSS) ** 2))
    bands = 1.0
    if tb.bands_db and len(tb.bands_db) == len(ta.bands_db):
        b, a = np.asarray(tb.bands_db), np.asarray(ta.bands_db)
        carried = b >= b.max() - BAND_RANGE_DB
        change = a - b - float(np.median((a - b)[carried]))
        drop = np.clip(-change[carried] - BAND_DROP_DB, 0.0, None)
        clean = comps["noise"]
        bands = math.exp(-clean * float(np.mean((drop / BAND_DROP_DB) ** 2)))
    out = {"content": content, "bands": bands, **prints}
    nb, na = comps["noise"], alignment_components(after)["noise"]
    credit = min(1.0, nb / na) if na > 0 else 1.0
    # A music bed the tags heard with no noise class beside it is programme, not noise: a
    # candidate earns no credit for "less noise" there (the planner's veto, mirrored).
    if tags_trusted and music_bed(tb) and not noise_apart_from_programme(before):
        out["music_bed"] = credit
    elif nb >= ACCEPT:
        # Noise a careful listener already accepts in the input: removing more of it earns
        # nothing, so a clean control's denoised copy (SNR 44 -> 60 dB: 0.9998 -> 0.9999)
        # never scores above the untouched input.
        out["quiet_enough"] = credit
    return out


def with_damage(scores: Scores, damage: dict[str, float]) -> Scores:
    """``scores`` with the damage components multiplied into alignment."""
    if not damage:
        return scores
    alignment = scores.alignment * float(np.prod(list(damage.values())))
    return scores.model_copy(update={
        "alignment": _clip01(alignment), "details": {**scores.details, **_rounded(damage)}
    })


def _clip01(x: float) -> float:
    return float(min(1.0, max(0.0, x)))


def _rounded(d: dict[str, float]) -> dict[str, float]:
    return {k: round(float(v), 4) for k, v in d.items()}


SCORERS: dict[str, str] = {
    "embedded": "avagent.reflection.scorers:EmbeddedScorer",
    # ImageBind (imagebind-unofficial, CC BY-NC-SA 4.0; the `imagebind` extra), user weights.
    "imagebind": "avagent.reflection.imagebind:ImageBindScorer",
    # The AV-MAE critic (`avagent train critic`); needs torch and checkpoint=PATH.
    "learned": "avagent.training.critic:LearnedScorer",
}


def get_scorer(name: str, **kwargs: Any) -> Scorer:
    """Instantiate scorer ``name``; unknown names list the valid ones."""
    try:
        target = SCORERS[name]
    except KeyError:
        raise ParameterError(
            f"unknown scorer {name!r}; valid scorers: {', '.join(SCORERS)}"
        ) from None
    module, _, cls = target.partition(":")
    scorer: Scorer = getattr(importlib.import_module(module), cls)(**kwargs)
    return scorer
