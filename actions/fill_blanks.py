"""Fill blanks: find dropouts inside sound and fill them from the surrounding signal.

Two kinds of dropout are found on the channel-summed magnitude (a dropout hits every channel):

* ``digital_silence``: a run of samples with ``|y| <= 1e-6`` between ``min_gap_ms`` and
  ``max_gap_ms`` long, with sound on both sides that stops and restarts abruptly;
* ``gap``: a hole at least ``drop_db`` below the level on both sides, entered and left within a
  few ms (a lost packet, a damaged tape, an attenuated block).

Silence at the start or end, silences longer than ``max_gap_ms`` and pauses that fade out or in
over tens of ms are genuine and left alone, so a clean clip comes back bit-identical.

Filling is similarity-based (as in packet-loss concealment, cf. WSOLA / G.711 Appendix I): the
last 10 ms before the gap are matched against the past to find the lag at which the signal best
repeats itself (a multiple of the pitch period for voiced sound and music, at least as long as
the gap when enough context exists, so no short loop is repeated); the samples that followed
that match continue the signal forward. The same is done backward from the right edge, and the
two continuations are cross-faded across the gap with a raised-cosine whose weights account for
their correlation, so the level does not dip. Short cross-fades at both edges join the copies to
the real signal without a click. Every channel uses the lags found on the channel sum, so the
stereo image is kept.
"""

from __future__ import annotations

import logging
from typing import Self

import numpy as np
from pydantic import Field, model_validator
from scipy.linalg import solve_toeplitz
from scipy.signal import correlate

from avagent.actions.base import ActionParams, parse_params
from avagent.audio import validate_audio
from avagent.dropouts import Kind, find_dropouts

logger = logging.getLogger(__name__)


_TEMPLATE_MS = 10.0  # what is matched against the past to find the lag
_MIN_LAG_MS = 2.5  # shortest period searched (400 Hz)
_SEARCH_MS = 40.0  # lags searched beyond the shortest allowed one (periods down to 25 Hz)
_JOIN_MS = 2.0  # cross-fade joining a copy to the real signal at the gap's edges
_LSAR_MAX_MS = 40.0  # gaps up to this long are interpolated by an AR model ...
_FILL_TAU_S = 0.01  # a copied fill keeps its resemblance to the lost sound for about this long
_FILL_FLOOR = 0.2  # ... and is kept at this gain in the middle of a long gap (when untested)
_GAINS = np.linspace(0.1, 1.0, 10)  # mid-gap gains a fill is calibrated over on its context
_TAUS_S = (0.01, 0.003, 0.001)  # ... and edge time constants (1 at the edge: no click)
_GAIN_MIN = float(_GAINS[0])  # a fill never falls below this: the gap is not left silent
_LSAR_ORDER_MS = 21.0  # ... of this order (1024 at 48 kHz: spans voice pitch periods)
_LSAR_MAX_GAIN = 2.0  # ... unless its RMS is over 6 dB above the louder side's (unstable)
_SNAP_MS = 1.0  # a given span grows over digital silence this far at each edge


class FillBlanksParams(ActionParams):
    """Parameters of :func:`fill_blanks`."""

    min_gap_ms: float = Field(10.0, ge=1.0, le=1000.0, description="shortest dropout to fill, ms")
    max_gap_ms: float = Field(
        500.0, ge=1.0, le=2000.0, description="longest dropout to fill; longer silences are kept"
    )
    drop_db: float = Field(
        40.0, ge=20.0, le=100.0, description="how far below both sides a hole must be, dB"
    )
    spans_s: list[tuple[float, float]] | None = Field(
        None,
        max_length=64,
        description="dropouts located by perception as [start_s, end_s]; filled as given "
        "instead of searching (each at most 2 s)",
    )

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.min_gap_ms > self.max_gap_ms:
            raise ValueError(
                f"min_gap_ms={self.min_gap_ms} must not exceed max_gap_ms={self.max_gap_ms}"
            )
        for a, b in self.spans_s or []:
            if not (0.0 <= a < b and b - a <= 2.0):
                raise ValueError(f"spans_s item [{a}, {b}] must satisfy 0 <= start < end, <= 2 s")
        return self


