"""``avagent apply``: one action on a real file, through ``main`` and once as a process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from avagent.errors import ParameterError
from avagent.service import media
from avagent.service.cli import main
from avagent.service.commands.apply import parse_params
from avagent.service.settings import get_settings

pytestmark = pytest.mark.media


def _volume_available() -> bool:
    from avagent.actions import get_action

    try:
        get_action("volume").func  # noqa: B018 - imports the action module
    except ImportError:
        return False
    return True


needs_volume = pytest.mark.skipif(
    not _volume_available(), reason="avagent.actions.volume is not implemented yet in this checkout"
)


def video_packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as c:
        return [bytes(p) for p in c.demux(c.streams.video[0]) if p.size]


def rms_db(y: np.ndarray) -> float:
    return 20 * np.log10(np.sqrt(np.mean(np.square(y, dtype=np.float64))))


@pytest.fixture(autouse=True)
def _fresh_settings(monkeypatch):
    monkeypatch.delenv("AVAGENT_MAX_DURATION_S", raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        (["gain_db=-6"], {"gain_db": -6}),
        (["gain_db=-6.5", "true_peak_dbtp=-1"], {"gain_db": -6.5, "true_peak_dbtp": -1}),
        (["stationary=true", "x=null"], {"stationary": True, "x": None}),
        (["name=hum", "path=a=b"], {"name": "hum", "path": "a=b"}),
        (["list=[1, 2]"], {"list": [1, 2]}),
        ([], {}),
    ],
)
def test_parse_params(items, expected):
    assert parse_params(items) == expected


@pytest.mark.parametrize("items", [["gain_db"], ["=3"], ["a=1", "a=2"]])
def test_parse_params_rejects(items):
    with pytest.raises(ParameterError):
        parse_params(items)


@needs_volume
def test_apply_to_video_remuxes_with_video_copied(tmp_path, video_path):
    out = tmp_path / "quiet.mp4"
    assert main(["apply", "volume", str(video_path), str(out), "--param", "gain_db=-6"]) == 0
    assert video_packets(out) == video_packets(video_path)
    y, sr = media.load_audio(video_path)
    y2, sr2 = media.load_audio(out)
    assert sr2 == sr and y2.shape == y.shape
    assert rms_db(y2) - rms_db(y) == pytest.approx(-6.0, abs=0.3)


@needs_volume
def test_apply_to_audio_output_keeps_rate_and_channels(tmp_path, bunny_path, capsys):
    out = tmp_path / "bunny.wav"
    code = main(["apply", "volume", str(bunny_path), str(out), "-p", "gain_db=-3",
                 "--subtype", "FLOAT"])
    assert code == 0
    assert str(out) in capsys.readouterr().out
    y, sr = media.load_audio(bunny_path)
    y2, sr2 = media.load_audio(out)
    assert (sr2, y2.shape) == (sr, y.shape)
    np.testing.assert_allclose(y2, y * 10 ** (-3 / 20), atol=1e-5)


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["nope", "{video}", "{tmp}/o.wav"], "unknown action 'nope'"),
        (["volume", "{video}", "{tmp}/o.wav", "-p", "gain_db"], "KEY=VALUE"),
        (["volume", "{video}", "{video}", "-p", "gain_db=1"], "refusing to overwrite input"),
        (["volume", "{speech}", "{tmp}/o.mp4", "-p", "gain_db=1"], "has no video stream"),
        (["volume", "{video}", "{tmp}/o.xyz", "-p", "gain_db=1"], "unknown suffix"),
        (["volume", "{tmp}/missing.mp4", "{tmp}/o.wav", "-p", "gain_db=1"], "no such file"),
        (["volume", "{video}", "{tmp}/o.mp4", "--subtype", "FLOAT"], "--subtype"),
    ],
)
def test_apply_errors_are_one_line_and_exit_2(tmp_path, video_path, speech_path, capsys, argv,
                                              words):
    fill = {"video": video_path, "speech": speech_path, "tmp": tmp_path}
    before = video_path.stat().st_mtime_ns
    code = main(["apply", *[a.format(**fill) for a in argv]])
    err = capsys.readouterr().err
    assert code == 2
    assert words in err
    assert err.startswith("avagent apply: error:") and err.count("\n") == 1
    assert video_path.stat().st_mtime_ns == before
    assert not list(tmp_path.iterdir())


@needs_volume
def test_apply_bad_parameter_value(tmp_path, video_path, capsys):
    code = main(["apply", "volume", str(video_path), str(tmp_path / "o.wav"), "-p", "gain_db=abc"])
    assert code == 2
    assert "gain_db='abc'" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_apply_respects_the_duration_limit(tmp_path, video_path, monkeypatch, capsys):
    monkeypatch.setenv("AVAGENT_MAX_DURATION_S", "2")
    get_settings.cache_clear()
    code = main(["apply", "volume", str(video_path), str(tmp_path / "o.wav"), "-p", "gain_db=1"])
    assert code == 2
    assert "above the limit of 2 s" in capsys.readouterr().err


@needs_volume
def test_apply_as_a_process(tmp_path, speech_path):
    exe = Path(sys.executable).with_name("avagent")
    if not exe.exists():
        pytest.skip(f"{exe} is not installed (pip install -e .)")
    out = tmp_path / "speech.flac"
    proc = subprocess.run(
        [str(exe), "apply", "volume", str(speech_path), str(out), "--param", "gain_db=-1"],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    y2, sr = media.load_audio(out)
    assert sr == 48000 and y2.shape == (1, 68545)
    bad = subprocess.run([str(exe), "apply", "volume", str(speech_path), str(speech_path)],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "refusing to overwrite input" in bad.stderr
