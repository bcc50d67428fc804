"""Sound written as it came: rate, channels, layout and bit depth kept; --format/--subtype."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import resample_poly

from avagent.errors import ParameterError
from avagent.service import media
from avagent.service.cli import main
from avagent.service.pipeline import RepairOptions, repair_file


@pytest.fixture(scope="module")
def speech_71(speech_path, tmp_path_factory):
    """2 s of the real speech at 96 kHz in 8 channels (each its own level and delay), 24-bit,
    written with the 7.1 channel mask."""
    y, sr = sf.read(speech_path, dtype="float32")
    y = resample_poly(y[: 2 * sr], 2, 1).astype(np.float32)
    chans = np.stack([np.roll(y, 37 * i) * (0.9 - 0.1 * i) for i in range(8)])
    path = tmp_path_factory.mktemp("in") / "speech71.wav"
    media.write_audio(path, chans, 96000, subtype="PCM_24", layout="7.1")
    return path


def test_7_1_24_bit_wav_round_trips_with_its_layout(speech_71):
    info = media.probe(speech_71)
    assert (info.channels, info.sample_rate, info.audio_layout) == (8, 96000, "7.1")
    assert info.audio_subtype == "PCM_24" and sf.info(str(speech_71)).subtype == "PCM_24"


def test_subtype_for_keeps_what_the_format_holds():
    assert media.subtype_for(".wav", "PCM_24") == "PCM_24"
    assert media.subtype_for(".wav", "FLOAT") == "FLOAT"
    assert media.subtype_for(".flac", "FLOAT") == "PCM_24"  # FLAC holds no floats
    assert media.subtype_for(".flac", "PCM_24") == "PCM_24"
    assert media.subtype_for(".wav", None) == "PCM_16"  # lossy input: no stored depth


def test_repair_keeps_rate_channels_layout_and_depth(speech_71, tmp_path):
    opts = RepairOptions(planner="none", max_rounds=1, outputs=("wav",))
    report = repair_file(speech_71, tmp_path, opts)
    out = report["outputs"]["wav"]
    info = media.probe(out)
    assert (info.sample_rate, info.channels, info.audio_layout) == (96000, 8, "7.1")
    assert sf.info(out).subtype == "PCM_24"


def test_float_input_stays_float_and_flac_is_chosen_by_flag(speech_path, tmp_path):
    y, sr = sf.read(speech_path, dtype="float32")
    src = tmp_path / "float.wav"
    sf.write(src, y[:sr], sr, subtype="FLOAT")
    code = main(["repair", str(src), "-o", str(tmp_path / "a"), "--quiet", "--planner", "none",
                 "--outputs", "wav"])
    assert code == 0
    assert sf.info(str(tmp_path / "a" / "float.repaired.wav")).subtype == "FLOAT"
    code = main(["repair", str(src), "-o", str(tmp_path / "b"), "--quiet", "--planner", "none",
                 "--outputs", "wav", "--format", "flac", "--subtype", "PCM_16"])
    assert code == 0
    assert sf.info(str(tmp_path / "b" / "float.repaired.flac")).subtype == "PCM_16"


def test_bad_format_or_subtype_is_refused_with_the_value():
    with pytest.raises(ParameterError, match="'FLOAT' is not available for flac"):
        RepairOptions(audio_format="flac", subtype="FLOAT").check()
    with pytest.raises(ParameterError, match="'mp3'"):
        RepairOptions(audio_format="mp3").check()


def test_iter_audio_streams_the_same_samples_in_bounded_blocks(bunny_path):
    whole, sr = media.load_audio(bunny_path)
    blocks = [b for b, _ in media.iter_audio(bunny_path, block_s=0.5)]
    assert {b.shape[1] for b in blocks[:-1]} == {sr // 2}
    assert np.array_equal(np.concatenate(blocks, axis=1), whole)
