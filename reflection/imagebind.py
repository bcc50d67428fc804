"""``imagebind`` scorer: ImageBind audio vs picture embeddings, calibrated so 0.85 means something.

Raw ImageBind cosines between a sound and its own picture sit around 0.2–0.35, and what counts as
high depends on the weights, so both scores are read against a calibration set (see
:func:`calibrate`; its result is stored with the weights or beside them as
``<weights>.calibration.json``):

alignment
    ``s`` = mean cosine between the audio embedding of each 2 s window and the embedding of the
    picture (two frames) over the same window. ``alignment = P(s_neg < s)``: the share of
    calibration pairs with MISMATCHED sound (one clip's audio under another clip's frames) whose
    ``s`` is below this one. 0.85 = "more similar to its picture than 85 % of mismatched pairs".
sync
    the curve ``c(δ)`` = mean cosine between the picture windows and the audio shifted by ``δ``
    (−R…R in steps of ``shift_step_s``). Its zero-lag advantage ``d = c(0) − max_{|δ| ≥ sep} c(δ)``
    measures a peak at zero and how sharp it is. ``sync = P(d_shifted < d)``: the share of
    calibration pairs whose audio was SHIFTED by a known 0.5–1 s whose advantage is below this
    one. The lag of the curve's maximum is reported as ``details.offset_ms``.
    Too short for shifts (< 2 s + 2·sep): sync is 0.85, "cannot tell", as the embedded scorer.

Audio-only inputs (no frames) have nothing for ImageBind to compare: alignment and sync then come
from the embedded scorer's formulas, and ``details.imagebind`` is 0.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from avagent.errors import BackendError, ParameterError
from avagent.perception.facts import Facts
from avagent.perception.frames import FrameSet
from avagent.reflection import imagebind_preprocess as pre
from avagent.reflection.imagebind_model import ImageBindBackend, check_weights, load_imagebind
from avagent.reflection.scorers import ACCEPT, EmbeddedScorer, Scores, _clip01, scores_from_facts

logger = logging.getLogger(__name__)

N_QUANTILES = 201  # stored points of each calibration distribution


class Calibration(BaseModel):
    """Distributions of mismatched and shifted pairs that turn raw similarities into scores."""

    mismatched_quantiles: list[float] = Field(description="quantiles of s over mismatched pairs")
    shifted_quantiles: list[float] = Field(description="quantiles of d over shifted pairs")
    n_clips: int = 0
    n_mismatched: int = 0
    n_shifted: int = 0
    # On the calibration set itself: the share of true / mismatched / shifted pairs scoring ≥ 0.85.
    true_alignment_pass: float | None = None
    true_sync_pass: float | None = None
    mismatched_alignment_pass: float | None = None
    shifted_sync_pass: float | None = None

    def alignment(self, s: float) -> float:
        return _cdf(self.mismatched_quantiles, s)

    def sync(self, d: float) -> float:
        return _cdf(self.shifted_quantiles, d)


def _cdf(quantiles: Sequence[float], x: float) -> float:
    q = np.asarray(quantiles, dtype=np.float64)
    if q.size == 0:
        raise BackendError("calibration has no quantiles")
    return float(np.interp(x, q, np.linspace(0.0, 1.0, q.size), left=0.0, right=1.0))


def _quantiles(values: Sequence[float]) -> list[float]:
    v = np.asarray(values, dtype=np.float64)
    return [float(x) for x in np.quantile(v, np.linspace(0.0, 1.0, N_QUANTILES))]


@dataclass(frozen=True)
class Windows:
    """Where the 2 s picture windows start and which audio lags are compared against them."""

    starts_s: np.ndarray  # (n,) picture window starts
    shifts_s: np.ndarray  # (k,) audio lags, including 0
    sep_s: float  # lags this far from 0 are "elsewhere" for the sync contrast


def plan_windows(
    duration_s: float,
    *,
    max_windows: int = 8,
    max_shift_s: float = 1.0,
    shift_step_s: float = 0.25,
    sep_s: float = 0.5,
    margin_s: float = 0.0,
) -> Windows:
    """Picture windows spread over the clip, leaving ``max_shift_s`` (+ ``margin_s``) for lags."""
    clip = pre.CLIP_S
    if duration_s <= clip:
        return Windows(np.zeros(1), np.zeros(1), sep_s)
    room = (duration_s - clip) / 2.0 - margin_s
    r = min(max_shift_s, np.floor(max(room, 0.0) / shift_step_s) * shift_step_s)
    k = round(r / shift_step_s)
    shifts = np.arange(-k, k + 1) * shift_step_s if r >= sep_s else np.zeros(1)
    lo, hi = r + margin_s, duration_s - clip - r - margin_s
    if hi <= lo:
        return Windows(np.array([max(0.0, (duration_s - clip) / 2)]), shifts, sep_s)
    n = int(min(max_windows, np.floor(hi - lo) + 1))  # about one window per second, capped
    return Windows(np.linspace(lo, hi, max(n, 1)), shifts, sep_s)


def sync_contrast(curve: np.ndarray, shifts: np.ndarray, sep_s: float, at: float = 0.0) -> float:
    """``c(at) − max c(δ)`` over lags at least ``sep_s`` from ``at`` (nan when there are none)."""
    i0 = int(np.argmin(np.abs(shifts - at)))
    far = np.abs(shifts - at) >= sep_s - 1e-9
    if not far.any():
        return float("nan")
    return float(curve[i0] - curve[far].max())


class PairMeasure:
    """Embeddings of one picture and any number of sound tracks against it (picture cached)."""

    def __init__(self, backend: ImageBindBackend, *, batch_size: int = 16) -> None:
        self.backend = backend
        self.batch_size = batch_size
        self._vision: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def vision(
        self, frames: FrameSet, starts_s: np.ndarray, *, pictures: np.ndarray | None = None
    ) -> np.ndarray:
        """``(n, D)`` picture embeddings, cached by frame content and window starts.

        ``pictures``: the frames to embed (e.g. colour ones), aligned with ``frames.times_s``;
        default ``frames.frames``."""
        pictures = frames.frames if pictures is None else pictures
        h = hashlib.blake2b(digest_size=16)
        h.update(np.ascontiguousarray(pictures).data)
        h.update(np.ascontiguousarray(frames.times_s).data)
        h.update(np.ascontiguousarray(starts_s, dtype=np.float64).data)
        key = h.hexdigest()
        with self._lock:
            if key in self._vision:
                self._vision.move_to_end(key)
                return self._vision[key]
        x = pre.vision_clips(pictures, frames.times_s, starts_s)
        v = self.backend.embed("vision", x, batch_size=self.batch_size)
        with self._lock:
            self._vision[key] = v
            while len(self._vision) > 8:
                self._vision.popitem(last=False)
        return v

    def audio(self, x16: np.ndarray, starts_s: np.ndarray, shifts_s: np.ndarray) -> np.ndarray:
        """``(n, k, D)`` audio embeddings of the windows at ``starts_s + shifts_s``."""
        at = (starts_s[:, None] + shifts_s[None, :]).reshape(-1)
        e = self.backend.embed("audio", pre.audio_clips(x16, at), batch_size=self.batch_size)
        return e.reshape(starts_s.size, shifts_s.size, -1)


def curve_of(a: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Mean cosine over windows at each lag: ``a`` ``(n, k, D)``, ``v`` ``(n, D)`` → ``(k,)``."""
    return np.einsum("nkd,nd->nk", a, v).mean(axis=0)


