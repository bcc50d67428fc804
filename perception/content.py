"""What a repair must keep of its input: a content print, and how a candidate differs from it.

A repair removes noise, hum and level faults; it does not remove the programme, move it in time
or change its pitch unless the picture asked for it (a sync or rate fault perception found).
:func:`content_print` keeps, for one clip, its mel power map (YAMNet's front end: 64 bands,
10 ms frames, :func:`avagent.perception.tags.log_mel`) and its long-term spectrum on a 10-cent
log-frequency grid, whitened so that an equaliser or a denoiser's tilt does not read as a shift.
:func:`compare` measures a candidate against its input's print, the candidate's level first
matched on the bins it kept best (the energy-weighted 90th percentile of the per-bin level
change: a denoiser keeps the content bins and lowers the noise bins, a volume change moves them
all):

- ``correlation``: of the two mel dB maps (floored 50 dB under the input's loudest bin), at
  the best whole-clip lag. 1 is the same content; a repair of a clean input keeps ~1, a Wiener
  filter over noisy music 0.7-1, a speech denoiser over music ~0.1-0.4 (it keeps the voice-like
  partials only). A clean copy of a noisy input correlates less with it the noisier it was.
- ``lag_ms``: the largest time shift, over the two halves of the clip, at which the candidate's
  map matches the input's (a shift moves both halves, a speed change moves the second further);
  None where a half no longer correlates by 0.3 (the content is gone: ``correlation`` says so).
- ``pitch_cents``: the shift of the long-term spectrum's fine structure (partials, formants)
  between input and candidate; 0 unless a shifted match beats the unshifted one clearly.
- ``lost``: the share of the input's programme energy, its cells 10 dB above their band's floor,
  that the candidate holds 6 dB lower (:func:`programme_lost`). Unlike ``correlation`` it does
  not weaken with the input's noise: noise sits at the floor.

Prints are measurements of a signal, too large for a report, so :class:`~.facts.AudioFacts`
carries them in memory only (never serialised); facts read back from JSON have none, and the
damage check that needs them is then skipped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import maximum_filter1d

FRAME_S = 0.01  # YAMNet's hop
KEEP_QUANTILE = 0.9  # the level change of the best-kept bins is the candidate's gain
FLOOR_DB = 50.0  # bins this far below the input's loudest carry nothing to lose
MAX_LAG_S = 1.0  # the largest shift looked for (offset faults are within +-0.8 s)
MIN_LAG_CORR = 0.3  # below this the candidate is no longer the input's content in time
CENTS_STEP = 10.0
F_LOW, F_HIGH = 100.0, 6400.0  # six octaves of partials and formants
WHITEN_CENTS = 100.0  # the long-term spectrum minus its average over +-1 semitone
MAX_CENTS = 100.0  # the largest pitch change looked for (PAL's is 73 cents)
PITCH_MARGIN = 0.05  # a shifted match must beat the unshifted one by this much correlation
SPEC_FFT = 8192  # 1.95 Hz bins at 16 kHz: 10 cents apart from ~340 Hz up
FLOOR_PERCENTILE = 20.0  # a band's floor: this percentile of its power over the clip
PROGRAMME_DB = 10.0  # cells this far above their band's floor are programme, not noise
LOST_DB = 6.0  # a programme cell the candidate holds this much lower is removed


@dataclass(frozen=True, eq=False)
class ContentPrint:
    power: np.ndarray  # (frames, 64) mel power, 10 ms frames
    spectrum_db: np.ndarray  # whitened long-term spectrum on the 10-cent grid


@dataclass(frozen=True)
class ContentChange:
    correlation: float  # of the dB maps at the best lag: 1 the same content, ~0 another
    lag_ms: float | None  # largest shift over the two halves; None: no longer correlated
    pitch_cents: float  # fine-structure shift of the long-term spectrum
    lost: float = 0.0  # share of the programme's energy (cells well above the floor) removed


def _grid() -> np.ndarray:
    n = round(1200.0 * float(np.log2(F_HIGH / F_LOW)) / CENTS_STEP) + 1
    return F_LOW * 2.0 ** (np.arange(n) * CENTS_STEP / 1200.0)


def _long_term_spectrum(y16: np.ndarray) -> np.ndarray:
    from avagent.perception.tags import SR

    x = np.asarray(y16, dtype=np.float32)
    if x.shape[-1] < SPEC_FFT:
        x = np.pad(x, (0, SPEC_FFT - x.shape[-1]))
    frames = np.lib.stride_tricks.sliding_window_view(x, SPEC_FFT)[:: SPEC_FFT // 2]
    power = (np.abs(np.fft.rfft(frames * np.hanning(SPEC_FFT).astype(np.float32), axis=-1)) ** 2
             ).mean(axis=0)
    freqs = np.fft.rfftfreq(SPEC_FFT, 1.0 / SR)
    level = 10.0 * np.log10(np.interp(_grid(), freqs, power) + power.max() * 1e-9 + 1e-20)
    k = int(WHITEN_CENTS / CENTS_STEP)
    kernel = np.ones(2 * k + 1) / (2 * k + 1)
    trend = np.convolve(np.pad(level, k, mode="edge"), kernel, mode="valid")
    return (level - trend).astype(np.float32)


def content_print(y16: np.ndarray) -> ContentPrint:
    """The print of 16 kHz mono ``y16``."""
    from avagent.perception.tags import log_mel

    power = np.exp(2.0 * log_mel(y16).astype(np.float64)).astype(np.float32)
    return ContentPrint(power=power, spectrum_db=_long_term_spectrum(y16))


def gain_db(before: np.ndarray, after: np.ndarray) -> float:
    """The candidate's level change (dB) on the bins it kept best: the energy-weighted
    :data:`KEEP_QUANTILE` of the per-bin change over the input's live bins."""
    n = min(len(before), len(after))
    pin, pout = before[:n].astype(np.float64), after[:n].astype(np.float64)
    top = float(pin.max()) if n else 0.0
    if top <= 0.0:
        return 0.0
    eps = top * 1e-6
    live = pin >= top * 10.0 ** (-FLOOR_DB / 10.0)
    w = pin[live]
    change = 10.0 * np.log10((pout[live] + eps) / (pin[live] + eps))
    order = np.argsort(change)
    cum = np.cumsum(w[order]) / w.sum()
    return float(change[order][min(len(order) - 1, int(np.searchsorted(cum, KEEP_QUANTILE)))])


