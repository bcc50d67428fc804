"""The long-media benchmark's inputs: built block by block from the real media, as declared."""

from __future__ import annotations

import pytest

from avagent.bench.long_media import make_input, markdown
from avagent.service import media


@pytest.mark.parametrize(("layout", "video", "channels"), [("mono", False, 1), ("5.1", True, 6)])
def test_inputs_have_the_length_layout_and_picture_asked_for(tmp_path, media_dir, layout, video,
                                                             channels):
    path = make_input(tmp_path / f"x{'.mp4' if video else '.wav'}", minutes=0.25, layout=layout,
                      video=video)
    info = media.probe(path)
    assert info.channels == channels and info.sample_rate == 48000
    assert info.is_video is video
    assert info.duration_s == pytest.approx(15.0, abs=0.1)
    y, _ = media.load_audio(path)
    assert float(abs(y).max()) > 0.1  # real speech and music in it, not silence


def test_markdown_table_has_a_row_per_measurement():
    row = {"minutes": 1.0, "layout": "mono", "video": True, "decode_s": 2.0, "decode_mb": 90.0,
           "repair_s": 3.0, "repair_mb": 800.0, "ratio": 1.5, "realtime": 20.0}
    table = markdown([row, row])
    assert table.count("| 1 min | mono | yes |") == 2