class ImageBindScorer:
    """Scores a sound track against its picture with ImageBind (see the module docstring)."""

    name = "imagebind"

    def __init__(
        self,
        weights: str | Path | None = None,
        *,
        device: str | None = None,
        dtype: str = "float32",
        calibration: str | Path | None = None,
        batch_size: int = 16,
        max_windows: int = 8,
        max_shift_s: float = 1.0,
        shift_step_s: float = 0.25,
        sep_s: float = 0.5,
    ) -> None:
        if not 0 < shift_step_s <= sep_s <= max_shift_s:
            raise ParameterError(
                f"need 0 < shift_step_s={shift_step_s} <= sep_s={sep_s} <= max_shift_s={max_shift_s}"
            )
        if max_windows < 1:
            raise ParameterError(f"max_windows={max_windows} must be >= 1")
        check_weights(weights)  # a missing file fails when the scorer is made, not per clip
        self.weights = weights
        self.device = device
        self.dtype = dtype
        self.calibration_path = calibration
        self.batch_size = batch_size
        self.window_args: dict[str, Any] = {"max_windows": max_windows, "max_shift_s": max_shift_s,
                            "shift_step_s": shift_step_s, "sep_s": sep_s}
        self._measure: PairMeasure | None = None
        self._calibration: Calibration | None = None
        self._embedded = EmbeddedScorer()

    # Loading is lazy: constructing the scorer only checks that the weights file exists.
    def _ready(self) -> tuple[PairMeasure, Calibration]:
        if self._measure is None or self._calibration is None:
            backend = load_imagebind(self.weights, device=self.device, dtype=self.dtype)
            self._calibration = find_calibration(backend, self.calibration_path)
            self._measure = PairMeasure(backend, batch_size=self.batch_size)
        return self._measure, self._calibration

    def score_audio(self, y: np.ndarray, *, sr: int, frames: FrameSet | None) -> Scores:
        """Score sound ``y`` (``(..., n)`` at ``sr``) against ``frames`` (gray or colour)."""
        if frames is None or frames.frames.shape[0] == 0:
            return self._audio_only(y, sr=sr)
        measure, cal = self._ready()
        pictures = getattr(frames, "colour", None)  # colour when the decoder supplied it
        x16 = pre.to_mono_16k(y, sr=sr)
        duration = min(x16.size / pre.SAMPLE_RATE, float(frames.duration_s or x16.size / pre.SAMPLE_RATE))
        win = plan_windows(duration, **self.window_args)
        v = measure.vision(frames, win.starts_s, pictures=pictures)
        a = measure.audio(x16, win.starts_s, win.shifts_s)
        curve = curve_of(a, v)
        i0 = int(np.argmin(np.abs(win.shifts_s)))
        s = float(curve[i0])
        d = sync_contrast(curve, win.shifts_s, win.sep_s)
        alignment = cal.alignment(s)
        sync = ACCEPT if np.isnan(d) else cal.sync(d)
        details = {
            "imagebind": 1.0,
            "cosine": s,
            "sync_contrast": 0.0 if np.isnan(d) else d,
            "offset_ms": float(1000.0 * win.shifts_s[int(np.argmax(curve))]),
            "windows": float(win.starts_s.size),
            "sync_cannot_tell": float(np.isnan(d)),
        }
        return Scores(alignment=_clip01(alignment), sync=_clip01(sync),
                      details={k: round(float(val), 4) for k, val in details.items()})

    def _audio_only(self, y: np.ndarray, *, sr: int) -> Scores:
        from avagent.perception.audio import analyze_audio

        facts = Facts(audio=analyze_audio(y, sr=sr, speech_quality=False), video=None, sync=None)
        base = scores_from_facts(facts)
        return base.model_copy(update={"details": {**base.details, "imagebind": 0.0}})

    # The scorer protocol of avagent.reflection.scorers: one method for the input and candidates.
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
        """ImageBind's scores of ``y`` against ``frames``, and the measured facts of ``y`` (the
        caller's ``facts`` when given, else measured as the embedded scorer measures them, for
        the planner's feedback)."""
        if facts is None:
            _, facts = self._embedded.score(
                y, sr=sr, frames=frames, before=before, timing_changed=timing_changed
            )
        return self.score_audio(y, sr=sr, frames=frames), facts


