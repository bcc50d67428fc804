"""Measured facts about a sound track: levels, noise (floor, SNR, kind), speech, music, dropouts.

The front door, :func:`analyze_audio`. Its parts live beside it: :mod:`~avagent.perception.spectrum`
(analysis spectrum, noise floor, SNR), :mod:`~avagent.perception.features` (onsets, rhythm,
music), :mod:`~avagent.perception.faults` (hum, clicks, dropouts) and
:mod:`~avagent.perception.noise` (the noise verdict); loudness and true peak are
:mod:`avagent.loudness`, shared with the volume action.

Everything spectral runs on a 16 kHz mono mix (fast, and what VAD and DNSMOS need); levels,
clipping, true peak and dropouts use the native rate and channels.
"""

from __future__ import annotations

import logging
import time

import numpy as np
from scipy.ndimage import maximum_filter1d

from avagent.audio import validate_audio
from avagent.loudness import fast_true_peak_dbtp, loudness_lufs
from avagent.perception.facts import AudioFacts, Dropout
from avagent.perception.faults import click_rate, find_dropouts, find_dropouts_in, measure_hum
from avagent.perception.features import (
    music_likelihood,
    onset_envelope,
    onset_from_16k,
    rhythm_strength,
    stationarity,
    tonal_persistence,
)
from avagent.perception.noise import classify_noise, floor_confidence, floor_stationarity
from avagent.perception.spectrum import (
    ANALYSIS_SR,
    GATED_EXCESS_DB,
    SILENT_DBFS,
    db,
    estimate_snr_db,
    frame_levels_db,
    noise_floor_db,
    noise_psd,
    nonsilent,
    snr_from,
    spectrum,
    to_16k,
    to_mono,
)

__all__ = [
    "analyze_audio",
    "classify_noise",
    "estimate_snr_db",
    "find_dropouts",
    "frame_levels_db",
    "music_likelihood",
    "noise_floor_db",
    "onset_envelope",
    "to_mono",
]

logger = logging.getLogger(__name__)


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
    y16 = to_16k(mono, sr)
    spec = spectrum(mono, sr)
    valid = nonsilent(spec)
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

    hum_hz, hum_db, hum_power = measure_hum(y16)
    clicks = click_rate(y16)
    env, env_hop = onset_from_16k(y16)
    rhythm = rhythm_strength(env, env_hop)
    tonal = tonal_persistence(spec, valid)
    stationary = stationarity(spec, valid)
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
        noise = noise_psd(spec, (prob_frames < 0.2) & ~near)
        floor = noise_psd(spec, None, music=music >= 0.5)
        # Pauses far above the quietest moments are full of sound (ambience, effects, music
        # that VAD took for speech here and there), not a noise floor: the 5.1 film sample
        # read 4 dB SNR this way at -23 LUFS and 26 dB at -34 LUFS, where VAD found no speech.
        if db(noise.sum()) - db(floor.sum()) > GATED_EXCESS_DB:
            has_speech = False
        else:
            snr = snr_from(spec, noise, speech_frames)
    if not has_speech:
        noise = noise_psd(spec, None, music=music >= 0.5)
        snr = snr_from(spec, noise, None)
    floor_db = float(db(noise.sum()))
    tick("snr")

    kind, conf, snr = classify_noise(
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
        speech_gated=has_speech,
        floor_steadiness=lambda: floor_stationarity(spec, noise, valid),
        floor_decay_confidence=lambda: floor_confidence(mono, sr),
    )
    tick("classify")

    dropouts = [
        Dropout(start_s=round(s, 4), end_s=round(e, 4), kind=k)
        for s, e, k in find_dropouts_in(x, mono, sr, 10.0, 500.0, floor_db)
    ]
    peak = float(np.max(np.abs(x)))
    clip_frac = float(np.mean(np.abs(x) >= 0.999)) if peak >= 0.999 else 0.0
    loud = None if silent else loudness_lufs(x, sr=sr)
    tp = fast_true_peak_dbtp(x, sr=sr)
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
