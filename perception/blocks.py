"""Long sound tracks measured window by window, and the robust summary of the windows.

A clip longer than :data:`LONG_S` is cut into windows of about :data:`WINDOW_S`; each window is
measured exactly like a short clip (:func:`avagent.perception.audio.analyze_window`) and the
facts are the windows' robust summary: the noise kind the (non-silent) windows vote for, the
median floor, SNR and music likelihood over them, hum only where most windows hear it. So a
recording reads the same whether it is 10 s or 2 h long, and memory holds one window at a time
(plus a few numbers per window). Loudness and true peak are measured over the whole stream with
carried filter state (:class:`LoudnessMeter`): the same numbers as the whole-clip measurement.

Windows are consecutive, ``WINDOW_S`` long; a last piece shorter than half a window joins the
one before it, so no window is shorter than ``WINDOW_S / 2`` or longer than ``1.5 * WINDOW_S``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator

import numpy as np
from scipy.signal import lfilter, lfilter_zi

from avagent.loudness import channel_weights, gate_blocks, k_filters
from avagent.perception.facts import AudioFacts, Dropout, NoiseKind
from avagent.perception.tags import merge_tags

WINDOW_S = 10.0
LONG_S = 1.5 * WINDOW_S  # clips up to this long are one window: measured whole


def windows(blocks: Iterable[np.ndarray], sr: int) -> Iterator[tuple[int, np.ndarray]]:
    """Re-cut ``(channels, n)`` blocks of any size into ``(offset, window)`` analysis windows."""
    w = round(WINDOW_S * sr)
    buf: list[np.ndarray] = []
    have = 0
    offset = 0
    held: np.ndarray | None = None  # a full window, kept until we know it is not the last
    for b in blocks:
        buf.append(b)
        have += b.shape[-1]
        while have >= w:
            cat = np.concatenate(buf, axis=-1) if len(buf) > 1 else buf[0]
            win, rest = cat[:, :w], cat[:, w:]
            buf, have = ([rest] if rest.shape[-1] else []), rest.shape[-1]
            if held is not None:
                yield offset, held
                offset += held.shape[-1]
            held = win
    tail = np.concatenate(buf, axis=-1) if buf else None
    if held is None:
        if tail is not None and tail.shape[-1]:
            yield offset, tail
        return
    if tail is not None and 0 < tail.shape[-1] < w // 2:
        yield offset, np.concatenate([held, tail], axis=-1)
        return
    yield offset, held
    if tail is not None and tail.shape[-1]:
        yield offset + held.shape[-1], tail


class LoudnessMeter:
    """BS.1770-4 integrated loudness of a stream: K-weighting with carried filter state, 100 ms
    step energies, 400 ms blocks with 75 % overlap, absolute and relative gates (the
    measurement :func:`avagent.loudness.loudness_lufs` makes on the whole clip)."""

    def __init__(self, sr: int, channels: int) -> None:
        self.sr = sr
        self.weights = channel_weights(channels)
        self.filters = k_filters(sr)
        self.zi = [
            np.repeat(lfilter_zi(b, a)[None, :] * 0.0, channels, axis=0) for b, a in self.filters
        ]
        self.step = round(0.1 * sr)
        self.rest = np.zeros((channels, 0))
        self.steps: list[np.ndarray] = []  # (channels,) sum of k² per complete 100 ms step
        self.total_sq = np.zeros(channels)
        self.n = 0

    def add(self, x: np.ndarray) -> None:
        k = np.asarray(x, dtype=np.float64)
        for i, (b, a) in enumerate(self.filters):
            k, self.zi[i] = lfilter(b, a, k, axis=-1, zi=self.zi[i])
        self.n += k.shape[-1]
        sq = k**2
        self.total_sq += sq.sum(axis=-1)
        sq = np.concatenate([self.rest, sq], axis=-1)
        m = sq.shape[-1] // self.step
        if m:
            self.steps.append(sq[:, : m * self.step].reshape(sq.shape[0], m, self.step).sum(-1).T)
        self.rest = sq[:, m * self.step :]

    def value(self) -> float | None:
        blk = round(0.4 * self.sr)
        if self.n < blk or blk != 4 * self.step:
            z = (self.total_sq / max(self.n, 1))[:, None]
        else:
            q = np.concatenate(self.steps, axis=0).T  # (channels, steps)
            c = np.concatenate([np.zeros((q.shape[0], 1)), np.cumsum(q, axis=-1)], axis=-1)
            z = (c[:, 4:] - c[:, :-4]) / blk
        return gate_blocks(self.weights @ z)


def summarize(
    parts: list[tuple[int, AudioFacts]],
    *,
    sr: int,
    channels: int,
    n: int,
    silent: bool,
    loudness: float | None,
    true_peak: float,
    clipping_fraction: float,
) -> AudioFacts:
    """The robust summary of windowed facts ``(offset samples, facts)`` (see the module)."""
    facts = [f for _, f in parts]
    dur = np.array([f.duration_s for f in facts])
    live = [i for i, f in enumerate(facts) if not f.silent] or list(range(len(facts)))
    votes: Counter[NoiseKind] = Counter()
    for i in live:
        votes[facts[i].noise_kind] += float(dur[i])
    # most time wins; a tie goes to the kind met first in the clip (deterministic)
    kind = max(votes, key=lambda k: (votes[k], -min(i for i in live if facts[i].noise_kind == k)))
    agree = [i for i in live if facts[i].noise_kind == kind]
    hum = [i for i in live if facts[i].hum_hz is not None]
    # a hum verdict always names its frequency; otherwise most windows must hear the hum
    has_hum = bool(hum) and (kind == NoiseKind.HUM or len(hum) * 2 > len(live))

    def med(values: list[float]) -> float:
        return float(np.median(values)) if values else 0.0

    dropouts = [
        Dropout(start_s=round(d.start_s + off / sr, 4), end_s=round(d.end_s + off / sr, 4),
                kind=d.kind)
        for off, f in parts
        for d in f.dropouts
    ]
    quality = next((f.speech_quality for f in facts if f.speech_quality), None)
    steady = [c for i in agree if (c := facts[i].floor_confidence) is not None]
    w_live = dur[live] / max(dur[live].sum(), 1e-9)
    speech = 0.0 if silent else float(np.sum(w_live * [facts[i].speech_fraction for i in live]))
    return AudioFacts(
        duration_s=round(n / sr, 4),
        sample_rate=int(sr),
        channels=int(channels),
        silent=bool(silent),
        loudness_lufs=None if loudness is None or silent else round(loudness, 2),
        true_peak_dbtp=round(true_peak, 2),
        clipping_fraction=round(clipping_fraction, 6),
        noise_floor_db=round(med([facts[i].noise_floor_db for i in live]), 2),
        snr_db=round(med([facts[i].snr_db for i in agree]), 2),
        noise_kind=kind,
        noise_confidence=round(med([facts[i].noise_confidence for i in agree]), 3),
        hum_hz=round(med([facts[i].hum_hz for i in hum]), 1) if has_hum else None,
        hum_db=round(med([facts[i].hum_db or 0.0 for i in hum]), 2) if has_hum else None,
        speech_fraction=round(min(max(speech, 0.0), 1.0), 3),
        music_likelihood=round(med([facts[i].music_likelihood for i in live]), 3),
        floor_confidence=round(med(steady), 3) if steady else None,
        speech_quality=quality,
        dropouts=sorted(dropouts, key=lambda d: d.start_s),
        tags=merge_tags([(off / sr, f.tags) for off, f in parts]),
    )
