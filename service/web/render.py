"""Before/after previews for the web page: a browser-friendly WAV and a spectrogram PNG per side,
rendered once per job and side, cached under ``cache_dir/web/<job>/`` (local to each API replica;
the folder can be wiped at any time).

"before" is the job's input (any container FFmpeg reads, decoded with :mod:`avagent.service.media`);
"after" is the repaired WAV. Previews are 16-bit PCM with at most two channels (a 5.1 input is
folded to stereo) so every browser plays them; the spectrogram uses one absolute dBFS colour
scale and a log frequency axis on both sides, so hum, noise and loudness changes are comparable.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np

logger = logging.getLogger(__name__)

Side = Literal["before", "after"]

DB_RANGE = (-100.0, 0.0)  # colour scale, dBFS
MAX_COLUMNS = 1600  # time columns drawn; the hop grows for long clips
N_FFT = 2048

_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def _lock(key: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(key, threading.Lock())


def fold_channels(y: np.ndarray) -> np.ndarray:
    """``(channels, n)`` with at most two channels: more are folded into L/R by alternation
    (L, R, C, LFE, Ls, Rs → L = mean(L, C, Ls), R = mean(R, LFE, Rs)), keeping every channel heard."""
    y = np.atleast_2d(np.asarray(y, dtype=np.float32))
    if y.shape[0] <= 2:
        return y
    return np.stack([y[0::2].mean(axis=0), y[1::2].mean(axis=0)])


def spectrogram_png(y: np.ndarray, sr: int, path: Path, *, title: str) -> Path:
    """Draw the mono mix of ``y`` (shaped ``(..., n)``) as a log-frequency spectrogram."""
    import matplotlib

    matplotlib.use("Agg")  # no display; safe in threads since we never use pyplot's state
    from matplotlib.figure import Figure
    from scipy import signal

    mono = np.atleast_2d(y).mean(axis=0).astype(np.float64)
    n = mono.shape[-1]
    nperseg = min(N_FFT, max(64, n))
    hop = max(nperseg // 4, int(np.ceil(n / MAX_COLUMNS)))
    noverlap = max(0, nperseg - hop)
    f, t, z = signal.stft(mono, fs=sr, nperseg=nperseg, noverlap=noverlap, boundary=None,
                          padded=True)
    # |STFT| of a full-scale sine reaches ~0.5 with scipy's scaling (window-normalised): +6 dB.
    db = 20 * np.log10(np.maximum(np.abs(z) * 2.0, 1e-10))
    keep = f >= 20.0
    fig = Figure(figsize=(9, 3.2), dpi=100)
    ax = fig.add_subplot()
    mesh = ax.pcolormesh(t, f[keep], db[keep], shading="auto", cmap="magma",
                         vmin=DB_RANGE[0], vmax=DB_RANGE[1], rasterized=True)
    ax.set_yscale("log")
    ax.set_ylim(20, sr / 2)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("frequency (Hz)")
    ax.set_title(title, fontsize=10)
    fig.colorbar(mesh, ax=ax, label="dBFS", pad=0.01)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.part")
    try:
        fig.savefig(tmp, format="png")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def render(source: Path, folder: Path, side: Side, *, max_duration_s: float | None = None) -> None:
    """Decode ``source`` once; write ``folder/<side>.wav`` and ``folder/<side>.png``."""
    from avagent.service import media

    y, sr = media.load_audio(source, max_duration_s=max_duration_s)
    folder.mkdir(parents=True, exist_ok=True)
    y2 = fold_channels(y)
    peak = float(np.max(np.abs(y2))) if y2.size else 0.0
    if peak > 1.0:  # a float output above full scale would wrap in 16-bit PCM
        y2 = y2 / peak
    media.write_audio(folder / f"{side}.wav", y2, sr, subtype="PCM_16")
    dur = y.shape[-1] / sr
    label = "before (input)" if side == "before" else "after (repaired)"
    spectrogram_png(y, sr, folder / f"{side}.png",
                    title=f"{label}: {dur:.1f} s, {np.atleast_2d(y).shape[0]} ch, {sr} Hz")


def ensure(folder: Path, side: Side, fetch: Callable[[Path], object], *, suffix: str = "",
           max_duration_s: float | None = None) -> tuple[Path, Path]:
    """``(wav, png)`` for ``side``, rendering them on first use. ``fetch(local)`` copies the
    side's source file to ``local``. One render per job and side at a time in this process."""
    wav, png = folder / f"{side}.wav", folder / f"{side}.png"
    if wav.exists() and png.exists():
        return wav, png
    with _lock(f"{folder}:{side}"):
        if wav.exists() and png.exists():
            return wav, png
        folder.mkdir(parents=True, exist_ok=True)
        local = folder / f".{side}-source-{uuid.uuid4().hex}{suffix}"
        try:
            fetch(local)
            render(local, folder, side, max_duration_s=max_duration_s)
        finally:
            local.unlink(missing_ok=True)
        logger.info("web: rendered %s previews in %s", side, folder)
    return wav, png
