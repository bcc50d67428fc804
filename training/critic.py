"""A learned critic: the pretrained AV-MAE's audio–picture agreement, calibrated self-supervised.

Agreement is the cosine between the model's mean-pooled audio and video embeddings of a 1.92 s
window. Raw cosines mean little on their own (the DESIGN's ImageBind remark applies), so
``avagent train critic`` calibrates them on a manifest of pairs, most of which are in sync and
matched, using labels that cost nothing (the SyncNet / Synchformer idea):

* **alignment** = σ(a · cos + b), fitted on true pairs (1) against shuffled pairs (0): the
  probability that this sound belongs to this picture;
* **sync**: the cosine as a function of a shift of the sound against the picture,
  ``s(k)`` for k in ±``MAX_SHIFT_MS``; the margin ``m = s(0) − max_{|k| ≥ 200 ms} s(k)`` is
  calibrated as σ(c · m + d) on true pairs (1) against the same pairs with their sound delayed by
  200–800 ms (0). ``argmax_k s(k)`` is the sync estimate (``audio_delay_ms``, > 0: sound late).

The calibration is stored beside the weights (``critic.pt``: a checkpoint with a ``critic``
entry). :class:`LearnedScorer` is the reflection backend ``learned``; it still measures the
facts the planner reads with the embedded scorer, and replaces only the two scores.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from avagent.errors import BackendError, ParameterError

logger = logging.getLogger(__name__)

SHIFT_STEP_MS = 40
MAX_SHIFT_MS = 800
MIN_WRONG_MS = 200  # shifts the margin compares against (and calibration negatives start at)
PAD = MAX_SHIFT_MS // 10  # spectrogram frames of padding each side


def _shifts() -> np.ndarray:
    return np.arange(-MAX_SHIFT_MS, MAX_SHIFT_MS + 1, SHIFT_STEP_MS)


def padded_mel(y16: np.ndarray) -> np.ndarray:
    """Log-mel of 16 kHz sound with ``PAD`` frames of silence each side: ``(F, PAD + T + PAD)``,
    T at least one model window."""
    from avagent.training.data import N_FRAMES, log_mel

    pad = np.zeros(PAD * 160, np.float32)
    x = np.concatenate([pad, np.asarray(y16, np.float32), pad])
    return log_mel(x, n_frames=max((x.size - 1) // 160 + 1, N_FRAMES + 2 * PAD))


def shift_profile(model: Any, mel: np.ndarray, video: np.ndarray, start: int = 0
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Cosine agreement ``s(k)`` for every shift of :func:`_shifts` (ms) of one window.

    ``mel`` from :func:`padded_mel`; ``video`` (1, T, S, S) of the window starting at spectrogram
    frame ``start``. A positive k reads the sound k ms later: the best k is the sound's delay.
    """
    import torch
    import torch.nn.functional as F  # noqa: N812

    from avagent.training.data import N_FRAMES

    ks = _shifts()
    idx = [PAD + start + int(k // 10) for k in ks]
    a = np.stack([mel[:, i : i + N_FRAMES] for i in idx])[:, None]  # (K, 1, F, T)
    with torch.no_grad():
        v = torch.as_tensor(video)[None].expand(len(ks), *video.shape)
        ea, ev = model.embed(torch.as_tensor(a), v)
        s = F.cosine_similarity(ea, ev, dim=-1).numpy()
    return ks, s


def sync_margin(ks: np.ndarray, s: np.ndarray) -> float:
    zero = int(np.flatnonzero(ks == 0)[0])
    far = np.abs(ks) >= MIN_WRONG_MS
    return float(s[zero] - s[far].max())


def _fit_logistic(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """σ(a·x + b) by Newton steps on the log-likelihood (x standardised first)."""
    mu, sd = float(x.mean()), float(x.std() or 1.0)
    z = (x - mu) / sd
    w = np.zeros(2)
    X = np.stack([z, np.ones_like(z)], axis=1)
    for _ in range(50):
        p = 1 / (1 + np.exp(-(X @ w)))
        g = X.T @ (y - p) - 1e-3 * w
        H = -(X.T * (p * (1 - p))) @ X - 1e-3 * np.eye(2)
        w = w - np.linalg.solve(H, g)
    return float(w[0] / sd), float(w[1] - w[0] * mu / sd)


def calibrate(checkpoint: str | Path, manifest: str | Path, *, limit: int = 200, seed: int = 0
              ) -> dict[str, Any]:
    """Fit both calibrations on (at most ``limit``) pairs of ``manifest``; returns the entry."""
    import torch
    import torch.nn.functional as F  # noqa: N812

    from avagent.training.data import (
        N_FRAMES,
        check_pairs,
        load_audio,
        read_manifest,
    )
    from avagent.training.data import features as pair_features
    from avagent.training.pretrain import build_model, load_checkpoint

    model = build_model(load_checkpoint(checkpoint))
    pairs = read_manifest(manifest)[:limit]
    check_pairs(pairs, manifest)
    if len(pairs) < 4:
        raise ParameterError(f"manifest {manifest}: {len(pairs)} pairs; calibration needs >= 4")
    rng = np.random.default_rng(seed)
    mels, vids = [], []
    for p in pairs:
        _, v = pair_features(p)
        mels.append(padded_mel(load_audio(p.audio)))
        vids.append(v)
    with torch.no_grad():
        A = torch.as_tensor(np.stack([m[:, PAD : PAD + N_FRAMES] for m in mels]))[:, None]
        ea, ev = model.embed(A, torch.as_tensor(np.stack(vids)))
        ea, ev = F.normalize(ea, dim=-1), F.normalize(ev, dim=-1)
    n = len(pairs)
    perm = (np.arange(n) + rng.integers(1, n, size=n)) % n  # a different clip for each
    pos = (ea * ev).sum(-1).numpy()
    neg = (ea[perm] * ev).sum(-1).numpy()
    align = _fit_logistic(np.concatenate([pos, neg]), np.r_[np.ones(n), np.zeros(n)])
    margins, labels, errors = [], [], []
    for i in range(n):
        for delay in (0, int(rng.choice([-1, 1]) * rng.integers(MIN_WRONG_MS, MAX_SHIFT_MS))):
            # Delaying the sound by d: the window that matches the picture starts d ms later.
            shifted = np.roll(mels[i], delay // 10, axis=1)
            ks, s = shift_profile(model, shifted, vids[i])
            margins.append(sync_margin(ks, s))
            labels.append(1.0 if delay == 0 else 0.0)
            errors.append(abs(int(ks[int(np.argmax(s))]) - delay))
    sync = _fit_logistic(np.asarray(margins), np.asarray(labels))
    errs = np.asarray(errors)
    return {
        "alignment": {"a": align[0], "b": align[1]},
        "sync": {"c": sync[0], "d": sync[1]},
        "pairs": n,
        "auc_alignment": _auc(pos, neg),
        "auc_sync": _auc(np.asarray(margins)[np.asarray(labels) == 1],
                         np.asarray(margins)[np.asarray(labels) == 0]),
        "offset_within_80ms": float(np.mean(errs <= 80)),
        "manifest": str(manifest),
    }


def _auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """Probability that a positive outscores a negative (ties count half)."""
    diff = pos[:, None] - neg[None, :]
    return float(np.mean((diff > 0) + 0.5 * (diff == 0)))


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-max(-50.0, min(50.0, x))))


def _frames_tensor(frames: Any, start_s: float) -> np.ndarray:
    """The model's video input from a FrameSet: 16 frames at 8 fps from ``start_s``, 32x32."""
    import torch
    import torch.nn.functional as F  # noqa: N812

    from avagent.training.data import N_VIDEO_FRAMES, SIDE, VIDEO_FPS, video_tensor

    want = start_s + np.arange(N_VIDEO_FRAMES) / VIDEO_FPS
    idx = np.clip(np.searchsorted(frames.times_s, want - 1e-6), 0, len(frames.times_s) - 1)
    x = torch.as_tensor(frames.frames[idx].astype(np.float32))[:, None]  # (T, 1, H, W)
    x = F.interpolate(x, size=(SIDE, SIDE), mode="area")[:, 0]
    return video_tensor(x.round().clamp(0, 255).numpy())


class LearnedScorer:
    """Reflection backend ``learned``: the AV-MAE critic's calibrated scores.

    ``checkpoint``: a ``critic.pt`` written by ``avagent train critic``. Clips longer than one
    window are scored on up to ``max_windows`` windows spread over the clip (mean of the
    agreements, median of the sync estimates). Audio-only input gets sync 1, as the embedded
    scorer gives.
    """

    name = "learned"

    def __init__(self, checkpoint: str | Path | None = None, max_windows: int = 4) -> None:
        from avagent.training.pretrain import TrainingError, build_model, load_checkpoint

        if not checkpoint or not str(checkpoint).strip():
            raise BackendError("scorer 'learned' needs checkpoint=PATH: set "
                               "AVAGENT_CRITIC_CHECKPOINT (or --critic-checkpoint) to a critic.pt "
                               "written by `avagent train critic`")
        if not Path(checkpoint).is_file():
            raise BackendError(f"scorer 'learned': critic checkpoint {str(checkpoint)!r} is not "
                               "a file (AVAGENT_CRITIC_CHECKPOINT)")
        try:
            state = load_checkpoint(checkpoint)
        except TrainingError as exc:
            raise BackendError(f"scorer 'learned': {exc}") from None
        if "critic" not in state:
            raise BackendError(f"scorer 'learned': {checkpoint} has no calibration; run "
                               "`avagent train critic` on it")
        self.model = build_model(state)
        self.cal = state["critic"]
        self.max_windows = max_windows

    def judge(self, y: np.ndarray, *, sr: int, frames: Any) -> dict[str, float]:
        """Raw and calibrated agreement, sync margin and delay estimate of audio vs frames."""
        import soxr

        from avagent.training.data import N_FRAMES, SR

        mono = np.asarray(y, np.float64).reshape(-1, np.shape(y)[-1]).mean(axis=0)
        y16 = soxr.resample(mono, sr, SR) if sr != SR else mono
        mel = padded_mel(y16)
        dur = y16.size / SR
        win_s = N_FRAMES / 100
        starts = np.linspace(0, max(0.0, dur - win_s), max(1, min(self.max_windows,
                                                                 int(dur // win_s))))
        cos, margins, delays = [], [], []
        for t0 in starts:
            ks, s = shift_profile(self.model, mel, _frames_tensor(frames, float(t0)),
                                  start=round(t0 * 100))
            cos.append(float(s[int(np.flatnonzero(ks == 0)[0])]))
            margins.append(sync_margin(ks, s))
            delays.append(float(ks[int(np.argmax(s))]))
        c = float(np.mean(cos))
        m = float(np.mean(margins))
        al, sy = self.cal["alignment"], self.cal["sync"]
        return {"agreement": c, "sync_margin": m, "audio_delay_ms": float(np.median(delays)),
                "alignment": _sigmoid(al["a"] * c + al["b"]),
                "sync": _sigmoid(sy["c"] * m + sy["d"])}

    def score(self, y: np.ndarray, *, sr: int, frames: Any = None, facts: Any = None,
              before: Any = None, timing_changed: bool = False) -> tuple[Any, Any]:
        from avagent.reflection.scorers import Scores

        measured = facts if facts is not None else _measure(
            y, sr=sr, frames=frames, before=before, timing_changed=timing_changed)
        if frames is None:
            return Scores(alignment=1.0, sync=1.0, details={"learned": 0.0}), measured
        j = self.judge(y, sr=sr, frames=frames)
        details = {k: round(float(v), 4) for k, v in j.items()}
        return Scores(alignment=min(1.0, max(0.0, j["alignment"])),
                      sync=min(1.0, max(0.0, j["sync"])), details=details), measured


def _measure(y: np.ndarray, *, sr: int, frames: Any, before: Any, timing_changed: bool) -> Any:
    """The facts the planner reads next round (what the embedded scorer measures)."""
    from avagent.perception.audio import analyze_audio
    from avagent.perception.facts import Facts

    audio = analyze_audio(y, sr=sr, speech_quality=False)
    video = before.video if before is not None else None
    sync = before.sync if before is not None else None
    if frames is not None and (timing_changed or before is None):
        from avagent.perception.sync import estimate_sync as measured_sync
        from avagent.perception.video import analyze_video

        video = video if video is not None else analyze_video(frames)
        sync = measured_sync(y, sr=sr, frames=frames, audio_duration_s=y.shape[-1] / sr)
    return Facts(audio=audio, video=video, sync=sync)


def estimate_sync(y: np.ndarray, *, sr: int, frames: Any, checkpoint: str | Path
                  ) -> dict[str, float]:
    """The learned sync estimate perception may use: ``audio_delay_ms`` (> 0: the sound is
    late; the best shift within ±800 ms, 40 ms steps) and ``in_sync`` (the calibrated
    probability that the pair as given is in sync)."""
    j = LearnedScorer(checkpoint).judge(y, sr=sr, frames=frames)
    return {"audio_delay_ms": j["audio_delay_ms"], "in_sync": j["sync"]}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="a checkpoint of `avagent train mae`")
    p.add_argument("--manifest", required=True, help="pairs to calibrate on (mostly in sync)")
    p.add_argument("--out", type=Path, default=None,
                   help="where to write the critic (default: critic.pt beside the checkpoint)")
    p.add_argument("--limit", type=int, default=200, help="pairs used (200)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bench", choices=("tiny", "small"), default=None,
                   help="then run the benchmark's critic check with both scorers on this suite")


def run(args: argparse.Namespace) -> int:
    import torch

    from avagent.training.pretrain import load_checkpoint

    entry = calibrate(args.checkpoint, args.manifest, limit=args.limit, seed=args.seed)
    state = load_checkpoint(args.checkpoint)
    state["critic"] = entry
    state["optimizer"] = None
    out = args.out or Path(args.checkpoint).with_name("critic.pt")
    tmp = out.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(out)
    print(json.dumps({**entry, "critic": str(out)}))
    if args.bench:
        result = bench_check(out, size=args.bench)
        result_path = out.with_name(f"bench-{args.bench}.json")
        result_path.write_text(json.dumps(result, indent=1))
        print(json.dumps({**result, "written": str(result_path)}))
    return 0


# -- the benchmark's critic check, learned beside embedded -------------------------------------------
def bench_check(checkpoint: str | Path, *, size: str = "tiny", seed: int = 0,
                systems: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Re-score the outputs of ``systems`` (default: the benchmark's own critic systems,
    ``bench.run.CRITIC_SYSTEMS``, those that run here) on the benchmark suite with both scorers
    and report :func:`avagent.bench.evaluate.critic_check` for each (within-case Spearman
    against SI-SDR and against −|offset|), plus the learned and the hand-made sync estimates'
    accuracy (within ±1 frame of the planted offset) on the inputs of the timing cases."""
    from avagent.bench import suite
    from avagent.bench.evaluate import critic_check, critic_scores, evaluate, input_metrics, judge
    from avagent.bench.run import CRITIC_SYSTEMS
    from avagent.bench.systems import CaseContext, available, run_system

    wanted = tuple(systems or CRITIC_SYSTEMS)
    runnable = tuple(n for n, why in available(wanted).items() if why is None)
    scorer = LearnedScorer(checkpoint)
    rows: dict[str, list[dict[str, Any]]] = {"embedded": [], "learned": []}
    offsets: list[tuple[float | None, float | None, float]] = []  # learned, hand-made, truth
    errors: list[str] = []
    cases = suite.build_cases(size, seed)
    for ci, case in enumerate(cases):
        ctx = CaseContext(case)
        timing = bool(suite.fault_families(case) & {"offset", "drift", "pal"})
        base = {"video_kind": case.source.kind, "family": case.family, "case_id": case.id,
                "timing": timing}
        in_metrics = input_metrics(case)
        case_rows: list[tuple[dict[str, Any], dict[str, float] | None,
                              dict[str, float] | None]] = []
        for name in runnable:
            out = run_system(name, ctx)
            if out.y is None:
                errors.append(f"{case.id} {name}: {out.error}")
                continue
            row = {**evaluate(case, out, in_metrics=in_metrics), **base, "system": name}
            embedded = learned = None
            delay = None
            try:
                embedded = critic_scores(ctx, out)
            except Exception as exc:  # a scorer failure is a result on this case, not a crash
                errors.append(f"{case.id} {name} embedded: {type(exc).__name__}: {exc}")
            try:
                j = scorer.judge(np.asarray(out.y), sr=case.sr, frames=case.source.frames)
                learned, delay = {"alignment": j["alignment"], "sync": j["sync"]}, j[
                    "audio_delay_ms"]
            except Exception as exc:
                errors.append(f"{case.id} {name} learned: {type(exc).__name__}: {exc}")
            case_rows.append((row, embedded, learned))
            if name == "none" and timing and row.get("offset_ms") is not None:
                sync = ctx.facts().sync
                offsets.append((delay, sync.audio_delay_ms if sync else None,
                                float(row["offset_ms"])))
        # The truth's verdict on each output, as bench/run.py gives it (relative to the oracle).
        oracle = next((r["si_sdr_out"] for r, _, _ in case_rows if r["system"] == "oracle"), None)
        timing_only = suite.fault_families(case) <= {"offset", "drift", "pal"}
        for row, embedded, learned in case_rows:
            row["acceptable"] = judge(row, oracle, timing_only=timing_only,
                                      clean_lufs=in_metrics["lufs_clean"])
            rows["embedded"].append({**row, "critic": embedded})
            rows["learned"].append({**row, "critic": learned})
        logger.info("bench_check %d/%d %s: %d outputs", ci + 1, len(cases), case.id,
                    len(case_rows))
    frame_ms = 1000 / suite.FPS

    def within(k: int) -> float | None:
        hits = [o[k] is not None and abs(float(o[k]) - o[2]) <= frame_ms  # type: ignore[arg-type]
                for o in offsets]
        return float(np.mean(hits)) if hits else None

    return {
        "size": size, "seed": seed, "cases": len(cases), "systems": list(runnable),
        "embedded": critic_check(rows["embedded"]), "learned": critic_check(rows["learned"]),
        "offset_within_1_frame": {"learned": within(0), "hand_made": within(1),
                                  "frame_ms": frame_ms},
        "timing_cases": len(offsets),
        "offsets": [{"learned_ms": o[0], "hand_made_ms": o[1], "truth_ms": o[2]}
                    for o in offsets],
        "errors": errors,
    }
