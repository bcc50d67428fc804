"""Actions benchmark: the measurements (noise, low cut, speed, pitch, volume, fill_blanks) on real clips."""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from avagent.bench import corrupt, metrics, signals
from avagent.bench.action_cases import (
    LOWCUT_HZ,
    LOWCUT_KINDS,
    NOISE_ACTIONS,
    NOISE_VARIANTS,
    SR,
    TARGET_SNR,
    Results,
    apply_plan,
    corrupt_noise,
    guarded,
    run,
)

logger = logging.getLogger(__name__)

def bench_noise(res: Results, clips: list[signals.Clip]) -> None:
    cfg = res.config
    variants = [v for v in NOISE_VARIANTS if res.status.get(v[1]) is None]
    for ci, clip in enumerate(clips):
        for label, name, params in variants:
            out = guarded(res, f"{label} on clean {clip.name}", run, name, clip.y, params)
            if out is not None:
                res.clean.append(
                    {
                        "action": label,
                        "content": clip.content,
                        "clip": clip.name,
                        "si_sdr": metrics.si_sdr(clip.y, out),
                    }
                )
        for kind in cfg.kinds:
            for snr in cfg.snrs:
                noisy = corrupt_noise(clip, kind, snr, seed=100 * ci + int(snr))
                before = metrics.si_sdr(clip.y, noisy)
                for label, name, params in variants:
                    t0 = time.perf_counter()
                    out = guarded(
                        res, f"{label} on {kind}@{snr} {clip.name}", run, name, noisy, params
                    )
                    if out is None:
                        continue
                    res.noise.append(
                        {
                            "action": label,
                            "content": clip.content,
                            "clip": clip.name,
                            "kind": kind,
                            "snr": snr,
                            "before": before,
                            "after": metrics.si_sdr(clip.y, out),
                            "seconds": time.perf_counter() - t0,
                        }
                    )
        logger.info("noise: %s done", clip.name)




def lowcut(x: np.ndarray, hz: float = LOWCUT_HZ) -> np.ndarray:
    """``x`` without its content below ``hz`` (zero-phase, FFT brick wall)."""
    spec = np.fft.rfft(x, axis=-1)
    spec[..., np.fft.rfftfreq(x.shape[-1], 1 / SR) < hz] = 0.0
    return np.fft.irfft(spec, n=x.shape[-1], axis=-1)


def floor_error_db(clean: np.ndarray, noisy: np.ndarray) -> tuple[float, float]:
    """Noise floor estimated by the denoisers (``avagent.dsp.noise_psd``, 40 ms frames) over
    the true mean noise power: in the two lowest bins (0-35 Hz) and in the bins up to 1 kHz."""
    from avagent import dsp as _dsp

    n_fft = _dsp.fft_size(SR, 40.0)
    P = _dsp.power(_dsp.stft(_dsp.to_rows(noisy, np.float32), n_fft))
    est = _dsp.noise_psd(P, n_fft, sr=SR)[:, 0, :]
    noise = _dsp.to_rows(noisy - clean, np.float32)
    true = _dsp.power(_dsp.stft(noise, n_fft)).astype(np.float64).mean(axis=1)
    k1 = int(1000 * n_fft / SR)

    def ratio(sel: slice) -> float:
        return float(10 * np.log10(est[:, sel].sum() / true[:, sel].sum()))

    return ratio(slice(0, 2)), ratio(slice(2, k1))


def bench_lowcut(res: Results, clips: list[signals.Clip]) -> None:
    """Pink and brown noise again, without their infrasound (< 20 Hz), at the target SNR.

    The synthetic 1/f**a noises start at 1/duration (0.11 Hz for 9 s), so much of their power is
    infrasound, inaudible and inside the two lowest STFT bins. Same seeds and mixing as
    :func:`bench_noise`; only the noise's content below 20 Hz is removed before it is scaled.
    """
    snr = TARGET_SNR if TARGET_SNR in res.config.snrs else res.config.snrs[0]
    actions = [a for a in NOISE_ACTIONS if res.status.get(a) is None]
    for ci, clip in enumerate(clips):
        x = clip.y if clip.y.ndim == 2 else clip.y[None]
        for kind in (k for k in LOWCUT_KINDS if k in res.config.kinds):
            # How well the denoisers' shared noise-floor estimate sees this noise's lowest bins.
            noisy_full = corrupt_noise(clip, kind, snr, seed=100 * ci + int(snr))
            est = guarded(
                res, f"floor estimate {kind} {clip.name}", floor_error_db, clip.y, noisy_full
            )
            if est is not None:
                res.lowcut.append(
                    {
                        "action": "_floor",
                        "content": clip.content,
                        "clip": clip.name,
                        "kind": kind,
                        "snr": snr,
                        "low_db": est[0],
                        "rest_db": est[1],
                    }
                )
            n = signals.noise(kind, x.shape[-1], channels=x.shape[0], seed=100 * ci + int(snr))
            n = lowcut(n)
            mask = metrics.active_mask(x, sr=SR)
            n *= np.sqrt(np.mean(x[:, mask] ** 2) / (np.mean(n[:, mask] ** 2) * 10 ** (snr / 10)))
            noisy = (x + n).reshape(clip.y.shape)
            before = metrics.si_sdr(clip.y, noisy)
            for name in actions:
                out = guarded(res, f"{name} on {kind}<20Hz cut {clip.name}", run, name, noisy)
                if out is not None:
                    res.lowcut.append(
                        {
                            "action": name,
                            "content": clip.content,
                            "clip": clip.name,
                            "kind": kind,
                            "snr": snr,
                            "gain": metrics.si_sdr(clip.y, out) - before,
                        }
                    )
    logger.info("low-cut noise done")