def fill_blanks(
    y: np.ndarray,
    *,
    sr: int,
    min_gap_ms: float = 10.0,
    max_gap_ms: float = 500.0,
    drop_db: float = 40.0,
    spans_s: list[tuple[float, float]] | None = None,
) -> np.ndarray:
    """Find dropouts in ``y`` (see :func:`find_dropouts`) and fill them from context.

    When ``spans_s`` is given (dropouts already located, e.g. by perception, which also finds
    holes that a lossy codec filled with faint noise), exactly those spans are filled and no
    search is made.

    Parameters
    ----------
    y : np.ndarray, shape (..., n)
        Audio. ``(channels, n)`` is one clip (dropouts found on the channel sum, every channel
        filled); further leading axes are independent clips.
    sr : int
        Sample rate in Hz.
    min_gap_ms, max_gap_ms : float
        Dropout lengths to treat, in ms (10 to 500 by default).
    drop_db : float
        A non-silent hole counts when it is at least this many dB below both sides.
    spans_s : list of (start_s, end_s), optional
        Dropouts to fill, in seconds; spans past the end are clipped, overlaps merged.

    Returns
    -------
    np.ndarray
        Same shape and dtype; bit-identical to ``y`` when no dropout is found.

    Examples
    --------
    >>> t = np.arange(48000) / 48000
    >>> y = np.sin(2 * np.pi * 220 * t)
    >>> y[20000:21000] = 0.0  # a 21 ms dropout
    >>> z = fill_blanks(y, sr=48000)
    >>> bool(np.abs(z[20000:21000]).max() > 0.5), find_dropouts(z, sr=48000)
    (True, [])
    """
    p = parse_params(
        FillBlanksParams,
        "fill_blanks",
        {"min_gap_ms": min_gap_ms, "max_gap_ms": max_gap_ms, "drop_db": drop_db,
         "spans_s": spans_s},
    )
    y = validate_audio(y, sr=sr)
    n = y.shape[-1]
    clips = y[None, None, :] if y.ndim == 1 else y.reshape(-1, y.shape[-2], n)
    given = _given_spans(p.spans_s, sr, n) if p.spans_s is not None else None
    out = None
    for i, clip in enumerate(clips):
        found = _snapped(clip, given, sr) if given is not None else find_dropouts(
            clip, sr=sr, min_gap_ms=p.min_gap_ms, max_gap_ms=p.max_gap_ms, drop_db=p.drop_db
        )
        if not found:
            continue
        if out is None:
            out = np.array(clips, dtype=np.float64)
        logger.info(
            "action=fill_blanks: filling %d dropout(s): %s",
            len(found),
            ", ".join(f"{k} {s / sr:.3f}-{e / sr:.3f}s" for s, e, k in found),
        )
        out[i] = _fill(out[i], sr, [(s, e) for s, e, _ in found])
    if out is None:
        return y.copy()
    return out.reshape(y.shape).astype(y.dtype, copy=False)


# --- detection -------------------------------------------------------------------------------


def _given_spans(
    spans_s: list[tuple[float, float]], sr: int, n: int
) -> list[tuple[int, int, Kind]]:
    """Sample spans from seconds: clipped to the clip, sorted, overlaps merged, edges kept."""
    spans = sorted((max(1, round(a * sr)), min(n - 1, round(b * sr))) for a, b in spans_s)
    merged: list[list[int]] = []
    for s, e in spans:
        if e <= s:
            continue
        if merged and s <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    return [(s, e, "gap") for s, e in merged]


def _snapped(
    clip: np.ndarray, spans: list[tuple[int, int, Kind]], sr: int
) -> list[tuple[int, int, Kind]]:
    """Given spans grown over the digital silence at their edges (at most ``_SNAP_MS``): spans
    given in rounded seconds (a report's four decimals) miss a sample or two of the hole, and a
    zero left beside a fill reads as known sound to it (an AR interpolation pinned to zero
    there rang 20 dB over the music around it)."""
    silent = np.abs(clip).sum(axis=0) <= 1e-6
    reach = max(1, round(_SNAP_MS * sr / 1000.0))
    out = []
    for s, e, k in spans:
        lo, hi = max(1, s - reach), min(silent.size - 1, e + reach)
        while s > lo and silent[s - 1]:
            s -= 1
        while e < hi and silent[e]:
            e += 1
        out.append((s, e, k))
    return out


