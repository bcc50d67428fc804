"""The analysis spectrum of a sound track, its noise floor and its SNR.

Perception's shared measuring tools (split from ``perception/audio.py``): the power STFT of the
mix, minimum statistics, the VAD-gated or minimum-statistics noise PSD, and the SNR built on it.
The signal code actions share lives in :mod:`avagent.dsp` and :mod:`avagent.loudness`.

SNR is defined as the power of the wanted signal *while it is active* over the noise power:
speech frames (VAD) when there is speech, all frames otherwise (music, ambience). The noise power
comes from non-speech frames when speech is present, else from minimum statistics per frequency
bin (a low percentile of the smoothed power, bias-corrected), which lets it find the hiss under
continuous music without calling the music noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import overload

import numpy as np
from scipy import signal as sps
from scipy.ndimage import uniform_filter1d

from avagent.audio import validate_audio

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


def to_mono(y: np.ndarray) -> np.ndarray:
    """Average all channels of ``(..., n)`` audio to ``(n,)``."""
    y = np.asarray(y)
    return y.reshape(-1, y.shape[-1]).mean(axis=0) if y.ndim > 1 else y


def to_16k(mono: np.ndarray, sr: int) -> np.ndarray:
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
class Spectrum:
    """Power STFT of the 16 kHz mix, scaled so each frame's bin sum is its mean square."""

    power: np.ndarray  # (F, T)
    freqs: np.ndarray  # (F,)
    hop_s: float

    @property
    def frame_power(self) -> np.ndarray:
        return self.power.sum(axis=0)


def spectrum(x: np.ndarray, sr: int = ANALYSIS_SR) -> Spectrum:
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
    return Spectrum(P, freqs, hop / sr)


def minstat_raw(power: np.ndarray, valid: np.ndarray, *, discount: bool = False) -> np.ndarray:
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


def _calibrated_bias() -> float:
    # Computed once from seeded white noise: mean / 10th percentile of the smoothed power.
    rng = np.random.default_rng(0)
    s = spectrum(rng.standard_normal(ANALYSIS_SR * 4).astype(np.float32) * 0.1)
    raw = minstat_raw(s.power, np.ones(s.power.shape[1], bool))
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
    spec = spectrum(to_mono(y), sr)
    return float(db(noise_psd(spec, None).sum()))


def nonsilent(spec: Spectrum) -> np.ndarray:
    return spec.frame_power > 1e-11  # above -110 dBFS: not digital silence


def noise_psd(
    spec: Spectrum, noise_frames: np.ndarray | None, *, music: bool = False
) -> np.ndarray:
    valid = nonsilent(spec)
    if noise_frames is not None:
        sel = noise_frames & valid
        if sel.sum() * spec.hop_s >= 0.3:
            return spec.power[:, sel].mean(axis=1)
    # Under music the quietest moments of a bin are still music: discount non-steady bins.
    # Elsewhere (wind, traffic) the noise itself fluctuates and must not be discounted.
    return minstat_raw(spec.power, valid, discount=music) * MINSTAT_BIAS


def snr_from(spec: Spectrum, noise: np.ndarray, signal_frames: np.ndarray | None) -> float:
    valid = nonsilent(spec)
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
    spec = spectrum(to_mono(y), sr)
    if speech_frames is not None:
        speech_frames = fit_mask(speech_frames, spec.power.shape[1])
        noise = noise_psd(spec, ~speech_frames)
        return snr_from(spec, noise, speech_frames if speech_frames.any() else None)
    return snr_from(spec, noise_psd(spec, None), None)


def fit_mask(mask: np.ndarray, n: int) -> np.ndarray:
    mask = np.asarray(mask, bool)
    if mask.size >= n:
        return mask[:n]
    return np.pad(mask, (0, n - mask.size))