def _window_offsets(clean: np.ndarray, rep: np.ndarray, seconds: float = 1.5) -> list[float]:
    """Residual offset in a window at the start, middle and end (drift shows as a spread)."""
    n = min(clean.shape[-1], rep.shape[-1])
    w = int(seconds * SR)
    starts = (int(0.25 * SR), (n - w) // 2, n - w - int(0.25 * SR))
    return [
        metrics.residual_offset_ms(clean[..., s : s + w], rep[..., s : s + w], sr=SR, max_ms=50)
        for s in starts
    ]


def bench_speed(res: Results, clips: list[signals.Clip]) -> None:
    if res.status.get("speed") is not None:
        return
    cases: list[tuple[str, dict[str, Any]]] = [
        ("offset", {"audio_delay_ms": ms}) for ms in res.config.offsets_ms
    ]
    cases += [("drift", {"rate": 1.001}), ("drift", {"rate": 1.003}), ("pal", {})]
    for clip in clips:
        for family, params in cases:
            bad, truth = corrupt.corrupt(family, clip.y, sr=SR, **params)
            rep = guarded(res, f"speed {family} {clip.name}", apply_plan, bad, truth.plan())
            if rep is None:
                continue
            kept = slice(0, clip.y.shape[-1])
            if family == "offset":
                residual = [metrics.residual_offset_ms(clip.y, rep, sr=SR)]
                label = f"offset {params['audio_delay_ms']:+.0f} ms"
                # The fault cut off one edge for good; score the part that survived.
                k = round(truth.params["audio_delay_ms"] * SR / 1000)
                kept = slice(0, clip.y.shape[-1] - k) if k > 0 else slice(-k, clip.y.shape[-1])
            else:
                residual = _window_offsets(clip.y, rep)
                label = f"drift x{params['rate']}" if family == "drift" else "PAL 25/23.976"
            res.speed.append(
                {
                    "case": label,
                    "content": clip.content,
                    "clip": clip.name,
                    "plan": truth.plan(),
                    "offset_ms": max(residual, key=abs),
                    "before_ms": _before_offset(clip.y, bad, family, truth),
                    "length_error": rep.shape[-1] - clip.y.shape[-1],
                    "cents": metrics.pitch_error_cents(clip.y, rep, sr=SR),
                    "si_sdr": metrics.si_sdr(clip.y[..., kept], rep[..., kept]),
                }
            )
    logger.info("speed done")


def _before_offset(clean: np.ndarray, bad: np.ndarray, family: str, truth: corrupt.Truth) -> float:
    if family == "offset":
        return float(truth.params["audio_delay_ms"])
    # A rate fault: how far the end has drifted.
    n = bad.shape[-1]
    return -(n / SR) * (float(truth.params["rate"]) - 1) * 1000


def bench_pitch(res: Results, clips: list[signals.Clip]) -> None:
    if res.status.get("pitch") is not None:
        return
    for clip in clips:
        for st in (-2.0, -0.71, 0.71, 2.0):
            out = guarded(res, f"pitch {st} {clip.name}", run, "pitch", clip.y, {"semitones": st})
            if out is None:
                continue
            measured = metrics.pitch_error_cents(clip.y, out, sr=SR)
            res.pitch.append(
                {
                    "case": f"shift {st:+.2f} st",
                    "content": clip.content,
                    "clip": clip.name,
                    "error_cents": measured - 100 * st,
                    "length_error": out.shape[-1] - clip.y.shape[-1],
                }
            )
        # PAL whose duration was already conformed: only the pitch is left to undo.
        bad, truth = corrupt.pal(clip.y, sr=SR)
        st = -truth.params["pitch_cents"] / 100
        out = guarded(res, f"pitch PAL {clip.name}", run, "pitch", bad, {"semitones": st})
        if out is not None:
            res.pitch.append(
                {
                    "case": f"PAL pitch undo ({st:+.3f} st)",
                    "content": clip.content,
                    "clip": clip.name,
                    "error_cents": metrics.pitch_error_cents(clip.y, out, sr=SR),
                    "length_error": out.shape[-1] - bad.shape[-1],
                }
            )
    logger.info("pitch done")


def bench_volume(res: Results, clips: list[signals.Clip]) -> None:
    if res.status.get("volume") is not None:
        return
    for clip in clips:
        cases: list[tuple[str, np.ndarray, dict[str, Any]]] = []
        q, tq = corrupt.quiet(clip.y, sr=SR)
        cases.append(("quiet -40 LUFS -> clean level", q, tq.plan()[0][1]))
        c, tc = corrupt.clipped(clip.y, sr=SR, gain_db=12.0)
        cases.append(("clipped +12 dB -> clean level", c, tc.plan()[0][1]))
        for target in (-23.0, -16.0):
            cases.append((f"clean -> {target:.0f} LUFS", clip.y, {"target_lufs": target}))
            cases.append((f"quiet -> {target:.0f} LUFS", q, {"target_lufs": target}))
        for label, y, params in cases:
            out = guarded(res, f"volume {label} {clip.name}", run, "volume", y, params)
            if out is None:
                continue
            res.volume.append(
                {
                    "case": label,
                    "content": clip.content,
                    "clip": clip.name,
                    "error_lu": metrics.loudness_error_lu(
                        out, sr=SR, target_lufs=params["target_lufs"]
                    ),
                    "true_peak": metrics.true_peak_dbtp(out, sr=SR),
                }
            )
    logger.info("volume done")


def _edges(y: np.ndarray, a_s: float, b_s: float) -> dict[str, float]:
    """The levels (dBFS, channel sum) that ``fill_blanks`` judges a zero run ``[a_s, b_s)`` by:
    the 3 ms edge on each side, the 20 ms before / after that, and the clip's sound floor."""
    from avagent.actions import fill_blanks as fb

    x = y.reshape(-1, y.shape[-1])
    p = (x**2).sum(axis=0)
    a, b = round(a_s * SR), round(b_s * SR)
    edge, ctx = round(fb._EDGE_MS * SR / 1000), round(fb._CONTEXT_MS * SR / 1000)
    h = round(fb._FRAME_MS * SR / 1000)
    frames = p[: p.size // h * h].reshape(-1, h).mean(axis=1)

    def level(i: int, j: int) -> float:
        seg = p[max(0, i) : min(p.size, j)]
        return float(10 * np.log10(seg.mean() + 1e-30)) if seg.size else float("nan")

    return {
        "left_edge": level(a - edge, a),
        "left_ctx": level(a - edge - ctx, a - edge),
        "right_edge": level(b, b + edge),
        "right_ctx": level(b + edge, b + edge + ctx),
        "floor": float(np.percentile(10 * np.log10(frames + 1e-30), 95)) - fb._LOUD_REL_DB,
        "abrupt_db": fb._ABRUPT_DB,
    }




def bench_fill(res: Results, clips: list[signals.Clip]) -> None:
    if res.status.get("fill_blanks") is not None:
        return
    for ci, clip in enumerate(clips):
        out = guarded(res, f"fill_blanks clean {clip.name}", run, "fill_blanks", clip.y)
        if out is not None:
            res.fill.append(
                {
                    "case": "clean (nothing to fill)",
                    "content": clip.content,
                    "clip": clip.name,
                    "gaps": 0,
                    "gap_ms": 0.0,
                    "span_db": float("nan"),
                    "improvement": float("nan"),
                    "si_sdr": metrics.si_sdr(clip.y, out),
                }
            )
        for count, lo, hi in ((4, 20.0, 60.0), (4, 60.0, 200.0)):
            bad, truth = corrupt.dropouts(clip.y, sr=SR, count=count, min_ms=lo, max_ms=hi, seed=ci)
            out = guarded(res, f"fill_blanks {clip.name}", apply_plan, bad, truth.plan())
            if out is None:
                continue
            gap = metrics.gap_residue(out, sr=SR)
            res.fill.append(
                {
                    "case": f"{count} dropouts {lo:.0f}-{hi:.0f} ms",
                    "content": clip.content,
                    "clip": clip.name,
                    "runs_left": [(a, b, _edges(out, a, b)) for a, b in gap.runs_s],
                    "gaps": gap.count,
                    "gap_ms": gap.total_ms,
                    "span_db": metrics.span_error_db(clip.y, out, truth.params["spans_s"], sr=SR),
                    "improvement": metrics.si_sdr_improvement(clip.y, bad, out),
                    "si_sdr": metrics.si_sdr(clip.y, out),
                }
            )
    logger.info("fill_blanks done")
