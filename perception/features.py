"""Features of a sound track that say what it holds: onsets, rhythm, tonal persistence, music.

Split from ``perception/audio.py``; :mod:`avagent.perception.sync` reads the onset envelope too.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy.ndimage import maximum_filter1d, uniform_filter1d

from avagent.audio import validate_audio
from avagent.perception.spectrum import ANALYSIS_SR, Spectrum, db, to_16k, to_mono


def onset_envelope(y: np.ndarray, *, sr: int, hop_s: float = 0.01) -> tuple[np.ndarray, float]:
    """Onset strength (positive spectral flux of log band energies), one value per ``hop_s``.

    Returns
    -------
    env : np.ndarray
        Non-negative onset strength, shape ``(ceil(n / hop),)``.
    hop_s : float
        The hop actually used (a whole number of 16 kHz samples).
    """
    y = validate_audio(y, sr=sr)
    return onset_from_16k(to_16k(to_mono(y), sr), hop_s=hop_s)


def band_matrix(freqs: np.ndarray, n_bands: int = 24) -> np.ndarray:
    edges = np.geomspace(60.0, 7600.0, n_bands + 1)
    M = np.zeros((n_bands, freqs.size))
    for i in range(n_bands):
        sel = (freqs >= edges[i]) & (freqs < edges[i + 1])
        if not sel.any():
            sel = np.argmin(np.abs(freqs - np.sqrt(edges[i] * edges[i + 1]))) == np.arange(
                freqs.size
            )
        M[i, sel] = 1.0
    return M


def onset_from_16k(y16: np.ndarray, *, hop_s: float = 0.01, band_floor: bool = False
                   ) -> tuple[np.ndarray, float]:
    """Positive spectral flux of log band energies (24 bands, 60 Hz-7.6 kHz), one per ``hop_s``.

    Each log energy is floored 40 dB under the loudest band-frame of the clip, or with
    ``band_floor`` per band: at the band's own typical level (its median over the clip), at
    least 40 dB under its loudest frame, so that an onset is a rise above what the band
    usually holds. One loud band (a 50 Hz hum's harmonics) then no longer flattens the quiet
    ones where speech has its onsets (a speech clip under a hum 10 dB down went from
    undecided to right within 4 ms), while the ripple of a band of steady noise stays held
    down by its own level: a floor under each band's loudest frame alone let white noise
    bury the flash clips' 1 kHz tone bursts (offsets 18 of 18 to 0), its 20th percentile 2 of
    18 seeded flash clips. The event matcher uses the floor per band; the activity cue does
    not (its unrelated pairs' top z rose from 5.8 to 6.3 with it, its gate)."""
    hop = max(1, round(hop_s * ANALYSIS_SR))
    n_fft = 512
    win = np.hanning(n_fft).astype(np.float32)
    pad = np.pad(y16, (n_fft // 2, n_fft // 2))
    frames = np.lib.stride_tricks.sliding_window_view(pad, n_fft)[::hop]
    X = np.abs(np.fft.rfft(frames * win, axis=1)) ** 2  # (T, F)
    bands = X @ band_matrix(np.fft.rfftfreq(n_fft, 1 / ANALYSIS_SR)).T  # (T, B)
    if band_floor:
        floor = np.maximum(1e-4 * bands.max(axis=0, initial=0.0),
                           np.median(bands, axis=0) if bands.shape[0] else 0.0)
    else:
        floor = 1e-4 * bands.max(initial=0.0)
    logb = np.log10(bands + 1e-10 + floor)
    flux = np.maximum(np.diff(logb, axis=0, prepend=logb[:1]), 0.0).mean(axis=1)
    n_out = int(np.ceil(y16.size / hop))
    return flux[:n_out].astype(np.float64), hop / ANALYSIS_SR


def rhythm_strength(env: np.ndarray, hop_s: float) -> float:
    """Peak normalised autocorrelation of the onset envelope at beat-like lags (0.25–1.5 s)."""
    if env.size * hop_s < 2.0:
        return 0.0
    x = env - env.mean()
    ac = np.correlate(x, x, mode="full")[x.size - 1 :]
    if ac[0] <= 0:
        return 0.0
    ac = ac / ac[0]
    lo, hi = int(0.25 / hop_s), min(int(1.5 / hop_s), ac.size - 1)
    if hi <= lo:
        return 0.0
    # unbiased: short clips have few periods; correct for the shrinking overlap
    lags = np.arange(lo, hi)
    ac_u = ac[lo:hi] * x.size / (x.size - lags)
    return float(np.clip(ac_u.max(), 0.0, 1.0))


def tonal_persistence(spec: Spectrum, valid: np.ndarray) -> float:
    """Share of energy above 150 Hz held in spectral peaks that persist ≥ 50 ms."""
    P = spec.power[:, valid]
    if P.shape[1] < 8:
        return 0.0
    band = (spec.freqs >= 150.0) & (spec.freqs <= 8000.0)
    P = P[band]
    logP = db(P).astype(np.float32)
    # a peak stands 8 dB over the median of its ±8-bin neighbourhood (a partition over a
    # sliding window: the same numbers as median_filter, three times faster)
    padded = np.pad(logP, ((8, 8), (0, 0)), mode="edge")
    base = np.partition(sliding_window_view(padded, 17, axis=0), 8, axis=-1)[..., 8]
    peaks = (logP >= maximum_filter1d(logP, 3, axis=0)) & (logP > base + 8.0)
    # allow ±1 bin wander, then require presence in 5 consecutive frames
    wide = maximum_filter1d(peaks.astype(np.uint8), 3, axis=0).astype(bool)
    run = uniform_filter1d(wide.astype(np.float32), size=5, axis=1, mode="nearest") > 0.99
    persistent = peaks & run
    total = P.sum()
    return float(P[persistent].sum() / total) if total > 0 else 0.0


def music_likelihood(
    *, tonal: float, rhythm: float, speech_fraction: float, stationary: float
) -> float:
    """Combine tonal persistence, rhythm and stationarity into a 0..1 music likelihood.

    Music holds pitched partials (tonal) and/or a beat (rhythm) and changes over time; a hum is
    tonal but perfectly stationary, and speech is tonal in short glides, so both are discounted.
    """
    score = 1.0 - (1.0 - np.clip((tonal - 0.15) / 0.35, 0, 1)) * (
        1.0 - np.clip((rhythm - 0.25) / 0.35, 0, 1)
    )
    score *= 1.0 - 0.6 * np.clip(speech_fraction, 0, 1)
    score *= 1.0 - np.clip((stationary - 0.6) / 0.3, 0, 1)
    return float(np.clip(score, 0.0, 1.0))


def stationarity(spec: Spectrum, valid: np.ndarray) -> float:
    """How steady the level is: 1 for stationary noise or a hum, ~0 for music and speech."""
    fp = spec.frame_power[valid]
    if fp.size < 10:
        return 1.0
    lv = db(uniform_filter1d(fp, size=5))
    spread = float(np.percentile(lv, 90) - np.percentile(lv, 10))
    return float(np.clip(1.0 - (spread - 2.0) / 10.0, 0.0, 1.0))
