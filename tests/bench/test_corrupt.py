"""Each fault does what its truth says, deterministically, on real clean recordings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from avagent.bench import corrupt, metrics, signals

SR = 48_000
pytestmark = pytest.mark.media


@pytest.fixture(scope="module")
def speech(media_dir: Path) -> np.ndarray:
    return signals.speech(duration_s=4.0, seed=0).y  # (1, n), real speech with pauses


@pytest.fixture(scope="module")
def music(media_dir: Path) -> np.ndarray:
    return signals.music("tabla", duration_s=4.0).y  # (2, n)


CASES = [
    ("clean", {}),
    ("noise", {"kind": "white", "snr_db": 5.0}),
    ("noise", {"kind": "wind", "snr_db": 0.0}),
    ("hum", {"fundamental_hz": 60.0, "snr_db": 10.0}),
    ("offset", {"audio_delay_ms": 300.0}),
    ("drift", {"rate": 1.002}),
    ("pal", {}),
    ("quiet", {}),
    ("clipped", {"gain_db": 12.0}),
    ("dropouts", {"count": 3}),
]


@pytest.mark.parametrize(("family", "params"), CASES)
def test_same_seed_same_output(speech: np.ndarray, family: str, params: dict) -> None:
    a, ta = corrupt.corrupt(family, speech, sr=SR, seed=7, **params)
    b, tb = corrupt.corrupt(family, speech, sr=SR, seed=7, **params)
    assert np.array_equal(a, b)
    assert ta == tb
    assert ta.family == family
    assert a is not speech and not np.shares_memory(a, speech)


def test_different_seed_different_noise(speech: np.ndarray) -> None:
    a, _ = corrupt.add_noise(speech, sr=SR, kind="hiss", seed=1)
    b, _ = corrupt.add_noise(speech, sr=SR, kind="hiss", seed=2)
    assert not np.array_equal(a, b)


def test_clean_control_is_identical(speech: np.ndarray) -> None:
    y, truth = corrupt.clean(speech, sr=SR)
    assert np.array_equal(y, speech)
    assert truth.repair == []


@pytest.mark.parametrize("kind", signals.NOISE_KINDS)
@pytest.mark.parametrize("snr", [0.0, 5.0, 10.0])
def test_noise_snr_is_exact_over_active_signal(
    speech: np.ndarray, music: np.ndarray, kind: str, snr: float
) -> None:
    for clean in (speech, music):
        noisy, truth = corrupt.add_noise(clean, sr=SR, kind=kind, snr_db=snr, seed=3)
        assert noisy.shape == clean.shape
        mask = metrics.active_mask(clean, sr=SR)
        assert 0.3 < mask.mean() <= 1.0
        assert metrics.snr_db(clean, noisy, mask) == pytest.approx(snr, abs=0.1)
        assert truth.params["snr_db"] == snr
        assert truth.repair[0].action in ("wiener", "spectral_gating")


def test_noise_snr_on_a_steady_tone(rng: np.random.Generator) -> None:
    # No pauses: the active mask is everything and the SNR is the plain one.
    tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(2 * SR) / SR)
    noisy, _ = corrupt.add_noise(tone, sr=SR, kind="pink", snr_db=5.0)
    assert noisy.ndim == 1
    noise = noisy - tone
    assert 10 * np.log10(np.sum(tone**2) / np.sum(noise**2)) == pytest.approx(5.0, abs=0.1)


@pytest.mark.parametrize("hz", [50.0, 60.0])
def test_hum_is_at_mains_frequency_and_snr(speech: np.ndarray, hz: float) -> None:
    noisy, truth = corrupt.add_hum(speech, sr=SR, fundamental_hz=hz, snr_db=5.0)
    hum = (noisy - speech)[0]
    spec = np.abs(np.fft.rfft(hum))
    freqs = np.fft.rfftfreq(hum.size, 1 / SR)
    assert freqs[np.argmax(spec)] == pytest.approx(hz, abs=0.5)
    mask = metrics.active_mask(speech, sr=SR)
    assert metrics.snr_db(speech, noisy, mask) == pytest.approx(5.0, abs=0.1)
    assert truth.plan() == [("remove_hum", {"fundamental_hz": hz})]


@pytest.mark.parametrize("ms", [120.0, -120.0, 300.0, 800.0, -800.0])
def test_offset_shifts_by_requested_ms(speech: np.ndarray, ms: float) -> None:
    late, truth = corrupt.offset(speech, sr=SR, audio_delay_ms=ms)
    assert late.shape == speech.shape
    k = round(ms * SR / 1000)
    if k > 0:
        assert np.all(late[:, :k] == 0)
        assert np.array_equal(late[:, k:], speech[:, :-k])
    else:
        assert np.array_equal(late[:, :k], speech[:, -k:])
    assert metrics.residual_offset_ms(speech, late, sr=SR) == pytest.approx(ms, abs=0.1)
    assert truth.expected["audio_delay_ms"] == pytest.approx(ms, abs=0.011)
    assert truth.plan() == [("speed", {"offset_ms": -truth.params["audio_delay_ms"]})]


def test_pal_shortens_by_4_1_percent_and_raises_pitch(music: np.ndarray) -> None:
    fast, truth = corrupt.pal(music, sr=SR)
    assert fast.shape[0] == music.shape[0]
    assert 1 - fast.shape[-1] / music.shape[-1] == pytest.approx(0.041, abs=0.0005)
    assert metrics.pitch_error_cents(music, fast, sr=SR) == pytest.approx(72.4, abs=3.0)
    ((action, params),) = truth.plan()
    assert action == "speed" and params["rate"] == pytest.approx(23.976 / 25)


def test_drift_runs_fast_by_rate(speech: np.ndarray) -> None:
    fast, truth = corrupt.drift(speech, sr=SR, rate=1.003)
    assert speech.shape[-1] / fast.shape[-1] == pytest.approx(1.003, abs=1e-4)
    # An event at t in the clean is at t / rate in the drifted copy: the sound leads more and
    # more, by (1 - 1/rate) = 3 ms per second.
    starts = np.arange(0.0, 3.01, 0.5)
    leads = [
        metrics.residual_offset_ms(
            speech[:, int(a * SR) : int((a + 0.5) * SR)],
            fast[:, int(a * SR) : int((a + 0.5) * SR)],
            sr=SR,
        )
        for a in starts
    ]
    slope = np.polyfit(starts, leads, 1)[0]
    assert slope == pytest.approx(-(1 - 1 / 1.003) * 1000, abs=0.5)
    assert truth.expected["rate"] == 1.003


def test_quiet_reaches_minus_40_lufs(music: np.ndarray) -> None:
    q, truth = corrupt.quiet(music, sr=SR)
    assert metrics.loudness_lufs(q, sr=SR) == pytest.approx(-40.0, abs=0.5)
    assert truth.plan() == [
        ("volume", {"target_lufs": pytest.approx(metrics.loudness_lufs(music, sr=SR), abs=0.01)})
    ]


def test_clipped_is_hard_clipped(speech: np.ndarray) -> None:
    c, truth = corrupt.clipped(speech, sr=SR, gain_db=12.0)
    assert np.max(np.abs(c)) == 1.0
    assert truth.expected["clipping_fraction"] > 0.001
    assert not truth.reversible


def test_dropouts_are_digital_silence_at_truth_times(speech: np.ndarray) -> None:
    d, truth = corrupt.dropouts(speech, sr=SR, count=3, seed=11)
    spans = truth.params["spans_s"]
    assert len(spans) == 3
    assert truth.plan() == [("fill_blanks", {"spans_s": spans})]  # the repair knows the gaps
    mask = metrics.active_mask(speech, sr=SR)
    for a, b in spans:
        s, e = round(a * SR), round(b * SR)
        assert 20.0 - 0.1 <= (e - s) / SR * 1000 <= 200.0 + 0.1
        assert np.all(d[:, s:e] == 0.0)
        assert mask[s:e].all()  # planted inside sound
    found = metrics.gap_residue(d, sr=SR)
    assert found.count == 3
    assert np.allclose(found.runs_s, spans, atol=1e-9)
    assert metrics.gap_residue(speech, sr=SR).count == 0  # the clean has none of its own
    outside = np.ones(d.shape[-1], dtype=bool)
    for a, b in spans:
        outside[round(a * SR) : round(b * SR)] = False
    assert np.array_equal(d[:, outside], speech[:, outside])


def test_mixture_orders_faults_and_merges_plan(speech: np.ndarray) -> None:
    y, truth = corrupt.mixture(
        speech,
        sr=SR,
        faults=[("quiet", {}), ("offset", {"audio_delay_ms": -200.0}), ("hum", {"snr_db": 10.0})],
        seed=5,
    )
    assert truth.family == "mixture" and len(truth.parts) == 3
    assert [a for a, _ in truth.plan()] == ["speed", "remove_hum", "volume"]
    clean_lufs = metrics.loudness_lufs(speech, sr=SR)
    assert truth.plan()[-1][1]["target_lufs"] == pytest.approx(clean_lufs, abs=0.01)
    assert metrics.residual_offset_ms(speech, y, sr=SR) == pytest.approx(-200.0, abs=0.5)
    again, truth2 = corrupt.mixture(
        speech,
        sr=SR,
        faults=[("quiet", {}), ("offset", {"audio_delay_ms": -200.0}), ("hum", {"snr_db": 10.0})],
        seed=5,
    )
    assert np.array_equal(y, again) and truth == truth2


def test_sample_is_deterministic_and_varied(speech: np.ndarray) -> None:
    families = set()
    for seed in range(12):
        a, ta = corrupt.sample(speech, sr=SR, seed=seed)
        b, tb = corrupt.sample(speech, sr=SR, seed=seed)
        assert np.array_equal(a, b) and ta == tb
        families.add(ta.family)
    assert len(families) >= 5


def test_unknown_family_lists_valid_ones(speech: np.ndarray) -> None:
    with pytest.raises(ValueError, match="valid: clean, noise"):
        corrupt.corrupt("reverb", speech, sr=SR)
