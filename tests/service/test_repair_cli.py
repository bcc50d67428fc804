"""`avagent repair` and `avagent analyze` end to end on real media, bad files included."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from avagent.service import media
from avagent.service.cli import main

REPORT_KEYS = {
    "input", "captions", "analysis", "rounds", "chosen_round", "accepted", "backends",
    "timings_s", "outputs",
}


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.fixture
def hummed_video(tmp_path, video_path) -> Path:
    """The real mp4 with 50 Hz hum added: a fault the agent must find and remove."""
    y, sr = media.load_audio(video_path)
    t = np.arange(y.shape[-1]) / sr
    hum = 0.05 * sum(0.6**k * np.sin(2 * np.pi * 50 * (k + 1) * t) for k in range(4))
    out = tmp_path / "in" / "lego hum.mp4"  # a space in the name on purpose
    out.parent.mkdir()
    media.remux(video_path, (y + hum).astype(np.float32), sr, out)
    return out


def test_repair_real_video_writes_outputs_and_report(tmp_path, hummed_video, capsys):
    before = _sha(hummed_video)
    code = main(["repair", str(hummed_video), "-o", str(tmp_path / "out"), "--quiet"])
    assert code == 0
    out = tmp_path / "out"
    wav, vid, rep = (out / "lego hum.repaired.wav", out / "lego hum.repaired.mp4",
                     out / "lego hum.report.json")
    assert wav.exists() and vid.exists() and rep.exists()
    assert _sha(hummed_video) == before  # input untouched
    report = json.loads(rep.read_text())
    assert set(report) >= REPORT_KEYS
    assert report["captions"]["audio"] and report["captions"]["video"]
    assert "hum" in report["captions"]["audio"]
    assert "motion" in report["captions"]["video"] or "shot" in report["captions"]["video"]
    first = report["rounds"][0]
    assert first["plan"][0]["action"] == "remove_hum"
    assert all(s["reasoning"] for s in first["plan"])
    assert set(first["scores"]) >= {"alignment", "sync"}
    # The hum repair is kept; the clip's own programme (music and animal sounds the tags hear) is
    # not denoised further to chase the threshold, so acceptance is not asked of it.
    assert report["chosen_round"] >= 1
    assert report["scores"]["alignment"] > report["baseline"]["alignment"] + 0.5
    # Output keeps the input's rate and channels; the hum is gone.
    y_in, sr_in = media.load_audio(hummed_video)
    y_out, sr_out = media.load_audio(wav)
    assert sr_out == sr_in and y_out.shape[0] == y_in.shape[0]
    from avagent.perception.audio import analyze_audio

    assert analyze_audio(y_in, sr=sr_in, speech_quality=False).hum_hz == pytest.approx(50, abs=1)
    assert analyze_audio(y_out, sr=sr_out, speech_quality=False).hum_hz is None
    info = media.probe(vid)
    assert info.is_video and abs(info.duration_s - media.probe(hummed_video).duration_s) < 0.1


def test_clean_input_is_left_untouched(tmp_path, video_path):
    code = main(["repair", str(video_path), "-o", str(tmp_path), "--quiet", "--outputs", "wav,report"])
    assert code == 0
    report = json.loads((tmp_path / "mp4.report.json").read_text())
    assert report["chosen_round"] == 0
    # This real clip has no clear audio-visual events: sync is not measured, and the summary
    # says so instead of printing the neutral prior as if it were a measured pass.
    assert report["sync_verdict"] == report["analysis"]["sync"]["verdict"]
    if report["sync_verdict"] == "cannot_tell":
        assert "sync cannot tell" in report["summary"] and "sync 0.85" not in report["summary"]
    y_in, _ = media.load_audio(video_path)
    y_out, _ = media.load_audio(tmp_path / "mp4.repaired.wav")
    err = y_out - y_in
    sdr = 10 * np.log10(np.sum(y_in**2) / np.sum(err**2))
    assert sdr >= 30  # only 16-bit quantisation between them
    assert not (tmp_path / "mp4.repaired.mp4").exists()  # not asked for


def test_bad_files_are_reported_and_skipped(tmp_path, video_path, capsys):
    good = tmp_path / "good.mp4"
    shutil.copy(video_path, good)
    png = tmp_path / "picture.mp4"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 200)
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    out = tmp_path / "out"
    code = main(["repair", str(png), str(good), str(empty), str(tmp_path / "missing.mp4"),
                 "-o", str(out), "--quiet", "--outputs", "wav,report"])
    assert code == 1
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("avagent repair:")]
    assert len(lines) == 3
    assert any("picture.mp4" in ln for ln in lines) and any("missing.mp4" in ln for ln in lines)
    assert sorted(p.name for p in out.iterdir()) == ["good.repaired.wav", "good.report.json"]


def test_folder_and_glob_inputs(tmp_path, video_path, speech_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    shutil.copy(speech_path, src / "a.wav")
    shutil.copy(speech_path, src / "sub" / "b.wav")
    (src / "notes.txt").write_text("not media")
    code = main(["repair", str(src), "-o", str(tmp_path / "o1"), "--quiet", "--outputs", "report"])
    assert code == 0
    # the output folder mirrors the inputs' folders below their common root
    assert sorted(p.relative_to(tmp_path / "o1").as_posix()
                  for p in (tmp_path / "o1").rglob("*.json")) == ["a.report.json",
                                                                   "sub/b.report.json"]
    code = main(["repair", str(src / "*.wav"), "-o", str(tmp_path / "o2"), "--quiet"])
    assert code == 0
    assert sorted(p.name for p in (tmp_path / "o2").iterdir()) == [
        "a.repaired.wav", "a.report.json"
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--planner", "gpt"], "valid planners"),
        (["--max-rounds", "0"], "max_rounds=0"),
        (["--threshold", "2"], "threshold=2"),
        (["--outputs", "mp3"], "outputs="),
        (["--scorer", "clap"], "unknown scorer 'clap'"),
        (["--captioner", "gpt4o"], "unknown captioner 'gpt4o'"),
    ],
)
def test_bad_options_give_one_line_and_exit_2(tmp_path, speech_path, capsys, args, message):
    code = main(["repair", str(speech_path), "-o", str(tmp_path / "o"), *args])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not (tmp_path / "o").exists()


def test_never_overwrites_an_input(tmp_path, speech_path):
    # An input named like our output, in the output folder.
    victim = tmp_path / "x.repaired.wav"
    shutil.copy(speech_path, victim)
    before = _sha(victim)
    code = main(["repair", str(victim), "-o", str(tmp_path), "--quiet"])
    assert _sha(victim) == before
    # x.repaired.wav → x.repaired.repaired.wav: a different file, so this is a normal success.
    assert code == 0 and (tmp_path / "x.repaired.repaired.wav").exists()


def test_same_stem_in_one_folder_is_refused_before_any_work(tmp_path, speech_path, capsys):
    src = tmp_path / "a"
    src.mkdir()
    for ext in (".wav", ".flac"):
        shutil.copy(speech_path, src / f"audio{ext}")  # the content does not matter: the names do
    code = main(["repair", str(src / "audio.wav"), str(src / "audio.flac"), "-o",
                 str(tmp_path / "out"), "--quiet"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "audio.wav" in err[0] and "audio.flac" in err[0]
    assert not (tmp_path / "out").exists()


def test_same_name_in_two_folders_is_mirrored(tmp_path, speech_path):
    for d in ("x", "y"):
        (tmp_path / d).mkdir()
    shutil.copy(speech_path, tmp_path / "x" / "clip.wav")
    y, sr = media.load_audio(speech_path)
    media.write_audio(tmp_path / "y" / "clip.wav", 0.1 * y, sr)  # another file, the same name
    code = main(["repair", str(tmp_path / "x" / "clip.wav"), str(tmp_path / "y" / "clip.wav"),
                 "-o", str(tmp_path / "out"), "--quiet", "--outputs", "wav,report"])
    assert code == 0
    for d in ("x", "y"):
        rep = json.loads((tmp_path / "out" / d / "clip.report.json").read_text())
        assert rep["input"].endswith(f"{d}/clip.wav")
        assert (tmp_path / "out" / d / "clip.repaired.wav").exists()


def test_repairing_a_folder_into_itself_twice_skips_its_outputs(tmp_path, speech_path):
    shutil.copy(speech_path, tmp_path / "a.wav")
    for _ in range(2):
        assert main(["repair", str(tmp_path), "-o", str(tmp_path), "--quiet"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.repaired.wav", "a.report.json",
                                                          "a.wav"]


def test_analyze_prints_json(video_path):
    proc = subprocess.run(
        [sys.executable, "-m", "avagent.service.cli", "analyze", str(video_path), "--compact"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert set(data) == {"input", "captions", "analysis"}
    assert data["analysis"]["video"]["width"] == 560
    assert data["analysis"]["sync"]["verdict"] in {"in_sync", "offset", "drift", "cannot_tell"}
    bad = subprocess.run(
        [sys.executable, "-m", "avagent.service.cli", "analyze", "/nonexistent.mp4"],
        capture_output=True, text=True, timeout=60,
    )
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
