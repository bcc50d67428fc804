"""Mains hum: find the 50/60 Hz comb and subtract a tracked sinusoid model of it.

Notch filters wide enough to survive mains drift also cut music; instead every harmonic's complex
amplitude is tracked (demodulate, low-pass to ``bandwidth_hz``, remodulate) and the model is
subtracted. The effective notch is ``±bandwidth_hz`` wide and follows slow amplitude and
frequency changes. All harmonics are demodulated at once as one matrix product per block.
"""

from __future__ import annotations

import logging

import numpy as np
from pydantic import Field
from scipy.ndimage import gaussian_filter1d

from avagent.actions.base import ActionParams
from avagent.dsp import from_rows, to_rows

logger = logging.getLogger(__name__)

_NOMINAL = (50.0, 60.0)
_SEARCH_HZ = 0.5  # mains and tape-speed drift: look within ±0.5 Hz of nominal
_MAINS_HZ = 0.3  # ...but the refined fundamental must sit this close to nominal
_DETECT_DB = 12.0  # a comb tooth must stand this far above its neighbourhood to count as hum
_HARMONIC_DB = 6.0  # harmonics weaker than this above the floor are left alone (auto mode)


class RemoveHumParams(ActionParams):
    """Parameters of :func:`remove_hum`."""

    fundamental_hz: float | None = Field(
        None, ge=20.0, le=500.0, description="Hum fundamental in Hz; None finds 50/60 Hz itself."
    )
    harmonics: int = Field(
        12, ge=1, le=60, description="Highest harmonic number removed (1 = fundamental only)."
    )
    bandwidth_hz: float = Field(
        0.1, ge=0.05, le=10.0, description="Tracking bandwidth = half-width of each notch, in Hz."
    )


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
    freqs, psd = _spectrum(x, sr)
    best: tuple[float, float, float, float, int] | None = None  # score, f0, level, ...
    for nominal in _NOMINAL:
        levels, peaks = _comb(freqs, psd, nominal, 4, _SEARCH_HZ)
        score = float(np.sum(np.maximum(levels, 0.0)))
        if best is None or score > best[0]:
            strong = levels >= _HARMONIC_DB
            if strong.any():
                k = np.arange(1, 5)[strong]
                f0 = float(np.average(peaks[strong] / k, weights=k * levels[strong]))
            else:
                f0 = nominal
            n_strong = int(np.sum(levels >= _DETECT_DB))
            best = (score, f0, float(levels.max()), float(levels[0]), n_strong)
    assert best is not None
    _, f0, level, fund_db, n_strong = best
    # One tall tooth away from the fundamental is more often a sideband of a modulated note
    # than hum: ask for the fundamental itself or two teeth.
    # Mains is held within a few tenths of a hertz; a tall line further off is a musical note
    # (clean Music2 has one at 49.67 Hz).
    near = any(abs(f0 - nominal) <= _MAINS_HZ for nominal in _NOMINAL)
    found = near and level >= _DETECT_DB and (fund_db >= _DETECT_DB or n_strong >= 2)
    return (f0 if found else None), level


