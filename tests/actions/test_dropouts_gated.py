"""Dropouts vs a gated recording's own word gaps (avagent/dropouts.py, the one-sided zero rule).

The ALSA voice recordings are gated: between words the voice fades past the room's floor and
then sits at exact zeros. Side_Left.wav's gap at 0.70-0.81 s (a fade from -57 to -98 dB into
zeros, then the next word's onset) was reported as a ``digital_silence`` dropout by the rule for
"zeros that start inside a pause and cut into a word"; a real dropout is still found.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from avagent.dropouts import find_dropouts
from avagent.perception.audio import analyze_audio

VOICES = ("Front_Center", "Front_Left", "Front_Right", "Rear_Center", "Rear_Left", "Rear_Right",
          "Side_Left", "Side_Right")


def _voice(media_dir: Path, name: str) -> tuple[np.ndarray, int]:
    y, sr = sf.read(media_dir / "speech" / f"{name}.wav", dtype="float64")
    return y, sr


def test_no_dropout_in_the_word_gaps_of_real_gated_speech(media_dir: Path) -> None:
    for name in VOICES:
        y, sr = _voice(media_dir, name)
        assert find_dropouts(y, sr=sr) == [], name
    y, sr = _voice(media_dir, "Side_Left")
    assert (np.abs(y[int(0.72 * sr) : int(0.80 * sr)]) <= 1e-6).mean() > 0.9  # the gate's zeros
    assert analyze_audio(y, sr=sr, speech_quality=False).dropouts == []


def test_dropout_cutting_into_a_word_of_real_speech_is_still_found(media_dir: Path) -> None:
    y, sr = _voice(media_dir, "Side_Left")
    env = np.convolve(y**2, np.ones(480) / 480, "same")
    s = int(np.argmax(env))  # inside the loudest vowel: sound on both sides
    hole = y.copy()
    hole[s : s + sr // 50] = 0.0
    assert find_dropouts(hole, sr=sr) == [(s, s + sr // 50, "digital_silence")]


@pytest.mark.parametrize("side", ["left", "right"])
def test_zeros_from_room_tone_into_a_word_are_a_dropout(media_dir: Path, side: str) -> None:
    # A recording with room tone (the benchmark's speech: -70 dBFS pink-ish floor) has no zeros of
    # its own: zeros that start in the room tone and cut into a word are a loss.
    y, sr = _voice(media_dir, "Side_Left")
    rng = np.random.default_rng(0)
    y = y + rng.standard_normal(y.size) * 10 ** (-70 / 20)
    env = np.convolve(y**2, np.ones(480) / 480, "same")
    on = int(np.flatnonzero(env[int(0.81 * sr):] > 10 ** (-30 / 10))[0]) + int(0.81 * sr)
    s, e = (on - sr // 20, on + sr // 50) if side == "left" else (on + sr // 50, on + sr // 10)
    hole = y.copy()
    hole[s:e] = 0.0
    found = find_dropouts(hole, sr=sr)
    assert len(found) == 1 and found[0][2] == "digital_silence"
    assert abs(found[0][0] - s) < sr // 500 and abs(found[0][1] - e) < sr // 500
