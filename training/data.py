"""Pairs for pretraining: read a manifest, decode sound and picture, make model inputs.

A manifest is JSON lines in the format the service's batches write (``dest/manifest.jsonl``):
each line has ``input`` and ``outputs`` (``wav``: the repaired sound, ``video``: the repaired
video) and a consistency ``tier`` (accepted, improved, rejected, failed). The sound comes from
``outputs.wav`` (else ``input``), the picture from ``outputs.video`` (else ``input``); ``tiers``
keeps only the lines whose tier is listed. Relative paths are taken from the manifest's folder;
``file://`` URIs are local paths, any other URI is opened through fsspec.

Model inputs (fixed shapes, so a batch is a plain stack):

* ``audio``: log-mel ``(1, N_MELS, N_FRAMES)`` of 16 kHz mono, 25 ms windows, 10 ms hop, in dB
  scaled by a fixed affine map (level stays information: a quiet clip looks quiet);
* ``video``: ``(1, N_VIDEO_FRAMES, SIDE, SIDE)`` grey frames at ``VIDEO_FPS``, scaled to about
  unit variance.

Decoding runs in the DataLoader's worker processes; features are cached on disk next to nothing
the user owns (``~/.cache/avagent/features``), keyed by the file's path, size and mtime.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from avagent.errors import MediaError, ParameterError

SR = 16_000
N_MELS = 64
N_FRAMES = 192  # 1.92 s of 10 ms hops
N_VIDEO_FRAMES = 16
VIDEO_FPS = 8.0  # 16 frames = 2 s
SIDE = 32
TIERS = ("accepted", "improved", "rejected", "failed")


@dataclass(frozen=True)
class Pair:
    """One line of a manifest, resolved: where its sound and its picture are."""

    audio: str
    video: str
    tier: str
    label: int | None
    line: int  # 1-based line number in the manifest, for error messages


def _resolve(uri: str, base: Path) -> str:
    if uri.startswith("file://"):
        return uri[len("file://"):]
    if "://" in uri:
        return uri
    p = Path(uri)
    return str(p if p.is_absolute() else base / p)


def read_manifest(path: str | Path, *, tiers: tuple[str, ...] | None = None) -> list[Pair]:
    """The pairs of a manifest, filtered by ``tiers``; a bad line raises naming file and line."""
    path = Path(path)
    if tiers is not None:
        bad = [t for t in tiers if t not in TIERS]
        if bad:
            raise ParameterError(f"tiers={bad} unknown; valid tiers: {', '.join(TIERS)}")
    try:
        text = path.read_text()
    except OSError as exc:
        raise MediaError(f"manifest {path}: {exc.strerror or exc}") from None
    pairs: list[Pair] = []
    for i, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw)
            outputs = rec.get("outputs") or {}
            audio = outputs.get("wav") or rec["input"]
            video = outputs.get("video") or rec["input"]
            tier = str(rec.get("tier") or "accepted")
        except (ValueError, KeyError, AttributeError, TypeError) as exc:
            raise MediaError(f"manifest {path} line {i}: not a manifest record ({exc})") from None
        if tiers is not None and tier not in tiers:
            continue
        label = rec.get("label")
        pairs.append(Pair(_resolve(audio, path.parent), _resolve(video, path.parent), tier,
                          None if label is None else int(label), i))
    if not pairs:
        raise MediaError(f"manifest {path}: no pairs" + (f" with tier in {list(tiers)}"
                                                         if tiers else ""))
    return pairs


def check_pairs(pairs: list[Pair], manifest: str | Path = "manifest") -> None:
    """Every local file a manifest names must exist: say which one does not, before training."""
    for p in pairs:
        for kind, f in (("sound", p.audio), ("picture", p.video)):
            if "://" not in f and not os.path.isfile(f):
                raise MediaError(f"manifest {manifest} line {p.line}: {kind} file {f} is missing")


def _open(uri: str) -> Any:
    if "://" in uri:
        import fsspec

        with fsspec.open(uri, "rb") as fh:
            return io.BytesIO(fh.read())
    return uri


def load_audio(uri: str) -> np.ndarray:
    """16 kHz mono float32 of a sound file (or of a video's sound stream)."""
    import soundfile as sf
    import soxr

    try:
        y, sr = sf.read(_open(uri), dtype="float32", always_2d=True)
        y = y.mean(axis=1)
    except (RuntimeError, sf.LibsndfileError):
        y, sr = _av_audio(uri)
    except OSError as exc:
        raise MediaError(f"{uri}: cannot read sound ({exc})") from None
    if y.size == 0 or not np.all(np.isfinite(y)):
        raise MediaError(f"{uri}: sound is empty or not finite")
    if sr != SR:
        y = soxr.resample(y, sr, SR).astype(np.float32)
    return y


def _av_audio(uri: str) -> tuple[np.ndarray, int]:
    import av

    try:
        with av.open(_open(uri)) as c:
            if not c.streams.audio:
                raise MediaError(f"{uri}: has no sound stream")
            s = c.streams.audio[0]
            chunks = [f.to_ndarray().reshape(f.layout.nb_channels if f.format.is_planar else 1, -1)
                      .mean(axis=0) for f in c.decode(s)]
            return np.concatenate(chunks).astype(np.float32), int(s.rate)
    except av.error.FFmpegError as exc:
        raise MediaError(f"{uri}: cannot read sound ({exc})") from None


def load_frames(uri: str) -> np.ndarray:
    """``(N_VIDEO_FRAMES, SIDE, SIDE)`` uint8 grey frames sampled at :data:`VIDEO_FPS`."""
    import av

    want = np.arange(N_VIDEO_FRAMES) / VIDEO_FPS
    out = np.zeros((N_VIDEO_FRAMES, SIDE, SIDE), np.uint8)
    k = 0
    try:
        with av.open(_open(uri)) as c:
            if not c.streams.video:
                raise MediaError(f"{uri}: has no video stream")
            s = c.streams.video[0]
            last = None
            for f in c.decode(s):
                t = float(f.pts * s.time_base) if f.pts is not None else k / VIDEO_FPS
                img = f.reformat(width=SIDE, height=SIDE, format="gray").to_ndarray()
                while k < N_VIDEO_FRAMES and t >= want[k] - 0.5 / VIDEO_FPS:
                    out[k] = img
                    k += 1
                last = img
                if k == N_VIDEO_FRAMES:
                    break
    except av.error.FFmpegError as exc:
        raise MediaError(f"{uri}: cannot read picture ({exc})") from None
    if last is None:
        raise MediaError(f"{uri}: video stream has no decodable frames")
    out[k:] = last  # a short video holds its last frame
    return out


def log_mel(y: np.ndarray, n_frames: int = N_FRAMES) -> np.ndarray:
    """``(N_MELS, n_frames)`` float32: dB log-mel mapped by ``(dB + 50) / 20`` (10 ms hops)."""
    import librosa

    n = (n_frames - 1) * 160 + 1
    y = y[:n] if y.size >= n else np.pad(y, (0, n - y.size))
    m = librosa.feature.melspectrogram(y=y, sr=SR, n_fft=400, hop_length=160, n_mels=N_MELS,
                                       center=True, power=2.0)[:, :n_frames]
    db = 10 * np.log10(np.maximum(m, 1e-10))
    return ((db + 50.0) / 20.0).astype(np.float32)


def video_tensor(frames: np.ndarray) -> np.ndarray:
    return ((frames.astype(np.float32) - 80.0) / 50.0)[None]


def _cache_dir() -> Path:
    env = os.environ.get("AVAGENT_FEATURE_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "avagent" / "features"


def _key(uri: str, what: str) -> str | None:
    if "://" in uri:
        return None
    st = os.stat(uri)
    return hashlib.sha1(f"{what}|{os.path.abspath(uri)}|{st.st_size}|{st.st_mtime_ns}".encode()
                        ).hexdigest()


def _cached(uri: str, what: str, make: Any) -> np.ndarray:
    try:
        key = _key(uri, what)
    except OSError as exc:
        raise MediaError(f"{uri}: cannot read ({exc.strerror or exc})") from None
    if key is None:
        return make(uri)
    p = _cache_dir() / key[:2] / f"{key}.npy"
    if p.exists():
        try:
            return np.load(p)
        except (OSError, ValueError):
            pass  # a torn cache file is rebuilt
    x = make(uri)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(f".{os.getpid()}.tmp.npy")
    np.save(tmp, x)
    tmp.replace(p)
    return x


def features(pair: Pair) -> tuple[np.ndarray, np.ndarray]:
    """``(audio (1, N_MELS, N_FRAMES), video (1, T, SIDE, SIDE))`` float32 for one pair."""
    a = _cached(pair.audio, f"mel{N_MELS}x{N_FRAMES}", lambda u: log_mel(load_audio(u)))
    v = _cached(pair.video, f"grey{N_VIDEO_FRAMES}x{SIDE}@{VIDEO_FPS}", load_frames)
    return a[None], video_tensor(v)


class PairDataset:
    """A torch-style map dataset over manifest pairs (plain numpy: workers pickle it cheaply)."""

    def __init__(self, pairs: list[Pair], manifest: str | Path = "manifest") -> None:
        self.pairs = pairs
        self.manifest = str(manifest)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> dict[str, Any]:
        p = self.pairs[i]
        try:
            a, v = features(p)
        except MediaError as exc:
            raise MediaError(f"manifest {self.manifest} line {p.line}: {exc}") from None
        return {"audio": a, "video": v, "label": -1 if p.label is None else p.label, "index": i}
