"""Mains hum detection, shared: :mod:`avagent.actions.hum` removes what it finds and
:mod:`avagent.perception.faults` reports it (moved here from ``actions/hum.py``).

A long averaged spectrum is searched for the 50 Hz and 60 Hz combs; :func:`comb_levels` measures
how far each tooth stands above its neighbourhood.
"""

from __future__ import annotations

import numpy as np

NOMINAL_HZ = (50.0, 60.0)
SEARCH_HZ = 0.5  # mains and tape-speed drift: look within ±0.5 Hz of nominal
MAINS_HZ = 0.3  # ...but the refined fundamental must sit this close to nominal
DETECT_DB = 12.0  # a comb tooth must stand this far above its neighbourhood to count as hum
HARMONIC_DB = 6.0  # harmonics weaker than this above the floor are left alone (auto mode)


def detect_hum(y: np.ndarray, *, sr: int) -> tuple[float | None, float]:
    """Find mains hum: its fundamental in Hz (or None) and its level above the floor in dB.

    A long averaged spectrum (≈5 s segments, 0.2 Hz resolution) of the channel mix is searched
    for the 50 Hz comb (50, 100, 150, 200 Hz) and the 60 Hz comb (60, 120, 180, 240 Hz) within
    ±0.5 Hz of nominal; the comb whose teeth stand highest above their ±15 Hz neighbourhood wins
    and its fundamental is refined from the interpolated peaks of its strong harmonics.

    Parameters
    ----------
    y : np.ndarray, shape (..., n)
        Audio; all rows are mixed down first.
    sr : int
        Sample rate in Hz.

    Returns
    -------
    (float or None, float)
        Fundamental in Hz (None when no tooth stands 12 dB above its floor) and the level of the
        strongest tooth above its floor in dB (reported even when below the threshold).

    Examples
    --------
    >>> t = np.arange(5 * 48000) / 48000
    >>> rng = np.random.default_rng(0)
    >>> f0, level_db = detect_hum(0.1 * rng.standard_normal(t.size) + 0.05 * np.sin(2 * np.pi * 60.1 * t), sr=48000)
    >>> round(f0, 1)
    60.1
    """
    x = np.asarray(y, dtype=np.float64).reshape(-1, np.shape(y)[-1]).mean(axis=0)
    x = x[: int(60 * sr)]
    freqs, psd = hum_spectrum(x, sr)
    best: tuple[float, float, float, float, int] | None = None  # score, f0, level, ...
    for nominal in NOMINAL_HZ:
        levels, peaks = comb_levels(freqs, psd, nominal, 4, SEARCH_HZ)
        score = float(np.sum(np.maximum(levels, 0.0)))
        if best is None or score > best[0]:
            strong = levels >= HARMONIC_DB
            if strong.any():
                k = np.arange(1, 5)[strong]
                f0 = float(np.average(peaks[strong] / k, weights=k * levels[strong]))
            else:
                f0 = nominal
            n_strong = int(np.sum(levels >= DETECT_DB))
            best = (score, f0, float(levels.max()), float(levels[0]), n_strong)
    assert best is not None
    _, f0, level, fund_db, n_strong = best
    # One tall tooth away from the fundamental is more often a sideband of a modulated note
    # than hum: ask for the fundamental itself or two teeth.
    # Mains is held within a few tenths of a hertz; a tall line further off is a musical note
    # (clean Music2 has one at 49.67 Hz).
    near = any(abs(f0 - nominal) <= MAINS_HZ for nominal in NOMINAL_HZ)
    found = near and level >= DETECT_DB and (fund_db >= DETECT_DB or n_strong >= 2)
    return (f0 if found else None), level


def hum_spectrum(x: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """Averaged Hann periodogram below 1.2 kHz with ~0.1 Hz bins (zero-padded ×2)."""
    seg = min(x.size, int(2 ** np.ceil(np.log2(5 * sr))))
    seg = max(seg, 16)
    hop = seg // 2
    starts = range(0, max(x.size - seg, 0) + 1, hop) if x.size >= seg else [0]
    w = np.hanning(seg)
    n_fft = 2 * int(2 ** np.ceil(np.log2(seg)))
    keep = int(1200 * n_fft / sr) + 1
    acc = np.zeros(keep)
    for s in starts:
        frame = x[s : s + seg]
        if frame.size < seg:
            frame = np.pad(frame, (0, seg - frame.size))
        acc += np.abs(np.fft.rfft(frame * w, n_fft)[:keep]) ** 2
    return np.arange(keep) * sr / n_fft, acc / len(starts) + 1e-30


def comb_levels(
    freqs: np.ndarray, psd: np.ndarray, f0: float, k_max: int, search_hz: float
) -> tuple[np.ndarray, np.ndarray]:
    """Level above floor (dB) and refined peak frequency of harmonics 1..k_max of ``f0``."""
    df = freqs[1] - freqs[0]
    levels = np.full(k_max, -np.inf)
    peaks = f0 * np.arange(1, k_max + 1, dtype=float)
    for i in range(k_max):
        fk = f0 * (i + 1)
        half = search_hz * (i + 1) if search_hz < 0.2 * f0 else search_hz
        lo, hi = int(np.floor((fk - half) / df)), int(np.ceil((fk + half) / df)) + 1
        if hi + 2 >= freqs.size or lo < 1:
            continue
        j = lo + int(np.argmax(psd[lo:hi]))
        # Floor: median of the ±15 Hz neighbourhood outside ±2 Hz of the tooth.
        nb = (np.abs(freqs - fk) <= 15.0) & (np.abs(freqs - fk) > 2.0)
        floor = np.median(psd[nb]) if nb.any() else np.median(psd)
        levels[i] = 10 * np.log10(psd[j] / floor)
        a, b, c = np.log(psd[j - 1 : j + 2])
        denom = a - 2 * b + c
        shift = 0.5 * (a - c) / denom if denom < 0 else 0.0
        peaks[i] = (j + float(np.clip(shift, -0.5, 0.5))) * df
    return levels, peaks
