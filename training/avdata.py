"""A labelled audio-visual dataset for evaluating pretraining on CPU: ten sound-source classes.

Every clip is ``DURATION_S`` long. Its sound is a REAL recording of its class from the media cache
(:mod:`avagent.bench.media`: Sonic Pi's drum, tabla, bass, electronic and vinyl samples and guitar
loops, the ALSA voice, Lugaru's wind and fire, Sonic Pi's ambient pads); its picture is drawn: a
class-specific object (a drum is a disc, speech is a mouth, fire flickers at the bottom ...) whose
brightness and size follow the sound's envelope, so every hit and syllable is visibly timed. The
object's place, size and contrast, the background and the sensor noise are random, so the picture
alone does not give the class away at a glance.

Each clip is then corrupted with the benchmark's faults (:func:`avagent.bench.corrupt.sample`:
noise, hum, offset, drift, quiet, clipping, dropouts, mixtures, and clean controls), and both the
clean and the corrupted sound are kept. Everything is drawn from ``(seed, index)``: the same seed
gives the same files.

Layout under ``root`` (default ``~/.cache/avagent/avdata/v1-seed<seed>``)::

    clips/<id>.mp4           the picture (64x64 grey, 12.5 fps, no sound)
    clips/<id>.clean.wav     the clean sound (16 kHz mono)
    clips/<id>.raw.wav       the corrupted sound
    clips/<id>.json          label, fault truth, onsets
    clean.jsonl, raw.jsonl   manifests in the service's batch format (``outputs.wav``,
                             ``outputs.video``, ``tier``) plus ``label``
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from avagent.errors import ParameterError

logger = logging.getLogger(__name__)

SR = 16_000
DURATION_S = 2.0
FPS = 12.5
SIDE = 64  # rendered frame side in pixels
VERSION = "v1"

# class -> (kind, files). "hits": short samples at seeded irregular times; "excerpt": a seeded
# stretch of a longer recording (looped if short).
_DRUMS = ("bd_808", "bd_boom", "bd_fat", "bd_haus", "bd_klub", "bd_tek", "drum_heavy_kick",
          "drum_snare_hard", "drum_snare_soft", "drum_tom_hi_hard", "drum_tom_lo_hard",
          "drum_tom_mid_hard", "sn_dolf", "sn_dub", "sn_generic", "sn_zome")
CLASSES: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {
    "drum": ("hits", tuple(("sonicpi", f"{f}.flac") for f in _DRUMS)),
    "tabla": ("hits", tuple(("sonicpi", f"tabla_{f}.flac") for f in (
        "dhec", "ghe1", "ghe2", "ghe3", "ke1", "ke2", "na", "na_o", "na_s", "re", "tas1", "tas2",
        "te1", "te2", "te_m", "te_ne", "tun1", "tun2", "tun3"))),
    "guitar": ("excerpt", tuple(("sonicpi", f"guit_{f}.flac") for f in (
        "e_fifths", "e_slide", "em9", "harmonics"))),
    "bass": ("hits", tuple(("sonicpi", f"bass_{f}.flac") for f in (
        "dnb_f", "drop_c", "hard_c", "hit_c", "thick_c", "trance_c", "voxy_c", "voxy_hit_c",
        "woodsy_c"))),
    "electronic": ("hits", tuple(("sonicpi", f"elec_{f}.flac") for f in (
        "beep", "bell", "blip", "blip2", "blup", "bong", "chime", "flip", "ping", "plip", "pop",
        "tick", "twang", "twip", "wood"))),
    "vinyl": ("hits", tuple(("sonicpi", f"vinyl_{f}.flac") for f in (
        "backspin", "rewind", "scratch"))),
    "speech": ("hits", tuple(("speech", f) for f in (
        "Front_Center.wav", "Front_Left.wav", "Front_Right.wav", "Rear_Center.wav",
        "Rear_Left.wav", "Rear_Right.wav", "Side_Left.wav", "Side_Right.wav"))),
    "wind": ("excerpt", (("lugaru", "Wind.ogg"),)),
    "fire": ("excerpt", (("lugaru", "Fire.ogg"),)),
    "ambient": ("excerpt", tuple(("sonicpi", f"ambi_{f}.flac") for f in (
        "choir", "dark_woosh", "drone", "glass_hum", "glass_rub", "haunted_hum", "lunar_land",
        "piano", "sauna", "soft_buzz"))),
}
CLASS_NAMES = tuple(CLASSES)


@dataclass(frozen=True)
class AVClip:
    """One clean clip: sound ``y`` (n,) at :data:`SR`, frames ``(T, SIDE, SIDE)`` uint8."""

    id: str
    label: int
    y: np.ndarray
    frames: np.ndarray
    onsets_s: list[float]


def default_root(seed: int = 0) -> Path:
    """``$AVAGENT_AVDATA_DIR`` or ``~/.cache/avagent/avdata``, then ``v1-seed<seed>``."""
    env = os.environ.get("AVAGENT_AVDATA_DIR")
    base = Path(env) if env else Path.home() / ".cache" / "avagent" / "avdata"
    return base / f"{VERSION}-seed{seed}"


def _recording(source: str, filename: str) -> np.ndarray:
    from avagent.bench import signals

    y = signals.load(source, filename, sr=SR).mean(axis=0)
    peak = float(np.max(np.abs(y))) or 1.0
    return y / peak


def _sound(name: str, rng: np.random.Generator) -> tuple[np.ndarray, list[float]]:
    kind, files = CLASSES[name]
    n = round(DURATION_S * SR)
    y = np.zeros(n)
    onsets: list[float] = []
    if kind == "hits":
        t = float(rng.uniform(0.05, 0.4))
        while t < DURATION_S - 0.15:
            rec = _recording(*files[int(rng.integers(len(files)))])
            i = round(t * SR)
            m = min(rec.size, n - i, round(0.9 * SR))
            y[i : i + m] += rec[:m] * float(rng.uniform(0.5, 1.0))
            onsets.append(round(t, 4))
            t += max(m / SR * 0.6, 0.18) + float(rng.uniform(0.05, 0.5))
    else:
        rec = _recording(*files[int(rng.integers(len(files)))])
        reps = int(np.ceil(n / rec.size)) + 1
        rec = np.tile(rec, reps) if reps > 1 else rec
        start = int(rng.integers(0, max(1, rec.size - n)))
        y = rec[start : start + n].copy()
    rms = float(np.sqrt(np.mean(y**2))) or 1.0
    y = y / rms * 10 ** (float(rng.uniform(-26, -18)) / 20)  # a plausible speaking level
    y = np.clip(y, -0.99, 0.99)
    # Room tone (pink-ish, -70 dBFS) so "digital silence" means a dropout, as in bench.suite.
    floor = rng.standard_normal(n) * 10 ** (-70 / 20)
    return y + floor, onsets


def _envelope(y: np.ndarray, times: np.ndarray) -> np.ndarray:
    """RMS over 80 ms ending at each frame time, in [0, 1] relative to the clip's loudest."""
    w = round(0.08 * SR)
    out = np.array([np.sqrt(np.mean(y[max(0, int(t * SR) - w) : int(t * SR) + 1] ** 2) + 1e-12)
                    for t in times])
    return out / (out.max() or 1.0)


