"""Long clips read like short ones (window summaries), and the extremes are measured sensibly."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from avagent.loudness import loudness_lufs
from avagent.perception.audio import analyze_audio, analyze_stream
from avagent.perception.blocks import LoudnessMeter, windows
from avagent.perception.facts import NoiseKind

SR = 48000


@pytest.fixture(scope="module")
def long_take(media_dir) -> np.ndarray:
    """45 s of one real recording: speech takes with 1 s pauses over a steady seeded hiss."""
    speech, sr = sf.read(media_dir / "speech" / "Front_Center.wav", dtype="float32")
    assert sr == SR
    unit = np.concatenate([speech, np.zeros(SR, np.float32)])
    n = 45 * SR
    hiss = 0.004 * np.random.default_rng(7).standard_normal(n).astype(np.float32)
    return 0.5 * np.resize(unit, n) + hiss


def test_one_recording_reads_the_same_at_every_length(long_take):
    facts = [analyze_audio(long_take[: s * SR], sr=SR, speech_quality=False) for s in (10, 25, 45)]
    kinds = {f.noise_kind for f in facts}
    assert kinds == {NoiseKind.BROADBAND}, kinds
    floors = [f.noise_floor_db for f in facts]
    snrs = [f.snr_db for f in facts]
    assert max(floors) - min(floors) < 1.0, floors
    assert max(snrs) - min(snrs) < 2.0, snrs
    assert abs(facts[0].noise_floor_db - (-48.0)) < 3.0  # 0.004 rms hiss is -48 dBFS
    speech = [f.speech_fraction for f in facts]
    assert max(speech) - min(speech) < 0.08, speech
    # the hiss is the same steady floor all through, at every length (the music veto reads it)
    steady = [f.floor_confidence for f in facts]
    assert all(c is not None and c >= 0.9 for c in steady), steady
    # what is heard is summarised too: a long clip keeps its tags (the music veto reads them)
    tags = [f.tags for f in facts]
    if tags[0] is not None:
        assert all(t is not None for t in tags)
        shares = [t.share("speech") for t in tags]
        assert min(shares) > 0.5 and max(shares) - min(shares) < 0.15, shares
        assert tags[2].patches > 2 * tags[0].patches
        assert all(s.end_s <= 45.0 + 1.0 for s in tags[2].spans)


def test_stream_result_does_not_depend_on_block_boundaries(long_take):
    y = long_take[: 25 * SR]
    whole = analyze_audio(y, sr=SR, speech_quality=False)
    for size in (4801, 3 * SR + 17):
        blocks = (y[None, i : i + size] for i in range(0, y.size, size))
        assert analyze_stream(blocks, sr=SR, speech_quality=False) == whole


def test_windows_cover_the_stream_once_and_merge_a_short_tail():
    x = np.arange(23 * 100, dtype=np.float32)[None, :]  # 23 s at 100 Hz
    got = list(windows((x[:, i : i + 7] for i in range(0, x.shape[1], 7)), 100))
    assert [o for o, _ in got] == [0, 1000]
    assert [w.shape[1] for _, w in got] == [1000, 1300]  # the 3 s tail joins the last window
    assert np.array_equal(np.concatenate([w for _, w in got], axis=1), x)


def test_stream_loudness_equals_whole_clip_loudness(rng):
    y = (0.1 * rng.standard_normal((2, 7 * SR + 333))).astype(np.float32)
    y[:, 2 * SR : 3 * SR] *= 0.01  # a quiet second for the gates
    meter = LoudnessMeter(SR, 2)
    for i in range(0, y.shape[1], 12345):
        meter.add(y[:, i : i + 12345])
    assert meter.value() == pytest.approx(loudness_lufs(y, sr=SR), abs=1e-6)


def _t(seconds: float = 5.0) -> np.ndarray:
    return np.arange(int(seconds * SR)) / SR


def test_full_scale_square_wave_is_no_hum_and_no_floor_above_full_scale():
    f = analyze_audio(np.sign(np.sin(2 * np.pi * 220 * _t())), sr=SR, speech_quality=False)
    assert f.hum_hz is None and f.noise_kind != NoiseKind.HUM
    assert f.noise_floor_db < -15.0  # what lies between its lines is its aliasing, far down
    assert f.clipping_fraction > 0.9


def test_pure_tone_is_clean_and_a_mains_tone_is_hum():
    tone = analyze_audio(0.5 * np.sin(2 * np.pi * 1000 * _t()), sr=SR, speech_quality=False)
    assert tone.noise_kind == NoiseKind.NONE and tone.noise_floor_db < -60.0
    mains = analyze_audio(0.1 * np.sin(2 * np.pi * 50 * _t()), sr=SR, speech_quality=False)
    assert mains.hum_hz == pytest.approx(50.0, abs=0.5)


def test_dc_offset_is_not_read_as_sound_or_rumble(rng):
    y = 0.3 + 0.01 * rng.standard_normal(5 * SR)
    f = analyze_audio(y, sr=SR, speech_quality=False)
    assert f.noise_kind != NoiseKind.LOW_RUMBLE
    assert abs(f.noise_floor_db - (-40.0)) < 2.0  # the hiss, not the offset


def test_silence_with_one_click_holds_no_floor():
    y = np.zeros(5 * SR)
    y[2 * SR] = 0.9
    f = analyze_audio(y, sr=SR, speech_quality=False)
    assert f.noise_kind == NoiseKind.NONE
    assert f.noise_floor_db <= -100.0


def test_one_sample_and_eight_different_channels(rng):
    one = analyze_audio(np.array([0.5]), sr=SR, speech_quality=False)
    assert one.duration_s == pytest.approx(1 / SR, abs=1e-4) and one.noise_floor_db <= 0.0
    t = _t()
    chans = [
        0.3 * np.sin(2 * np.pi * (110 + 220 * i) * t) if i % 2 else 0.01 * rng.standard_normal(t.size)
        for i in range(8)
    ]
    f = analyze_audio(np.stack(chans), sr=SR, speech_quality=False)
    assert f.channels == 8
    assert -70.0 < f.noise_floor_db < -40.0  # the four hissing channels, mixed down
    assert f.snr_db > 10.0


def _window(kind: NoiseKind, floor: float, snr: float, hum: float | None = None, silent=False):
    from avagent.perception.facts import AudioFacts

    return AudioFacts(duration_s=10.0, sample_rate=SR, channels=1, silent=silent,
                      noise_floor_db=floor, snr_db=snr, noise_kind=kind, noise_confidence=0.8,
                      hum_hz=hum, hum_db=None if hum is None else 20.0)


def test_summary_votes_by_time_ignores_silent_windows_and_keeps_hum_named():
    from avagent.perception.blocks import summarize

    parts = [
        (0, _window(NoiseKind.BROADBAND, -50.0, 12.0)),
        (480000, _window(NoiseKind.BROADBAND, -49.0, 14.0)),
        (960000, _window(NoiseKind.HUM, -40.0, 8.0, hum=50.0)),
        (1440000, _window(NoiseKind.NONE, -120.0, 0.0, silent=True)),
    ]
    kw = dict(sr=SR, channels=1, n=4 * 480000, silent=False, loudness=-23.0, true_peak=-1.0,
              clipping_fraction=0.0)
    f = summarize(parts, **kw)
    assert f.noise_kind == NoiseKind.BROADBAND and f.hum_hz is None
    assert f.noise_floor_db == -49.0 and f.snr_db == 13.0  # medians of the live windows
    hum = summarize([parts[2], parts[2], parts[0]], **kw)
    assert hum.noise_kind == NoiseKind.HUM and hum.hum_hz == 50.0
