"""Sync perception: planted offsets found, unrelated streams and short clips say cannot_tell."""

from __future__ import annotations

import numpy as np
import pytest

from reflection.analysis.sync import estimate_sync
from reflection.frames import FrameSet
from tests.reflection._synth import moving_block_av


@pytest.mark.parametrize("delay_ms", [200.0, -200.0, 500.0, -500.0])
def test_planted_offset_found(delay_ms):
    rng = np.random.default_rng(int(abs(delay_ms)) + (delay_ms < 0))
    y, sr, frames = moving_block_av(rng, delay_ms)
    s = estimate_sync(y, sr=sr, frames=frames)
    assert s.verdict == "offset"
    assert s.audio_delay_ms is not None and abs(s.audio_delay_ms - delay_ms) <= 20.0
    assert s.confidence > 0.3 and len(s.window_delays_ms) >= 2


def test_zero_delay_is_in_sync(rng):
    y, sr, frames = moving_block_av(rng, 0.0)
    s = estimate_sync(y, sr=sr, frames=frames)
    assert s.verdict == "in_sync" and abs(s.audio_delay_ms) <= 20.0


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_unrelated_audio_cannot_tell(seed):
    rng = np.random.default_rng(seed)
    y, sr, frames = moving_block_av(rng, 0.0, unrelated_audio=True)
    noise_frames = FrameSet(
        rng.integers(0, 255, frames.frames.shape, dtype=np.uint8),
        frames.times_s,
        frames.sample_fps,
        frames.fps,
        frames.width,
        frames.height,
        frames.duration_s,
    )
    for f in (frames, noise_frames):
        s = estimate_sync(y, sr=sr, frames=f)
        assert s.verdict == "cannot_tell" and s.audio_delay_ms is None


def test_pal_speedup_is_drift(rng):
    y, sr, frames = moving_block_av(rng, 0.0)
    s = estimate_sync(y, sr=sr, frames=frames, audio_duration_s=frames.duration_s / 1.0427)
    assert s.verdict == "drift"
    assert s.rate == pytest.approx(1.0427, abs=0.001)
    assert s.duration_ratio == pytest.approx(1 / 1.0427, abs=1e-4)


def test_padding_is_not_drift(rng):
    # containers pad audio by tens of ms; a ratio that is no known speed-up is not a clock
    y, sr, frames = moving_block_av(rng, 0.0)
    s = estimate_sync(y, sr=sr, frames=frames, audio_duration_s=frames.duration_s + 0.04)
    assert s.verdict == "in_sync"
    s = estimate_sync(y, sr=sr, frames=frames, audio_duration_s=frames.duration_s * 1.03)
    assert s.verdict != "drift"


def _shift(y: np.ndarray, ms: float, sr: int) -> np.ndarray:
    k = round(abs(ms) * sr / 1000)
    pad = np.zeros((y.shape[0], k), y.dtype)
    return np.concatenate([pad, y[:, :-k]], 1) if ms > 0 else np.concatenate([y[:, k:], pad], 1)


@pytest.mark.media
@pytest.mark.slow
@pytest.mark.parametrize("name", ["videos/mp4.mp4", "bunny/bigbuckbunny.mp4"])
def test_real_clip_never_confidently_wrong(media_dir, name):
    media = pytest.importorskip("service.media")
    path = media_dir / name
    y, sr = media.load_audio(path)
    frames = media.load_frames(path, fps=12.5, width=160)
    s = estimate_sync(_shift(y, 500.0, sr), sr=sr, frames=frames)
    if s.verdict == "cannot_tell":
        assert s.audio_delay_ms is None
    else:
        assert s.audio_delay_ms is not None and abs(s.audio_delay_ms - 500.0) <= 40.0


def test_pal_on_short_clip_with_container_slop_is_drift(rng):
    # 5 s: PAL moves the audio end by 210 ms; +30 ms of AAC slop is 0.6 % on top of that
    y, sr, frames = moving_block_av(rng, 0.0, dur=5.0)
    s = estimate_sync(y, sr=sr, frames=frames, audio_duration_s=5.0 / (25 / 23.976) + 0.03)
    assert s.verdict == "drift" and s.rate == pytest.approx(25 / 23.976, abs=0.002)


@pytest.mark.parametrize("slop_s", [0.014, 0.032, 0.047])
def test_slop_and_lead_in_are_not_drift(rng, slop_s):
    y, sr, frames = moving_block_av(rng, 0.0, dur=5.0)
    s = estimate_sync(y, sr=sr, frames=frames, audio_duration_s=5.0 + slop_s)
    assert s.verdict != "drift"
    # 250 ms of padded silence before the sound: the ratio reads like a PAL slow-down (1.05)
    lead = np.concatenate([np.zeros(sr // 4), y])
    s = estimate_sync(lead, sr=sr, frames=frames, audio_duration_s=lead.size / sr + slop_s)
    assert s.verdict != "drift" and s.duration_ratio == pytest.approx(1.05 + slop_s / 5, abs=1e-3)


@pytest.mark.media
@pytest.mark.slow
@pytest.mark.parametrize("name", ["videos/mp4.mp4", "videos/webm.webm", "bunny/bigbuckbunny.mp4"])
def test_real_clip_pal_is_drift_and_clean_is_not(media_dir, name):
    media = pytest.importorskip("service.media")
    soxr = pytest.importorskip("soxr")
    path = media_dir / name
    y, sr = media.load_audio(path)
    frames = media.load_frames(path, fps=12.5, width=160)
    clean = estimate_sync(y, sr=sr, frames=frames, audio_duration_s=y.shape[-1] / sr)
    assert clean.verdict != "drift"
    pal = soxr.resample(y.T, sr, sr * 23.976 / 25).T  # played 25/23.976 fast: shorter
    s = estimate_sync(pal, sr=sr, frames=frames, audio_duration_s=pal.shape[-1] / sr)
    assert s.verdict == "drift" and s.rate == pytest.approx(25 / 23.976, abs=0.002)
