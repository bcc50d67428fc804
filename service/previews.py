"""Before/after previews for the web page, rendered by the worker when a job finishes.

Per side ("before": the job's input, any container FFmpeg reads; "after": the repaired audio)
one browser-friendly WAV and one spectrogram PNG, stored with the job's outputs under
``<output_prefix>/.avagent/previews/<job>/`` and named in the job's summary; the API only
serves those files (it never decodes or renders).

Bounded memory, whatever the duration: the audio is read in blocks (:func:`media.iter_audio`).

* The WAV is 16-bit PCM with at most two channels (a 5.1 input is folded to stereo) so every
  browser plays it, at the input's rate, and holds the first ``max_s`` seconds
  (``AVAGENT_PREVIEW_MAX_S``, 300 by default): a preview of a film is its beginning. A side
  whose samples go past full scale (a float output) is scaled down to fit, not wrapped.
* The spectrogram covers the whole duration with at most :data:`MAX_COLUMNS` time columns, one
  Hann window of :data:`N_FFT` samples per column: the window hop starts at ``N_FFT / 4`` and
  doubles (every other column dropped) whenever the columns would pass ``2 * MAX_COLUMNS``, so
  a long input is sampled, not averaged. It is drawn as an image of :data:`ROWS` log-spaced
  frequency bands (a band's mean power over its bins), with one absolute dBFS colour scale on
  both sides, so hum, noise and loudness changes are comparable.
"""

from __future__ import annotations

import logging
import math
import os
import uuid
from pathlib import Path
from typing import Any, Literal

import numpy as np

logger = logging.getLogger(__name__)

Side = Literal["before", "after"]
SIDES: tuple[Side, ...] = ("before", "after")

DB_RANGE = (-100.0, 0.0)  # colour scale, dBFS
MAX_COLUMNS = 1600  # time columns drawn at most
N_FFT = 2048
ROWS = 400  # log-spaced frequency rows drawn
BLOCK_S = 10.0  # decode block
PREVIEW_FOLDER = ".avagent/previews"  # under the job's output prefix (listings skip .avagent/)


def fold_channels(y: np.ndarray) -> np.ndarray:
    """``(channels, n)`` with at most two channels: more are folded into L/R by alternation
    (L, R, C, LFE, Ls, Rs → L = mean(L, C, Ls), R = mean(R, LFE, Rs)), keeping every channel heard."""
    y = np.atleast_2d(np.asarray(y, dtype=np.float32))
    if y.shape[0] <= 2:
        return y
    return np.stack([y[0::2].mean(axis=0), y[1::2].mean(axis=0)])


