"""Audio-to-video offset and drift from sound onsets matched to visual events.

Both sides become sparse event trains (:mod:`avagent.perception.events`: sound onsets; frame
changes, in colour when the frames carry it, flashes counted once).

For every lag in ±``max_lag_s`` (1 ms steps) we count the visual events that have a sound onset
inside their interval (±``TOL_S``). The best lag is the centre of the plateau of the top count:
with events at random phases of the frame clock, the intersection of their intervals pins the
delay to a few ms although each frame spans 40 ms (25 fps). Sound onsets with no visual event (off-screen
sound, syllables a mouth does not show) do not lower the count, which is what flattened the old
envelope correlation.

Matching is easily fooled (dense onsets match anything at some lag; periodic music matches at
every beat; people move before they speak), and a wrong shift is worse than none. So a verdict
needs, on the event counts themselves:

1. enough matched events (``MIN_MATCHED``, ``MIN_SHARE`` of the visual events);
2. a count chance cannot explain: each event's chance of a match is the share of lags it matches
   at; the Poisson-binomial tail of the top count, times the number of independent pairings the
   search tried, must be below ``P_CHANCE``;
3. a clear margin over the best *other* pairing (the runner-up outside one match width): if the
   runner-up were the truth, the events it leaves unmatched would have matched at the peak only
   by chance; that probability (same correction) must be below ``P_RUNNER``. This is the
   ambiguity periodic material really has: a tabla groove that matches one beat off almost as
   well stays ``cannot_tell``;
4. no window of the clip with a clear peak of its own elsewhere.

``BIAS_MS`` (see :mod:`.events`) removes the onset detector's own 3.6 ms lead. (The old
envelope correlation read +40..+70 ms late on the drum clips, probably because its
log-compressed envelope gave each hit's decay tail as much weight as the attack; not verified.)

Durations still decide PAL and other known rate changes; the onsets are then mapped to the video
clock and the delay at t=0 is given only when the same tests pass. With equal stream durations
the clock rate is read from the events (:func:`_clock_rate`: the rates that pair the most
events); a rate that points away from 1 but does not pass gives ``cannot_tell``, never an
offset. When the events cannot tell, a visible speaker's mouth
(:mod:`avagent.perception.faces`) and the picture's activity against the sound's onset strength
(:mod:`avagent.perception.activity`) are asked, side by side. Anything short of that is ``cannot_tell`` with
``audio_delay_ms=None``: no cue that cannot decide guesses.

Sign: ``audio_delay_ms > 0`` means the sound comes later than the picture.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from avagent.perception.activity import activity_sync
from avagent.perception.events import (
    BIAS_MS,
    TOL_S,
    Peak,
    audio_onsets,
    best_lag,
    match_matrix,
    motion_events,
)
from avagent.perception.facts import SyncFacts
from avagent.perception.frames import FrameSet
from avagent.perception.spectrum import DIGITAL_SILENCE
from avagent.rates import KNOWN_RATES

logger = logging.getLogger(__name__)

MAX_LAG_S = 1.0
LAG_STEP_S = 0.001
MIN_MATCHED = 5
MIN_SHARE = 0.5
P_CHANCE = 1e-3
P_RUNNER = 0.01
Z_WINDOW = 2.0  # a window "has its own peak" when both its p-values are below 10**-Z_WINDOW
AGREE_MS = 80.0  # such a window must lie within this of the global estimate
IN_SYNC_MS = 45.0  # |delay| under this is in sync (ITU-R BT.1359 detectability: +45 / −125 ms)
RATE_TOL = 0.0025  # a known rate explains the durations to within this share ...
RATE_TOL_S = 0.08  # ... or this many seconds, whichever is larger (container slop)
RATE_MAX = 0.05  # drift from content: clock rates searched, 1 ± this
RATE_STEP_MIN = 5e-4
RATE_FINE = 1e-4
RATE_SNAP = 0.0015  # a fitted rate this close to a known one is that one
DRIFT_MIN_MS = 20.0  # a content rate that moves the clip's end by less is rate 1
SLOP_S = 0.03  # typical excess of audio over video on the real clips (+7 to +47 ms)


def estimate_sync(
    y: np.ndarray,
    *,
    sr: int,
    frames: FrameSet,
    audio_duration_s: float | None = None,
    max_lag_s: float = MAX_LAG_S,
) -> SyncFacts:
    """Estimate how late the sound is relative to the picture, or say it cannot tell.

    Parameters
    ----------
    y : np.ndarray
        Audio ``(..., n)`` aligned so that sample 0 is time 0 of the video.
    sr : int
        Sample rate in Hz.
    frames : FrameSet
        Sampled frames with their presentation times.
    audio_duration_s : float, optional
        Duration of the audio stream as the container declares it (defaults to ``len(y)/sr``);
        compared with ``frames.duration_s`` to spot a rate change (PAL speed-up).
    max_lag_s : float
        Largest offset searched, seconds.

    Returns
    -------
    SyncFacts
        ``audio_delay_ms > 0``: the sound is late; ``None`` with verdict ``cannot_tell`` when
        the evidence is too weak or inconsistent.
    """
    y = np.asarray(y)
    audio_dur = float(audio_duration_s) if audio_duration_s else y.shape[-1] / sr
    ratio = audio_dur / frames.duration_s if frames.duration_s > 0 else None

    rate = _rate_of_streams(audio_dur, frames.duration_s, _padding_s(y, sr))

    tr = _trains(y, sr, frames, max_lag_s)
    facts = _verdict(y, sr, frames, tr, rate, ratio, max_lag_s)
    return facts.model_copy(update={"events_at_zero": _events_at_zero(tr, rate or 1.0)})


def _verdict(y: np.ndarray, sr: int, frames: FrameSet, tr: _Trains | None, rate: float | None,
             ratio: float | None, max_lag_s: float) -> SyncFacts:
    """The verdict of :func:`estimate_sync` from the event trains (and the content cues when
    the events cannot tell)."""
    ratio_r = round(ratio, 5) if ratio else None
    glob, peaks = _search(tr, rate or 1.0)
    window_ms = [round(p.delay_ms + BIAS_MS, 1) for p in peaks]
    if rate is not None:
        # the audio runs at another clock (onsets were mapped to video time): the delay is the
        # offset at t=0, given only when the events decide it
        delay = (round(glob.delay_ms + BIAS_MS, 1)
                 if glob is not None and _decided(glob, peaks) else None)
        return SyncFacts(
            verdict="drift",
            audio_delay_ms=delay,
            confidence=0.9,
            rate=round(rate, 5),
            window_delays_ms=window_ms,
            duration_ratio=ratio_r,
        )
    if glob is None:
        return _from_content(y, sr, frames, window_ms, ratio, max_lag_s)
    found = _drift_from_content(tr)
    if isinstance(found, tuple):
        r, g, ps = found
        return SyncFacts(
            verdict="drift",
            audio_delay_ms=round(g.delay_ms / r + BIAS_MS, 1),
            confidence=round(_confidence(g), 3),
            rate=round(r, 5),
            window_delays_ms=[round(p.delay_ms + BIAS_MS, 1) for p in ps],
            duration_ratio=ratio_r,
        )
    if found == "undecided":
        return _cannot_tell(window_ms, ratio)
    if not _decided(glob, peaks):
        trend = _window_trend(peaks)
        if trend is not None:
            return SyncFacts(
                verdict="drift",
                audio_delay_ms=round(trend[0], 1),
                confidence=0.6,
                rate=round(trend[1], 5),
                window_delays_ms=window_ms,
                duration_ratio=ratio_r,
            )
        return _from_content(y, sr, frames, window_ms, ratio, max_lag_s)
    delay = glob.delay_ms + BIAS_MS
    conf = _confidence(glob)
    verdict = "in_sync" if abs(delay) <= IN_SYNC_MS else "offset"
    return SyncFacts(
        verdict=verdict,
        audio_delay_ms=round(delay, 1),
        confidence=round(conf, 3),
        window_delays_ms=window_ms,
        duration_ratio=ratio_r,
    )


@dataclass
class _Trains:
    """The clip's event trains and the lag grid they are matched over."""

    onsets: np.ndarray  # sound onsets, audio clock (s)
    a: np.ndarray  # visual event intervals (a, b], video clock (s)
    b: np.ndarray
    lags: np.ndarray
    match_w: float  # width of one match (frame interval + tolerance), s
    video_s: float


