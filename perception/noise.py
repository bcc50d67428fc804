"""The noise verdict: which noise a sound track holds (``NoiseKind``), how sure, and its SNR.

Split from ``perception/audio.py``. :func:`classify_noise` decides once, every rule in one
ordered list (the music and decaying-floor rules used to overturn its answer afterwards).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from scipy.ndimage import uniform_filter1d

from avagent.perception.facts import AudioFacts, NoiseKind
from avagent.perception.spectrum import (
    EPS,
    MINSTAT_PERCENTILE,
    STATIONARY_SPREAD_DB,
    Spectrum,
    db,
)

# Noises a denoiser treats, for which the floor's steadiness is measured (AudioFacts.floor_confidence)
SEPARABLE_KINDS = frozenset({NoiseKind.BROADBAND, NoiseKind.LOW_RUMBLE, NoiseKind.BABBLE})
# A floor this steady all through the clip is a noise apart from the programme (see
# noise_apart_from_programme). On the full benchmark (seed 0) the clean game score, whose floor
# reads as broadband noise at 4.7 dB SNR, scores 0.45; music on the tuned sources under
# planted or recorded stationary noise 0.88-1.0 (engine 10 dB under tabla: 0.90).
SEPARATE_FLOOR = 0.9


def noise_apart_from_programme(a: AudioFacts) -> bool:
    """Whether the named noise is clearly separate from music the clip carries: its quietest
    moments hold the same steady noise all through the clip (:func:`floor_confidence` ≥
    ``SEPARATE_FLOOR``). Music's own quiet parts come and go with the notes; a fan, an engine,
    tape hiss or rain under the music stays. The planner's music veto and its stricter SNR
    limit under music step aside for such a noise, and the critic's music-bed rule with them.
    Not under mains hum: a hum is steady itself (a real game score under 60 Hz hum read 0.99,
    0.45 without it), so the floor says nothing about the noise apart from it."""
    return (a.noise_kind in SEPARABLE_KINDS and a.hum_hz is None
            and a.floor_confidence is not None and a.floor_confidence >= SEPARATE_FLOOR)


class NoiseVerdict(NamedTuple):
    kind: NoiseKind
    confidence: float
    snr_db: float


def floor_stationarity(spec: Spectrum, noise: np.ndarray, valid: np.ndarray) -> float:
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


def floor_confidence(mono: np.ndarray, sr: int) -> float:
    """Confidence (0..1) that the clip's floor is stationary noise rather than decaying sound.

    The denoisers' own test (:func:`avagent.dsp.floor_confidence`: in a bin holding steady
    noise, the bias-corrected 2.5th and 10th percentiles of its power agree; under decays
    between drum hits the lower one keeps falling), averaged over 200 Hz-8 kHz weighted by the
    floor each bin holds. White or pink noise under speech or music reads 0.9-1 at 0 dB SNR,
    0.5-1 at 10 dB and 0.1-0.9 at 20 dB (where the music rule already calls dense music clean);
    one clean amen break (1.75 s) 0.18, loop_industrial 0.0. Three amen breaks in a row read
    0.46, like the loop under 20 dB of noise: that case this cue cannot settle.
    """
    from avagent import dsp

    n_fft = dsp.fft_size(sr, 32.0)
    P = dsp.power(dsp.stft(mono[None, :].astype(np.float32), n_fft))
    conf = dsp.floor_confidence(P, n_fft, sr=sr)[0, 0]
    floor = dsp.noise_psd(P, n_fft, sr=sr, check_stationary=False)[0, 0]
    f = np.arange(conf.size) * sr / n_fft
    band = (f >= 200.0) & (f <= 8000.0)
    w = floor[band]
    return float(np.sum(conf[band] * w) / np.sum(w)) if w.sum() > 0 else 1.0


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
    speech_gated: bool = True,
    floor_steadiness: Callable[[], float] | None = None,
    floor_decay_confidence: Callable[[], float] | None = None,
) -> NoiseVerdict:
    """Name the dominant noise from its spectrum and the clip's measured features.

    Parameters
    ----------
    speech_gated : bool
        The noise came from speech pauses (VAD). When False (minimum statistics under music,
        effects, percussion) two more rules apply, each needing a measurement that is taken
        only when the rule is reached:
    floor_steadiness : callable, optional
        ``() -> share`` of the floor in bins steady like real noise (:func:`floor_stationarity`).
        Under music (``music >= 0.5``) a share below 0.3 means the "floor" is the music's own
        quiet parts: no noise.
    floor_decay_confidence : callable, optional
        ``() -> confidence`` that the floor is stationary rather than decaying
        (:func:`floor_confidence`). A broadband verdict with confidence below 0.25 is the decay
        between hits (drum loops): no noise.

    Returns
    -------
    NoiseVerdict
        ``(kind, confidence in 0..1, snr_db)``; ``snr_db`` is the input SNR, raised to the
        30 dB lower bound when a rule above found no noise (so nobody denoises clean music).
    """
    if silent:
        return NoiseVerdict(NoiseKind.NONE, 1.0, snr_db)
    total = float(noise_psd.sum())
    if hum_hz is not None and hum_power >= 0.3 * total:
        return NoiseVerdict(NoiseKind.HUM, float(np.clip((hum_db - 6.0) / 20.0, 0.3, 1.0)), snr_db)
    if not speech_gated and music >= 0.5 and floor_steadiness is not None and floor_steadiness() < 0.3:
        # What minimum statistics took for a floor under music is the music's own quiet
        # parts (no bin holds a steady floor): no noise is evident, and the SNR is only a
        # lower bound, reported as 30 dB.
        return NoiseVerdict(NoiseKind.NONE, float(np.clip(music, 0.5, 1.0)), max(snr_db, 30.0))
    if click_rate >= 1.0 and music < 0.5:
        return NoiseVerdict(NoiseKind.CLICKS, float(np.clip(click_rate / 5.0, 0.3, 1.0)), snr_db)
    # Noise under clear signal, or a floor at the level of a quiet room, is not worth treating.
    if snr_db >= 30.0 or floor_db < -65.0:
        return NoiseVerdict(NoiseKind.NONE, float(np.clip((snr_db - 25.0) / 15.0, 0.5, 1.0)), snr_db)
    if music >= 0.6 and snr_db >= 20.0:
        return NoiseVerdict(NoiseKind.NONE, 0.5, snr_db)
    audible = freqs >= 20.0
    low = float(noise_psd[audible & (freqs < 250.0)].sum()) / max(
        float(noise_psd[audible].sum()), EPS
    )
    if low >= 0.6:
        return NoiseVerdict(NoiseKind.LOW_RUMBLE, float(np.clip(low, 0.0, 1.0)), snr_db)
    if speech_fraction >= 0.9 and stationary < 0.5 and snr_db < 10.0:
        return NoiseVerdict(NoiseKind.BABBLE, 0.4, snr_db)
    if not speech_gated and floor_decay_confidence is not None and floor_decay_confidence() < 0.25:
        # The "floor" is the decay between hits (drum loops, percussion): real broadband noise
        # holds the same level in its quietest moments all through the clip, this one keeps
        # falling. Nothing steady to remove; the SNR is a lower bound, as for clean music.
        return NoiseVerdict(NoiseKind.NONE, 0.5, max(snr_db, 30.0))
    # spectral flatness of the floor between 200 Hz and 7 kHz
    band = (freqs >= 200.0) & (freqs <= 7000.0)
    nb = np.maximum(noise_psd[band], EPS)
    flat = float(np.exp(np.mean(np.log(nb))) / np.mean(nb))
    conf = float(np.clip(0.4 + flat + (20.0 - snr_db) / 40.0, 0.3, 1.0))
    return NoiseVerdict(NoiseKind.BROADBAND, conf, snr_db)
