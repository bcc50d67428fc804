"""Audio perception finds planted faults and leaves clean music alone."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from scipy import signal as sps

from avagent.perception.audio import (
    analyze_audio,
    estimate_snr_db,
    find_dropouts,
    noise_floor_db,
    onset_envelope,
)
from avagent.perception.facts import NoiseKind
from tests.synth import speechlike

SR = 16000


def _noise_at(clean: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    p = np.mean(clean[np.abs(clean) > 1e-3] ** 2)
    return rng.standard_normal(clean.size) * np.sqrt(p / 10 ** (snr_db / 10))


@pytest.mark.parametrize("hz", [50.0, 60.0])
def test_hum_found_with_its_frequency(rng, hz):
    t = np.arange(SR * 4) / SR
    y = (
        speechlike(rng, SR, 4.0)
        + 0.02 * np.sin(2 * np.pi * hz * t)
        + 0.01 * np.sin(2 * np.pi * 2 * hz * t)
    )
    y += rng.standard_normal(t.size) * 1e-4
    f = analyze_audio(y, sr=SR, speech_quality=False)
    assert f.hum_hz == hz
    assert f.hum_db is not None and f.hum_db > 20
    assert f.noise_kind is NoiseKind.HUM


def test_dropouts_found_at_their_times(rng):
    sr = 48000
    y = speechlike(rng, sr, 5.0) + rng.standard_normal(sr * 5) * 0.003
    y[int(1.20 * sr) : int(1.32 * sr)] = 0.0  # digital silence
    y[int(3.40 * sr) : int(3.45 * sr)] *= 1e-3  # a hole far below the noise floor
    f = analyze_audio(y, sr=sr, speech_quality=False)
    got = [(d.start_s, d.end_s, d.kind) for d in f.dropouts]
    assert len(got) == 2, got
    (s1, e1, k1), (s2, e2, k2) = got
    assert k1 == "digital_silence" and abs(s1 - 1.20) <= 0.01 and abs(e1 - 1.32) <= 0.01
    assert k2 == "gap" and abs(s2 - 3.40) <= 0.01 and abs(e2 - 3.45) <= 0.01


def test_no_dropouts_in_pauses_or_fades(rng):
    sr = 16000
    y = speechlike(rng, sr, 4.0) + rng.standard_normal(sr * 4) * 0.003
    y[: sr // 10] *= np.linspace(0, 1, sr // 10)  # fade-in is not a dropout
    assert find_dropouts(y, sr=sr, noise_floor_db=noise_floor_db(y, sr=sr)) == []


@pytest.mark.parametrize("snr", [0.0, 5.0, 10.0, 20.0])
def test_white_noise_snr_and_kind(rng, snr):
    clean = speechlike(rng, SR, 6.0)
    f = analyze_audio(clean + _noise_at(clean, snr, rng), sr=SR, speech_quality=False)
    assert abs(f.snr_db - snr) <= 3.0, f.snr_db
    assert f.noise_kind is NoiseKind.BROADBAND


def test_snr_of_tone_bursts(rng):
    # a steady tone is indistinguishable from a hum for minimum statistics; bursts are not
    t = np.arange(SR * 3) / SR
    bursts = 0.3 * np.sin(2 * np.pi * 440 * t) * (np.sin(2 * np.pi * t) > 0)
    noise = rng.standard_normal(t.size) * 0.3 / np.sqrt(2) / 10 ** (10 / 20)
    assert abs(estimate_snr_db(bursts + noise, sr=SR) - 10) <= 3


def test_low_fluctuating_noise_is_rumble(rng):
    n = SR * 6
    sos = sps.butter(4, 150, "lowpass", fs=SR, output="sos")
    gust = 1 + 0.8 * np.sin(2 * np.pi * 0.5 * np.arange(n) / SR)
    wind = sps.sosfilt(sos, rng.standard_normal(n)) * gust
    clean = speechlike(rng, SR, 6.0)
    y = clean + wind * np.sqrt(np.mean(clean**2) / np.mean(wind**2)) * 0.5
    f = analyze_audio(y, sr=SR, speech_quality=False)
    assert f.noise_kind is NoiseKind.LOW_RUMBLE
    assert f.snr_db < 20


def test_digital_silence_is_silent():
    f = analyze_audio(np.zeros(SR), sr=SR)
    assert f.silent and f.noise_kind is NoiseKind.NONE and f.speech_quality is None


def test_clipping_and_levels(rng):
    y = np.clip(speechlike(rng, SR, 3.0) * 8, -1, 1)
    f = analyze_audio(y, sr=SR, speech_quality=False)
    assert f.clipping_fraction > 0.01
    assert f.true_peak_dbtp >= -0.1
    assert f.loudness_lufs is not None and f.loudness_lufs > -20


def test_onset_envelope_peaks_at_clicks(rng):
    y = rng.standard_normal(SR * 2) * 1e-3
    for t in (0.5, 1.2):
        y[int(t * SR) : int(t * SR) + 80] += 0.5
    env, hop = onset_envelope(y, sr=SR, hop_s=0.01)
    assert hop == pytest.approx(0.01)
    top = sorted(np.argsort(env)[-2:] * hop)
    assert top == pytest.approx([0.5, 1.2], abs=0.02)


@pytest.mark.media
@pytest.mark.parametrize("name", ["lugaru/Music2.ogg", "sonicpi/loop_tabla.flac"])
def test_clean_real_music_is_not_noise(media_dir, name):
    y, sr = sf.read(media_dir / name, dtype="float32", always_2d=True)
    f = analyze_audio(y.T[:, : sr * 8], sr=sr, speech_quality=False)
    assert f.noise_kind is NoiseKind.NONE
    assert f.snr_db >= 25
    assert f.music_likelihood >= 0.5


@pytest.mark.media
def test_real_speech_with_noise(media_dir, rng):
    y, sr = sf.read(media_dir / "speech" / "Front_Center.wav", dtype="float32")
    clean = analyze_audio(y, sr=sr)
    assert clean.speech_fraction > 0.3 and clean.noise_kind is NoiseKind.NONE
    assert clean.speech_quality is not None and set(clean.speech_quality) == {"sig", "bak", "ovrl"}
    p = np.mean(y[np.abs(y) > 1e-3] ** 2)
    noisy = y + rng.standard_normal(y.size).astype(np.float32) * np.sqrt(p / 10**0.5)
    f = analyze_audio(noisy, sr=sr)
    assert f.noise_kind is NoiseKind.BROADBAND and f.snr_db < 12
    assert f.speech_quality["bak"] < clean.speech_quality["bak"]


def test_levels_are_the_volume_actions_on_5_1(rng):
    # perception reports what the volume action will measure: BS.1770 channel weights (LFE out)
    from avagent.loudness import loudness_lufs, true_peak_dbtp

    sr = 48000
    y = np.zeros((6, sr * 3), np.float32)
    y[2] = speechlike(rng, sr, 3.0)  # dialogue in the centre channel only
    y[3] = 0.5 * np.sin(2 * np.pi * 40 * np.arange(sr * 3) / sr)  # LFE does not count
    f = analyze_audio(y, sr=sr, speech_quality=False)
    assert f.loudness_lufs == pytest.approx(loudness_lufs(y, sr=sr), abs=0.01)
    assert f.true_peak_dbtp == pytest.approx(true_peak_dbtp(y, sr=sr), abs=0.02)


def test_steady_lone_line_in_music_is_not_hum(rng):
    # a held note near 50 Hz that swells and fades is not mains hum
    t = np.arange(SR * 6) / SR
    note = 0.2 * np.sin(2 * np.pi * 50.1 * t) * (0.55 + 0.45 * np.sin(2 * np.pi * 0.4 * t))
    f = analyze_audio(note + speechlike(rng, SR, 6.0) * 0.3, sr=SR, speech_quality=False)
    assert f.hum_hz is None


@pytest.mark.media
def test_clean_drum_loop_is_not_noise_but_noise_under_it_is(media_dir):
    # between amen-break hits the level decays towards silence: minimum statistics reads that
    # as a 10 dB "floor", but it is not steady noise; the same loop under white noise is
    from avagent.bench import signals

    y, sr = sf.read(media_dir / "sonicpi" / "loop_amen.flac", dtype="float32", always_2d=True)
    amen = y.T  # one 1.75 s break
    f = analyze_audio(amen, sr=sr, speech_quality=False)
    assert f.noise_kind is NoiseKind.NONE and f.snr_db >= 25
    for kind, snr in [("white", 10.0), ("pink", 10.0), ("white", 0.0), ("pink", 0.0)]:
        noise = signals.noise(kind, amen.shape[-1], channels=2, seed=1, sr=sr)
        noisy = amen + noise * np.sqrt(np.mean(amen**2) / 10 ** (snr / 10))
        g = analyze_audio(noisy, sr=sr, speech_quality=False)
        assert g.noise_kind is NoiseKind.BROADBAND and g.snr_db < 15, (kind, snr, g.snr_db)


def test_noise_verdict_is_decided_once():
    """The music-floor and decaying-floor rules live inside the classifier: one answer, with
    the SNR it implies, and each extra measurement taken only when its rule is reached."""
    from avagent.perception.audio import classify_noise

    freqs = np.linspace(0.0, 8000.0, 257)
    psd = np.full(freqs.size, 1e-6)  # flat: broadband
    base = {"snr_db": 12.0, "floor_db": -40.0, "music": 0.55, "stationary": 0.2}
    assert classify_noise(psd, freqs, **base) == (NoiseKind.BROADBAND, pytest.approx(1.0), 12.0)
    music_floor = classify_noise(psd, freqs, **base, speech_gated=False,
                                 floor_steadiness=lambda: 0.1)
    assert music_floor == (NoiseKind.NONE, 0.55, 30.0)
    asked: list[str] = []

    def steadiness() -> float:
        asked.append("steadiness")
        return 0.1

    decaying = classify_noise(psd, freqs, **{**base, "music": 0.2}, speech_gated=False,
                              floor_steadiness=steadiness, floor_decay_confidence=lambda: 0.1)
    assert decaying == (NoiseKind.NONE, 0.5, 30.0)
    assert asked == []  # not music: the music-floor rule never measured
    steady = classify_noise(psd, freqs, **{**base, "music": 0.2}, speech_gated=False,
                            floor_decay_confidence=lambda: 0.9)
    assert steady.kind is NoiseKind.BROADBAND and steady.snr_db == 12.0


def test_hum_under_a_louder_sustained_note_is_hum(rng):
    # A held low E (82.4 Hz, with its harmonics) is the loudest steady line; the 50 Hz comb
    # 12 dB under it is still hum: all four of its teeth stand steady over their surroundings.
    t = np.arange(SR * 6) / SR
    note = sum(0.3 / k * np.sin(2 * np.pi * 82.4 * k * t) for k in range(1, 6))
    hum = sum(0.075 / k * np.sin(2 * np.pi * 50.0 * k * t) for k in range(1, 5))
    y = note + speechlike(rng, SR, 6.0) * 0.05 + rng.standard_normal(t.size) * 1e-3
    assert analyze_audio(y, sr=SR, speech_quality=False).hum_hz is None
    assert analyze_audio(y + hum, sr=SR, speech_quality=False).hum_hz == 50.0


@pytest.mark.media
def test_hum_under_a_real_guitar_chord_is_found_and_the_chord_alone_is_not():
    # Sonic Pi's E minor 9 chord (the benchmark's guitar clip) rings with a steady line at
    # 60.2 Hz of its own: no hum. Its sound 450 ms early under 50 Hz hum 10 dB down (a benchmark
    # case) is hum, although the chord's 82 Hz E is the steadiest line there.
    from avagent.bench import corrupt, suite

    src = suite.event_source("music", "guitar")
    assert analyze_audio(src.y, sr=src.sr, speech_quality=False).hum_hz is None
    y, _ = corrupt.mixture(src.y, sr=src.sr, seed=0, faults=[
        ("offset", {"audio_delay_ms": -450.0}), ("hum", {"fundamental_hz": 50.0, "snr_db": 10.0})])
    assert analyze_audio(y, sr=src.sr, speech_quality=False).hum_hz == 50.0