def _trains(y: np.ndarray, sr: int, frames: FrameSet, max_lag_s: float) -> _Trains | None:
    audio_s = y.shape[-1] / sr
    if audio_s < 3.0 or frames.frames.shape[0] < 8:
        return None
    onsets = audio_onsets(y, sr, audio_s)
    a, b = motion_events(frames, frames.duration_s)
    if onsets.size == 0 or a.size == 0:
        return None
    lags = np.arange(-max_lag_s, max_lag_s + LAG_STEP_S / 2, LAG_STEP_S)
    match_w = float(np.median(b - a)) + 2 * TOL_S
    return _Trains(onsets, a, b, lags, match_w, float(frames.duration_s))


def _events_at_zero(tr: _Trains | None, rate: float) -> float | None:
    """How well the onsets pair with the visual events with no shift (delay 0 after
    ``BIAS_MS``), between chance (0: the mean count over the lags) and the best lag (1). Not a
    verdict: periodic material pairs one beat off as well, and nothing here passed the chance
    tests. It lets a scorer rank two timings of the same clip where no offset can be decided.
    None when fewer than ``MIN_MATCHED`` visual events pair at any lag."""
    if tr is None or tr.a.size < MIN_MATCHED:
        return None
    count = match_matrix(tr.onsets * rate, tr.a, tr.b, tr.lags).sum(axis=0).astype(np.float64)
    top, mean = float(count.max()), float(count.mean())
    if top < MIN_MATCHED or top <= mean:
        return None
    k0 = int(np.argmin(np.abs(tr.lags + BIAS_MS / 1000.0)))
    return round(float(np.clip((count[k0] - mean) / (top - mean), 0.0, 1.0)), 3)


