"""Ground-truth metrics of one system's output on one case, and the critic check.

Every metric compares the output with the CLEAN original (the truth), never with what a system
believes. Definitions (all in docs/benchmarks.md):

* ``si_sdr_in`` / ``si_sdr_out`` (dB): scale-invariant SDR of the input / output against the
  clean original over their common length; ``gain_db`` is the difference.
* ``pesq_*`` (wide-band, 16 kHz) and ``stoi_*`` for speech sources.
* ``offset_ms``: residual delay of the output against the clean (cross-correlation peak,
  > 0 late); ``offset_end_ms`` the same over the last 2 s (drift); ``offset_in_ms`` is the
  delay the case came in with. For such timing cases ``si_sdr_*`` is measured after shifting
  the signal back by its residual offset, so that it scores everything but the timing.
* ``lufs_out``, ``lu_outside`` (LU outside the [-33, -9] LUFS window a careful listener accepts
  without correction, 0 inside), ``true_peak_dbtp``.
* ``pitch_cents`` (rate faults): pitch of the output against the clean.
* ``gaps``: digital-silence runs >= 10 ms inside sound; ``gap_error_db`` (dropout cases): error
  energy inside the planted dropouts relative to the clean there (0 dB = left silent).
* ``control_si_sdr`` (clean controls): the output against the input itself.
* ``precision`` / ``recall``: the actions a system ran against the actions of the known inverse.
* ``acceptable`` (:func:`judge`): the truth's verdict on the output: SI-SDR >= 15 dB (or within
  3 dB of the oracle where even the oracle stays under that), |offset| <= 45 ms, no gaps,
  loudness inside the window or within 1 LU of the clean original's. The critic check asks whether the scorer's
  ``passes(0.85)`` agrees with it.
* SI-SDR of an offset case leaves out the shifted span (plus 50 ms) at both ends. Cases whose
  only faults are timing are judged on timing alone (see :func:`judge`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy import signal

from avagent.bench import metrics
from avagent.bench.suite import Case, fault_families
from avagent.bench.systems import CaseContext, Output

LOUD_LOW, LOUD_HIGH = -33.0, -9.0
ACCEPT_SI_SDR_DB = 15.0
ACCEPT_OFFSET_MS = 45.0
SI_SDR_CAP_DB = 60.0
PESQ_FAMILIES = {"clean", "noise", "hum", "dropouts", "clipped", "mixture"}


def _common(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = min(a.shape[-1], b.shape[-1])
    return a[..., :n], b[..., :n]


def _si_sdr(ref: np.ndarray, est: np.ndarray, trim: int = 0) -> float:
    r, e = _common(ref, est)
    if trim and r.shape[-1] > 4 * trim:
        r, e = r[..., trim:-trim], e[..., trim:-trim]
    # Above 60 dB every difference is far below hearing; the cap keeps a pure gain change (a
    # quiet clip) from counting as a 100 dB "loss" once any processing touches it.
    return float(np.clip(metrics.si_sdr(r, e), -50.0, SI_SDR_CAP_DB))


def _aligned(case: Case, y: np.ndarray, offset_ms: float) -> np.ndarray:
    """For a case whose fault moved the sound, ``y`` shifted back by its residual offset: its
    SI-SDR then measures everything but the timing, which ``offset_ms`` measures."""
    if not case.timing:
        return y
    k = round(offset_ms * case.sr / 1000.0)
    if k == 0:
        return y
    out = np.zeros_like(y)
    if k > 0:
        out[..., : y.shape[-1] - k] = y[..., k:]
    else:
        out[..., -k:] = y[..., : y.shape[-1] + k]
    return out


def _end_offset_ms(clean: np.ndarray, y: np.ndarray, sr: int, seconds: float = 2.0) -> float:
    """Residual offset over the last ``seconds`` of the clip: what drift leaves at the end."""
    n = min(clean.shape[-1], y.shape[-1])
    w = min(int(seconds * sr), n // 2)
    return metrics.residual_offset_ms(clean[..., n - w : n], y[..., n - w : n], sr=sr,
                                      max_ms=500.0)


def _trim(case: Case) -> int:
    """Samples left out at each end for SI-SDR: what a time shift destroyed for good (the end
    pushed out of the clip, or the hole at its start) cannot be repaired by anyone."""
    parts = case.truth.parts or [case.truth]
    delay = max((abs(float(p.params.get("audio_delay_ms", 0.0))) for p in parts), default=0.0)
    return int((delay / 1000.0 + 0.05) * case.sr) if delay else 0


def _lufs(y: np.ndarray, sr: int) -> float | None:
    try:
        v = metrics.loudness_lufs(y, sr=sr)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def _speech_scores(ref: np.ndarray, est: np.ndarray, sr: int) -> tuple[float | None, float | None]:
    from pesq import pesq
    from pystoi import stoi

    r, e = _common(np.asarray(ref).reshape(-1, ref.shape[-1]).mean(axis=0),
                   np.asarray(est).reshape(-1, est.shape[-1]).mean(axis=0))
    r16 = signal.resample_poly(r, 1, sr // 16000) if sr % 16000 == 0 else signal.resample_poly(
        r, 16000, sr)
    e16 = signal.resample_poly(e, 1, sr // 16000) if sr % 16000 == 0 else signal.resample_poly(
        e, 16000, sr)
    p: float | None
    try:
        p = float(pesq(16000, r16, e16, "wb"))
    except Exception:  # pesq refuses silence ("no utterances detected")
        p = None
    s = float(stoi(r16, e16, 16000, extended=False))
    return p, (s if math.isfinite(s) else None)


def _actions(plan: list[tuple[str, dict[str, Any]]]) -> set[str]:
    return {a for a, _ in plan}


def evaluate(case: Case, out: Output, *, in_metrics: dict[str, Any]) -> dict[str, Any]:
    """Metrics of ``out`` on ``case``; ``in_metrics`` holds the input's (see :func:`input_metrics`)."""
    row: dict[str, Any] = {"system": out.system, "seconds": round(out.seconds, 4),
                           "rounds": out.rounds, "error": out.error,
                           "plan": [[a, p] for a, p in out.plan]}
    if out.y is None:
        return row
    sr, clean, y = case.sr, case.clean, np.asarray(out.y, dtype=np.float64)
    dur = case.y.shape[-1] / sr
    row["rtf"] = round(dur / out.seconds, 1) if out.seconds > 0 else None
    row["offset_ms"] = round(metrics.residual_offset_ms(clean, y, sr=sr), 2)
    if case.timing:
        row["offset_end_ms"] = round(_end_offset_ms(clean, y, sr), 2)
    row["si_sdr_out"] = round(_si_sdr(clean, _aligned(case, y, row["offset_ms"]), _trim(case)), 3)
    row["gain_db"] = round(row["si_sdr_out"] - in_metrics["si_sdr_in"], 3)
    lufs = _lufs(y, sr)
    row["lufs_out"] = None if lufs is None else round(lufs, 2)
    row["lu_outside"] = None if lufs is None else round(max(0.0, LOUD_LOW - lufs, lufs - LOUD_HIGH), 2)
    row["true_peak_dbtp"] = round(metrics.true_peak_dbtp(y, sr=sr), 2)
    row["gaps"] = metrics.gap_residue(y, sr=sr).count
    fams = fault_families(case)
    if fams & {"drift", "pal"}:
        row["pitch_cents"] = round(metrics.pitch_error_cents(clean, y, sr=sr), 1)
    if "dropouts" in fams:
        spans = [tuple(s) for p in (case.truth.parts or [case.truth]) if p.family == "dropouts"
                 for s in p.params["spans_s"]]
        row["gap_error_db"] = round(metrics.span_error_db(clean, y, spans, sr=sr), 2)
    if case.family == "clean":
        row["control_si_sdr"] = round(_si_sdr(case.y, y), 2)
    if case.source.content == "speech" and case.family in PESQ_FAMILIES:
        row["pesq_out"], row["stoi_out"] = _speech_scores(clean, y, sr)
    truth_actions = _actions(case.truth.plan())
    ran = _actions(out.plan)
    row["precision"] = (len(ran & truth_actions) / len(ran)) if ran else (1.0 if not truth_actions else None)
    row["recall"] = (len(ran & truth_actions) / len(truth_actions)) if truth_actions else None
    return row


