"""Noise actions: shapes kept, noise down (SI-SDR up), hum found and removed, params checked."""

from __future__ import annotations

import re

import numpy as np
import pytest
import soundfile as sf

from avagent.actions import apply_action
from avagent.actions.hum import remove_hum
from avagent.actions.spectral_subtraction import spectral_subtraction
from avagent.errors import ParameterError
from avagent.hum import detect_hum

SR = 48000
DENOISERS = ["spectral_subtraction", "wiener", "wavelet_denoise", "spectral_gating"]


def si_sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Scale-invariant SDR in dB (Le Roux et al. 2019)."""
    ref = reference - reference.mean()
    est = estimate - estimate.mean()
    target = (est @ ref) / (ref @ ref) * ref
    return float(10 * np.log10((target @ target) / ((est - target) @ (est - target))))


def at_snr(clean: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    gain = np.sqrt(np.mean(clean**2) / (np.mean(noise**2) * 10 ** (snr_db / 10)))
    return clean + gain * noise


def synthetic_tones(rng: np.random.Generator, seconds: float = 2.0) -> np.ndarray:
    """Gated harmonic tones with pauses: speech-like on/off structure, known content."""
    t = np.arange(int(seconds * SR)) / SR
    y = sum(0.3 / k * np.sin(2 * np.pi * 220 * k * t + rng.uniform(0, 6)) for k in range(1, 8))
    gate = (np.sin(2 * np.pi * 1.5 * t) > -0.3).astype(float)
    return y * np.convolve(gate, np.hanning(2001) / 1000.5, mode="same")


@pytest.fixture(scope="module")
def speech(speech_path) -> np.ndarray:
    """~6 s of real speech: four of the 48 kHz ALSA voice clips, one after another."""
    parts = []
    for name in ("Front_Center", "Front_Left", "Rear_Right", "Side_Left"):
        y, sr = sf.read(speech_path.parent / f"{name}.wav", dtype="float64")
        assert sr == SR
        parts.append(y if y.ndim == 1 else y.mean(axis=1))
    return np.concatenate(parts)


@pytest.mark.parametrize("name", [*DENOISERS, "remove_hum"])
@pytest.mark.parametrize("shape", [(SR,), (2, SR), (2, 3, SR // 2)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_shape_dtype_and_finite(name, shape, dtype, rng):
    y = (0.1 * rng.standard_normal(shape)).astype(dtype)
    out = apply_action(name, y, sr=SR)
    assert out.shape == y.shape and out.dtype == y.dtype
    assert np.all(np.isfinite(out))


@pytest.mark.parametrize("name", [*DENOISERS, "remove_hum"])
def test_function_keeps_dtype_when_called_directly(name, rng):
    from avagent.actions import get_action

    y = (0.1 * rng.standard_normal((2, SR // 2))).astype(np.float32)
    out = get_action(name).func(y, sr=SR)
    assert out.shape == y.shape and out.dtype == np.float32


@pytest.mark.parametrize("name", DENOISERS)
def test_white_noise_at_5db_synthetic(name, rng):
    clean = synthetic_tones(rng)
    noisy = at_snr(clean, rng.standard_normal(clean.size), 5.0)
    out = apply_action(name, noisy, sr=SR)
    assert si_sdr(clean, out) > si_sdr(clean, noisy) + 4.0


@pytest.mark.media
@pytest.mark.parametrize("name,margin_db", [
    ("spectral_subtraction", 5.0), ("wiener", 5.0), ("wavelet_denoise", 5.0),
    ("spectral_gating", 5.0),
])
def test_white_noise_at_5db_real_speech(name, margin_db, speech, rng):
    noisy = at_snr(speech, rng.standard_normal(speech.size), 5.0)
    out = apply_action(name, noisy, sr=SR)
    assert si_sdr(speech, out) > si_sdr(speech, noisy) + margin_db


@pytest.mark.media
@pytest.mark.parametrize("name", ["spectral_subtraction", "wiener", "wavelet_denoise"])
def test_clean_speech_nearly_untouched(name, speech):
    assert si_sdr(speech, apply_action(name, speech, sr=SR)) > 20.0


@pytest.fixture(scope="module")
def music2(media_dir) -> np.ndarray:
    """8 s of clean game music with sustained pads (the case that looks like stationary noise)."""
    from scipy.signal import resample_poly

    y, sr = sf.read(media_dir / "lugaru" / "Music2.ogg", dtype="float64", frames=8 * 44100)
    return resample_poly(y.T, SR, sr, axis=-1) if sr != SR else y.T


@pytest.mark.media
@pytest.mark.parametrize("name", [*DENOISERS, "remove_hum"])
def test_clean_music_nearly_untouched(name, music2):
    """No stationary floor in clean music: every action at defaults keeps >= 20 dB SI-SDR."""
    out = apply_action(name, music2, sr=SR)
    assert np.mean([si_sdr(a, b) for a, b in zip(music2, out, strict=True)]) > 20.0


@pytest.mark.media
def test_no_hum_found_in_clean_music(music2):
    assert detect_hum(music2, sr=SR)[0] is None


@pytest.mark.media
@pytest.mark.parametrize("name", ["wiener"])
def test_pink_noise_at_5db_real_speech(name, speech, rng):
    from avagent.bench.signals import noise

    noisy = at_snr(speech, noise("pink", speech.size, seed=3)[0], 5.0)
    out = apply_action(name, noisy, sr=SR)
    assert si_sdr(speech, out) > si_sdr(speech, noisy) + 5.0


def test_spectral_subtraction_with_noise_clip(rng):
    clean = synthetic_tones(rng)
    noise = rng.standard_normal(clean.size + SR)
    noisy = at_snr(clean, noise[: clean.size], 5.0)
    scale = (noisy - clean).std() / noise[: clean.size].std()
    out = spectral_subtraction(noisy, sr=SR, noise=scale * noise[clean.size :])
    assert si_sdr(clean, out) > si_sdr(clean, noisy) + 4.0


def hum(f0: float, n: int, rng: np.random.Generator, n_harmonics: int = 5) -> np.ndarray:
    t = np.arange(n) / SR
    return sum(
        0.6**k * np.sin(2 * np.pi * f0 * (k + 1) * t + rng.uniform(0, 6))
        for k in range(n_harmonics)
    )


@pytest.mark.media
@pytest.mark.parametrize("f0", [50.0, 60.0, 49.85, 60.15])
def test_detect_and_remove_hum_on_speech(f0, speech, rng):
    noisy = at_snr(speech, hum(f0, speech.size, rng), 0.0)
    found, level_db = detect_hum(noisy, sr=SR)
    assert found is not None and abs(found - f0) < 0.5
    assert level_db > 20.0
    out = apply_action("remove_hum", noisy, sr=SR)
    assert si_sdr(speech, out) > si_sdr(speech, noisy) + 15.0


@pytest.mark.media
@pytest.mark.parametrize("f0", [50.0, 60.0])
def test_remove_hum_at_5db_on_speech(f0, speech, rng):
    noisy = at_snr(speech, hum(f0, speech.size, rng), 5.0)
    assert si_sdr(speech, apply_action("remove_hum", noisy, sr=SR)) > si_sdr(speech, noisy) + 15.0


@pytest.mark.parametrize("f0", [50.0, 60.0])
def test_remove_hum_synthetic_stereo(f0, rng):
    clean = np.stack([synthetic_tones(rng, 3.0), synthetic_tones(rng, 3.0)])
    noisy = clean + 0.5 * hum(f0, clean.shape[-1], rng)
    assert abs(detect_hum(noisy, sr=SR)[0] - f0) < 0.5
    out = remove_hum(noisy, sr=SR)
    for ch in range(2):
        assert si_sdr(clean[ch], out[ch]) > si_sdr(clean[ch], noisy[ch]) + 15.0


def test_no_hum_is_a_no_op(rng):
    clean = synthetic_tones(rng, 3.0) + 0.01 * rng.standard_normal(3 * SR)
    found, level_db = detect_hum(clean, sr=SR)
    assert found is None  # level_db may show a sideband tooth; one alone is not hum
    assert np.isfinite(level_db)
    np.testing.assert_array_equal(remove_hum(clean, sr=SR), clean)


def test_explicit_fundamental_is_used(rng):
    clean = synthetic_tones(rng, 3.0)
    noisy = clean + 0.3 * hum(55.0, clean.size, rng, 3)  # off the 50/60 grid: auto misses it
    out = remove_hum(noisy, sr=SR, fundamental_hz=55.0, harmonics=3)
    assert si_sdr(clean, out) > si_sdr(clean, noisy) + 15.0


@pytest.mark.parametrize("name,params,bad", [
    ("spectral_subtraction", {"over_subtraction": 0.0}, "over_subtraction=0.0"),
    ("spectral_subtraction", {"floor_db": 5}, "floor_db=5"),
    ("spectral_subtraction", {"noise": [0.0]}, "noise=[0.0]"),
    ("wiener", {"dd_alpha": 1.5}, "dd_alpha=1.5"),
    ("wiener", {"frame_ms": 1}, "frame_ms=1"),
    ("wavelet_denoise", {"wavelet": "morlet"}, "wavelet='morlet'"),
    ("wavelet_denoise", {"level": 0}, "level=0"),
    ("wavelet_denoise", {"method": "sure"}, "method='sure'"),
    ("wavelet_denoise", {"mode": "garrote"}, "mode='garrote'"),
    ("spectral_gating", {"prop_decrease": 1.5}, "prop_decrease=1.5"),
    ("spectral_gating", {"stationary": "sometimes"}, "stationary='sometimes'"),
    ("remove_hum", {"fundamental_hz": 5000}, "fundamental_hz=5000"),
    ("remove_hum", {"harmonics": 0}, "harmonics=0"),
    ("remove_hum", {"bandwidth_hz": -1}, "bandwidth_hz=-1"),
])
def test_invalid_params_name_the_value(name, params, bad, rng):
    with pytest.raises(ParameterError, match=f"{name}: .*{re.escape(bad)}"):
        apply_action(name, 0.1 * rng.standard_normal(SR // 4), sr=SR, **params)


@pytest.mark.parametrize("name,params", [
    ("spectral_subtraction", {"over_subtraction": 3.0, "floor_db": -30, "frame_ms": 20}),
    ("wiener", {"dd_alpha": 0.9, "noise_percentile": 20}),
    ("wavelet_denoise", {"wavelet": "sym8", "level": 5, "method": "visu", "mode": "hard"}),
    ("spectral_gating", {"stationary": False, "prop_decrease": 0.8}),
    ("remove_hum", {"fundamental_hz": 50.0, "harmonics": 3}),
])
def test_valid_params_run(name, params, rng):
    y = 0.1 * rng.standard_normal(SR // 2)
    out = apply_action(name, y, sr=SR, **params)
    assert out.shape == y.shape and np.all(np.isfinite(out))