class Spectrogram:
    """A log-magnitude spectrogram built from blocks of mono samples in bounded memory (see the
    module docstring): :meth:`feed` the blocks in order, then :meth:`finish`."""

    def __init__(self, sr: int, *, n_fft: int = N_FFT, max_columns: int = MAX_COLUMNS) -> None:
        from scipy.signal import get_window

        self.sr, self.n_fft, self.max_columns = int(sr), int(n_fft), int(max_columns)
        self.window = get_window("hann", self.n_fft)  # periodic, as scipy.signal.stft uses
        # |rfft| of a full-scale sine under this window is sum(window) / 2: scale it to 1 (0 dBFS)
        self.scale = 2.0 / float(self.window.sum())
        self.hop = self.n_fft // 4
        self.next = 0  # absolute sample index where the next window starts
        self.buf = np.zeros(0)
        self.buf_start = 0  # absolute index of buf[0]
        self.total = 0
        self.columns: list[np.ndarray] = []
        self.starts: list[int] = []

    def feed(self, mono: np.ndarray) -> None:
        self.buf = np.concatenate([self.buf, np.asarray(mono, dtype=np.float64)])
        self.total += len(mono)
        while self.next + self.n_fft <= self.total:
            i = self.next - self.buf_start
            self._column(self.buf[i : i + self.n_fft], self.next)
        cut = min(max(0, self.next - self.buf_start), len(self.buf))
        if cut:
            self.buf = self.buf[cut:]
            self.buf_start += cut

    def _column(self, x: np.ndarray, start: int) -> None:
        mag = np.abs(np.fft.rfft(x * self.window)) * self.scale
        self.columns.append((20.0 * np.log10(np.maximum(mag, 1e-10))).astype(np.float32))
        self.starts.append(start)
        self.next = start + self.hop
        if len(self.columns) >= 2 * self.max_columns:
            # keep the columns at multiples of the doubled hop; the next one follows that grid
            self.columns, self.starts = self.columns[::2], self.starts[::2]
            self.hop *= 2
            self.next = self.starts[-1] + self.hop

    def finish(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(times_s, freqs_hz, db)``; ``db`` is ``(freqs, columns)``. The tail shorter than a
        window gets one zero-padded column (an input shorter than a window: its only one)."""
        if self.next < self.total or not self.columns:
            i = max(0, self.next - self.buf_start)
            tail = np.zeros(self.n_fft)
            part = self.buf[i : i + self.n_fft]
            tail[: len(part)] = part
            self._column(tail, self.next)
        step = max(1, math.ceil(len(self.columns) / self.max_columns))
        cols, starts = self.columns[::step], self.starts[::step]
        times = (np.asarray(starts, dtype=np.float64) + self.n_fft / 2) / self.sr
        freqs = np.fft.rfftfreq(self.n_fft, 1.0 / self.sr)
        return times, freqs, np.stack(cols, axis=1)


def log_rows(freqs: np.ndarray, db: np.ndarray, sr: int, rows: int = ROWS) -> np.ndarray:
    """``db`` (linear frequency bins × columns) on ``rows`` log-spaced bands from 20 Hz to
    ``sr / 2``: the mean power of the bins inside a band, or the nearest bin where a band is
    narrower than one (low frequencies). ``(rows, columns)``."""
    edges = np.geomspace(20.0, sr / 2, rows + 1)
    lo, hi = np.searchsorted(freqs, edges[:-1]), np.searchsorted(freqs, edges[1:])
    centres = np.sqrt(edges[:-1] * edges[1:])
    out = np.empty((rows, db.shape[1]), dtype=np.float32)
    for r in range(rows):
        if hi[r] > lo[r]:
            power = np.mean(10.0 ** (db[lo[r] : hi[r]].astype(np.float64) / 10.0), axis=0)
            out[r] = 10.0 * np.log10(np.maximum(power, 1e-20))
        else:
            out[r] = db[int(np.argmin(np.abs(freqs - centres[r])))]
    return out


def draw_png(freqs: np.ndarray, db: np.ndarray, sr: int, duration_s: float, path: Path, *,
             title: str) -> Path:
    """Draw a spectrogram from :meth:`Spectrogram.finish` as an image (log frequency axis,
    dBFS colours): a few hundred kB of pixels whatever the duration (a mesh of every cell took
    ~140 MB to draw for 1300 columns)."""
    import matplotlib

    matplotlib.use("Agg")  # no display; safe in threads since we never use pyplot's state
    from matplotlib.figure import Figure

    image = log_rows(freqs, db, sr)
    fig = Figure(figsize=(9, 3.2), dpi=100)
    ax = fig.add_subplot()
    top = np.log10(sr / 2)
    im = ax.imshow(image, origin="lower", aspect="auto", interpolation="nearest", cmap="magma",
                   vmin=DB_RANGE[0], vmax=DB_RANGE[1],
                   extent=(0.0, max(duration_s, 1e-3), np.log10(20.0), top))
    ticks = [f for f in (20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000) if f <= sr / 2]
    ax.set_yticks([np.log10(f) for f in ticks],
                  [f"{f // 1000}k" if f >= 1000 else str(f) for f in ticks])
    ax.set_xlabel("time (s)")
    ax.set_ylabel("frequency (Hz)")
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, label="dBFS", pad=0.01)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.part")
    try:
        fig.savefig(tmp, format="png")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def render(source: Path, folder: Path, side: Side, *, max_s: float) -> dict[str, Any]:
    """Decode ``source`` once, in blocks; write ``folder/<side>.wav`` (its first ``max_s``
    seconds) and ``folder/<side>.png`` (all of it). Returns what was drawn and kept."""
    import soundfile as sf

    from avagent.service import media

    if not max_s > 0:
        raise ValueError(f"max_s={max_s} must be > 0")
    folder.mkdir(parents=True, exist_ok=True)
    wav, png = folder / f"{side}.wav", folder / f"{side}.png"
    raw = folder / f".{side}.{uuid.uuid4().hex}.f32.wav"  # float first: the peak is known last
    spec: Spectrogram | None = None
    out: Any = None
    sr, channels, total, kept, peak = 0, 0, 0, 0, 0.0
    try:
        for block, rate in media.iter_audio(source, block_s=BLOCK_S):
            if spec is None:
                sr, channels = int(rate), int(block.shape[0])
                spec = Spectrogram(sr)
                limit = round(max_s * sr)
            spec.feed(block.mean(axis=0))
            total += block.shape[1]
            take = min(block.shape[1], limit - kept)
            if take > 0:
                part = fold_channels(block[:, :take])
                if out is None:
                    out = sf.SoundFile(str(raw), "w", samplerate=sr, channels=part.shape[0],
                                       subtype="FLOAT", format="WAV")
                out.write(part.T)
                peak = max(peak, float(np.max(np.abs(part))) if part.size else 0.0)
                kept += take
        if out is None or spec is None:
            raise ValueError(f"{source.name}: no audio decoded")
        out.close()
        out = None
        gain = 1.0 / peak if peak > 1.0 else 1.0  # past full scale would wrap in 16-bit PCM
        tmp = wav.with_name(f".{wav.name}.{uuid.uuid4().hex}.part")
        try:
            with sf.SoundFile(str(raw)) as src, sf.SoundFile(
                str(tmp), "w", samplerate=sr, channels=src.channels, subtype="PCM_16", format="WAV"
            ) as dst:
                for chunk in src.blocks(blocksize=round(BLOCK_S * sr), dtype="float32"):
                    dst.write(np.clip(chunk * gain, -1.0, 1.0))
            os.replace(tmp, wav)
        finally:
            tmp.unlink(missing_ok=True)
        dur = total / sr
        label = "before (input)" if side == "before" else "after (repaired)"
        shown = "" if kept >= total else f"; the preview plays the first {kept / sr:.0f} s"
        _, freqs, db = spec.finish()
        draw_png(freqs, db, sr, dur, png,
                 title=f"{label}: {dur:.1f} s, {channels} ch, {sr} Hz{shown}")
    finally:
        if out is not None:
            out.close()
        raw.unlink(missing_ok=True)
    return {"duration_s": round(dur, 3), "preview_s": round(kept / sr, 3), "sample_rate": sr,
            "channels": channels, "columns": int(db.shape[1]), "scaled": gain < 1.0}
