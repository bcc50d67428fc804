"""Clean sources and noises for the benchmarks: real recordings at 48 kHz, shaped ``(channels, n)``.

Everything here is read from the media cache (:mod:`avagent.bench.media`), resampled with soxr and cut
deterministically from a ``seed``. Nothing is synthesised except the textbook noises (white, pink,
brown) and mains hum, which are seeded too.

Clean speech is the ALSA test voice (one speaker, nine ~1.4 s phrases) concatenated to the asked
length. Those files contain exact-zero runs between words (up to 320 ms); a dropout benchmark
cannot tell those from planted dropouts, so every clean source gets a -90 dBFS white floor (seeded):
inaudible, far below any noise level we mix in, and it makes "digital silence" mean "corrupted".
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from avagent.bench import media

logger = logging.getLogger(__name__)

SR = 48_000
FLOOR_DBFS = -90.0

SPEECH_FILES = (
    "Front_Center.wav",
    "Front_Left.wav",
    "Front_Right.wav",
    "Rear_Center.wav",
    "Rear_Left.wav",
    "Rear_Right.wav",
    "Side_Left.wav",
    "Side_Right.wav",
)

# name -> (source, file, start_s). All are >= 9.5 s of real music, stereo.
MUSIC: dict[str, tuple[str, str, float]] = {
    "tabla": ("sonicpi", "loop_tabla.flac", 0.0),
    "guitar": ("sonicpi", "guit_em9.flac", 0.0),
    "game_music": ("lugaru", "Music3.ogg", 5.0),
    "garzul": ("sonicpi", "loop_garzul.flac", 0.0),  # 8 s loop, tiled
}

# Real noises: kind -> (source, file). Hiss is stationary, wind and ambience are not.
REAL_NOISES: dict[str, tuple[str, str]] = {
    "wind": ("lugaru", "Wind.ogg"),
    "hiss": ("sonicpi", "vinyl_hiss.flac"),
    "ambience": ("lugaru", "DesertAmbient.ogg"),
    "fire": ("lugaru", "Fire.ogg"),
    "applause": ("crowd", "applause.wav"),
    "rain": ("rain", "Rain_Loop.ogg"),
    "traffic": ("traffic", "city.ogg"),
    "engine": ("engine", "carEngine.ogg"),
}
SYNTHETIC_NOISES = ("white", "pink", "brown")
NOISE_KINDS = SYNTHETIC_NOISES + tuple(REAL_NOISES)


@dataclass(frozen=True)
class Clip:
    """A clean clip: ``y`` shaped ``(channels, n)`` at ``sr``."""

    name: str
    content: str  # "speech" or "music"
    y: np.ndarray
    sr: int

    @property
    def duration_s(self) -> float:
        return self.y.shape[-1] / self.sr


@functools.lru_cache(maxsize=64)
def _read(source: str, filename: str, sr: int) -> np.ndarray:
    p: Path = media.path(source, filename)
    data, file_sr = sf.read(str(p), dtype="float64", always_2d=True)  # (n, ch)
    if file_sr != sr:
        data = soxr.resample(data, file_sr, sr, quality="HQ")
    out = np.ascontiguousarray(data.T)
    out.setflags(write=False)
    return out


def load(source: str, filename: str, *, sr: int = SR) -> np.ndarray:
    """Read one cached media file as float64 ``(channels, n)`` at ``sr`` (a fresh copy)."""
    return _read(source, filename, sr).copy()


def _fit_channels(y: np.ndarray, channels: int) -> np.ndarray:
    if y.shape[0] == channels:
        return y
    if channels == 1:
        return y.mean(axis=0, keepdims=True)
    if y.shape[0] == 1:
        return np.repeat(y, channels, axis=0)
    return y[np.arange(channels) % y.shape[0]]  # fewer: the first ones; more (5.1): cycled


def _tile(y: np.ndarray, n: int, *, sr: int, start: int = 0, fade_ms: float = 20.0) -> np.ndarray:
    """``n`` samples of ``y`` from ``start``, looping with a short equal-power crossfade."""
    if start + n <= y.shape[-1]:
        return y[..., start : start + n].copy()
    fade = min(int(sr * fade_ms / 1000), y.shape[-1] // 4)
    t = np.linspace(0.0, np.pi / 2, fade)
    fade_in, fade_out = np.sin(t), np.cos(t)
    body = y[..., : y.shape[-1] - fade].copy()
    body[..., :fade] = y[..., :fade] * fade_in + y[..., -fade:] * fade_out
    reps = int(np.ceil((start + n) / body.shape[-1])) + 1
    return np.concatenate([body] * reps, axis=-1)[..., start : start + n]


def _floor(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    return rng.standard_normal(shape) * 10 ** (FLOOR_DBFS / 20)


def speech(*, duration_s: float = 9.0, seed: int = 0, channels: int = 1, sr: int = SR) -> Clip:
    """Real speech: the ALSA phrases in a seeded order, concatenated and cut to ``duration_s``.

    Examples
    --------
    >>> clip = speech(duration_s=9.0, seed=1)  # doctest: +SKIP
    >>> clip.y.shape
    (1, 432000)
    """
    rng = np.random.default_rng(seed)
    n = round(duration_s * sr)
    parts: list[np.ndarray] = []
    total = 0
    while total < n:
        for i in rng.permutation(len(SPEECH_FILES)):
            part = load("speech", SPEECH_FILES[i], sr=sr).mean(axis=0, keepdims=True)
            parts.append(part)
            total += part.shape[-1]
            if total >= n:
                break
    y = np.concatenate(parts, axis=-1)[..., :n]
    y = _fit_channels(y, channels) + _floor((channels, n), rng)
    return Clip(f"speech{seed}", "speech", y, sr)


def music(name: str, *, duration_s: float = 9.0, channels: int = 2, sr: int = SR) -> Clip:
    """A real music excerpt from :data:`MUSIC`, looped if the file is shorter than asked."""
    source, filename, start_s = MUSIC[name]
    y = load(source, filename, sr=sr)
    n = round(duration_s * sr)
    y = _fit_channels(_tile(y, n, sr=sr, start=int(start_s * sr)), channels)
    rng = np.random.default_rng(sum(map(ord, name)))
    return Clip(name, "music", y + _floor(y.shape, rng), sr)


def clips(content: str, count: int, *, duration_s: float = 9.0, sr: int = SR) -> list[Clip]:
    """The first ``count`` benchmark clips of ``content`` ("speech" or "music")."""
    if content == "speech":
        return [speech(duration_s=duration_s, seed=i, sr=sr) for i in range(count)]
    if content == "music":
        names = list(MUSIC)[:count]
        return [music(n, duration_s=duration_s, sr=sr) for n in names]
    raise ValueError(f"content={content!r} must be 'speech' or 'music'")


def _colored(n: int, channels: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise with power spectrum ~ 1/f**exponent (0 white, 1 pink, 2 brown)."""
    white = rng.standard_normal((channels, n))
    if exponent == 0:
        return white
    spec = np.fft.rfft(white, axis=-1)
    f = np.fft.rfftfreq(n)
    f[0] = f[1]
    spec *= f ** (-exponent / 2)
    out = np.fft.irfft(spec, n=n, axis=-1)
    return out - out.mean(axis=-1, keepdims=True)


