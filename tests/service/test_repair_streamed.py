"""Long inputs take the streamed path (spools, excerpts, block render) and end like short ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from avagent.loudness import loudness_lufs
from avagent.service import media
from avagent.service.pipeline import RepairOptions, repair_file
from avagent.service.settings import Settings


@pytest.fixture(scope="module")
def hummed_quiet_wav(tmp_path_factory, speech_path: Path) -> Path:
    """75 s of real speech at -40 LUFS-ish with 50 Hz mains hum, 24-bit stereo."""
    speech, sr = sf.read(speech_path, dtype="float32")
    speech = speech if speech.ndim == 1 else speech.mean(axis=1)
    n = int(75 * sr)
    y = np.resize(np.concatenate([speech, np.zeros(sr, np.float32)]), n)
    t = np.arange(n) / sr
    hum = 0.01 * (np.sin(2 * np.pi * 50 * t) + 0.5 * np.sin(2 * np.pi * 150 * t))
    x = 0.05 * y + hum
    path = tmp_path_factory.mktemp("long") / "talk.wav"
    sf.write(path, np.stack([x, 0.9 * x]).T, sr, subtype="PCM_24")
    return path


def test_streamed_repair_matches_the_whole_clip_path(tmp_path: Path, hummed_quiet_wav: Path
                                                     ) -> None:
    opts = RepairOptions(outputs=("wav", "report"))
    whole = repair_file(hummed_quiet_wav, tmp_path / "whole", opts,
                        settings=Settings(stream_above_s=1e6))
    streamed = repair_file(hummed_quiet_wav, tmp_path / "streamed", opts,
                           settings=Settings(stream_above_s=30.0, scratch_dir=tmp_path / "s"))
    assert "streamed" not in whole and streamed["streamed"]["excerpts_s"]
    assert [s["action"] for s in streamed["rounds"][0]["plan"]] == \
        [s["action"] for s in whole["rounds"][0]["plan"]]
    assert streamed["chosen_round"] >= 1
    a, sr = sf.read(whole["outputs"]["wav"], dtype="float32", always_2d=True)
    b, _ = sf.read(streamed["outputs"]["wav"], dtype="float32", always_2d=True)
    assert a.shape == b.shape and sf.info(streamed["outputs"]["wav"]).subtype == "PCM_24"
    # the same loudness (the target resolved on excerpts) and the hum gone in both
    assert loudness_lufs(b.T, sr=sr) == pytest.approx(loudness_lufs(a.T, sr=sr), abs=0.5)
    spec = np.abs(np.fft.rfft(b[:, 0]))
    f = np.fft.rfftfreq(b.shape[0], 1 / sr)
    ref = np.abs(np.fft.rfft(a[:, 0]))
    at50 = np.argmin(np.abs(f - 50))
    assert spec[at50] < 3 * ref[at50] + 1e-3
    assert not list((tmp_path / "s").iterdir())  # the spools are gone


def test_streamed_video_keeps_its_picture_and_length(tmp_path: Path, video_path: Path) -> None:
    report = repair_file(video_path, tmp_path / "o", RepairOptions(),
                         settings=Settings(stream_above_s=1.0, scratch_dir=tmp_path / "s"))
    assert report["streamed"]["excerpts_s"] == [[0.0, report["media"]["duration_s"]]] or \
        len(report["streamed"]["excerpts_s"]) == 1
    out = Path(report["outputs"]["video"])
    info, src = media.probe(out), media.probe(video_path)
    assert info.is_video and abs(info.duration_s - src.duration_s) < 0.1
    assert report["analysis"]["video"] is not None and report["analysis"]["sync"] is not None


def test_analyze_streams_a_long_input_and_agrees_with_the_whole_clip(hummed_quiet_wav: Path,
                                                                     tmp_path: Path) -> None:
    from avagent.service.pipeline import analyze_file

    whole = analyze_file(hummed_quiet_wav, settings=Settings(stream_above_s=1e6))
    streamed = analyze_file(hummed_quiet_wav,
                            settings=Settings(stream_above_s=30.0, scratch_dir=tmp_path))
    a, b = whole["analysis"]["audio"], streamed["analysis"]["audio"]
    assert a == b  # the same windowed measurement, from the array or from the decoder
    assert streamed["captions"]["audio"] == whole["captions"]["audio"]


def _write_av(path: Path, y: np.ndarray, sr: int, frames) -> Path:
    from fractions import Fraction

    import av

    fps = round(frames.sample_fps)
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264" if "libx264" in av.codecs_available else "mpeg4", rate=fps)
        vs.width, vs.height, vs.pix_fmt = 160, 90, "yuv420p"
        a = out.add_stream("aac", rate=sr)
        a.layout = "mono"
        for i, f in enumerate(frames.frames):
            img = np.repeat(np.repeat(f, 2, axis=0), 2, axis=1)[:90, :160]
            vf = av.VideoFrame.from_ndarray(np.stack([img] * 3, axis=-1), format="rgb24")
            vf.pts = i
            for p in vs.encode(vf):
                out.mux(p)
        for start in range(0, y.size, sr):
            af = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(y[None, start : start + sr], np.float32), format="fltp",
                layout="mono")
            af.sample_rate, af.pts, af.time_base = sr, start, Fraction(1, sr)
            for p in a.encode(af):
                out.mux(p)
        for p in a.encode(None):
            out.mux(p)
        for p in vs.encode(None):
            out.mux(p)
    return path


def test_a_late_film_is_measured_on_excerpts_and_shifted_block_by_block(tmp_path: Path) -> None:
    from tests.synth import moving_block_av

    y, sr, frames = moving_block_av(np.random.default_rng(11), 200.0, dur=90.0, fps=25.0)
    src = _write_av(tmp_path / "late.mp4", y, sr, frames)
    settings = Settings(stream_above_s=20.0, scratch_dir=tmp_path / "s", frame_rate_hz=25.0)
    report = repair_file(src, tmp_path / "o", RepairOptions(), settings=settings)
    sync = report["analysis"]["sync"]
    assert report["streamed"] and sync["verdict"] == "offset"
    assert abs(sync["audio_delay_ms"] - 200.0) < 25.0
    steps = dict((n, p) for n, p in report["streamed"]["steps"])
    assert "speed" in steps and abs(steps["speed"]["offset_ms"] + sync["audio_delay_ms"]) < 1.0
    from avagent.service.pipeline import analyze_file

    after = analyze_file(Path(report["outputs"]["video"]), settings=settings)["analysis"]["sync"]
    assert after["verdict"] == "in_sync", after