def judge(row: dict[str, Any], oracle_si_sdr: float | None, *, timing_only: bool = False,
          clean_lufs: float | None = None) -> bool:
    """The truth's verdict on an output. The SI-SDR bar is ACCEPT_SI_SDR_DB, or 3 dB under what
    the known inverse reaches when even that stays lower (a dropout refilled from context, a
    clipped peak, noise that no action removes whole): damage nobody can undo is not held
    against a system. A case whose only faults are timing (offset, drift, PAL) is judged on
    timing alone: residual offset at the middle and at the end within 45 ms, pitch within
    20 cents (a 12 ms drift over a short clip is not a fault anyone hears)."""
    if row.get("si_sdr_out") is None:
        return False
    timing_ok = (abs(row["offset_ms"]) <= ACCEPT_OFFSET_MS
                 and abs(row.get("offset_end_ms", 0.0)) <= ACCEPT_OFFSET_MS
                 and abs(row.get("pitch_cents", 0.0)) <= 20.0)
    # loudness inside the window, or where the clean original itself sits (a quiet film is
    # not wrong for being as quiet as it was made)
    level_ok = row["gaps"] == 0 and (
        row["lu_outside"] is None or row["lu_outside"] <= 1.0
        or (clean_lufs is not None and row["lufs_out"] is not None
            and abs(row["lufs_out"] - clean_lufs) <= 1.0))
    if timing_only:
        return bool(timing_ok and level_ok)
    bar = ACCEPT_SI_SDR_DB if oracle_si_sdr is None else min(ACCEPT_SI_SDR_DB, oracle_si_sdr - 3.0)
    return bool(row["si_sdr_out"] >= bar and timing_ok and level_ok)


