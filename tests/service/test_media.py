"""avagent.service.media on real sample media and on fault files built here (nothing binary committed)."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf

from avagent.errors import MediaError, ParameterError
from avagent.service import media

pytestmark = pytest.mark.media


# ------------------------------------------------------------------------------------------
# helpers


def video_packets(path: Path) -> list[bytes]:
    """Bytes of every demuxed packet of the first video stream, in order."""
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        return [bytes(p) for p in c.demux(stream) if p.size]


def video_packet_times(path: Path) -> list[float]:
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        return [float(p.pts * p.time_base) for p in c.demux(stream) if p.size]


def lag_of(reference: np.ndarray, other: np.ndarray, *, max_lag: int = 2000) -> int:
    """Samples by which ``other`` is late relative to ``reference`` (cross-correlation peak)."""
    n = min(reference.shape[-1], other.shape[-1]) - 2 * max_lag
    ref = reference[max_lag : max_lag + n]
    scores = [float(np.dot(ref, other[max_lag + k : max_lag + k + n])) for k in
              range(-max_lag, max_lag + 1)]
    return int(np.argmax(scores)) - max_lag


def png_bytes(width: int = 8, height: int = 8) -> bytes:
    raw = b"".join(b"\x00" + bytes([200] * width * 3) for _ in range(height))

    def chunk(tag: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(tag + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
            + chunk(b"IEND", b""))


def copy_streams(src: Path, dest: Path, *, kinds: tuple[str, ...], options=None) -> Path:
    """Packet-copy the streams of the given kinds (no re-encode) into ``dest``."""
    with av.open(str(src)) as inp, av.open(str(dest), "w", options=options or {}) as out:
        mapping = {
            s.index: out.add_stream_from_template(s, opaque=True)
            for s in inp.streams if s.type in kinds
        }
        for packet in inp.demux(*[s for s in inp.streams if s.index in mapping]):
            if packet.dts is None:
                continue
            packet.stream = mapping[packet.stream.index]
            out.mux(packet)
    return dest


# ------------------------------------------------------------------------------------------
# faults: every one is a MediaError that names the file


@pytest.fixture(scope="module")
def faults(tmp_path_factory, media_dir: Path) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("faults")
    mp4 = media_dir / "videos" / "mp4.mp4"
    data = mp4.read_bytes()
    made = {
        "empty": d / "empty.mp4",
        "truncated": d / "truncated.mp4",  # moov at the end: the index is gone
        "png": d / "picture.mp4",
        "zero_wav": d / "silence.wav",
        "garbage": d / "noise.mkv",
    }
    made["empty"].write_bytes(b"")
    made["truncated"].write_bytes(data[: len(data) // 2])
    made["png"].write_bytes(png_bytes())
    sf.write(made["zero_wav"], np.zeros((0, 1), np.float32), 48000, subtype="PCM_16")
    made["garbage"].write_bytes(np.random.default_rng(7).integers(0, 256, 30_000, np.uint8).tobytes())
    # moov in front (faststart): opens fine, but half of the data is missing
    fast = copy_streams(mp4, d / "fast.mp4", kinds=("video", "audio"),
                        options={"movflags": "faststart"})
    fast_data = fast.read_bytes()
    made["truncated_faststart"] = d / "truncated_faststart.mp4"
    made["truncated_faststart"].write_bytes(fast_data[: len(fast_data) // 2])
    made["no_audio"] = copy_streams(mp4, d / "no_audio.mp4", kinds=("video",))
    made["audio_only"] = media_dir / "speech" / "Front_Center.wav"
    made["missing"] = d / "does_not_exist.mp4"
    made["folder"] = d
    made["long"] = mp4
    return made


FAULTS: list[tuple[str, str, str]] = [
    # (fault, function, words the message must contain)
    ("empty", "probe", "empty"),
    ("empty", "load_audio", "empty"),
    ("empty", "load_frames", "empty"),
    ("truncated", "probe", "corrupt"),
    ("truncated", "load_audio", "corrupt"),
    ("truncated", "load_frames", "corrupt"),
    ("truncated_faststart", "load_audio", "truncated"),
    ("truncated_faststart", "load_frames", "truncated"),
    ("png", "probe", "still image"),
    ("png", "load_frames", "still image"),
    ("garbage", "probe", "corrupt"),
    ("garbage", "load_audio", "corrupt"),
    ("zero_wav", "probe", "zero length"),
    ("zero_wav", "load_audio", "zero length"),
    ("no_audio", "load_audio", "no audio stream"),
    ("audio_only", "load_frames", "no video stream"),
    ("audio_only", "iter_frames", "no video stream"),
    ("missing", "probe", "no such file"),
    ("missing", "load_audio", "no such file"),
    ("missing", "load_frames", "no such file"),
    ("folder", "probe", "folder"),
    ("long", "probe", "above the limit"),
    ("long", "load_audio", "above the limit"),
    ("long", "load_frames", "above the limit"),
]


@pytest.mark.parametrize(("fault", "func", "words"), FAULTS)
def test_media_faults_raise_media_error_naming_the_file(faults, fault, func, words):
    path = faults[fault]
    kwargs: dict = {"max_duration_s": 3.0} if fault == "long" else {}
    call: Callable = getattr(media, func)
    if func == "iter_frames":
        kwargs = {"fps": 12.5, "width": 160}
    with pytest.raises(MediaError) as info:
        result = call(path, **kwargs)
        if func == "iter_frames":
            next(iter(result))
    message = str(info.value)
    assert words in message
    assert path.name in message


def test_video_without_audio_still_gives_frames(faults):
    info = media.probe(faults["no_audio"])
    assert info.is_video and not info.has_audio and info.sample_rate is None
    fs = media.load_frames(faults["no_audio"])
    assert fs.frames.shape[0] > 50


def test_cover_art_is_not_a_video(tmp_path):
    path = tmp_path / "song.mp3"
    with av.open(str(path), "w") as out:
        audio = out.add_stream("libmp3lame", rate=44100, layout="mono")
        art = out.add_stream("png", width=16, height=16)
        art.pix_fmt = "rgb24"
        art.disposition = av.stream.Disposition.attached_pic
        picture = av.VideoFrame.from_ndarray(np.full((16, 16, 3), 90, np.uint8), format="rgb24")
        picture.pts = 0
        packets = art.encode(picture) + art.encode(None)
        out.start_encoding()
        out.mux(packets)
        tone = (0.1 * np.sin(np.arange(44100) / 10)).astype(np.float32)[None]
        frame = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 44100, 0
        out.mux(audio.encode(frame) + audio.encode(None))
    info = media.probe(path)
    assert info.has_video and info.cover_art_only and not info.is_video
    assert info.audio_codec == "mp3" and info.fps is None
    with pytest.raises(MediaError, match="only cover art"):
        media.load_frames(path)
    y, sr = media.load_audio(path)
    assert sr == 44100 and y.shape[0] == 1 and abs(y.shape[1] - 44100) < 2000


def test_audio_file_probes_as_audio_only(faults):
    info = media.probe(faults["audio_only"])
    assert info.has_audio and not info.has_video and not info.is_video
    assert info.fps is None and info.video_duration_s is None


# ------------------------------------------------------------------------------------------
# decoding


def test_probe_real_video(video_path):
    info = media.probe(video_path)
    assert info.container.startswith("mov,mp4")
    assert info.is_video and info.has_audio
    assert (info.width, info.height, info.fps) == (560, 320, 30.0)
    assert (info.sample_rate, info.channels, info.audio_codec) == (48000, 1, "aac")
    assert info.duration_s == pytest.approx(5.568, abs=0.01)


def test_load_audio_wav_is_exact(speech_path):
    y, sr = media.load_audio(speech_path)
    ref, ref_sr = sf.read(speech_path, dtype="float32", always_2d=True)
    assert sr == ref_sr == 48000
    assert y.dtype == np.float32 and y.shape == (1, ref.shape[0])
    np.testing.assert_array_equal(y, ref.T)


def test_load_audio_keeps_all_channels_native_rate(bunny_path):
    y, sr = media.load_audio(bunny_path)
    assert sr == 48000 and y.shape[0] == 6 and y.flags.c_contiguous
    assert y.shape[1] / sr == pytest.approx(5.312, abs=0.03)
    # six distinct channels (not one duplicated), all finite and in range
    assert len({round(float(np.std(ch)), 6) for ch in y}) > 1
    assert np.isfinite(y).all() and np.abs(y).max() <= 1.0 + 1e-6


def test_load_audio_lines_up_with_the_video_timeline(video_path):
    # This file's first audio packet is at 1024/48000 s; the video starts at 0.
    y, _ = media.load_audio(video_path)
    assert np.all(y[:, :1024] == 0)
    assert np.any(y[:, 1024:2048] != 0)
    assert y.shape[1] == 267264  # 1024 + 266240 decoded: the stream's declared end


def test_load_audio_duration_limit_checked(speech_path):
    with pytest.raises(MediaError, match="above the limit"):
        media.load_audio(speech_path, max_duration_s=1.0)
    y, _ = media.load_audio(speech_path, max_duration_s=2.0)
    assert y.shape[1] == 68545


def test_load_frames_samples_at_requested_rate(bunny_path):
    fs = media.load_frames(bunny_path, fps=12.5, width=160)
    assert fs.frames.dtype == np.uint8 and fs.frames.shape[1:] == (90, 160)
    assert (fs.fps, fs.width, fs.height, fs.sample_fps) == (25.0, 1280, 720, 12.5)
    np.testing.assert_allclose(np.diff(fs.times_s), 0.08, atol=1e-6)
    assert fs.times_s[0] == 0.0 and fs.times_s[-1] == pytest.approx(5.2, abs=0.05)
    assert fs.frames.std() > 10  # real pictures, not blank frames
    assert np.abs(np.diff(fs.frames.astype(np.int16), axis=0)).mean() > 0.5  # they move


def test_iter_frames_nearest_frame_on_a_30fps_stream(video_path):
    items = list(media.iter_frames(video_path, fps=12.5, width=64))
    times = np.array([t for t, _ in items])
    steps = np.diff(times)
    assert np.all(steps > 1 / 30 - 1e-6) and np.all(steps < 0.1 + 1e-6)
    assert np.mean(steps) == pytest.approx(0.08, abs=0.003)
    assert items[0][1].shape == (37, 64)  # 560x320 keeps its aspect ratio


def test_iter_frames_streams_one_frame_at_a_time(bunny_path):
    frames = media.iter_frames(bunny_path, fps=1.0, width=32)
    t0, f0 = next(frames)
    t1, _ = next(frames)
    assert (t0, t1) == (0.0, 1.0) and f0.shape == (18, 32)
    frames.close()  # closes the container early


def test_iter_frames_slower_stream_is_not_padded(video_path):
    fs = media.load_frames(video_path, fps=100.0, width=32)
    assert fs.sample_fps == 30.0 and len(fs.times_s) == 166


@pytest.mark.parametrize(("fps", "width"), [(0, 160), (-1, 160), (float("nan"), 160), (12.5, 0)])
def test_iter_frames_rejects_bad_parameters(video_path, fps, width):
    with pytest.raises(ParameterError):
        media.iter_frames(video_path, fps=fps, width=width)


def test_timestamp_reset_keeps_one_continuous_timeline(media_dir):
    # mkv.mkv's video timestamps restart at 0 after 2.28 s; its audio runs 5.87 s.
    path = media_dir / "videos" / "mkv.mkv"
    fs = media.load_frames(path)
    assert np.all(np.diff(fs.times_s) > 0)
    y, sr = media.load_audio(path)
    assert fs.times_s[-1] == pytest.approx(y.shape[1] / sr, abs=0.15)


# ------------------------------------------------------------------------------------------
# writing


@pytest.mark.parametrize(
    ("name", "subtype", "atol"),
    [("a.wav", None, 1 / 32768), ("a.wav", "FLOAT", 0.0), ("a.flac", "PCM_24", 1 / 2**23)],
)
def test_write_audio_round_trip(tmp_path, rng, name, subtype, atol):
    y = (0.3 * rng.standard_normal((2, 4800))).clip(-1, 1).astype(np.float32)
    out = media.write_audio(tmp_path / name, y, 16000, subtype=subtype)
    back, sr = media.load_audio(out)
    assert sr == 16000 and back.shape == y.shape
    np.testing.assert_allclose(back, y, atol=atol + 1e-7)
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temp file left behind


def test_write_audio_mono_vector_and_clipping(tmp_path):
    out = media.write_audio(tmp_path / "m.wav", np.array([0.0, 2.0, -2.0, 0.5]), 8000)
    back, _ = media.load_audio(out)
    assert back.shape == (1, 4)
    assert back.max() <= 1.0 and back.min() >= -1.0


@pytest.mark.parametrize(
    ("name", "kwargs", "error"),
    [
        ("a.mp3", {}, ParameterError),
        ("a.flac", {"subtype": "FLOAT"}, ParameterError),
        ("a.wav", {"subtype": "PCM_8"}, ParameterError),
    ],
)
def test_write_audio_rejects_bad_requests(tmp_path, name, kwargs, error):
    with pytest.raises(error):
        media.write_audio(tmp_path / name, np.zeros(10), 8000, **kwargs)
    assert not list(tmp_path.iterdir())


def test_write_audio_refuses_to_overwrite_input(tmp_path, speech_path):
    copy = tmp_path / "in.wav"
    copy.write_bytes(speech_path.read_bytes())
    before = copy.read_bytes()
    link = tmp_path / "link.wav"
    link.symlink_to(copy)
    for dest in (copy, link, tmp_path / "." / "in.wav"):
        with pytest.raises(MediaError, match="refusing to overwrite input"):
            media.write_audio(dest, np.zeros(10), 8000, inputs=[copy])
    assert copy.read_bytes() == before


def test_atomic_output_keeps_old_file_on_error(tmp_path):
    dest = tmp_path / "out.wav"
    dest.write_bytes(b"old")
    with pytest.raises(RuntimeError), media.atomic_output(dest) as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".wav" and tmp != dest
        tmp.write_bytes(b"half")
        raise RuntimeError("boom")
    assert dest.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.wav"]
    with media.atomic_output(tmp_path / "sub" / "new.wav") as tmp:
        tmp.write_bytes(b"new")
    assert (tmp_path / "sub" / "new.wav").read_bytes() == b"new"


# ------------------------------------------------------------------------------------------
# remux


def test_remux_round_trip_keeps_video_bit_identical(tmp_path, video_path):
    y, sr = media.load_audio(video_path)
    out = media.remux(video_path, y, sr, tmp_path / "out.mp4")
    assert video_packets(out) == video_packets(video_path)
    assert video_packet_times(out) == pytest.approx(video_packet_times(video_path), abs=1e-6)
    before, after = media.probe(video_path), media.probe(out)
    assert after.duration_s == pytest.approx(before.duration_s, abs=0.03)
    assert after.video_duration_s == pytest.approx(before.video_duration_s, abs=1e-3)
    assert (after.video_codec, after.audio_codec, after.sample_rate) == ("h264", "aac", 48000)
    y2, sr2 = media.load_audio(out)
    assert sr2 == sr and y2.shape == y.shape
    assert lag_of(y[0], y2[0]) == 0  # the new track sits where the old one was
    assert np.corrcoef(y[0], y2[0])[0, 1] > 0.95
    with av.open(str(out)) as c:
        assert c.metadata.get("creation_time", "").startswith("2010-03-20")
        assert c.streams.audio[0].metadata.get("language") == "eng"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]


def test_remux_six_channels(tmp_path, bunny_path):
    y, sr = media.load_audio(bunny_path)
    out = media.remux(bunny_path, 0.5 * y, sr, tmp_path / "bunny.mkv")
    assert video_packets(out) == video_packets(bunny_path)
    info = media.probe(out)
    assert (info.channels, info.container) == (6, "matroska,webm")
    y2, _ = media.load_audio(out)
    assert y2.shape == y.shape
    assert np.std(y2) == pytest.approx(0.5 * np.std(y), rel=0.05)


@pytest.mark.parametrize(("name", "codec"), [("webm.webm", "opus"), ("ogg.ogv", "opus"),
                                              ("mov.mov", "aac")])
def test_remux_other_containers(tmp_path, media_dir, name, codec):
    src = media_dir / "videos" / name
    y, sr = media.load_audio(src)
    out = media.remux(src, y, sr, tmp_path / f"out{src.suffix}")
    assert video_packets(out) == video_packets(src)
    assert media.probe(out).audio_codec == codec
    y2, _ = media.load_audio(out)
    assert lag_of(y[0], y2[0]) == 0


def test_remux_cuts_audio_longer_than_the_input(tmp_path, video_path):
    y, sr = media.load_audio(video_path)
    longer = np.concatenate([y, y], axis=1)
    out = media.remux(video_path, longer, sr, tmp_path / "out.mp4")
    assert media.probe(out).duration_s == pytest.approx(media.probe(video_path).duration_s,
                                                        abs=0.06)


def test_remux_refusals(tmp_path, video_path, speech_path):
    y, sr = media.load_audio(video_path)
    with pytest.raises(MediaError, match="refusing to overwrite input"):
        media.remux(video_path, y, sr, video_path)
    with pytest.raises(MediaError, match="no video stream"):
        media.remux(speech_path, y, sr, tmp_path / "x.mp4")
    with pytest.raises(MediaError, match="h264"):  # h264 does not go into webm
        media.remux(video_path, y, sr, tmp_path / "x.webm")
    assert not list(tmp_path.iterdir())


def test_duration_missing_from_the_header_is_measured(tmp_path):
    class Unseekable(io.RawIOBase):  # a pipe: the muxer cannot go back to write the duration
        def __init__(self, fh):
            self.fh = fh

        def writable(self):
            return True

        def write(self, b):
            return self.fh.write(b)

    path = tmp_path / "live.mkv"
    with path.open("wb") as fh, av.open(Unseekable(fh), "w", format="matroska") as out:
        stream = out.add_stream("flac", rate=16000, layout="mono")
        tone = (0.1 * np.sin(np.arange(32000) / 10)).astype(np.float32)[None]
        frame = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 16000, 0
        out.mux(stream.encode(frame) + stream.encode(None))
    with av.open(str(path)) as c:
        assert c.duration is None  # the case under test
    assert media.probe(path).duration_s == pytest.approx(2.0, abs=0.01)
    with pytest.raises(MediaError, match="above the limit"):
        media.probe(path, max_duration_s=1.5)
    y, sr = media.load_audio(path)
    assert sr == 16000 and y.shape == (1, 32000)
