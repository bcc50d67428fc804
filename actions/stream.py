"""A plan applied to a sound track that arrives in blocks: bounded memory at any length.

:func:`render` chains one stage per run of steps and yields the repaired track block by block:

* steps that keep the length and the timing (denoisers, hum, declip, volume with a fixed gain,
  fill) run on overlapping windows (:class:`Windowed`): each window is ``block_s`` of new sound
  with ``margin_s`` of context on both sides (filters settle, denoisers see the quiet frames
  around, a gap is filled from both sides); the window's middle is kept and neighbouring windows
  are cross-faded over ``fade_s`` at the seam;
* ``speed`` (:class:`SpeedStage`) runs with carried state: soxr's streaming resampler for the
  rate, a delay line plus a 64-tap fractional delay (``lfilter`` with its state) for the offset,
  and a counter for the length, so block boundaries leave no trace;
* ``pitch`` keeps the length and runs windowed like the first group, on longer windows
  (:data:`PITCH_BLOCK_S`): two phase-vocoder renderings of a seam's 50 ms do not share their
  phases, so a steady pure tone can dip there for 50 ms (by 2-6 dB in the tests, as the phase
  difference falls); longer windows make the seams rare (one a minute).

Parameters that need the whole clip are resolved before streaming (the agent does it on its
excerpts): ``volume(target_lufs=)`` must arrive as ``volume(gain_db=)``. Dropout spans are in the
stage's input time and each window gets the spans that fall inside it, in window time.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import soxr
from scipy.signal import lfilter

from avagent.actions.registry import apply_action
from avagent.actions.speed import _EDGE_FADE_MS, _FRAC_TAPS, _fade, _frac_kernel
from avagent.errors import ParameterError

BLOCK_S = 10.0  # new sound per window (an action's work space grows with its window)
MARGIN_S = 3.0  # context on each side (longer than the 2 s a dropout span may last)
FADE_S = 0.05  # cross-fade between neighbouring windows
PITCH_BLOCK_S = 60.0  # windows of a run that holds ``pitch`` (see the module)

Step = tuple[str, dict[str, Any]]


def time_map(steps: Iterable[Step]) -> tuple[float, float]:
    """``(a, b)`` with input time = ``a * output time + b`` (seconds) for the whole plan."""
    a, b = 1.0, 0.0
    for name, params in reversed(list(steps)):
        if name == "speed":
            rate = float(params.get("rate", 1.0))
            off = float(params.get("offset_ms", 0.0)) / 1000.0
            # this step's input time = rate * (its output time - off)
            a, b = rate * a, rate * (b - off)
    return a, b


def window_params(name: str, params: dict[str, Any], start_s: float, dur_s: float
                  ) -> dict[str, Any]:
    """``params`` for a window that starts ``start_s`` into the stage's input and lasts
    ``dur_s``: dropout spans moved to window time, those not wholly inside it left out."""
    if name == "volume" and params.get("target_lufs") is not None:
        raise ParameterError(
            "volume(target_lufs=) needs the whole clip's loudness: resolve it to gain_db first"
        )
    spans = params.get("spans_s")
    if name != "fill_blanks" or not spans:
        return params
    inside = [(round(a - start_s, 6), round(b - start_s, 6)) for a, b in spans
              if a >= start_s and b <= start_s + dur_s]
    if not inside:
        # nothing located here: an empty list would mean "search"; a span-free window is
        # left as it is by filling nothing
        return {**params, "spans_s": None, "_skip": True}
    return {**params, "spans_s": inside[:64]}


def apply_steps(steps: Iterable[Step], y: np.ndarray, *, sr: int, start_s: float = 0.0
                ) -> np.ndarray:
    """Apply length-keeping ``steps`` to one window that starts ``start_s`` into the stream."""
    dur = y.shape[-1] / sr
    for name, params in steps:
        p = window_params(name, params, start_s, dur)
        if p.pop("_skip", False):
            continue
        y = apply_action(name, y, sr=sr, **p)
    return y


class Windowed:
    """Length-keeping steps on overlapping windows (see the module)."""

    def __init__(self, steps: list[Step], sr: int, *, block_s: float = BLOCK_S,
                 margin_s: float = MARGIN_S, fade_s: float = FADE_S) -> None:
        self.steps, self.sr = steps, sr
        self.block = max(1, round(block_s * sr))
        self.margin = max(0, round(margin_s * sr))
        self.fade = min(round(fade_s * sr), self.margin)
        self.buf: np.ndarray | None = None  # input from absolute sample buf_start on
        self.buf_start = 0
        self.core = 0  # index of the next core block to emit
        self.tail: np.ndarray | None = None  # previous window's output past its core (fade)

    def _window(self, total: int | None) -> np.ndarray | None:
        assert self.buf is not None
        c0 = self.core * self.block
        end = self.buf_start + self.buf.shape[-1]
        if total is None and end < c0 + self.block + self.margin:
            return None  # not enough context yet
        if total is not None and c0 >= total:
            return None
        w0 = max(0, c0 - self.margin)
        w1 = min(end, c0 + self.block + self.margin)
        x = self.buf[:, w0 - self.buf_start : w1 - self.buf_start]
        y = np.asarray(apply_steps(self.steps, x, sr=self.sr, start_s=w0 / self.sr), np.float32)
        c1 = min(c0 + self.block, w1)
        out = y[:, c0 - w0 : c1 - w0].copy()
        if self.tail is not None and self.fade:
            k = min(self.fade, self.tail.shape[-1], out.shape[-1])
            w = (0.5 - 0.5 * np.cos(np.pi * (np.arange(k) + 0.5) / k)).astype(np.float32)
            out[:, :k] = self.tail[:, :k] * (1 - w) + out[:, :k] * w
        self.tail = y[:, c1 - w0 : c1 - w0 + self.fade].copy()
        self.core += 1
        keep = max(0, self.core * self.block - self.margin)  # the next window's start
        if keep > self.buf_start:
            self.buf = self.buf[:, keep - self.buf_start :]
            self.buf_start = keep
        return out

    def feed(self, x: np.ndarray) -> Iterator[np.ndarray]:
        self.buf = x if self.buf is None else np.concatenate([self.buf, x], axis=-1)
        while (out := self._window(None)) is not None:
            yield out

    def end(self) -> Iterator[np.ndarray]:
        if self.buf is None:
            return
        total = self.buf_start + self.buf.shape[-1]
        while (out := self._window(total)) is not None:
            yield out


class SpeedStage:
    """``speed(rate, offset_ms, target_duration_s)`` with carried state (see the module)."""

    def __init__(self, params: dict[str, Any], sr: int, channels: int) -> None:
        self.sr = sr
        self.rate = float(params.get("rate", 1.0))
        shift = float(params.get("offset_ms", 0.0)) * sr / 1000.0
        k = int(np.floor(shift))
        frac = shift - k
        if frac > 1 - 1e-3:
            k, frac = k + 1, 0.0
        self.k = k
        self.shifted = shift != 0.0
        self.fir = _frac_kernel(round(frac, 6)) if frac > 1e-3 else None
        self.zi = np.zeros((channels, _FRAC_TAPS - 1)) if self.fir is not None else None
        self.group = _FRAC_TAPS // 2 - 1  # the FIR's integer delay, dropped from the start
        self.resampler = (soxr.ResampleStream(sr * self.rate, sr, channels, dtype="float64",
                                              quality="HQ") if self.rate != 1.0 else None)
        self.n_in = 0
        self.n_rs = 0  # samples out of the resampler
        dur = params.get("target_duration_s")
        self.limit = None if dur is None else max(1, round(float(dur) * sr))
        self.fade = max(1, round(_EDGE_FADE_MS * sr / 1000.0))
        self.to_skip = self.group if self.fir is not None else 0
        self.to_skip += max(0, -k)  # an advance drops the start
        self.lead = max(0, k)  # a delay pads silence first
        self.faded_in = k >= 0  # an advance's new start is a cut: fade it in
        self.held = np.zeros((channels, 0))  # the last samples, kept back for the end's rules
        self.emitted = 0

    def _shifted(self, x: np.ndarray) -> np.ndarray:
        if self.fir is not None:
            x, self.zi = lfilter(self.fir, [1.0], x, axis=-1, zi=self.zi)
        if self.to_skip:
            cut = min(self.to_skip, x.shape[-1])
            x, self.to_skip = x[:, cut:], self.to_skip - cut
        if self.lead:
            x = np.concatenate([np.zeros((x.shape[0], self.lead)), x], axis=-1)
            self.lead = 0
        if not self.faded_in and x.shape[-1]:
            k = min(x.shape[-1], self.fade)
            x = x.copy()
            x[:, :k] *= 0.5 - 0.5 * np.cos(np.pi * (np.arange(k) + 0.5) / self.fade)
            self.faded_in = True
        return x

    def _emit(self, x: np.ndarray, hold: int) -> np.ndarray:
        """Append ``x`` to the held samples and release all but the last ``hold``."""
        h = np.concatenate([self.held, x], axis=-1)
        n = max(0, h.shape[-1] - hold)
        if self.limit is not None:  # keep a fade's worth back: a cut at the limit fades out
            n = max(0, min(n, self.limit - self.fade - self.emitted))
        out, self.held = h[:, :n], h[:, n:]
        self.emitted += n
        return out.astype(np.float32)

    def _hold(self) -> int:
        # an offset > 0 drops the last k samples at the end; the length fit fades its cut
        return max(0, self.k) + self.fade + (self.group if self.fir is not None else 0)

    def feed(self, x: np.ndarray) -> Iterator[np.ndarray]:
        x = np.asarray(x, np.float64)
        self.n_in += x.shape[-1]
        if self.resampler is not None:
            x = self.resampler.resample_chunk(np.ascontiguousarray(x.T)).T
            self.n_rs += x.shape[-1]
        out = self._emit(self._shifted(x), self._hold())
        if out.shape[-1]:
            yield out

    def end(self) -> Iterator[np.ndarray]:
        ch = self.held.shape[0]
        x = np.zeros((ch, 0))
        if self.resampler is not None:
            x = self.resampler.resample_chunk(np.zeros((0, ch)), last=True).T
            m = max(1, round(self.n_in / self.rate))  # the one-shot length round(n / rate)
            x = x[:, : max(0, m - self.n_rs)]
            if self.n_rs + x.shape[-1] < m:
                x = np.pad(x, ((0, 0), (0, m - self.n_rs - x.shape[-1])))
            n_mid = m
        else:
            n_mid = self.n_in
        if self.fir is not None:  # flush the FIR's delay with zeros
            x = np.concatenate([x, np.zeros((ch, self.group))], axis=-1)
        x = self._shifted(x)
        h = np.concatenate([self.held, x], axis=-1)
        # the shifted track keeps the resampled length n_mid (a delay's last k samples drop)
        keep = max(0, n_mid - self.emitted)
        h = h[:, :keep]  # a delay's last k samples drop ...
        if h.shape[-1] < keep:  # ... an advance pads silence at the end
            h = np.pad(h, ((0, 0), (0, keep - h.shape[-1])))
        elif self.shifted and self.k >= 0 and h.shape[-1]:
            _fade(h[:, ::-1], _EDGE_FADE_MS, self.sr)  # speed's own fade-out  # the dropped end was a cut
        if self.limit is not None:
            want = self.limit - self.emitted
            if h.shape[-1] > want:
                h = h[:, :want]
                _fade(h[:, ::-1], _EDGE_FADE_MS, self.sr)  # speed's own fade-out
            elif h.shape[-1] < want:
                h = np.pad(h, ((0, 0), (0, want - h.shape[-1])))
        self.held = np.zeros((ch, 0))
        self.emitted += h.shape[-1]
        if h.shape[-1]:
            yield h.astype(np.float32)


def stages(steps: list[Step], sr: int, channels: int, **window: float) -> list[Any]:
    """One stage per run of steps: :class:`SpeedStage` for ``speed``, :class:`Windowed` for
    each run of the others."""
    out: list[Any] = []
    run: list[Step] = []

    def close() -> None:
        if run:
            w = dict(window)
            if any(n == "pitch" for n, _ in run):
                w["block_s"] = max(float(w.get("block_s", BLOCK_S)), PITCH_BLOCK_S)
            out.append(Windowed(list(run), sr, **w))
            run.clear()

    for name, params in steps:
        if name == "speed":
            close()
            out.append(SpeedStage(params, sr, channels))
        else:
            run.append((name, dict(params)))
    close()
    return out


def render(steps: list[Step], blocks: Iterable[np.ndarray], *, sr: int, channels: int,
           **window: float) -> Iterator[np.ndarray]:
    """The plan ``steps`` applied to a track given as ``(channels, m)`` blocks, as blocks.

    Memory holds one window per stage; the output is the same length the one-shot actions
    give (``speed`` may change it)."""
    chain = stages(steps, sr, channels, **window)

    def through(i: int, xs: Iterable[np.ndarray], final: bool) -> Iterator[np.ndarray]:
        if i == len(chain):
            yield from xs
            return
        st = chain[i]
        for x in xs:
            yield from through(i + 1, st.feed(x), False)
        if final:
            yield from through(i + 1, st.end(), True)

    def source() -> Iterator[np.ndarray]:
        for b in blocks:
            yield np.asarray(b, np.float32).reshape(channels, -1)

    yield from through(0, source(), True)