def _search(
    tr: _Trains | None, rate: float, tries: float = 1.0
) -> tuple[Peak | None, list[Peak]]:
    """Best lag over the whole clip and in each of 2-4 windows of it (by visual events), with
    the sound's onsets mapped from the audio clock to the video clock by ``rate``."""
    if tr is None:
        return None, []
    M = match_matrix(tr.onsets * rate, tr.a, tr.b, tr.lags)
    glob = best_lag(M, tr.lags, tr.match_w, tries)
    peaks = []
    for rows in np.array_split(np.arange(tr.a.size), int(np.clip(tr.a.size // 6, 2, 4))):
        p = best_lag(M[rows], tr.lags, tr.match_w) if rows.size else None
        if p is not None:
            p.centre_s = float(np.mean(tr.b[rows]))
            peaks.append(p)
    return glob, peaks


def _count(tr: _Trains, r: float) -> int:
    return int(match_matrix(tr.onsets * r, tr.a, tr.b, tr.lags).sum(axis=0).max())


def _plateau(rates: np.ndarray, counts: np.ndarray, near: float) -> tuple[float, float, float]:
    """(centre, low, high) of the run of top counts that lies nearest ``near``."""
    top = counts == counts.max()
    i = int(np.flatnonzero(top)[np.argmin(np.abs(rates[top] - near))])
    j, e = i, i
    while j > 0 and top[j - 1]:
        j -= 1
    while e + 1 < top.size and top[e + 1]:
        e += 1
    return float(0.5 * (rates[j] + rates[e])), float(rates[j]), float(rates[e])


def _clock_rate(tr: _Trains | None) -> tuple[float, float, int] | None:
    """The range of clock rates (audio / video) that pair the most events, and how many rates
    were tried. Like the lag, the rate is the centre of the plateau of the top count: the rates
    at which every paired onset stays inside its event's frame interval. Coarse steps (a quarter
    of a match width over the clip) over 1 ± ``RATE_MAX``, then ``RATE_FINE`` steps over the
    coarse plateau. None when too few events."""
    if tr is None or tr.a.size < MIN_MATCHED:
        return None
    step = max(0.25 * tr.match_w / max(tr.video_s, 1.0), RATE_STEP_MIN)
    n = int(RATE_MAX / step)
    rates = 1.0 + step * np.arange(-n, n + 1)
    counts = np.array([_count(tr, r) for r in rates])
    _, lo, hi = _plateau(rates, counts, 1.0)
    fine = np.arange(lo - step, hi + step + RATE_FINE / 2, RATE_FINE)
    fc = np.array([_count(tr, r) for r in fine])
    top = fine[fc == fc.max()]  # (the fine counts need not be one run: span them all)
    return float(top[0]), float(top[-1]), rates.size


def _drift_from_content(tr: _Trains | None) -> tuple[float, Peak, list[Peak]] | str | None:
    """Drift read from the events: the best clock rate (:func:`_clock_rate`) when rate 1 is
    not among the best, the centre moves the end of the clip by more than ``DRIFT_MIN_MS`` and
    the rates that pair as well stay within ``AGREE_MS`` of it at the end, with the lag found at that rate passing the
    offset tests corrected for the rates tried; snapped to a known rate within ``RATE_SNAP``.
    None when the content says rate 1 (the offset tests decide); "undecided" when it points
    to a drift that does not pass (then neither an offset nor a drift is given)."""
    found = _clock_rate(tr)
    if found is None or tr is None:
        return None
    lo, hi, n_rates = found
    r = 0.5 * (lo + hi)
    if lo <= 1.0 <= hi or abs(r - 1.0) * tr.video_s * 1000.0 <= DRIFT_MIN_MS:
        return None  # rate 1 pairs as many: an offset (or nothing)
    if 0.5 * (hi - lo) * tr.video_s * 1000.0 > AGREE_MS:
        return "undecided"  # too few events along the clip to pin the rate
    glob, peaks = _search(tr, r, tries=float(n_rates))
    if glob is None or not _decided(glob, peaks):
        return "undecided"
    cands = [k for q in KNOWN_RATES for k in (q, 1.0 / q)]
    near = min(cands, key=lambda q: abs(q - r))
    return (near if abs(near - r) <= RATE_SNAP else r), glob, peaks


def _from_content(
    y: np.ndarray, sr: int, frames: FrameSet, window_ms: list[float], ratio: float | None,
    max_lag_s: float = MAX_LAG_S,
) -> SyncFacts:
    """The cues asked when the events cannot tell, side by side: a visible speaker's mouth
    (:mod:`avagent.perception.faces`; skipped when OpenCV is not installed) and the picture's
    activity against the sound's onset strength (:mod:`avagent.perception.activity`). A cue
    that decides gives the verdict; when both decide they must agree within ``AGREE_MS`` (the
    more confident one's delay is given), else cannot_tell."""
    found: list[tuple[float, float, list[float]]] = []  # (delay ms, confidence, windows)
    try:
        from avagent.perception.faces import mouth_sync

        m = mouth_sync(y, sr, frames)
        if m.delay_ms is not None:
            found.append((m.delay_ms, _cue_confidence(m.z), m.window_ms))
    except ImportError:
        pass
    act = activity_sync(y, sr, frames, max_lag_s=max_lag_s)
    if act.delay_ms is not None:
        found.append((act.delay_ms, _cue_confidence(act.z), act.window_ms))
    if not found or max(d for d, _, _ in found) - min(d for d, _, _ in found) > AGREE_MS:
        return _cannot_tell(window_ms, ratio)
    delay, conf, wins = max(found, key=lambda f: f[1])
    return SyncFacts(
        verdict="in_sync" if abs(delay) <= IN_SYNC_MS else "offset",
        audio_delay_ms=delay,
        confidence=conf,
        window_delays_ms=wins,
        duration_ratio=round(ratio, 5) if ratio else None,
    )


def _cue_confidence(z: float) -> float:
    """A content cue (mouth, activity) decided at ``z``: 0.3 + 0.05 z, at most 0.7."""
    return round(float(np.clip(0.3 + 0.05 * z, 0.3, 0.7)), 3)


def _decided(glob: Peak | None, peaks: list[Peak]) -> bool:
    """The tests of the module docstring: enough events, not chance, clear of the runner-up,
    no window clearly elsewhere."""
    if glob is None or glob.matched < MIN_MATCHED or glob.share < MIN_SHARE:
        return False
    if glob.p_chance > P_CHANCE or glob.p_runner > P_RUNNER:
        return False
    return all(abs(p.delay_ms - glob.delay_ms) <= AGREE_MS for p in peaks if p.z >= Z_WINDOW)


def _confidence(glob: Peak) -> float:
    """0.5 at the gate, +0.1 per decade of evidence beyond it (the weaker of the two tests)."""
    return float(np.clip(0.5 + 0.1 * (glob.z + np.log10(P_RUNNER)), 0.0, 0.95))


def _cannot_tell(window_ms: list[float], ratio: float | None) -> SyncFacts:
    return SyncFacts(
        verdict="cannot_tell",
        audio_delay_ms=None,
        confidence=0.0,
        window_delays_ms=window_ms,
        duration_ratio=round(ratio, 5) if ratio else None,
    )


def _padding_s(y: np.ndarray, sr: int) -> float:
    """Seconds of digital silence (|y| ≤ 1e-6 on every channel) at the start and end of ``y``."""
    x = np.asarray(y).reshape(-1, np.shape(y)[-1])
    if x.shape[-1] == 0:
        return 0.0
    loud = np.flatnonzero(np.max(np.abs(x), axis=0) > DIGITAL_SILENCE)
    if loud.size == 0:
        return 0.0
    return float(loud[0] + (x.shape[-1] - 1 - loud[-1])) / sr


def _rate_of_streams(audio_s: float, video_s: float, padding_s: float) -> float | None:
    """The known rate change the stream durations show, with ``padding_s`` of digital silence
    at the ends of the sound. Silence padded on (a lead-in, an offset repair) changes the
    stream's length, not the clock: where the padding could explain the extra length, the rate
    must explain the duration both with and without it (trimming alone would call a shifted
    track, zeros where the shift left a hole, a speed change). Padding cannot explain a sound
    shorter than the picture, nor more extra length than it holds: there the full duration's
    rate stands (a webcam recording that ends in 0.13 s of zeros, sped up to PAL). The
    trimmed duration also picks between close rates: 25/23.976 vs 25/24 on short clips."""
    full = _rate_from_durations(audio_s, video_s)
    if full is None:
        return None
    trimmed = _rate_from_durations(audio_s - padding_s, video_s)
    tol = max(RATE_TOL * video_s, RATE_TOL_S)
    if 0.0 <= audio_s - video_s <= padding_s + tol:
        return trimmed
    return trimmed if trimmed is not None else full


def _rate_from_durations(audio_s: float, video_s: float) -> float | None:
    """Audio clock / video clock implied by the stream durations, when it is a known rate change.

    Durations alone cannot tell a clock change from container slop or an offset that added or
    cut audio, so the audio must be at least 0.1 s off and its duration must match
    ``video_s / rate`` of a known speed-up (PAL 25/23.976, 25/24, NTSC 1.001, either way) to
    within max(0.25 %, 80 ms), and within half the shift that rate implies, after the typical
    30 ms of container slop is taken off (which also picks 25/23.976 over 25/24 on short
    clips). Slop is +7 to +47 ms on the real clips, so a relative tolerance alone (13 ms on a
    5 s clip) missed PAL speed-ups there, while 80 ms stays far below the 210 ms a PAL rate
    moves a 5 s clip. Anything else needs the window trend to call drift.
    """
    if video_s <= 0 or abs(audio_s - video_s) < 0.1:
        return None
    best: tuple[float, float] | None = None
    for known in KNOWN_RATES:
        for r in (known, 1.0 / known):
            shift = abs(video_s / r - video_s)
            tol = min(max(RATE_TOL * video_s, RATE_TOL_S), 0.5 * shift)
            miss = abs(audio_s - SLOP_S - video_s / r)
            if miss <= tol and (best is None or miss < best[1]):
                best = (r, miss)
    return None if best is None else best[0]


def _window_trend(peaks: list[Peak]) -> tuple[float, float] | None:
    """(delay at t=0 in ms, rate) when ≥ 3 confident windows line up on a slope (drift)."""
    if len(peaks) < 3 or any(p.z < Z_WINDOW for p in peaks):
        return None
    d = np.array([p.delay_ms + BIAS_MS for p in peaks])
    t = np.array([p.centre_s for p in peaks])
    slope, icpt = np.polyfit(t, d, 1)  # ms of delay per second of clip
    resid = d - (slope * t + icpt)
    if np.max(np.abs(resid)) > 30.0 or abs(slope) < 2.0:
        return None
    # a sound running at `rate` puts video time t at audio time t / rate: delay grows by
    # (1 / rate - 1) per second
    return float(icpt), float(1.0 / (1.0 + slope / 1000.0))