def _lag_frames(a: np.ndarray, b: np.ndarray, max_lag: int) -> tuple[int, float]:
    """Lag (frames, > 0: ``b`` later) maximising the normalised correlation of two dB maps."""
    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    n = len(a) + len(b)
    size = 1 << int(np.ceil(np.log2(n)))
    xc = np.fft.irfft(np.conj(np.fft.rfft(a, size, axis=0)) * np.fft.rfft(b, size, axis=0),
                      size, axis=0).sum(axis=1)
    lags = np.r_[0:max_lag + 1, -max_lag:0]
    lag = int(lags[int(np.argmax(xc[lags % size]))])
    # normalised over the overlap at that lag: a[t] against b[t + lag]
    t0, t1 = max(0, -lag), min(len(a), len(b) - lag)
    if t1 <= t0:
        return lag, 0.0
    sa, sb = a[t0:t1], b[t0 + lag:t1 + lag]
    norm = float(np.sqrt((sa ** 2).sum() * (sb ** 2).sum()))
    return lag, float((sa * sb).sum() / norm) if norm > 0 else 0.0


def _db_map(power: np.ndarray, top: float) -> np.ndarray:
    return 10.0 * np.log10(np.maximum(power.astype(np.float64), top * 10.0 ** (-FLOOR_DB / 10.0)))


def timing(before: np.ndarray, after: np.ndarray) -> tuple[float, float | None]:
    """``(correlation, lag_ms)`` of mel power maps ``after`` against ``before``: the normalised
    correlation of their dB maps at the best whole-clip lag, and the largest shift (ms, > 0:
    ``after`` later) over the clip's halves, None where a half correlates below
    :data:`MIN_LAG_CORR` or the clip is too short to tell a shift from the content."""
    corr, lag_ms, _ = _timing(before, after)
    return corr, lag_ms