def remove_hum(
    y: np.ndarray,
    *,
    sr: int,
    fundamental_hz: float | None = None,
    harmonics: int = 12,
    bandwidth_hz: float = 0.1,
) -> np.ndarray:
    """Remove mains hum (fundamental and harmonics) by subtracting a tracked sinusoid model.

    With ``fundamental_hz=None`` the hum is found by :func:`detect_hum`; if there is none, ``y``
    comes back unchanged, and only harmonics that stand 6 dB above their floor are removed.
    A given ``fundamental_hz`` is refined within ±1 % and all harmonics up to ``harmonics`` are
    removed.

    Parameters
    ----------
    y : np.ndarray, shape (..., n)
        Audio; the last axis is time. Every row gets its own amplitude tracks.
    sr : int
        Sample rate in Hz.
    fundamental_hz : float, optional
        Hum fundamental in Hz; None detects 50 or 60 Hz (±0.5 Hz).
    harmonics : int
        Highest harmonic number removed (harmonics at or above Nyquist are skipped).
    bandwidth_hz : float
        How fast the tracked amplitude may change: the half-width of each notch in Hz. Wider
        follows drifting hum better and takes more of the music near each harmonic.

    Returns
    -------
    np.ndarray
        ``y`` without the hum, same shape and dtype.

    Examples
    --------
    >>> t = np.arange(48000) / 48000
    >>> hum = 0.3 * np.sin(2 * np.pi * 50 * t) + 0.1 * np.sin(2 * np.pi * 150 * t)
    >>> speech_like = 0.2 * np.sin(2 * np.pi * 440 * t)
    >>> out = remove_hum(speech_like + hum, sr=48000)
    >>> bool(np.std(out - speech_like) < 0.01)
    True
    """
    rows = to_rows(y)
    n = rows.shape[-1]
    mono = rows.mean(axis=0)
    freqs, psd = _spectrum(mono[: int(60 * sr)], sr)
    if fundamental_hz is None:
        f0, level = detect_hum(mono, sr=sr)
        if f0 is None:
            logger.debug("remove_hum: no hum (best tooth %.1f dB), unchanged", level)
            return y.copy()
        ks = np.arange(1, harmonics + 1)
        ks = ks[ks * f0 < min(sr / 2 - 2 * bandwidth_hz, 0.45 * sr)]
        levels, _ = _comb(freqs, psd, f0, len(ks), 0.15)
        ks = ks[levels >= _HARMONIC_DB]
    else:
        _, peaks = _comb(freqs, psd, fundamental_hz, 1, 0.01 * fundamental_hz)
        f0 = float(peaks[0])
        ks = np.arange(1, harmonics + 1)
        ks = ks[ks * f0 < min(sr / 2 - 2 * bandwidth_hz, 0.45 * sr)]
    if ks.size == 0 or n < 4:
        return y.copy()
    hum = _sinusoid_model(rows, sr, f0 * ks, bandwidth_hz)
    logger.debug("remove_hum: f0=%.3f Hz, harmonics %s", f0, ks.tolist())
    return from_rows(rows - hum, y)


def _spectrum(x: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray]:
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


def _comb(
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


def _sinusoid_model(rows: np.ndarray, sr: int, freqs_hz: np.ndarray, bandwidth_hz: float):
    """Sum of sinusoids at ``freqs_hz`` with slowly varying amplitude/phase fitted to ``rows``.

    Each harmonic's baseband ``x * exp(-j w t)`` is averaged in blocks of ~5 ms (one matrix
    product for all harmonics), low-passed with a Gaussian whose -3 dB point is
    ``bandwidth_hz``, interpolated linearly back to full rate and remodulated.
    """
    m, n = rows.shape
    M = max(1, round(sr / 200))
    B = -(-n // M)
    xb = np.zeros((m, B * M))
    xb[:, :n] = rows
    xb = xb.reshape(m, B, M)
    w = 2 * np.pi * np.asarray(freqs_hz) / sr  # (H,)
    E = np.exp(-1j * np.outer(np.arange(M), w))  # (M, H)
    block_phase = np.exp(-1j * np.outer(np.arange(B) * M, w))  # (B, H)
    c = (xb @ E) * block_phase / M  # (m, B, H): block means of the baseband, = amplitude / 2
    # Zero the padded tail's influence on the last block's mean.
    tail = B * M - n
    if tail:
        c[:, -1, :] *= M / (M - tail)
    sigma_blocks = 0.1325 / bandwidth_hz * (sr / M)  # Gaussian with -3 dB at bandwidth_hz
    # Normalised convolution (zeros outside, divided by the window's mass inside): at the clip
    # edges the estimate averages what there is instead of a mirrored copy whose image terms
    # (2w, neighbouring harmonics) would not cancel.
    mass = gaussian_filter1d(np.ones(B), sigma_blocks, mode="constant")[None, :, None]
    c = (
        gaussian_filter1d(c.real, sigma_blocks, axis=1, mode="constant")
        + 1j * gaussian_filter1d(c.imag, sigma_blocks, axis=1, mode="constant")
    ) / mass
    # Values at block starts (centres are at (b + 1/2) M), then linear ramps inside blocks.
    start = np.concatenate([c[:, :1], 0.5 * (c[:, 1:] + c[:, :-1]), c[:, -1:]], axis=1)
    a0 = start[:, :-1] * np.conj(block_phase)  # (m, B, H)
    da = (start[:, 1:] - start[:, :-1]) * np.conj(block_phase)
    Einv = np.conj(E).T  # (H, M): exp(+j w m)
    ramp = np.arange(M) / M
    hum = 2.0 * ((a0 @ Einv) + (da @ (Einv * ramp))).real
    return hum.reshape(m, B * M)[:, :n]