def _draw_object(name: str, img: np.ndarray, cx: float, cy: float, r: float, level: float,
                 phase: float, rng: np.random.Generator) -> None:
    yy, xx = np.mgrid[0:SIDE, 0:SIDE].astype(np.float64)
    dx, dy = xx - cx, yy - cy
    if name == "drum":  # a disc
        mask = dx**2 + dy**2 <= r**2
    elif name == "tabla":  # a triangle (pointing up)
        mask = (dy <= r) & (dy >= -r) & (np.abs(dx) <= (dy + r) / 2)
    elif name == "guitar":  # vibrating strings
        mask = (np.abs(dy) <= r) & (np.abs(dx) <= r) & (np.mod(dx + r + phase, 5) < 1.5)
    elif name == "bass":  # a wide low bar
        mask = (np.abs(dy) <= r / 3) & (np.abs(dx) <= r * 1.4)
    elif name == "electronic":  # a grid of dots
        mask = (np.abs(dx) <= r) & (np.abs(dy) <= r) & (np.mod(dx, 6) < 2) & (np.mod(dy, 6) < 2)
    elif name == "vinyl":  # a ring with a turning mark
        d2 = dx**2 + dy**2
        ang = np.arctan2(dy, dx)
        mask = ((d2 <= r**2) & (d2 >= (r / 2) ** 2)) & (np.cos(ang - phase) < 0.7)
    elif name == "speech":  # a mouth: an ellipse that opens with the voice
        mask = (dx / r) ** 2 + (dy / max(1.0, r * (0.15 + 0.85 * level))) ** 2 <= 1
    elif name == "wind":  # diagonal streaks drifting
        mask = np.mod(xx + yy * 0.5 + phase * 10, 9) < 1.5 * (0.3 + level)
    elif name == "fire":  # flickering blobs at the bottom
        mask = (yy > SIDE - r * 1.5) & (rng.random((SIDE, SIDE)) < 0.25 + 0.6 * level)
    else:  # ambient: a soft glow
        glow = np.exp(-(dx**2 + dy**2) / (2 * (r * 1.3) ** 2))
        img += glow * 120 * (0.3 + 0.7 * level)
        return
    img[mask] += 60 + 150 * level


