"""Spools: a long track on disk, read in ranges, written and remuxed a block at a time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from avagent.service import media
from avagent.service.media import Spool


def _spool(tmp_path: Path, y: np.ndarray, sr: int, block: int = 1000) -> Spool:
    s = Spool(tmp_path / "t.f32", y.shape[0], sr)
    for i in range(0, y.shape[1], block):
        s.write(y[:, i : i + block])
    return s.close()


def test_ranges_views_and_silence_outside(tmp_path: Path, rng) -> None:
    y = rng.uniform(-0.5, 0.5, (3, 10_007)).astype(np.float32)
    s = _spool(tmp_path, y, 8000, block=777)
    assert s.shape == (3, 10_007)
    np.testing.assert_array_equal(s[:, 1234:5678], y[:, 1234:5678])
    np.testing.assert_array_equal(s.read(-5, 3)[:, :5], 0.0)  # before the start: silence
    np.testing.assert_array_equal(s.read(-5, 3)[:, 5:], y[:, :3])
    np.testing.assert_array_equal(s.read(10_000, 10_010)[:, 7:], 0.0)
    view = s[:, 100:]
    assert view.shape == (3, 9_907)
    np.testing.assert_array_equal(view[:, 0:50], y[:, 100:150])
    assert s.peak == pytest.approx(float(np.max(np.abs(y))))
    with pytest.raises(TypeError):
        s[0, 1:2]


@pytest.mark.parametrize(("name", "subtype", "layout"), [
    ("a.wav", "PCM_24", None), ("a.flac", "PCM_16", None), ("a.wav", "FLOAT", "5.1"),
])
def test_write_audio_from_a_spool_equals_from_the_array(tmp_path: Path, rng, name, subtype,
                                                        layout) -> None:
    ch = 6 if layout else 2
    y = rng.uniform(-0.9, 0.9, (ch, 70_001)).astype(np.float32)
    y[0, 5] = 1.7  # over full scale: clipped the same way by both paths (but kept by FLOAT)
    a = media.write_audio(tmp_path / f"arr_{name}", y, 48000, subtype=subtype, layout=layout)
    b = media.write_audio(tmp_path / f"spool_{name}", _spool(tmp_path, y, 48000), 48000,
                          subtype=subtype, layout=layout)
    xa, _ = sf.read(a, dtype="float32", always_2d=True)
    xb, _ = sf.read(b, dtype="float32", always_2d=True)
    np.testing.assert_array_equal(xa, xb)
    assert sf.info(str(b)).subtype == subtype


def test_remux_reads_a_spool(tmp_path: Path, video_path: Path) -> None:
    y, sr = media.load_audio(video_path)
    out = media.remux(video_path, _spool(tmp_path, y, sr, block=4096), sr, tmp_path / "o.mp4")
    z, sr2 = media.load_audio(out)
    assert sr2 == sr and abs(z.shape[1] - y.shape[1]) < 0.05 * sr
    ref = media.remux(video_path, y, sr, tmp_path / "r.mp4")
    zr, _ = media.load_audio(ref)
    m = min(z.shape[1], zr.shape[1])
    np.testing.assert_allclose(z[:, :m], zr[:, :m], atol=1e-6)
