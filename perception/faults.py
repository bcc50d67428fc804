"""Faults perception finds in a sound track: mains hum, clicks, dropouts.

Split from ``perception/audio.py``. The comb and zero-run detectors are the ones the repairing
actions use (:func:`avagent.hum.detect_hum`, :func:`avagent.dropouts.find_dropouts`);
perception adds the tests that keep music and codec noise from reading as faults.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy import signal as sps
from scipy.ndimage import find_objects, label, maximum_filter1d, median_filter

from avagent.audio import validate_audio
from avagent.dropouts import find_dropouts as action_dropouts
from avagent.hum import detect_hum
from avagent.perception.spectrum import ANALYSIS_SR, DIGITAL_SILENCE, EPS, db, to_mono

COMB_TEETH = 4  # harmonics of a whole steady comb (_mains_like), as in avagent.hum.detect_hum
COMB_STEADY_DB = 15.0  # each standing this far over the steady spectrum beside it


def measure_hum(y16: np.ndarray) -> tuple[float | None, float, float]:
    """Mains hum: (fundamental Hz or None, level above the local floor dB, hum power).

    :func:`avagent.hum.detect_hum` finds the 50/60 Hz comb. A bass note near 50 Hz can pass
    that test (clean Music2 has one at 49.8 Hz), but hum also holds its level for the whole
    clip, and stands alone: one of the first three harmonics, measured in 1 s blocks (hop 0.5 s,
    so at least 2 s of audio), must vary by at most 6 dB between its 10th and 90th percentile
    (a harmonic holding only noise spreads ~13 dB) and stand 12 dB over the 1 Hz bands 3-8 Hz
    beside it (a looped chord holds dense steady lines there too); with only one harmonic
    8 dB up, that one must stand 22 dB. The level reported is that excess (1 Hz resolution,
    the scale reflection's hum score is calibrated on).

    The power is that of harmonics 1-5, each projected onto a complex exponential per block
    (1 Hz wide: the broadband floor adds next to nothing) and averaged, so a mains frequency a
    few hundredths of a hertz off does not cancel itself over a long clip.
    """
    block = ANALYSIS_SR
    if y16.size < 2 * block:
        return None, 0.0, 0.0
    f0, level = detect_hum(y16, sr=ANALYSIS_SR)
    if f0 is None:
        return None, level, 0.0
    xb = sliding_window_view(y16, block)[:: block // 2].astype(np.float64)
    ks = np.arange(1, 6)
    # harmonics 1-5, then 1 Hz bands 3-8 Hz either side of harmonics 1-3 (their neighbourhood)
    offsets = np.r_[-8:-2, 3:9]
    freqs = np.r_[ks * f0, (ks[:3, None] * f0 + offsets).ravel()]
    E = np.exp(-2j * np.pi * np.outer(np.arange(block) / ANALYSIS_SR, freqs))
    # a sine of amplitude A gives |X| = A·N/2 and power A²/2 = 2|X|²/N²
    power = 2.0 * np.abs(xb @ E) ** 2 / block**2  # (blocks, frequencies)
    comb, near = power[:, :5], power[:, 5:].reshape(-1, 3, offsets.size)
    lv = db(comb[:, :3])
    spread = np.percentile(lv, 90, axis=0) - np.percentile(lv, 10, axis=0)
    # level over the 1 Hz bands beside it: a lone line, not one of the dense lines of a looped
    # or sustained chord; hum has harmonics, so one tooth alone must stand 22 dB
    excess = db(comb[:, :3].mean(axis=0) / np.maximum(np.median(near.mean(axis=0), axis=1), EPS))
    ok = (spread <= 6.0) & (excess >= 12.0)
    if not ok.any() or (np.sum(excess >= 8.0) < 2 and float(excess.max()) < 22.0):
        return None, level, 0.0
    if not _mains_like(xb, f0):
        return None, level, 0.0
    return round(f0, 1), float(excess[ok].max()), float(comb.sum(axis=1).mean())


def _mains_like(xb: np.ndarray, f0: float) -> bool:
    """Hum is the loudest line that never stops, or a full comb of lines that never stop.

    The steady spectrum is each 1 Hz bin's 10th percentile over the 1 s blocks (speech and
    melodies come and go). Either its strongest line between 40 Hz and 1 kHz sits on a harmonic
    of ``f0``, or each of the first ``COMB_TEETH`` harmonics stands ``COMB_STEADY_DB`` over the
    steady spectrum 3-15 Hz beside it: hum under a louder sustained note (a guitar's open E at
    82 Hz over 50 Hz hum 10 dB down) is not the loudest steady line, but its comb is whole. A
    220 Hz square wave leaks into the 60 Hz comb's 1 Hz bands and its aliases fall on some
    teeth, but its steadiest line is 220 Hz and two of the four teeth are empty. On the full
    benchmark (seed 0) the weakest of the four teeth stands ≥ 21.7 dB in every music and video
    clip with planted hum (speech covers the teeth in places: 5.1-18.1 dB, and the loudest line
    finds those), ≤ 5.5 dB in every clip without, -0.4 dB in that square wave."""
    rows = xb[:: max(1, xb.shape[0] // 24)]
    steady = np.percentile(np.abs(np.fft.rfft(rows, axis=1)) ** 2, 10, axis=0)
    f = np.fft.rfftfreq(xb.shape[1], 1.0 / ANALYSIS_SR)
    band = (f >= 40.0) & (f <= 1000.0)
    top = float(f[band][np.argmax(steady[band])])
    k = max(1, round(top / f0))
    if abs(top - k * f0) <= 1.5 + 0.005 * top:
        return True
    hz = f[1] - f[0]
    teeth = []
    for h in range(1, COMB_TEETH + 1):
        i = round(h * f0 / hz)
        beside = np.r_[i - 15 : i - 2, i + 3 : i + 16]
        teeth.append(db(steady[i - 1 : i + 2].max()) - db(np.median(steady[beside])))
    return bool(min(teeth) >= COMB_STEADY_DB)


def click_rate(y16: np.ndarray) -> float:
    """Impulses per second: ≤ 3 ms broadband bursts 20 dB over their surroundings."""
    if y16.size < ANALYSIS_SR // 4:
        return 0.0
    sos = sps.butter(4, 3000.0, "highpass", fs=ANALYSIS_SR, output="sos")
    hp = sps.sosfilt(sos, y16)
    n = 16  # 1 ms frames
    m = hp.size // n
    lv = db(np.mean(hp[: m * n].reshape(m, n) ** 2, axis=1))
    ctx = median_filter(lv, size=51, mode="nearest")
    peak = (lv > ctx + 20.0) & (lv >= maximum_filter1d(lv, 5))
    idx = np.flatnonzero(peak)
    idx = idx[idx + 4 < m]
    fast = lv[idx + 4] < lv[idx] - 15.0  # gone within 4 ms: a click, not a drum hit
    return float(fast.sum() / (y16.size / ANALYSIS_SR))


def find_dropouts(
    y: np.ndarray,
    *,
    sr: int,
    min_gap_ms: float = 10.0,
    max_gap_ms: float = 500.0,
    noise_floor_db: float | None = None,
) -> list[tuple[float, float, str]]:
    """Dropouts inside sound: runs of exact zeros, and holes far below the noise floor.

    Runs of digital silence and deep holes with abrupt edges are what
    :func:`avagent.dropouts.find_dropouts` finds (the action that repairs them uses the same
    test). On top, with ``noise_floor_db``, a run that drops 15 dB under the clip's own noise
    floor with sound on both sides is a dropout too: a real recording never falls below its
    floor, and a lossy codec fills a lost block with faint noise that the action's 40 dB test
    misses.

    Returns
    -------
    list of (start_s, end_s, kind)
        ``kind`` is ``"digital_silence"`` or ``"gap"``.
    """
    y = validate_audio(y, sr=sr)
    return find_dropouts_in(
        y.reshape(-1, y.shape[-1]), to_mono(y), sr, min_gap_ms, max_gap_ms, noise_floor_db
    )


def find_dropouts_in(
    x: np.ndarray,
    mono: np.ndarray,
    sr: int,
    min_gap_ms: float,
    max_gap_ms: float,
    floor_db: float | None,
) -> list[tuple[float, float, str]]:
    found = action_dropouts(x, sr=sr, min_gap_ms=min_gap_ms, max_gap_ms=max_gap_ms)
    out = [(s / sr, e / sr, str(k)) for s, e, k in found]
    if floor_db is None or floor_db <= -80.0:
        return out
    n = max(1, int(sr * 0.001))  # 1 ms frames
    m = mono.size // n
    if m < 2:
        return out
    fr = mono[: m * n].reshape(m, n).astype(np.float64)
    lv = db(np.mean(fr**2, axis=1))
    low = (lv < floor_db - 15.0) & (np.max(np.abs(fr), axis=1) > DIGITAL_SILENCE)
    taken = [(s // n, -(-e // n)) for s, e, _ in found]
    for (sl,) in find_objects(label(low)[0]):
        s, e = sl.start, sl.stop
        if s == 0 or e >= m or not min_gap_ms <= e - s <= max_gap_ms:
            continue  # leading/trailing quiet is the clip's edge, not a dropout
        if any(s < te and ts < e for ts, te in taken):
            continue
        # sound on both sides at the usual level: not a fade-in/out
        before, after = lv[max(s - 30, 0) : s], lv[e : e + 30]
        if (
            before.size >= 10
            and after.size >= 10
            and np.median(before) >= floor_db - 3.0
            and np.median(after) >= floor_db - 3.0
        ):
            out.append((s * n / sr, e * n / sr, "gap"))
    return sorted(out)