# --- filling ---------------------------------------------------------------------------------


def _fill(x: np.ndarray, sr: int, gaps: list[tuple[int, int]]) -> np.ndarray:
    """Fill ``gaps`` in ``x (channels, n)`` in place, left to right; returns ``x``.

    Each fill is weighted by how well the same fill predicts the context (:func:`_calibrated`):
    a span of the gap's length just before and just after it is blanked, filled the same way
    and compared with what was there. The gain in the middle of the gap (1 at its edges) is
    the one that brought those test fills closest to the real sound, at least
    :data:`_GAIN_MIN`: a fill as confident as the context is predictable, never silence.
    """
    n = x.shape[-1]
    taken = np.zeros(n, dtype=bool)
    for s, e in gaps:
        taken[s:e] = True
    for i, (s, e) in enumerate(gaps):
        # earlier gaps are already filled, so everything on the left is usable
        right_lim = gaps[i + 1][0] if i + 1 < len(gaps) else n
        est = _estimate(x, sr, s, e, 0, right_lim)
        if est is None:
            logger.warning("action=fill_blanks: no context around %d-%d; left as is", s, e)
            continue
        fill, joins, floor = est
        taper = _calibrated(x, sr, s, e, right_lim, taken) or (floor, _FILL_TAU_S)
        for (a, b), seg in joins:
            x[:, a:b] = seg
        x[:, s:e] = fill * _taper(e - s, sr, *taper)
    return x


