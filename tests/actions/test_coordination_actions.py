"""Coordination actions: speed, pitch, volume, fill_blanks — physical facts on real and synthetic
audio."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import correlate

from avagent.actions import apply_action
from avagent.actions.fill_blanks import fill_blanks
from avagent.actions.pitch import pitch
from avagent.actions.speed import speed
from avagent.actions.volume import volume
from avagent.dropouts import find_dropouts
from avagent.errors import ParameterError
from avagent.loudness import loudness_lufs, true_peak_dbtp

SR = 48000


@pytest.fixture(scope="module")
def speech(speech_path: Path) -> np.ndarray:
    y, sr = sf.read(speech_path, dtype="float64")
    assert sr == SR
    return y


@pytest.fixture(scope="module")
def music(media_dir: Path) -> tuple[np.ndarray, int]:
    """Real stereo guitar, 44.1 kHz, (2, n), first 4 s."""
    y, sr = sf.read(media_dir / "sonicpi" / "guit_em9.flac", dtype="float64", always_2d=True)
    return np.ascontiguousarray(y.T[:, : 4 * sr]), sr


def _lag(ref: np.ndarray, z: np.ndarray) -> float:
    """Delay of ``z`` against ``ref`` in samples (cross-correlation peak, parabolic refinement)."""
    c = correlate(z, ref, mode="full", method="fft")
    i = int(np.argmax(c))
    d = 0.5 * (c[i - 1] - c[i + 1]) / (c[i - 1] - 2 * c[i] + c[i + 1])
    return i + d - (len(ref) - 1)


def _f0(z: np.ndarray, lo: float, hi: float) -> float:
    """Strongest frequency in [lo, hi] Hz by a long zero-padded FFT with parabolic refinement."""
    big = 1 << 21
    mag = np.abs(np.fft.rfft(z * np.hanning(len(z)), big))
    f = np.fft.rfftfreq(big, 1 / SR)
    sel = np.flatnonzero((f > lo) & (f < hi))
    i = sel[np.argmax(mag[sel])]
    a, b, c = np.log(mag[i - 1 : i + 2])
    return (i + 0.5 * (a - c) / (a - 2 * b + c)) * SR / big


# --- speed -----------------------------------------------------------------------------------


@pytest.mark.parametrize("offset_ms", [120.0, -120.0, 800.0, -800.0, 33.3])
def test_speed_offset_is_exact(speech: np.ndarray, offset_ms: float) -> None:
    x = np.pad(speech, (SR, SR))  # room to move the words without losing them
    z = apply_action("speed", x, sr=SR, offset_ms=offset_ms)
    assert z.shape == x.shape
    err_ms = abs(_lag(x, z) / SR * 1000 - offset_ms)
    assert err_ms <= 1.0
    assert err_ms <= 0.05  # in fact sub-sample


def test_speed_delay_pads_silence_at_start(rng: np.random.Generator) -> None:
    y = rng.standard_normal((2, SR))
    z = speed(y, sr=SR, offset_ms=100.0)
    assert np.all(z[:, :4800] == 0)
    np.testing.assert_array_equal(z[:, 4800:-200], y[:, : SR - 4800 - 200])


def test_speed_rate_then_inverse_returns_original(speech: np.ndarray) -> None:
    pal = 25 / 23.976
    x = np.pad(speech, (2000, 2000))
    fast = speed(x, sr=SR, rate=pal)
    assert fast.shape[-1] == round(len(x) / pal)
    back = speed(fast, sr=SR, rate=1 / pal, target_duration_s=len(x) / SR)
    assert back.shape == x.shape
    assert np.corrcoef(x, back)[0, 1] > 0.99


def test_speed_rate_moves_pitch_with_it() -> None:
    t = np.arange(SR) / SR
    z = speed(np.sin(2 * np.pi * 1000 * t), sr=SR, rate=1.25)
    assert z.shape == (round(SR / 1.25),)
    assert abs(_f0(z, 900, 1500) - 1250) < 0.5


def test_speed_target_duration_and_batches(rng: np.random.Generator) -> None:
    y = rng.standard_normal((2, 3, SR)).astype(np.float32)
    z = apply_action("speed", y, sr=SR, rate=0.9, offset_ms=-20.0, target_duration_s=1.5)
    assert z.shape == (2, 3, 72000) and z.dtype == np.float32
    assert np.all(np.isfinite(z))
    assert np.all(z[..., round(SR / 0.9) :] == 0)  # padded at the end


# --- pitch -----------------------------------------------------------------------------------


def test_pitch_round_trip_keeps_f0_and_length() -> None:
    t = np.arange(3 * SR) / SR
    y = sum(0.3 / h * np.sin(2 * np.pi * 220 * h * t + h) for h in range(1, 8))
    up = pitch(y, sr=SR, semitones=0.72)
    assert up.shape == y.shape
    assert abs(1200 * np.log2(_f0(up, 200, 260) / (220 * 2 ** (0.72 / 12)))) < 1.0
    back = pitch(up, sr=SR, semitones=-0.72)
    assert back.shape == y.shape
    assert abs(1200 * np.log2(_f0(back, 200, 260) / 220)) < 5.0  # measured: < 0.001 cent
    # Duration and timing kept: the waveform envelope lines up with the original.
    assert abs(_lag(y**2, back**2)) < 0.001 * SR


def test_pitch_keeps_timing_of_speech_and_stereo(speech: np.ndarray) -> None:
    stereo = np.stack([speech, 0.5 * speech])
    z = apply_action("pitch", stereo, sr=SR, semitones=-0.72)
    assert z.shape == stereo.shape and np.all(np.isfinite(z))
    # Channels share the phase rotation: the 2:1 level relation survives exactly.
    np.testing.assert_allclose(z[1], 0.5 * z[0], atol=1e-9)
    env0 = np.convolve(speech**2, np.ones(480), "same")
    env1 = np.convolve(z[0] ** 2, np.ones(480), "same")
    assert abs(_lag(env0, env1)) < 0.002 * SR


def test_pitch_zero_is_identity_and_batches_work(rng: np.random.Generator) -> None:
    y = rng.standard_normal((2, 3, 8000))
    np.testing.assert_array_equal(pitch(y, sr=SR, semitones=0.0), y)
    z = apply_action("pitch", y.astype(np.float32), sr=SR, semitones=3.0)
    assert z.shape == y.shape and z.dtype == np.float32 and np.all(np.isfinite(z))


# --- volume ----------------------------------------------------------------------------------


@pytest.mark.parametrize("target", [-23.0, -14.0])
def test_volume_reaches_target_under_ceiling(
    speech: np.ndarray, music: tuple[np.ndarray, int], target: float
) -> None:
    y_music, sr_music = music
    for y, sr in ((speech, SR), (y_music, sr_music)):
        quiet = volume(y, sr=sr, target_lufs=-40.0)
        assert abs(loudness_lufs(quiet, sr=sr) + 40.0) < 0.5
        z = apply_action("volume", quiet, sr=sr, target_lufs=target)
        assert z.shape == y.shape
        assert abs(loudness_lufs(z, sr=sr) - target) < 0.5
        assert true_peak_dbtp(z, sr=sr) <= -1.0


def test_volume_brings_clipped_input_down(music: tuple[np.ndarray, int]) -> None:
    y, sr = music
    hot = np.clip(4.0 * y, -1.0, 1.0)
    assert true_peak_dbtp(hot, sr=sr) > -0.5
    z = volume(hot, sr=sr, target_lufs=-16.0, true_peak_dbtp=-2.0)
    assert abs(loudness_lufs(z, sr=sr) + 16.0) < 0.5
    assert true_peak_dbtp(z, sr=sr) <= -2.0


def test_volume_gain_db_is_plain_gain_below_ceiling(rng: np.random.Generator) -> None:
    y = 0.01 * rng.standard_normal((2, 3, SR))
    z = apply_action("volume", y, sr=SR, gain_db=6.0)
    np.testing.assert_allclose(z, y * 10 ** (6 / 20))
    loud = apply_action("volume", y, sr=SR, gain_db=40.0)  # would peak far above 0 dBFS
    assert loud.shape == y.shape
    for clip in loud.reshape(-1, SR):
        assert true_peak_dbtp(clip, sr=SR) <= -1.0


def test_volume_under_the_ceiling_is_one_exact_scale(music: tuple[np.ndarray, int]) -> None:
    # Unlimited, the result is the input times one gain (its loudness is measured on the
    # rescaled K-weighting, not filtered again) and it lands on target.
    y, sr = music
    for target in (-30.0, -23.0):
        z = volume(y, sr=sr, target_lufs=target)
        g = float(np.dot(z.ravel(), y.ravel()) / np.dot(y.ravel(), y.ravel()))
        np.testing.assert_allclose(z, g * y, rtol=1e-9, atol=1e-12)
        assert abs(loudness_lufs(z, sr=sr) - target) < 0.02
        assert true_peak_dbtp(z, sr=sr) <= -1.0


def test_volume_limits_at_192khz_without_oversampling(rng: np.random.Generator) -> None:
    sr = 192000  # already at the true-peak rate: the limiter works on the samples themselves
    y = 0.01 * rng.standard_normal((2, sr // 2))
    z = volume(y, sr=sr, gain_db=40.0)
    assert z.shape == y.shape and np.all(np.isfinite(z))
    assert -1.5 < true_peak_dbtp(z, sr=sr) <= -1.0
    assert abs(true_peak_dbtp(z, sr=sr) - 20 * np.log10(np.abs(z).max())) < 1e-9


def test_volume_leaves_digital_silence_alone() -> None:
    y = np.zeros((2, SR))
    assert loudness_lufs(y, sr=SR) is None
    np.testing.assert_array_equal(volume(y, sr=SR, target_lufs=-23.0), y)


def test_loudness_matches_pyloudnorm(music: tuple[np.ndarray, int]) -> None:
    import pyloudnorm

    y, sr = music
    ref = pyloudnorm.Meter(sr).integrated_loudness(y.T)
    assert abs(loudness_lufs(y, sr=sr) - ref) < 0.01


def test_true_peak_sees_intersample_peaks() -> None:
    n = np.arange(SR)
    fade = np.minimum(1, np.minimum(n, SR - 1 - n) / 480)  # no Gibbs overshoot at the ends
    y = np.sin(2 * np.pi * n / 4 + np.pi / 4) * fade  # samples at ±0.707, true peak 1.0
    assert abs(true_peak_dbtp(y, sr=SR)) < 0.01
    assert 20 * np.log10(np.abs(y).max()) < -2.9


# --- fill_blanks -----------------------------------------------------------------------------


def _longest_zero_run_inside(y: np.ndarray) -> int:
    mag = np.abs(y).reshape(-1, y.shape[-1]).sum(axis=0) <= 1e-6
    d = np.diff(np.concatenate([[0], mag.astype(int), [0]]))
    starts, ends = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
    inside = [(e - s) for s, e in zip(starts, ends, strict=True) if s > 0 and e < len(mag)]
    return max(inside, default=0)


@pytest.mark.parametrize("gap_ms", [20, 50, 200])
def test_fill_blanks_fills_dropouts_in_music(music: tuple[np.ndarray, int], gap_ms: int) -> None:
    y, sr = music
    s = sr  # 1 s in: the guitar is ringing
    e = s + gap_ms * sr // 1000
    hole = y.copy()
    hole[:, s:e] = 0.0
    assert find_dropouts(hole, sr=sr) == [(s, e, "digital_silence")]
    z = apply_action("fill_blanks", hole, sr=sr)
    assert z.shape == y.shape and np.all(np.isfinite(z))
    assert _longest_zero_run_inside(z) < 0.01 * sr
    assert find_dropouts(z, sr=sr) == []
    err = np.sum((z[:, s:e] - y[:, s:e]) ** 2)
    assert err < np.sum(y[:, s:e] ** 2) / 2  # > 3 dB better than the zeros (measured 4-20 dB)
    # No click: the largest step near the edges stays within the music's own steps.
    steps = np.abs(np.diff(z[:, s - 200 : e + 200])).max()
    assert steps <= 1.5 * np.abs(np.diff(y[:, s - 200 : e + 200])).max()


def test_fill_blanks_speech_gap_and_attenuated_hole(speech: np.ndarray) -> None:
    env = np.convolve(speech**2, np.ones(480) / 480, "same")
    s = int(np.argmax(env))  # inside a vowel
    y = speech.copy()
    y[s : s + 960] = 0.0  # 20 ms of zeros
    t = s + 4800
    y[t : t + 2400] *= 1e-3  # 50 ms hole 60 dB down, not zeros
    found = find_dropouts(y, sr=SR)
    assert [k for *_, k in found] == ["digital_silence", "gap"]
    z = fill_blanks(y, sr=SR)
    assert find_dropouts(z, sr=SR) == []
    assert np.sum((z[s : s + 960] - speech[s : s + 960]) ** 2) < np.sum(speech[s : s + 960] ** 2)
    assert np.sum(z[t : t + 2400] ** 2) > 0.1 * np.sum(speech[t : t + 2400] ** 2)


def test_fill_blanks_leaves_clean_audio_bit_identical(
    speech: np.ndarray, music: tuple[np.ndarray, int]
) -> None:
    # Natural speech pauses, and speech padded with leading/trailing digital silence.
    padded = np.pad(speech, (SR // 2, SR // 2))
    for y, sr in ((speech, SR), (padded, SR), music):
        assert find_dropouts(y, sr=sr) == []
        np.testing.assert_array_equal(fill_blanks(y, sr=sr), y)


def test_fill_blanks_float32_input_is_judged_like_float64(speech: np.ndarray) -> None:
    # Media I/O decodes to float32. A float32 running energy sum once rounded the quiet stretch
    # at 1.13 s of this clip to zero energy, read it as a 40 dB hole and "filled" it with sound.
    y = speech.astype(np.float32)
    assert find_dropouts(y, sr=SR) == find_dropouts(speech, sr=SR) == []
    np.testing.assert_array_equal(fill_blanks(y, sr=SR), y)
    np.testing.assert_array_equal(apply_action("fill_blanks", y[None], sr=SR), y[None])
    env = np.convolve(speech**2, np.ones(480) / 480, "same")
    s = int(np.argmax(env))
    hole = y.copy()
    hole[s : s + 960] = 0.0  # a real dropout is still found in float32
    assert find_dropouts(hole, sr=SR) == [(s, s + 960, "digital_silence")]
    z = fill_blanks(hole, sr=SR)
    assert z.dtype == np.float32 and find_dropouts(z, sr=SR) == []
    assert np.sum((z[s : s + 960] - y[s : s + 960]) ** 2) < np.sum(y[s : s + 960] ** 2)


def test_fill_blanks_leaves_faded_pause_and_long_silence(speech: np.ndarray) -> None:
    fade = np.cos(np.linspace(0, np.pi / 2, 1920)) ** 2  # 40 ms fade
    tone = 0.3 * np.sin(2 * np.pi * 220 * np.arange(SR) / SR)
    paused = np.concatenate(
        [tone[:-1920], tone[-1920:] * fade, np.zeros(9600), tone[:1920] * fade[::-1], tone]
    )
    long_silence = np.concatenate([tone, np.zeros(SR), tone])  # 1 s > max_gap_ms
    for y in (paused, long_silence):
        np.testing.assert_array_equal(fill_blanks(y, sr=SR), y)


def test_fill_blanks_multichannel_batch(rng: np.random.Generator) -> None:
    t = np.arange(SR) / SR
    base = np.sin(2 * np.pi * 330 * t) + 0.1 * rng.standard_normal(SR)
    y = np.stack([np.stack([base * g for g in (1.0, 0.5, 0.25)])] * 2)  # (2, 3, n)
    y[1, :, 20000:22400] = 0.0  # only the second clip has a dropout (50 ms)
    z = apply_action("fill_blanks", y.astype(np.float32), sr=SR)
    assert z.shape == y.shape and z.dtype == np.float32
    np.testing.assert_array_equal(z[0], y[0].astype(np.float32))
    assert _longest_zero_run_inside(z[1]) == 0
    # Channels are filled alike: the 1 : 0.5 : 0.25 relation holds inside the filled gap.
    np.testing.assert_allclose(z[1, 1, 20000:22400], 0.5 * z[1, 0, 20000:22400], atol=1e-4)


# --- parameters ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "params", "quoted"),
    [
        ("speed", {"offset_ms": 9000}, "offset_ms=9000"),
        ("speed", {"rate": 0.1}, "rate=0.1"),
        ("speed", {"rate": 3}, "rate=3"),
        ("speed", {"target_duration_s": 0}, "target_duration_s=0"),
        ("speed", {"offset": 10}, "offset=10"),
        ("pitch", {"semitones": 13}, "semitones=13"),
        ("pitch", {"semitones": "up"}, "semitones='up'"),
        ("volume", {}, "neither"),
        ("volume", {"target_lufs": -23, "gain_db": 3}, "both"),
        ("volume", {"target_lufs": 5}, "target_lufs=5"),
        ("volume", {"gain_db": 3, "true_peak_dbtp": 2}, "true_peak_dbtp=2"),
        ("fill_blanks", {"min_gap_ms": 0}, "min_gap_ms=0"),
        ("fill_blanks", {"min_gap_ms": 600, "max_gap_ms": 500}, "min_gap_ms=600"),
        ("fill_blanks", {"max_gap_ms": 5000}, "max_gap_ms=5000"),
    ],
)
def test_invalid_params_are_refused(action: str, params: dict, quoted: str) -> None:
    with pytest.raises(ParameterError, match=quoted):
        apply_action(action, np.zeros(SR), sr=SR, **params)


@pytest.mark.parametrize(
    ("action", "params"),
    [
        ("speed", {"offset_ms": -5000, "rate": 0.5}),
        ("speed", {"offset_ms": 5000, "rate": 2.0, "target_duration_s": 0.1}),
        ("pitch", {"semitones": -12}),
        ("volume", {"gain_db": -60}),
        ("fill_blanks", {"min_gap_ms": 5, "max_gap_ms": 2000, "drop_db": 30}),
    ],
)
def test_valid_edge_params_run(rng: np.random.Generator, action: str, params: dict) -> None:
    y = rng.standard_normal((2, SR // 2))
    z = apply_action(action, y, sr=SR, **params)
    assert z.shape[:-1] == y.shape[:-1] and np.all(np.isfinite(z))


def test_fill_blanks_finds_dropouts_through_codec_tails(video_path, tmp_path):
    """AAC leaves a few ms of faint tail around a zeroed span; the dropout is still found whole."""
    from avagent.dropouts import find_dropouts
    from avagent.service import media

    y, sr = media.load_audio(video_path)
    planted = [(1.1673, 1.3581), (4.0691, 4.1812)]  # inside sound in this clip
    for a, b in planted:
        y[:, round(a * sr) : round(b * sr)] = 0.0
    path = tmp_path / "holes.mp4"
    media.remux(video_path, y, sr, path)
    decoded, _ = media.load_audio(path)
    got = [(s / sr, e / sr) for s, e, _ in find_dropouts(decoded, sr=sr)]
    assert len(got) == len(planted)
    for (a, b), (s, e) in zip(planted, got, strict=True):
        assert abs(s - a) <= 0.004 and abs(e - b) <= 0.004