def input_metrics(case: Case) -> dict[str, Any]:
    sr = case.sr
    offset = metrics.residual_offset_ms(case.clean, case.y, sr=sr)
    m: dict[str, Any] = {
        "si_sdr_in": round(_si_sdr(case.clean, _aligned(case, case.y, offset), _trim(case)), 3),
        "offset_in_ms": round(offset, 2),
        "lufs_in": _lufs(case.y, sr),
        "lufs_clean": _lufs(case.clean, sr),
        "gaps_in": metrics.gap_residue(case.y, sr=sr).count,
    }
    if case.source.content == "speech" and case.family in PESQ_FAMILIES:
        m["pesq_in"], m["stoi_in"] = _speech_scores(case.clean, case.y, sr)
    return m


def critic_scores(ctx: CaseContext, out: Output) -> dict[str, float] | None:
    """The embedded scorer's verdict on an output, re-measured as the loop's reflect step does."""
    if out.y is None:
        return None
    from avagent.reflection.scorers import get_scorer

    scores, _ = get_scorer("embedded").score(
        np.asarray(out.y), sr=ctx.case.sr, frames=ctx.case.source.frames, before=ctx.facts(),
        timing_changed=True,
    )
    return {"alignment": round(scores.alignment, 4), "sync": round(scores.sync, 4)}


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    from scipy.stats import spearmanr

    if len(x) < 3 or len(set(x)) < 2 or len(set(y)) < 2:
        return None
    return float(spearmanr(x, y).statistic)


def _within_case(rows: list[dict[str, Any]], score: str, truth: Callable[[dict[str, Any]], float]
                 ) -> tuple[float | None, int]:
    """Mean over cases of the Spearman correlation between a score and the truth across the
    versions (system outputs) of the same case: can the scorer tell the better version of a
    clip, which is all the loop asks of it. Cases whose versions the truth cannot rank
    (fewer than three distinct values) are left out."""
    by_case: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_case.setdefault(r["case_id"], []).append(r)
    rhos = []
    for group in by_case.values():
        t = [truth(r) for r in group]
        if len({round(v, 1) for v in t}) < 3:
            continue
        rho = spearman([r["critic"][score] for r in group], t)
        rhos.append(0.0 if rho is None else rho)  # a flat score ranks nothing
    return (float(np.mean(rhos)) if rhos else None), len(rhos)


def within_case_alignment(rows: list[dict[str, Any]]) -> tuple[float | None, int]:
    """Mean within-case Spearman(alignment, SI-SDR) over the cases without timing faults."""
    return _within_case([r for r in rows if r.get("critic") and not r["timing"]], "alignment",
                        lambda r: r["si_sdr_out"])


def critic_check(rows: list[dict[str, Any]], threshold: float = 0.85) -> dict[str, Any]:
    """How far the scorer can be trusted: rank correlation with the truth and how well
    ``passes(threshold)`` separates acceptable from unacceptable outputs."""
    scored = [r for r in rows if r.get("critic")]
    w_align, n_align = within_case_alignment(scored)
    w_sync, n_sync = _within_case([r for r in scored if r["timing"]], "sync",
                                  lambda r: -abs(r["offset_ms"]))
    align = [(r["critic"]["alignment"], r["si_sdr_out"]) for r in scored]
    sync_rows = [r for r in scored if r.get("video_kind") == "event"]
    sync = [(r["critic"]["sync"], -abs(r["offset_ms"])) for r in sync_rows]
    sync_all = [(r["critic"]["sync"], -abs(r["offset_ms"])) for r in scored]
    tp = sum(1 for r in scored if r["acceptable"] and _passes(r, threshold))
    fp = sum(1 for r in scored if not r["acceptable"] and _passes(r, threshold))
    fn = sum(1 for r in scored if r["acceptable"] and not _passes(r, threshold))
    return {
        "n": len(scored),
        "within_case_alignment_si_sdr": w_align,
        "within_case_alignment_cases": n_align,
        "within_case_sync_offset": w_sync,
        "within_case_sync_cases": n_sync,
        "spearman_alignment_si_sdr": spearman(*zip(*align, strict=False)) if align else None,
        "spearman_sync_offset_event": spearman(*zip(*sync, strict=False)) if sync else None,
        "spearman_sync_offset_all": spearman(*zip(*sync_all, strict=False)) if sync_all else None,
        "n_event": len(sync_rows),
        "acceptable": sum(1 for r in scored if r["acceptable"]),
        "passes": tp + fp,
        "precision": tp / (tp + fp) if tp + fp else None,
        "recall": tp / (tp + fn) if tp + fn else None,
    }


def _passes(row: dict[str, Any], threshold: float) -> bool:
    c = row["critic"]
    return bool(c["alignment"] >= threshold and c["sync"] >= threshold)