def noise(kind: str, n: int, *, channels: int = 1, seed: int = 0, sr: int = SR) -> np.ndarray:
    """``n`` samples of noise ``kind`` (:data:`NOISE_KINDS`), unit RMS, ``(channels, n)``.

    Real noises start at a seeded offset inside their recording and loop if needed.
    """
    rng = np.random.default_rng(seed)
    if kind in SYNTHETIC_NOISES:
        y = _colored(n, channels, float(SYNTHETIC_NOISES.index(kind)), rng)
    elif kind in REAL_NOISES:
        source, filename = REAL_NOISES[kind]
        rec = load(source, filename, sr=sr)
        start = int(rng.integers(0, max(1, rec.shape[-1] - n))) if rec.shape[-1] > n else 0
        y = _fit_channels(_tile(rec, n, sr=sr, start=start), channels)
    else:
        raise ValueError(f"noise kind={kind!r}; valid kinds: {', '.join(NOISE_KINDS)}")
    rms = np.sqrt(np.mean(y**2))
    return y / rms if rms > 0 else y


def hum(
    n: int,
    *,
    sr: int = SR,
    fundamental_hz: float = 50.0,
    harmonics: int = 6,
    channels: int = 1,
    seed: int = 0,
) -> np.ndarray:
    """Mains hum: ``fundamental_hz`` and its harmonics (odd ones stronger, as from a ground loop
    through a rectifier), seeded phases, unit RMS, ``(channels, n)``."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / sr
    y = np.zeros(n)
    for k in range(1, harmonics + 1):
        amp = (1.0 if k % 2 else 0.5) / k**0.5
        y += amp * np.sin(2 * np.pi * k * fundamental_hz * t + rng.uniform(0, 2 * np.pi))
    y /= np.sqrt(np.mean(y**2))
    return np.repeat(y[None, :], channels, axis=0)