def find_calibration(backend: ImageBindBackend, path: str | Path | None = None) -> Calibration:
    """The calibration for ``backend``: ``path``, else ``<weights>.calibration.json``, else the
    one stored in the checkpoint; none is a BackendError saying how to make one."""
    candidates: list[Path] = []
    if path:
        candidates.append(Path(path))
    if backend.path is not None:
        candidates.append(backend.path.with_name(backend.path.name + ".calibration.json"))
    for p in candidates:
        if p.is_file():
            try:
                return Calibration.model_validate(json.loads(p.read_text()))
            except (ValueError, OSError) as exc:
                raise BackendError(f"bad ImageBind calibration {str(p)!r}: {exc}") from exc
        if path and p == Path(path):
            raise BackendError(f"ImageBind calibration not found: {str(p)!r}")
    if backend.calibration:
        return Calibration.model_validate(backend.calibration)
    raise BackendError(
        f"ImageBind weights {str(backend.path)!r} have no calibration: run "
        "`python -m avagent.bench.imagebind_calibrate --weights W VIDEO...` (writes "
        "W.calibration.json), so that the scores mean a probability, not a raw cosine"
    )


def calibrate(
    backend: ImageBindBackend,
    clips: Sequence[tuple[np.ndarray, int, FrameSet]],
    *,
    shifts_s: Sequence[float] = (-1.0, -0.5, 0.5, 1.0),
    batch_size: int = 16,
    **window_args: Any,
) -> Calibration:
    """Fit the score calibration on true pairs ``clips`` (in sync, matching sound).

    Mismatched pairs: every clip's audio under every other clip's frames (same windows).
    Shifted pairs: each clip's own audio displaced by each of ``shifts_s`` seconds. Returns the
    distributions and, on this same set, how many true / mismatched / shifted pairs reach 0.85.
    """
    if len(clips) < 2:
        raise ParameterError(f"calibration needs at least 2 clips, got {len(clips)}")
    measure = PairMeasure(backend, batch_size=batch_size)
    args = {"max_windows": 8, "max_shift_s": 1.0, "shift_step_s": 0.25, "sep_s": 0.5, **window_args}
    margin = max(abs(float(s)) for s in shifts_s)
    per: list[tuple[np.ndarray, np.ndarray, Windows, np.ndarray]] = []
    true_s: list[float] = []
    true_d: list[float] = []
    shifted_d: list[float] = []
    for y, sr, frames in clips:
        x16 = pre.to_mono_16k(y, sr=sr)
        dur = min(x16.size / pre.SAMPLE_RATE, float(frames.duration_s))
        win = plan_windows(dur, margin_s=margin, **args)
        v = measure.vision(frames, win.starts_s)
        a = measure.audio(x16, win.starts_s, win.shifts_s)
        c = curve_of(a, v)
        true_s.append(float(c[int(np.argmin(np.abs(win.shifts_s)))]))
        true_d.append(sync_contrast(c, win.shifts_s, win.sep_s))
        for s0 in shifts_s:  # audio displaced by s0: its lag-0 is the picture's lag s0
            a_s = measure.audio(x16, win.starts_s + float(s0), win.shifts_s)
            shifted_d.append(sync_contrast(curve_of(a_s, v), win.shifts_s, win.sep_s))
        per.append((x16, v, win, a[:, int(np.argmin(np.abs(win.shifts_s)))]))
    mism: list[float] = []
    for i, (_, _, _, a0) in enumerate(per):
        for j, (_, vj, _, _) in enumerate(per):
            if i != j:
                n = min(a0.shape[0], vj.shape[0])
                mism.append(float(np.einsum("nd,nd->n", a0[:n], vj[:n]).mean()))
    shifted = [d for d in shifted_d if not np.isnan(d)]
    if not shifted:
        raise ParameterError("calibration clips are too short for shifted pairs (need > 5 s)")
    cal = Calibration(mismatched_quantiles=_quantiles(mism), shifted_quantiles=_quantiles(shifted),
                      n_clips=len(clips), n_mismatched=len(mism), n_shifted=len(shifted))
    td = [d for d in true_d if not np.isnan(d)]
    cal.true_alignment_pass = float(np.mean([cal.alignment(s) >= ACCEPT for s in true_s]))
    cal.true_sync_pass = float(np.mean([cal.sync(d) >= ACCEPT for d in td])) if td else None
    cal.mismatched_alignment_pass = float(np.mean([cal.alignment(s) >= ACCEPT for s in mism]))
    cal.shifted_sync_pass = float(np.mean([cal.sync(d) >= ACCEPT for d in shifted]))
    return cal
