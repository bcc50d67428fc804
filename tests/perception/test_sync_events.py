"""Sync from clear events: a flash per sound (issue 12's case), in colour and under noise."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from avagent.bench.flash import flash_av
from avagent.perception.sync import estimate_sync


def test_flash_per_tone_burst_300ms_late_in_noise_is_decided():
    # issue 12: ten tone bursts, the picture flashes with each, sound 300 ms late, 10 dB noise;
    # the flash changes hue at the same luminance (grey moves < 1 level)
    y, sr, frames, _ = flash_av(300.0, snr_db=10.0, hue_only=True)
    s = estimate_sync(y, sr=sr, frames=frames)
    assert s.verdict == "offset" and s.confidence >= 0.3
    assert abs(s.audio_delay_ms - 300.0) <= 45.0  # shifted back, it is within 45 ms


@pytest.mark.parametrize("delay_ms", [-300.0, 0.0, 650.0])
def test_flash_offsets_found_either_way(delay_ms):
    y, sr, frames, _ = flash_av(delay_ms, snr_db=10.0, hue_only=False, seed=3)
    s = estimate_sync(y, sr=sr, frames=frames)
    assert s.audio_delay_ms is not None and abs(s.audio_delay_ms - delay_ms) <= 45.0
    assert s.verdict == ("in_sync" if delay_ms == 0 else "offset")


def test_hue_flash_needs_the_colour_frames():
    # the same clip seen in grey only: the lamp is invisible, nothing to match
    y, sr, frames, _ = flash_av(300.0, snr_db=10.0, hue_only=True)
    s = estimate_sync(y, sr=sr, frames=dataclasses.replace(frames, colour=None))
    assert s.verdict == "cannot_tell" and s.audio_delay_ms is None


@pytest.mark.parametrize("delay_ms", [300.0, 0.0])
def test_periodic_flashes_stay_cannot_tell(delay_ms):
    # one flash a second: one period off matches all but one burst; no verdict
    y, sr, frames, _ = flash_av(delay_ms, snr_db=10.0, periodic=True)
    s = estimate_sync(y, sr=sr, frames=frames)
    assert s.verdict == "cannot_tell" and s.audio_delay_ms is None


@pytest.mark.media
def test_decoder_supplies_colour_frames_on_request(media_dir):
    from avagent.service import media

    path = media_dir / "videos/mp4.mp4"
    grey = media.load_frames(path, fps=12.5, width=160)
    both = media.load_frames(path, fps=12.5, width=160, colour=True)
    assert grey.colour is None
    assert both.colour.shape == (*grey.frames.shape, 3) and both.colour.dtype == np.uint8
    np.testing.assert_array_equal(both.frames, grey.frames)  # grey unchanged by the flag
    # the colour frames are the same pictures: their luma follows the grey frames
    luma = both.colour.astype(float) @ np.array([0.299, 0.587, 0.114])
    assert np.corrcoef(luma.ravel(), grey.frames.ravel().astype(float))[0, 1] > 0.95
