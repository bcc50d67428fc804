"""Measured facts about a sound track: levels, noise (floor, SNR, kind), speech, music, dropouts.

Everything spectral runs on a 16 kHz mono mix (fast, and what VAD and DNSMOS need); levels,
clipping, true peak and dropouts use the native rate and channels.

SNR is defined as the power of the wanted signal *while it is active* over the noise power:
speech frames (VAD) when there is speech, all frames otherwise (music, ambience). The noise power
comes from non-speech frames when speech is present, else from minimum statistics per frequency
bin (a low percentile of the smoothed power, bias-corrected), which lets it find the hiss under
continuous music without calling the music noise.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import overload

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy import signal as sps
from scipy.ndimage import find_objects, label, maximum_filter1d, median_filter, uniform_filter1d

from avagent.actions.hum import detect_hum
from avagent.actions.volume import loudness_lufs
from avagent.audio import validate_audio
from avagent.perception.facts import AudioFacts, Dropout, NoiseKind

logger = logging.getLogger(__name__)

ANALYSIS_SR = 16000
N_FFT = 512
HOP = 160  # 10 ms at 16 kHz
SILENT_DBFS = -70.0
DIGITAL_SILENCE = 1e-6  # |x| below this counts as an exact zero (float decoders leave ~1e-9)
EPS = 1e-12
# Minimum statistics: the 10th percentile of 5-frame-smoothed power per bin under-reads a
# stationary noise's mean by this factor (measured on white and pink noise, 16 kHz, hann 512/160).
MINSTAT_PERCENTILE = 10.0
MINSTAT_BIAS = 1.0  # replaced by _calibrated_bias() below
STATIONARY_SPREAD_DB = 3.2  # p50 - p10 of 5-frame-smoothed white noise power per bin
MINSTAT_DISCOUNT = 3.0  # dB of floor discount per dB of excess spread (calibrated on music)


# --------------------------------------------------------------------------- basics


def to_mono(y: np.ndarray) -> np.ndarray:
    """Average all channels of ``(..., n)`` audio to ``(n,)``."""
    y = np.asarray(y)
    return y.reshape(-1, y.shape[-1]).mean(axis=0) if y.ndim > 1 else y


def _to_16k(mono: np.ndarray, sr: int) -> np.ndarray:
    if sr == ANALYSIS_SR:
        return mono.astype(np.float32, copy=False)
    g = np.gcd(int(sr), ANALYSIS_SR)
    return sps.resample_poly(mono, ANALYSIS_SR // g, int(sr) // g).astype(np.float32)


@overload
def db(x: np.ndarray) -> np.ndarray: ...
@overload
def db(x: float) -> float: ...
def db(x: np.ndarray | float) -> np.ndarray | float:
    """Power ratio to dB with a floor at -120 dB."""
    return 10.0 * np.log10(np.maximum(x, EPS))


@dataclass
class _Spectrum:
    """Power STFT of the 16 kHz mix, scaled so each frame's bin sum is its mean square."""

    power: np.ndarray  # (F, T)
    freqs: np.ndarray  # (F,)
    hop_s: float

    @property
    def frame_power(self) -> np.ndarray:
        return self.power.sum(axis=0)


def _spectrum(x: np.ndarray, sr: int = ANALYSIS_SR) -> _Spectrum:
    # ~32 ms hann frames every 10 ms at the native rate: noise above 8 kHz counts too
    n_fft = max(64, round(N_FFT * sr / ANALYSIS_SR))
    hop = max(1, round(HOP * sr / ANALYSIS_SR))
    win = np.hanning(n_fft).astype(np.float32)
    if x.size < n_fft:
        x = np.pad(x, (0, n_fft - x.size))
    frames = np.lib.stride_tricks.sliding_window_view(x.astype(np.float32, copy=False), n_fft)[
        ::hop
    ]
    X = np.fft.rfft(frames * win, axis=1).T  # (F, T)
    P = (X.real**2 + X.imag**2).astype(np.float64)
    P[1:] *= 2.0
    if n_fft % 2 == 0:
        P[-1] /= 2.0
    P /= n_fft * float(np.sum(win**2))
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    return _Spectrum(P, freqs, hop / sr)