def _estimate(
    x: np.ndarray, sr: int, s: int, e: int, left_lim: int, right_lim: int
) -> tuple[np.ndarray, list[tuple[tuple[int, int], np.ndarray]], float] | None:
    """The untapered fill of ``x[:, s:e]`` from the context in ``[left_lim, right_lim)``, the
    joins to write just outside the gap (``((a, b), samples)``), and the mid-gap gain used when
    the fill cannot be tested (1 for the AR interpolation, the copies' agreement otherwise).
    None without context. ``x`` is not changed."""
    ms = sr / 1000.0
    tpl, min_lag, search, join = (
        round(_TEMPLATE_MS * ms),
        round(_MIN_LAG_MS * ms),
        round(_SEARCH_MS * ms),
        round(_JOIN_MS * ms),
    )
    g = e - s
    if g <= round(_LSAR_MAX_MS * ms):
        order = min(round(_LSAR_ORDER_MS * ms), (s - left_lim) // 3, (right_lim - e) // 3)
        if order >= 16:
            fill = np.stack([_lsar(x[ch], s, e, order, left_lim, right_lim)
                             for ch in range(x.shape[0])])
            sides = (x[:, max(left_lim, s - 3 * order) : s], x[:, e : min(right_lim, e + 3 * order)])
            louder = max(float(np.sqrt(np.mean(c**2))) for c in sides)
            if float(np.sqrt(np.mean(fill**2))) <= _LSAR_MAX_GAIN * louder:
                return fill, [], 1.0
            # an interpolation louder than the sound around it has gone unstable: copy instead
            logger.info("action=fill_blanks: AR fill of %d-%d louder than its context; copying",
                        s, e)
    mono = x.sum(axis=0)
    fwd = _lag(mono, s, g, tpl, min_lag, search, join, left_lim, right_lim, forward=True)
    bwd = _lag(mono, e, g, tpl, min_lag, search, join, left_lim, right_lim, forward=False)
    if fwd is None and bwd is None:
        return None
    f = _continue(x, s, g, fwd, join, forward=True) if fwd is not None else None
    b = _continue(x, e, g, bwd, join, forward=False) if bwd is not None else None
    joins = []
    # Join the copies to the real signal just outside the gap (no click).
    if f is not None:
        r = _ramp(join)
        joins.append(((s - join, s), x[:, s - join : s] * (1 - r) + f[:, :join] * r))
        f = f[:, join:]
    if b is not None:
        r = _ramp(join)
        joins.append(((e, e + join), b[:, g:] * (1 - r) + x[:, e : e + join] * r))
        b = b[:, :g]
    if f is None or b is None:
        return (b if f is None else f), joins, _FILL_FLOOR
    rho = _correlation(f, b)
    return _crossfade(f, b), joins, _FILL_FLOOR + (1.0 - _FILL_FLOOR) * rho


def _calibrated(
    x: np.ndarray, sr: int, s: int, e: int, right_lim: int, taken: np.ndarray
) -> tuple[float, float] | None:
    """The taper (mid-gap gain of :data:`_GAINS`, edge time constant of :data:`_TAUS_S`) that
    brings fills of test spans beside the gap closest to what those spans hold; None when
    neither side has room for a test."""
    g = e - s
    ms = sr / 1000.0
    # context a fill reads on the far side of its span: the AR fit's or the copies' search
    reach = max(3 * round(_LSAR_ORDER_MS * ms),
                g + round((_TEMPLATE_MS + _JOIN_MS + _SEARCH_MS) * ms))
    tests = [(s - reach - g, s - reach, 0, s), (e + reach, e + reach + g, e, right_lim)]
    d = np.minimum(np.arange(g), np.arange(g)[::-1]) / sr
    shapes = [(gain, tau) for tau in _TAUS_S for gain in _GAINS]
    err = np.zeros(len(shapes))
    tested = False
    for a, b, lo, hi in tests:
        if a - reach < lo or b + reach > hi or taken[max(0, a - reach) : b + reach].any():
            continue
        truth = x[:, a:b]
        if not np.any(truth):
            continue
        blank = x.copy()
        blank[:, a:b] = 0.0
        est = _estimate(blank, sr, a, b, lo, hi)
        if est is None:
            continue
        fill = est[0]
        for k, (gain, tau) in enumerate(shapes):
            err[k] += float(np.sum((fill * (gain + (1.0 - gain) * np.exp(-d / tau)) - truth) ** 2))
        tested = True
    return shapes[int(np.argmin(err))] if tested else None


def _correlation(f: np.ndarray, b: np.ndarray) -> float:
    fm, bm = f.sum(axis=0), b.sum(axis=0)
    denom = np.sqrt(np.dot(fm, fm) * np.dot(bm, bm))
    return float(np.clip(np.dot(fm, bm) / denom, 0.0, 1.0)) if denom > 0 else 0.0


def _taper(g: int, sr: int, floor: float, tau_s: float = _FILL_TAU_S) -> np.ndarray:
    """Gain over a fill of ``g`` samples: 1 at the edges, falling to ``floor`` in the middle.

    A fill from the context resembles what was lost near the edges and less so further in; its
    error against the lost signal is lowest when it is weighted by that resemblance (the MMSE
    weight of an estimate is its correlation with the target). Without the taper a long
    speech fill had twice the error energy of silence. ``floor`` is measured on the context
    (:func:`_calibrated`) or, untested, the copies' agreement (sustained music: towards 1).
    """
    d = np.minimum(np.arange(g), np.arange(g)[::-1]) / sr
    return floor + (1.0 - floor) * np.exp(-d / tau_s)


def _lsar(x: np.ndarray, s: int, e: int, p: int, left_lim: int, right_lim: int) -> np.ndarray:
    """Least-squares AR interpolation (Janssen et al. 1986) of ``x[s:e]``, one channel.

    An AR(p) model is fitted on up to ``3p`` samples each side (autocorrelation method); the
    missing samples are those that minimise the model's prediction error over the gap and the
    ``p`` samples after it. The normal equations are Toeplitz (the autocorrelation of the AR
    coefficients), solved by Levinson recursion in O(gap^2).
    """
    g = e - s
    ctx = 3 * p
    r = np.zeros(p + 1)
    for seg in (x[max(left_lim, s - ctx) : s], x[e : min(right_lim, e + ctx)]):
        if seg.shape[0] > p:
            seg = seg * np.hanning(seg.shape[0])
            r += correlate(seg, seg, mode="full", method="fft")[seg.shape[0] - 1 :][: p + 1]
    if r[0] <= 0:
        return np.zeros(g)
    r[0] *= 1.0 + 1e-6  # white-noise correction keeps the system well conditioned
    a = np.concatenate([[1.0], solve_toeplitz(r[:p], -r[1 : p + 1])])
    ra = np.correlate(a, a, mode="full")[p:]  # lags 0..p
    col = np.zeros(g)
    col[: min(g, p + 1)] = ra[: min(g, p + 1)]
    known = x[s - p : e + p].copy()
    known[p : p + g] = 0.0
    err0 = np.convolve(known, a)[p : p + g + p]  # prediction error with the gap at zero
    rhs = -np.correlate(err0, a, mode="valid")[:g]
    return solve_toeplitz(col, rhs)


def _lag(
    mono: np.ndarray,
    edge: int,
    g: int,
    tpl: int,
    min_lag: int,
    search: int,
    join: int,
    left_lim: int,
    right_lim: int,
    *,
    forward: bool,
) -> int | None:
    """Lag at which the signal next to ``edge`` best repeats itself (None without context).

    Forward: the template ``mono[edge - tpl : edge]`` is matched at ``edge - lag``; the copy
    then reads ``mono[edge - join - lag : edge - lag + g]``, which must lie in real signal.
    Backward mirrors this to the right of ``edge``.
    """
    if not forward:
        mono = mono[::-1]
        n = mono.shape[0]
        edge, left_lim = n - edge, n - right_lim
    avail = edge - left_lim - tpl - join  # room for lag (template must stay in the context)
    if avail < min_lag:
        return None
    lag_lo = min(max(min_lag, g), avail)  # copy real samples, not a loop, when possible
    if lag_lo < g:
        lag_lo = min_lag  # not enough history: repeat a period instead
    lag_hi = min(lag_lo + search, avail)
    template = mono[edge - tpl : edge]
    seg = mono[edge - tpl - lag_hi : edge - lag_lo]  # candidates for lags in [lag_lo, lag_hi]
    if np.dot(template, template) <= 0 or seg.shape[0] < tpl:
        return lag_lo
    xc = correlate(seg, template, mode="valid", method="fft")  # index j -> lag = lag_hi - j
    c2 = np.concatenate([[0.0], np.cumsum(seg**2)])
    energy = c2[tpl:] - c2[:-tpl]
    score = xc / np.sqrt(np.maximum(energy, 1e-20))
    j = int(np.argmax(score))
    return lag_hi - j


def _continue(
    x: np.ndarray, edge: int, g: int, lag: int, join: int, *, forward: bool
) -> np.ndarray:
    """``join + g`` samples continuing ``x`` across the gap from ``edge`` with period ``lag``.

    Forward: the first ``join`` overlap the real samples before ``edge``. Backward: the last
    ``join`` overlap the real samples after ``edge``; the copy runs in forward time order.
    """
    if forward:
        idx = np.arange(-join, g)
        # Real samples when the lag covers the gap; otherwise repeat the last period.
        return x[:, edge - lag + np.where(idx >= 0, idx % lag, idx)]
    # Mirror image: k samples before ``edge`` (k < 0: after it), listed in forward time order.
    k = np.arange(-join, g)[::-1]
    return x[:, edge - 1 + lag - np.where(k >= 0, k % lag, k)]


def _ramp(k: int) -> np.ndarray:
    return 0.5 - 0.5 * np.cos(np.pi * (np.arange(k) + 0.5) / k)


def _crossfade(f: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Raised-cosine cross-fade from ``f`` to ``b`` keeping the expected power constant."""
    g = f.shape[-1]
    fm, bm = f.sum(axis=0), b.sum(axis=0)
    denom = np.sqrt(np.dot(fm, fm) * np.dot(bm, bm))
    rho = float(np.clip(np.dot(fm, bm) / denom, 0.0, 1.0)) if denom > 0 else 1.0
    u = _ramp(g)
    wf, wb = 1.0 - u, u
    norm = np.sqrt(wf**2 + wb**2 + 2.0 * rho * wf * wb)
    return (f * wf + b * wb) / norm
