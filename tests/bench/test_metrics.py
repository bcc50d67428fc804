"""Each metric on signals whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from avagent.bench import metrics

SR = 48_000


def _tone(f0: float, seconds: float = 2.0, partials: int = 10) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, partials + 1))


def _shift(x: np.ndarray, k: int) -> np.ndarray:
    out = np.zeros_like(x)
    if k >= 0:
        out[..., k:] = x[..., : x.shape[-1] - k]
    else:
        out[..., :k] = x[..., -k:]
    return out


@pytest.fixture
def speechlike(rng: np.random.Generator) -> np.ndarray:
    """3 s of noise shaped by a syllable-rate envelope: broadband, non-periodic, with pauses."""
    n = 3 * SR
    env = np.clip(np.sin(2 * np.pi * 3.1 * np.arange(n) / SR), 0, None) ** 2
    b, a = signal.butter(2, [200, 4000], btype="band", fs=SR)
    return signal.lfilter(b, a, rng.standard_normal(n)) * env


def test_si_sdr_of_scaled_copy_is_huge(speechlike: np.ndarray) -> None:
    assert metrics.si_sdr(speechlike, 0.3 * speechlike) >= 60
    assert metrics.si_sdr(speechlike, -2.0 * speechlike + 0.01) >= 60  # scale and DC ignored


@pytest.mark.parametrize("snr", [0.0, 10.0, 20.0])
def test_si_sdr_of_copy_plus_noise_matches_snr(
    speechlike: np.ndarray, rng: np.random.Generator, snr: float
) -> None:
    noise = rng.standard_normal(speechlike.shape)
    noise *= np.sqrt(np.sum(speechlike**2) / np.sum(noise**2) / 10 ** (snr / 10))
    assert metrics.si_sdr(speechlike, speechlike + noise) == pytest.approx(snr, abs=0.3)


def test_si_sdr_multichannel_averages_channels(
    speechlike: np.ndarray, rng: np.random.Generator
) -> None:
    ref = np.stack([speechlike, speechlike[::-1]])
    noise = rng.standard_normal(ref.shape)
    noise *= np.sqrt(np.sum(ref[0] ** 2) / np.sum(noise[0] ** 2))  # 0 dB on both channels
    est = ref.copy()
    est[0] += noise[0] / np.sqrt(10)  # 10 dB
    est[1] += noise[1] * np.sqrt(np.sum(ref[1] ** 2) / np.sum(noise[1] ** 2)) / 10  # 20 dB
    assert metrics.si_sdr(ref, est) == pytest.approx(15.0, abs=0.3)


def test_si_sdr_improvement_is_the_difference(
    speechlike: np.ndarray, rng: np.random.Generator
) -> None:
    noise = rng.standard_normal(speechlike.shape) * speechlike.std()
    noisy, better = speechlike + noise, speechlike + 0.1 * noise
    assert metrics.si_sdr_improvement(speechlike, noisy, better) == pytest.approx(20.0, abs=0.3)


@pytest.mark.parametrize("ms", [120.0, -120.0, 800.0, -800.0, 0.0])
def test_residual_offset_finds_shift(speechlike: np.ndarray, ms: float) -> None:
    shifted = _shift(speechlike, round(ms * SR / 1000))
    assert metrics.residual_offset_ms(speechlike, shifted, sr=SR) == pytest.approx(ms, abs=0.1)


def test_residual_offset_of_drifting_music_is_the_drift(media_dir: object) -> None:
    # Real guitar, its clock 0.2 % fast: the middle of the clip leads by about 6 ms, the end by
    # 12. The waveforms alone peak at a repeat of a phrase here (662 ms: phase smeared by the
    # drift); the envelopes keep the measure on the drift.
    from avagent.bench import corrupt, signals

    clean = signals.music("guitar", duration_s=6.0).y
    fast, _ = corrupt.drift(clean, sr=SR, rate=1.002)
    mid = metrics.residual_offset_ms(clean, fast, sr=SR)
    assert -15.0 < mid < 0.0
    n = fast.shape[-1]
    end = metrics.residual_offset_ms(clean[..., n - 2 * SR : n], fast[..., n - 2 * SR :], sr=SR)
    assert -20.0 < end < -4.0


def test_residual_offset_subsample(speechlike: np.ndarray) -> None:
    # A 300.5-sample delay by resampling a 2x upsampled copy: truth 6.2604 ms.
    up = signal.resample_poly(speechlike, 2, 1)
    late = signal.resample_poly(_shift(up, 601), 1, 2)
    assert metrics.residual_offset_ms(speechlike, late, sr=SR) == pytest.approx(
        300.5 / SR * 1000, abs=0.01
    )


def test_loudness_of_calibrated_sine() -> None:
    # BS.1770: the -0.691 constant cancels the K-filter's gain near 1 kHz, so a 1 kHz sine of
    # peak A reads its mean-square level, 20*log10(A) - 3.01 LUFS.
    t = np.arange(5 * SR) / SR
    sine = np.sin(2 * np.pi * 1000 * t)
    level = metrics.loudness_lufs(sine, sr=SR)
    calibrated = sine * 10 ** ((-23.0 - level) / 20)
    assert metrics.loudness_lufs(calibrated, sr=SR) == pytest.approx(-23.0, abs=0.1)
    # Checked against the standard, not only against pyloudnorm itself: peak -19.99 dBFS.
    peak_dbfs = 20 * np.log10(np.max(np.abs(calibrated)))
    assert peak_dbfs == pytest.approx(-23.0 + 3.01, abs=0.1)
    assert metrics.loudness_error_lu(calibrated, sr=SR, target_lufs=-24.0) == pytest.approx(
        1.0, abs=0.1
    )


def test_true_peak_sees_intersample_peak() -> None:
    # fs/4 sine with 45° phase: samples hit ±0.707 but the waveform peaks at 1.0.
    n = np.arange(SR)
    y = np.sin(np.pi / 2 * n + np.pi / 4)
    assert 20 * np.log10(np.abs(y).max()) == pytest.approx(-3.01, abs=0.01)
    assert metrics.true_peak_dbtp(y, sr=SR) == pytest.approx(0.0, abs=0.2)


@pytest.mark.parametrize("cents", [50.0, -50.0, 0.0, 72.4])
def test_pitch_error_of_shifted_harmonic_tone(cents: float) -> None:
    ref = _tone(220.0)
    est = _tone(220.0 * 2 ** (cents / 1200))
    assert metrics.pitch_error_cents(ref, est, sr=SR) == pytest.approx(cents, abs=3.0)


def test_gap_residue_counts_planted_gaps(speechlike: np.ndarray, rng: np.random.Generator) -> None:
    y = speechlike + 1e-3 * rng.standard_normal(speechlike.shape)  # no natural zeros
    planted = [(0.5, 0.52), (1.2, 1.35), (2.0, 2.2)]  # 20, 150, 200 ms
    for a, b in planted:
        y[int(a * SR) : int(b * SR)] = 0.0
    y[int(2.5 * SR) : int(2.5 * SR) + 240] = 0.0  # 5 ms: too short to count
    y[:4800] = 0.0  # leading silence: not inside sound
    res = metrics.gap_residue(y, sr=SR)
    assert res.count == 3
    assert res.total_ms == pytest.approx(370.0, abs=0.1)
    for (a, b), (ra, rb) in zip(planted, res.runs_s, strict=True):
        assert (ra, rb) == pytest.approx((a, b), abs=1e-4)
    assert metrics.gap_residue(np.stack([y, y]), sr=SR).count == 3


def test_span_error_db_of_silent_gap_is_zero(speechlike: np.ndarray) -> None:
    y = speechlike.copy()
    y[SR : SR + 4800] = 0.0
    assert metrics.span_error_db(speechlike, y, [(1.0, 1.1)], sr=SR) == pytest.approx(0.0, abs=1e-6)
    assert metrics.span_error_db(speechlike, speechlike, [(1.0, 1.1)], sr=SR) < -100


def test_span_error_db_ignores_a_level_change(speechlike: np.ndarray) -> None:
    # The same perfect fill, the whole clip 20 dB louder (a quiet clip normalised): still perfect;
    # a fill at the old level inside the louder clip is what the measure catches.
    assert metrics.span_error_db(speechlike, 10 * speechlike, [(1.0, 1.1)], sr=SR) < -100
    wrong = 10 * speechlike
    wrong[..., SR : SR + SR // 10] /= 10
    assert metrics.span_error_db(speechlike, wrong, [(1.0, 1.1)], sr=SR) > -1.0