def _minstat_raw(power: np.ndarray, valid: np.ndarray, *, discount: bool = False) -> np.ndarray:
    P = power[:, valid] if valid.any() else power
    if P.shape[1] == 0:
        return np.zeros(power.shape[0])
    smooth = uniform_filter1d(P, size=min(5, P.shape[1]), axis=1, mode="nearest")
    p10, p50 = np.percentile(smooth, [MINSTAT_PERCENTILE, 50.0], axis=1)
    # A bin holding only stationary noise spreads ~3.2 dB between its 10th and 50th percentile;
    # a wider spread means signal (music) fills it even at its quietest, so its 10th percentile
    # over-reads the noise: discount it by the excess spread.
    if not discount:
        return p10
    excess = np.maximum(db(p50) - db(p10) - STATIONARY_SPREAD_DB - 1.0, 0.0)
    return p10 * 10.0 ** (-MINSTAT_DISCOUNT * excess / 10.0)


def _floor_stationarity(spec: _Spectrum, noise: np.ndarray, valid: np.ndarray) -> float:
    """Share of the noise estimate lying in bins whose level is steady like real noise."""
    P = spec.power[:, valid] if valid.any() else spec.power
    if P.shape[1] < 10:
        return 1.0
    smooth = uniform_filter1d(P, size=5, axis=1, mode="nearest")
    p10, p50 = np.percentile(smooth, [MINSTAT_PERCENTILE, 50.0], axis=1)
    steady = (db(p50) - db(p10)) <= STATIONARY_SPREAD_DB + 2.0
    audible = spec.freqs >= 20.0
    total = float(noise[audible].sum())
    return float(noise[audible & steady].sum() / total) if total > 0 else 1.0


def _floor_confidence(mono: np.ndarray, sr: int) -> float:
    """Confidence (0..1) that the clip's floor is stationary noise rather than decaying sound.

    The denoisers' own test (:func:`avagent.dsp.floor_confidence`: in a bin holding steady
    noise, the bias-corrected 2.5th and 10th percentiles of its power agree; under decays
    between drum hits the lower one keeps falling), averaged over 200 Hz-8 kHz weighted by the
    floor each bin holds. White or pink noise under speech or music reads 0.9-1 at 0 dB SNR,
    0.5-1 at 10 dB and 0.1-0.9 at 20 dB (where the music rule already calls dense music clean);
    one clean amen break (1.75 s) 0.18, loop_industrial 0.0. Three amen breaks in a row read
    0.46, like the loop under 20 dB of noise: that case this cue cannot settle.
    """
    from avagent import dsp as _dsp

    n_fft = _dsp.fft_size(sr, 32.0)
    P = _dsp.power(_dsp.stft(mono[None, :].astype(np.float32), n_fft))
    conf = _dsp.floor_confidence(P, n_fft, sr=sr)[0, 0]
    floor = _dsp.noise_psd(P, n_fft, sr=sr, check_stationary=False)[0, 0]
    f = np.arange(conf.size) * sr / n_fft
    band = (f >= 200.0) & (f <= 8000.0)
    w = floor[band]
    return float(np.sum(conf[band] * w) / np.sum(w)) if w.sum() > 0 else 1.0


def _calibrated_bias() -> float:
    # Computed once from seeded white noise: mean / 10th percentile of the smoothed power.
    rng = np.random.default_rng(0)
    s = _spectrum(rng.standard_normal(ANALYSIS_SR * 4).astype(np.float32) * 0.1)
    raw = _minstat_raw(s.power, np.ones(s.power.shape[1], bool))
    return float(np.median(s.power[2:-2].mean(axis=1) / np.maximum(raw[2:-2], EPS)))


