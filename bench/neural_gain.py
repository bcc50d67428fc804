"""Measured gain of the neural speech denoiser against the Wiener filter (docs/actions.md).

Real speech (:func:`avagent.bench.signals.speech`) plus a noise (textbook or a real recording)
at 0, 5 and 10 dB SNR; SI-SDR of each method's output against the clean speech, averaged over
the clips. Run: ``python -m avagent.bench.neural_gain [--clips 2] [--seconds 4]``.
"""

from __future__ import annotations

import argparse

import numpy as np

from avagent.actions.registry import apply_action
from avagent.bench import metrics, signals

METHODS: dict[str, tuple[str, dict]] = {
    "none": ("", {}),
    "wiener": ("wiener", {}),
    "dfn3": ("neural_denoise", {"model": "deepfilternet3"}),
    "dfn3 limit 12 dB": ("neural_denoise", {"model": "deepfilternet3", "atten_limit_db": 12.0}),
    "rnnoise": ("neural_denoise", {"model": "rnnoise"}),
}


def measure(clips: int, seconds: float, noises: tuple[str, ...], snrs: tuple[float, ...]) -> dict:
    out: dict[tuple[str, float, str], list[float]] = {}
    for seed in range(clips):
        clean = signals.speech(duration_s=seconds, seed=seed).y
        n = clean.shape[-1]
        for kind in noises:
            noise = signals.noise(kind, n, seed=seed)
            for snr in snrs:
                gain = np.sqrt(np.mean(clean**2)) / 10 ** (snr / 20)
                noisy = clean + gain * noise
                for name, (action, params) in METHODS.items():
                    y = noisy if not action else apply_action(action, noisy, sr=signals.SR, **params)
                    out.setdefault((kind, snr, name), []).append(metrics.si_sdr(clean[0], y[0]))
    return {k: float(np.mean(v)) for k, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--clips", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--noises", default="white,pink,wind,ambience")
    a = ap.parse_args()
    snrs = (0.0, 5.0, 10.0)
    noises = tuple(a.noises.split(","))
    res = measure(a.clips, a.seconds, noises, snrs)
    print("| noise | SNR dB | " + " | ".join(METHODS) + " |")
    print("|---|---|" + "---|" * len(METHODS))
    for kind in noises:
        for snr in snrs:
            row = " | ".join(f"{res[(kind, snr, m)]:.1f}" for m in METHODS)
            print(f"| {kind} | {snr:.0f} | {row} |")


if __name__ == "__main__":
    main()