def _timing(before: np.ndarray, after: np.ndarray) -> tuple[float, float | None, int]:
    """:func:`timing` and the whole-clip lag in frames."""
    n = min(len(before), len(after))
    max_lag = int(MAX_LAG_S / FRAME_S)
    if n < 2:
        return 0.0, None, 0
    top = float(before.max()) or 1.0
    a, b = _db_map(before[:n], top), _db_map(after[:n], top)
    whole, corr = _lag_frames(a, b, min(max_lag, n - 1))
    if n < 4 * max_lag // 5:
        return corr, None, whole
    halves = [(0, n // 2), (n // 2, n)] if n >= 2 * max_lag else [(0, n)]
    lags: list[float] = []
    for lo, hi in halves:
        # the input's half against a longer stretch of the candidate: a shift moves content in
        # from outside the half
        blo, bhi = max(0, lo - max_lag), min(n, hi + max_lag)
        lag, c = _lag_frames(a[lo:hi], b[blo:bhi], max_lag + (lo - blo))
        if c < MIN_LAG_CORR:
            return corr, None, whole
        lags.append((lag - (lo - blo)) * FRAME_S * 1000.0)
    return corr, max(lags, key=abs), whole


def programme_lost(before: np.ndarray, after: np.ndarray, lag: int = 0, *,
                   bands: int = 0) -> float:
    """Share of the input's programme energy the candidate removed: over the cells of the
    input's mel power map that stand :data:`PROGRAMME_DB` above their band's floor (its
    :data:`FLOOR_PERCENTILE` over time) and within :data:`FLOOR_DB` of its loudest cell, the
    energy-weighted share that the level-matched candidate (at ``lag`` frames) holds more than
    :data:`LOST_DB` lower. Noise lives at the floor, so removing it loses nothing here however
    noisy the input; a denoiser that keeps only voice-like partials loses the music's cells.
    ``bands``: a cell also counts as kept by the candidate's cells this many mel bands either
    side (a rate correction moves every partial by its pitch change, 73 cents for PAL)."""
    i, j = max(0, -lag), max(0, lag)  # input frame t against candidate frame t + lag
    n = min(len(before) - i, len(after) - j)
    if n < 2:
        return 0.0
    a = before[i:i + n].astype(np.float64)
    b = after[j:j + n].astype(np.float64)
    if bands:
        b = maximum_filter1d(b, 2 * bands + 1, axis=1, mode="nearest")
    floor = np.percentile(a, FLOOR_PERCENTILE, axis=0)
    top = float(a.max())
    if top <= 0.0:
        return 0.0
    cells = (a >= floor * 10.0 ** (PROGRAMME_DB / 10.0)) & (a >= top * 10.0 ** (-FLOOR_DB / 10.0))
    w = a[cells]
    if w.sum() <= 0.0:
        return 0.0
    gone = b[cells] < w * 10.0 ** (-LOST_DB / 10.0)
    return float(w[gone].sum() / w.sum())


def pitch_cents(before: np.ndarray, after: np.ndarray) -> float:
    """Shift (cents, > 0: ``after`` higher) of the whitened long-term spectrum, 0 unless a
    shifted match beats the unshifted one by :data:`PITCH_MARGIN`."""
    k = int(MAX_CENTS / CENTS_STEP)
    a, b = before.astype(np.float64), after.astype(np.float64)
    core = slice(k, len(a) - k)
    ac = a[core] - a[core].mean()

    def corr(s: int) -> float:
        bs = b[k + s: len(b) - k + s]
        bs = bs - bs.mean()
        d = float(np.sqrt((ac ** 2).sum() * (bs ** 2).sum()))
        return float((ac * bs).sum() / d) if d > 0 else 0.0

    vals = np.array([corr(s) for s in range(-k, k + 1)])
    best = int(np.argmax(vals))
    if vals[best] < vals[k] + PITCH_MARGIN or best in (0, 2 * k):
        return 0.0
    # parabolic peak between grid steps
    y0, y1, y2 = vals[best - 1], vals[best], vals[best + 1]
    den = y0 - 2.0 * y1 + y2
    frac = 0.5 * (y0 - y2) / den if den < 0 else 0.0
    return float((best - k + frac) * CENTS_STEP)


def on_input_clock(power: np.ndarray, rate: float) -> np.ndarray:
    """A candidate's mel map played at ``1 / rate`` (a clock running ``rate`` fast undone)
    mapped back onto its input's timeline: input frame ``i`` is candidate frame ``i * rate``."""
    n = int(len(power) / rate)
    if n < 1 or abs(rate - 1.0) < 1e-6:
        return power
    src = np.arange(n) * rate
    lo = np.minimum(src.astype(np.int64), len(power) - 1)
    hi = np.minimum(lo + 1, len(power) - 1)
    w = (src - lo)[:, None].astype(np.float32)
    return (1.0 - w) * power[lo] + w * power[hi]


def compare(before: ContentPrint, after: ContentPrint, *, rate: float | None = None
            ) -> ContentChange:
    """How the candidate ``after`` differs from its input ``before`` (module docstring).
    ``rate``: the input's clock ran ``rate`` fast and the candidate undid it (a drift repair):
    its map is put back on the input's timeline first (:func:`on_input_clock`), so a right
    rate correction reads as the same content and only what it did besides shows."""
    power = on_input_clock(after.power, rate) if rate else after.power
    # the candidate at the input's level, so that a volume change moves nothing below
    matched = power * np.float32(10.0 ** (-gain_db(before.power, power) / 10.0))
    corr, lag, whole = _timing(before.power, matched)
    return ContentChange(correlation=corr, lag_ms=lag,
                         pitch_cents=pitch_cents(before.spectrum_db, after.spectrum_db),
                         lost=programme_lost(before.power, matched, whole,
                                             bands=1 if rate else 0))