MINSTAT_BIAS = _calibrated_bias()
# Speech pauses may hold non-stationary noise some dB above the minimum-statistics floor (wind,
# babble); this much above it they hold sound, and the VAD-gated noise estimate is not used.
GATED_EXCESS_DB = 12.0


def frame_levels_db(y: np.ndarray, *, sr: int, frame_s: float = 0.02) -> np.ndarray:
    """RMS level in dBFS of consecutive non-overlapping frames of mono ``y``."""
    mono = to_mono(y)
    n = max(1, round(frame_s * sr))
    m = mono.size // n
    if m == 0:
        return np.array([db(np.mean(mono**2))])
    return db(np.mean(mono[: m * n].reshape(m, n) ** 2, axis=1))


def noise_floor_db(y: np.ndarray, *, sr: int) -> float:
    """Noise floor in dBFS (mean-square re full scale) by minimum statistics per frequency bin.

    Exact digital silence (dropouts, padding) is ignored; a clip that is all digital silence
    reads -120 dBFS.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> round(noise_floor_db(0.01 * rng.standard_normal(16000), sr=16000))
    -40
    """
    y = validate_audio(y, sr=sr)
    spec = _spectrum(to_mono(y), sr)
    return float(db(_noise_psd(spec, None).sum()))


def _nonsilent(spec: _Spectrum) -> np.ndarray:
    return spec.frame_power > 1e-11  # above -110 dBFS: not digital silence


def _noise_psd(
    spec: _Spectrum, noise_frames: np.ndarray | None, *, music: bool = False
) -> np.ndarray:
    valid = _nonsilent(spec)
    if noise_frames is not None:
        sel = noise_frames & valid
        if sel.sum() * spec.hop_s >= 0.3:
            return spec.power[:, sel].mean(axis=1)
    # Under music the quietest moments of a bin are still music: discount non-steady bins.
    # Elsewhere (wind, traffic) the noise itself fluctuates and must not be discounted.
    return _minstat_raw(spec.power, valid, discount=music) * MINSTAT_BIAS


def _snr_from(spec: _Spectrum, noise: np.ndarray, signal_frames: np.ndarray | None) -> float:
    valid = _nonsilent(spec)
    n = float(noise.sum())
    if signal_frames is None:
        # the signal is where something sounds above the floor (1 dB): intermittent sounds are
        # not diluted by their pauses; continuous music and noise use every frame
        active = valid & (spec.frame_power > 1.26 * n)
        sel = active if active.sum() >= 0.2 * max(valid.sum(), 1) else valid
    else:
        sel = signal_frames & valid
    if not sel.any():
        sel = valid if valid.any() else np.ones_like(valid)
    total = float(spec.frame_power[sel].mean())
    sig = max(total - n, EPS)
    return float(np.clip(db(sig / max(n, EPS)), -20.0, 100.0))


def estimate_snr_db(y: np.ndarray, *, sr: int, speech_frames: np.ndarray | None = None) -> float:
    """Signal-to-noise ratio in dB of a single take.

    Parameters
    ----------
    y : np.ndarray
        Audio ``(..., n)``.
    sr : int
        Sample rate in Hz.
    speech_frames : np.ndarray of bool, optional
        Speech mask on the 10 ms analysis grid (``analyze_audio`` derives it from VAD). With it
        the signal is the speech frames and the noise the other frames; without it, noise comes
        from minimum statistics and the signal is every frame.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> t = np.arange(32000) / 16000
    >>> bursts = 0.3 * np.sin(2 * np.pi * 440 * t) * (np.sin(2 * np.pi * t) > 0)
    >>> noise = rng.standard_normal(t.size) * 0.3 / np.sqrt(2) / 10 ** (10 / 20)
    >>> 7 < estimate_snr_db(bursts + noise, sr=16000) < 13
    True
    """
    y = validate_audio(y, sr=sr)
    spec = _spectrum(to_mono(y), sr)
    if speech_frames is not None:
        speech_frames = _fit(speech_frames, spec.power.shape[1])
        noise = _noise_psd(spec, ~speech_frames)
        return _snr_from(spec, noise, speech_frames if speech_frames.any() else None)
    return _snr_from(spec, _noise_psd(spec, None), None)