def _picture(name: str, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    times = np.arange(round(DURATION_S * FPS)) / FPS
    env = _envelope(y, times)
    bg = float(rng.uniform(20, 80))
    cx, cy = rng.uniform(18, SIDE - 18, size=2)
    r = float(rng.uniform(7, 13))
    spin = float(rng.uniform(2, 6))
    frames = np.empty((times.size, SIDE, SIDE), dtype=np.uint8)
    for i, t in enumerate(times):
        img = np.full((SIDE, SIDE), bg) + rng.normal(0, 6, (SIDE, SIDE))
        level = float(env[i])
        _draw_object(name, img, cx, cy, r * (0.8 + 0.3 * level), level, spin * t, rng)
        frames[i] = np.clip(img, 0, 255).astype(np.uint8)
    return frames


def make_clip(index: int, seed: int = 0) -> AVClip:
    """Clip number ``index`` of the dataset drawn from ``seed`` (classes cycle: balanced)."""
    label = index % len(CLASSES)
    rng = np.random.default_rng([seed, index])
    y, onsets = _sound(CLASS_NAMES[label], rng)
    frames = _picture(CLASS_NAMES[label], y, rng)
    return AVClip(f"{index:05d}-{CLASS_NAMES[label]}", label, y, frames, onsets)


def write_video(path: Path, frames: np.ndarray, fps: float = FPS) -> None:
    """Write grey ``(T, H, W)`` uint8 frames as an MPEG-4 file (no sound), atomically."""
    import av

    tmp = path.with_suffix(".tmp" + path.suffix)
    with av.open(str(tmp), "w", format="mp4") as out:
        stream = out.add_stream("mpeg4", rate=Fraction(fps).limit_denominator(1000))
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"qscale": "3"}
        for f in frames:
            frame = av.VideoFrame.from_ndarray(np.repeat(f[:, :, None], 3, axis=2), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    tmp.replace(path)


def _write_wav(path: Path, y: np.ndarray) -> None:
    import soundfile as sf

    tmp = path.with_suffix(".tmp.wav")
    sf.write(str(tmp), np.clip(y, -1, 1).astype(np.float32), SR, subtype="FLOAT")
    tmp.replace(path)


def _fit(y: np.ndarray, n: int) -> np.ndarray:
    return y[:n] if y.size >= n else np.pad(y, (0, n - y.size))


def _generate_one(args: tuple[Path, int, int]) -> dict[str, Any]:
    from avagent.bench import corrupt

    root, index, seed = args
    clip = make_clip(index, seed)
    base = root / "clips" / clip.id
    meta_path = base.with_suffix(".json")
    if meta_path.exists():
        return json.loads(meta_path.read_text())
    # Faults as the benchmark draws them; a duration-changing fault (drift, PAL) is cut back to
    # the picture's length, as a muxer would.
    raw, truth = corrupt.sample(clip.y, sr=SR, seed=seed * 1_000_003 + index)
    raw = _fit(np.asarray(raw, np.float64).reshape(-1), clip.y.size)
    write_video(base.with_suffix(".mp4"), clip.frames)
    _write_wav(Path(f"{base}.clean.wav"), clip.y)
    _write_wav(Path(f"{base}.raw.wav"), raw)
    meta = {"id": clip.id, "label": clip.label, "class": CLASS_NAMES[clip.label],
            "onsets_s": clip.onsets_s, "truth": truth.model_dump(mode="json")}
    meta_path.write_text(json.dumps(meta))
    return meta


def manifest_line(root: Path, clip_id: str, wav: Path, label: int, tier: str = "accepted",
                  **extra: Any) -> dict[str, Any]:
    """A line in the service's batch-manifest format (plus ``label``) for one pair."""
    video = root / "clips" / f"{clip_id}.mp4"
    return {"input": str(root / "clips" / f"{clip_id}.raw.wav"), "rel": clip_id,
            "state": "succeeded", "outputs": {"wav": str(wav), "video": str(video)},
            "tier": tier, "label": label, **extra}


def generate(count: int, *, seed: int = 0, root: Path | None = None, jobs: int = 2) -> Path:
    """Make sure clips ``0..count-1`` exist under ``root``; write ``clean.jsonl``/``raw.jsonl``."""
    if count < len(CLASSES):
        raise ParameterError(f"count={count} must be at least the {len(CLASSES)} classes")
    root = root or default_root(seed)
    (root / "clips").mkdir(parents=True, exist_ok=True)
    work = [(root, i, seed) for i in range(count)]
    if jobs > 1:
        with ProcessPoolExecutor(jobs) as pool:
            metas = list(pool.map(_generate_one, work, chunksize=16))
    else:
        metas = [_generate_one(w) for w in work]
    for variant in ("clean", "raw"):
        lines = [manifest_line(root, m["id"], root / "clips" / f"{m['id']}.{variant}.wav",
                               m["label"], family=m["truth"]["family"]) for m in metas]
        tmp = root / f".{variant}.jsonl.tmp"
        tmp.write_text("".join(json.dumps(x) + "\n" for x in lines))
        tmp.replace(root / f"{variant}.jsonl")
    logger.info("avdata: %d clips under %s", count, root)
    return root


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--count", type=int, default=2000, help="clips to make (2000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the dataset (0)")
    p.add_argument("--root", type=Path, default=None,
                   help="where to write (default ~/.cache/avagent/avdata/v1-seed<seed>)")
    p.add_argument("--jobs", type=int, default=2, help="worker processes (2)")


def run(args: argparse.Namespace) -> int:
    root = generate(args.count, seed=args.seed, root=args.root, jobs=args.jobs)
    print(root)
    return 0