def _fit(mask: np.ndarray, n: int) -> np.ndarray:
    mask = np.asarray(mask, bool)
    if mask.size >= n:
        return mask[:n]
    return np.pad(mask, (0, n - mask.size))


# --------------------------------------------------------------------------- features


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
    return _onset_from_16k(_to_16k(to_mono(y), sr), hop_s=hop_s)


def _band_matrix(freqs: np.ndarray, n_bands: int = 24) -> np.ndarray:
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


def _onset_from_16k(y16: np.ndarray, *, hop_s: float = 0.01) -> tuple[np.ndarray, float]:
    hop = max(1, round(hop_s * ANALYSIS_SR))
    n_fft = 512
    win = np.hanning(n_fft).astype(np.float32)
    pad = np.pad(y16, (n_fft // 2, n_fft // 2))
    frames = np.lib.stride_tricks.sliding_window_view(pad, n_fft)[::hop]
    X = np.abs(np.fft.rfft(frames * win, axis=1)) ** 2  # (T, F)
    bands = X @ _band_matrix(np.fft.rfftfreq(n_fft, 1 / ANALYSIS_SR)).T  # (T, B)
    logb = np.log10(bands + 1e-10 + 1e-4 * bands.max(initial=0.0))
    flux = np.maximum(np.diff(logb, axis=0, prepend=logb[:1]), 0.0).mean(axis=1)
    n_out = int(np.ceil(y16.size / hop))
    return flux[:n_out].astype(np.float64), hop / ANALYSIS_SR


def _rhythm_strength(env: np.ndarray, hop_s: float) -> float:
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


def _tonal_persistence(spec: _Spectrum, valid: np.ndarray) -> float:
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


def _stationarity(spec: _Spectrum, valid: np.ndarray) -> float:
    """How steady the level is: 1 for stationary noise or a hum, ~0 for music and speech."""
    fp = spec.frame_power[valid]
    if fp.size < 10:
        return 1.0
    lv = db(uniform_filter1d(fp, size=5))
    spread = float(np.percentile(lv, 90) - np.percentile(lv, 10))
    return float(np.clip(1.0 - (spread - 2.0) / 10.0, 0.0, 1.0))


# --------------------------------------------------------------------------- faults


def _hum(y16: np.ndarray) -> tuple[float | None, float, float]:
    """Mains hum: (fundamental Hz or None, level above the local floor dB, hum power).

    :func:`avagent.actions.hum.detect_hum` finds the 50/60 Hz comb. A bass note near 50 Hz can pass
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
    return round(f0, 1), float(excess[ok].max()), float(comb.sum(axis=1).mean())


def _click_rate(y16: np.ndarray) -> float:
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
    :func:`avagent.actions.fill_blanks.find_dropouts` finds (the action that repairs them uses the same
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
    return _dropouts(
        y.reshape(-1, y.shape[-1]), to_mono(y), sr, min_gap_ms, max_gap_ms, noise_floor_db
    )


def _dropouts(
    x: np.ndarray,
    mono: np.ndarray,
    sr: int,
    min_gap_ms: float,
    max_gap_ms: float,
    floor_db: float | None,
) -> list[tuple[float, float, str]]:
    from avagent.actions.fill_blanks import find_dropouts as action_dropouts

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


def _true_peak_dbtp(x: np.ndarray, sr: int) -> float:
    """True peak (dBTP) of ``x (channels, n)`` measured only around its loudest waveform peaks.

    :func:`avagent.actions.volume.true_peak_dbtp` oversamples the whole clip (~0.15 s per 10 s of
    stereo); an inter-sample peak sits next to a sample peak at most a few dB lower, so the same
    interpolator is run only on short tapered windows around the 512 largest local maxima at
    or above half the sample peak (within 0.01 dB of the full measurement on the real clips).
    """
    from avagent.actions.volume import true_peak_dbtp

    env = np.max(np.abs(x), axis=0)
    peak = float(env.max(initial=0.0))
    if peak <= 0.0:
        return -120.0
    half, taper = 48, 24
    n = env.size
    if n <= 64 * half:
        return float(true_peak_dbtp(x, sr=sr))
    cand = np.flatnonzero((env >= 0.5 * peak) & (maximum_filter1d(env, 9) == env))
    if cand.size > 512:
        cand = cand[np.argpartition(env[cand], -512)[-512:]]
    cand = np.clip(cand, half, n - half - 1)
    idx = cand[:, None] + np.arange(-half, half + 1)
    ramp = np.hanning(2 * taper + 1)[:taper]
    w = np.concatenate([ramp, np.ones(2 * (half - taper) + 1), ramp[::-1]])
    windows = (x[:, idx] * w).reshape(-1, w.size)  # every window of every channel is a row
    return max(float(20.0 * np.log10(peak)), float(true_peak_dbtp(windows, sr=sr)))


# --------------------------------------------------------------------------- front door


def analyze_audio(
    y: np.ndarray, *, sr: int, speech_quality: bool = True, timings: dict[str, float] | None = None
) -> AudioFacts:
    """Measure a sound track: level, noise (floor, SNR, kind, hum), speech, music, dropouts.

    Parameters
    ----------
    y : np.ndarray
        Audio ``(..., n)`` in [-1, 1].
    sr : int
        Sample rate in Hz.
    speech_quality : bool
        Run DNSMOS on up to 9 s of detected speech (the costliest step, ~0.3–0.5 s).
    timings : dict, optional
        Filled with seconds per stage.

    Returns
    -------
    AudioFacts
    """
    t0 = time.perf_counter()
    tick = _Ticker(timings)
    y = validate_audio(y, sr=sr)
    x = y.reshape(-1, y.shape[-1])
    channels, n = x.shape
    duration = n / sr
    # one mix for everything that does not need the channels; one 16 kHz copy of it for VAD,
    # DNSMOS, hum, clicks and onsets
    mono = x.mean(axis=0, dtype=np.float32) if channels > 1 else x[0].astype(np.float32)
    y16 = _to_16k(mono, sr)
    spec = _spectrum(mono, sr)
    valid = _nonsilent(spec)
    ms = float(np.mean(mono.astype(np.float64) ** 2))
    silent = db(ms) < SILENT_DBFS
    tick("prepare")

    from avagent.perception.vad import speech_mask, speech_probability

    prob, vad_hop = speech_probability(y16)
    mask = speech_mask(prob)
    speech_fraction = float(mask.mean()) if mask.size else 0.0
    if silent:
        speech_fraction = 0.0
    # VAD chunks (32 ms) → 10 ms analysis frames
    T = spec.power.shape[1]
    frame_t = np.arange(T) * spec.hop_s + 0.016
    chunk = np.minimum((frame_t / vad_hop).astype(int), max(mask.size - 1, 0))
    speech_frames = mask[chunk] if mask.size else np.zeros(T, bool)
    prob_frames = prob[chunk] if prob.size else np.zeros(T)
    tick("vad")

    hum_hz, hum_db, hum_power = _hum(y16)
    clicks = _click_rate(y16)
    env, env_hop = _onset_from_16k(y16)
    rhythm = _rhythm_strength(env, env_hop)
    tonal = _tonal_persistence(spec, valid)
    stationary = _stationarity(spec, valid)
    music = music_likelihood(
        tonal=tonal, rhythm=rhythm, speech_fraction=speech_fraction, stationary=stationary
    )
    tick("features")

    # VAD-gated SNR needs real speech (≥ 0.5 s and ≥ 15 % of the clip): a few false VAD
    # blips would otherwise put the signal into the "noise" frames
    has_speech = speech_frames.sum() * spec.hop_s >= 0.5 and speech_fraction >= 0.15
    if has_speech:
        # frames well away from speech (VAD tails leak into the first 150 ms)
        near = maximum_filter1d(speech_frames.astype(np.uint8), 31).astype(bool)
        noise = _noise_psd(spec, (prob_frames < 0.2) & ~near)
        floor = _noise_psd(spec, None, music=music >= 0.5)
        # Pauses far above the quietest moments are full of sound (ambience, effects, music
        # that VAD took for speech here and there), not a noise floor: the 5.1 film sample
        # read 4 dB SNR this way at -23 LUFS and 26 dB at -34 LUFS, where VAD found no speech.
        if db(noise.sum()) - db(floor.sum()) > GATED_EXCESS_DB:
            has_speech = False
        else:
            snr = _snr_from(spec, noise, speech_frames)
    if not has_speech:
        noise = _noise_psd(spec, None, music=music >= 0.5)
        snr = _snr_from(spec, noise, None)
    floor_db = float(db(noise.sum()))
    tick("snr")

    kind, conf = classify_noise(
        noise,
        spec.freqs,
        snr_db=snr,
        floor_db=floor_db,
        hum_hz=hum_hz,
        hum_db=hum_db,
        hum_power=hum_power,
        click_rate=clicks,
        music=music,
        speech_fraction=speech_fraction,
        stationary=stationary,
        silent=bool(silent),
    )
    if not has_speech and music >= 0.5 and kind is not NoiseKind.HUM:
        steady = _floor_stationarity(spec, noise, valid)
        if steady < 0.3 and kind is not NoiseKind.CLICKS:
            # What minimum statistics took for a floor under music is the music's own quiet
            # parts (no bin holds a steady floor): no noise is evident, and the SNR is only a
            # lower bound, reported as 30 dB so nobody denoises clean music.
            kind, conf, snr = NoiseKind.NONE, float(np.clip(music, 0.5, 1.0)), max(snr, 30.0)
    if not has_speech and kind is NoiseKind.BROADBAND and _floor_confidence(mono, sr) < 0.25:
        # The "floor" is the decay between hits (drum loops, percussion): real broadband noise
        # holds the same level in its quietest moments all through the clip, this one keeps
        # falling. Nothing steady to remove; the SNR is a lower bound, as for clean music.
        kind, conf, snr = NoiseKind.NONE, 0.5, max(snr, 30.0)
    tick("classify")

    dropouts = [
        Dropout(start_s=round(s, 4), end_s=round(e, 4), kind=k)
        for s, e, k in _dropouts(x, mono, sr, 10.0, 500.0, floor_db)
    ]
    peak = float(np.max(np.abs(x)))
    clip_frac = float(np.mean(np.abs(x) >= 0.999)) if peak >= 0.999 else 0.0
    loud = None if silent else loudness_lufs(x, sr=sr)
    tp = _true_peak_dbtp(x, sr)
    tick("levels")

    quality = None
    # DNSMOS rates speech: a few VAD blips in music or effects (Bunny) are not worth 0.4 s
    if speech_quality and has_speech and not silent:
        quality = _speech_quality(y16, mask, vad_hop)
        tick("dnsmos")

    facts = AudioFacts(
        duration_s=round(duration, 4),
        sample_rate=int(sr),
        channels=int(channels),
        silent=bool(silent),
        loudness_lufs=None if loud is None else round(loud, 2),
        true_peak_dbtp=round(tp, 2),
        clipping_fraction=round(clip_frac, 6),
        noise_floor_db=round(floor_db, 2),
        snr_db=round(float(snr), 2),
        noise_kind=kind,
        noise_confidence=round(conf, 3),
        hum_hz=hum_hz,
        hum_db=round(hum_db, 2) if hum_hz is not None else None,
        speech_fraction=round(speech_fraction, 3),
        music_likelihood=round(music, 3),
        speech_quality=quality,
        dropouts=dropouts,
    )
    logger.debug(
        "analyze_audio %.2f s: snr=%.1f kind=%s tonal=%.2f rhythm=%.2f stat=%.2f in %.3f s",
        duration,
        snr,
        kind,
        tonal,
        rhythm,
        stationary,
        time.perf_counter() - t0,
    )
    return facts


class _Ticker:
    def __init__(self, out: dict[str, float] | None) -> None:
        self.out = out
        self.t = time.perf_counter()

    def __call__(self, name: str) -> None:
        now = time.perf_counter()
        if self.out is not None:
            self.out[f"audio.{name}"] = round(now - self.t, 4)
        self.t = now


def _speech_quality(y16: np.ndarray, mask: np.ndarray, hop_s: float) -> dict[str, float] | None:
    from avagent.perception.dnsmos import INPUT_SAMPLES, dnsmos

    hop = round(hop_s * ANALYSIS_SR)
    idx = np.flatnonzero(mask)
    speech = np.concatenate([y16[i * hop : (i + 1) * hop] for i in idx]) if idx.size else y16
    try:
        return dnsmos(speech[:INPUT_SAMPLES])
    except Exception as exc:  # a missing optional model must not fail perception
        logger.warning("DNSMOS unavailable: %s", exc)
        return None


def classify_noise(
    noise_psd: np.ndarray,
    freqs: np.ndarray,
    *,
    snr_db: float,
    floor_db: float,
    hum_hz: float | None = None,
    hum_db: float = 0.0,
    hum_power: float = 0.0,
    click_rate: float = 0.0,
    music: float = 0.0,
    speech_fraction: float = 0.0,
    stationary: float = 0.0,
    silent: bool = False,
) -> tuple[NoiseKind, float]:
    """Name the dominant noise from its spectrum and the clip's measured features.

    Returns
    -------
    (NoiseKind, confidence in 0..1)
    """
    if silent:
        return NoiseKind.NONE, 1.0
    total = float(noise_psd.sum())
    if hum_hz is not None and hum_power >= 0.3 * total:
        return NoiseKind.HUM, float(np.clip((hum_db - 6.0) / 20.0, 0.3, 1.0))
    if click_rate >= 1.0 and music < 0.5:
        return NoiseKind.CLICKS, float(np.clip(click_rate / 5.0, 0.3, 1.0))
    # Noise under clear signal, or a floor at the level of a quiet room, is not worth treating.
    if snr_db >= 30.0 or floor_db < -65.0:
        return NoiseKind.NONE, float(np.clip((snr_db - 25.0) / 15.0, 0.5, 1.0))
    if music >= 0.6 and snr_db >= 20.0:
        return NoiseKind.NONE, 0.5
    audible = freqs >= 20.0
    low = float(noise_psd[audible & (freqs < 250.0)].sum()) / max(
        float(noise_psd[audible].sum()), EPS
    )
    if low >= 0.6:
        return NoiseKind.LOW_RUMBLE, float(np.clip(low, 0.0, 1.0))
    if speech_fraction >= 0.9 and stationary < 0.5 and snr_db < 10.0:
        return NoiseKind.BABBLE, 0.4
    # spectral flatness of the floor between 200 Hz and 7 kHz
    band = (freqs >= 200.0) & (freqs <= 7000.0)
    nb = np.maximum(noise_psd[band], EPS)
    flat = float(np.exp(np.mean(np.log(nb))) / np.mean(nb))
    conf = float(np.clip(0.4 + flat + (20.0 - snr_db) / 40.0, 0.3, 1.0))
    return NoiseKind.BROADBAND, conf
