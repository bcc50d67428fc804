"""Audio-to-video offset and drift from sound onsets matched to visual events.

Both sides become sparse event trains:

* **sound**: onsets, the peaks of the positive spectral flux (log band energies, 100 Hz) that
  stand out of the clip's texture, refined to a few ms by a parabola;
* **picture**: frame differences that stand out of the motion around them. A camera (or our
  renderer) shows an event from the first frame at or after it, so each visual event is the
  interval ``(t[i-1], t[i]]`` between the two frames it falls between (80 ms at 12.5 fps),
  not a point.

For every lag in ±``max_lag_s`` (1 ms steps) we count the visual events that have a sound onset
inside their interval (±``TOL_S``). The best lag is the centre of the plateau of the top count:
with events at random phases of the frame clock, the intersection of their intervals pins the
delay to a few ms although each frame spans 80 ms. Sound onsets with no visual event (off-screen
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

``BIAS_MS`` removes what the detector itself adds: a log flux over a centred 32 ms window reacts
as soon as the window's leading half reaches a hit, so onsets read 3.6 ms early (clicks at known
times in -70 dBFS noise; the real drum hits of the benchmark read 2.5-5 ms early). The motion
interval is unbiased by construction. (The old envelope correlation read +40..+70 ms late on
the drum clips, probably because its log-compressed envelope gave each hit's decay tail, after
the onset, about as much weight as the attack; not verified further.)

Durations still decide PAL and other known rate changes; the onsets are then mapped to the video
clock and the delay at t=0 is given only when the same tests pass. Anything short of that is
``cannot_tell`` with ``audio_delay_ms=None``.

Sign: ``audio_delay_ms > 0`` means the sound comes later than the picture.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import maximum_filter1d, percentile_filter

from avagent.perception.facts import SyncFacts
from avagent.perception.features import onset_from_16k
from avagent.perception.frames import FrameSet
from avagent.perception.spectrum import DIGITAL_SILENCE, to_16k, to_mono
from avagent.perception.video import motion_energy, scene_cuts
from avagent.rates import KNOWN_RATES

logger = logging.getLogger(__name__)

GRID_HZ = 100.0  # onset envelope frame rate
MAX_LAG_S = 1.0
LAG_STEP_S = 0.001
BIAS_MS = 3.6  # onsets read this early (centred log-flux window, see above): added back
# sound onsets: a flux peak this many robust spreads above the median, and at least this share
# of the clip's loud onsets (its 99th percentile: drum decays and room tone ripple stay out)
ONSET_K = 4.0
ONSET_REL = 0.2
ONSET_SEP = 3  # frames (30 ms) between onsets: one per flux peak
# visual events: a frame difference this many robust spreads above the motion around it (the
# 30th percentile over 9 frames, so a burst of jumps does not hide itself), and at least
# MOTION_MIN of mean change (0.5 grey level); the spread has a floor for static synthetic shots
MOTION_K = 5.0
MOTION_PCT = 30
MOTION_MIN = 2e-3
MOTION_FLOOR = 1e-3
TOL_S = 0.010  # onset timing jitter allowed either side of an event's frame interval
MIN_MATCHED = 5
MIN_SHARE = 0.5
P_CHANCE = 1e-3
P_RUNNER = 0.01
Z_WINDOW = 2.0  # a window "has its own peak" when both its p-values are below 10**-Z_WINDOW
AGREE_MS = 80.0  # such a window must lie within this of the global estimate
IN_SYNC_MS = 45.0  # |delay| under this is in sync (ITU-R BT.1359 detectability: +45 / −125 ms)
RATE_TOL = 0.0025  # a known rate explains the durations to within this share ...
RATE_TOL_S = 0.08  # ... or this many seconds, whichever is larger (container slop)
SLOP_S = 0.03  # typical excess of audio over video on the real clips (+7 to +47 ms)


@dataclass
class _Peak:
    """The best lag of one event-match search and the evidence for it."""

    delay_ms: float  # centre of the best plateau, bias not yet removed
    matched: int  # visual events with a sound onset at that lag
    events: int  # visual events searched
    chance: float  # mean share of lags at which a visual event has an onset (chance match)
    p_chance: float  # P(matching this many by chance at any lag of the search)
    runner_ms: float | None  # best lag outside the peak's own pairing
    p_runner: float  # P(the peak beats the runner-up by luck, were the runner-up the truth)
    centre_s: float = 0.0

    @property
    def share(self) -> float:
        return self.matched / self.events if self.events else 0.0

    @property
    def z(self) -> float:
        """Evidence in decades: -log10 of the worse of the two p-values."""
        return float(-np.log10(max(self.p_chance, self.p_runner, 1e-12)))


def _tail(p: np.ndarray, k: int) -> float:
    """P(at least ``k`` of independent events with probabilities ``p`` happen)."""
    if k <= 0:
        return 1.0
    dist = np.zeros(p.size + 1)
    dist[0] = 1.0
    for q in p:  # Poisson-binomial by convolution
        dist[1:] = dist[1:] * (1 - q) + dist[:-1] * q
        dist[0] *= 1 - q
    return float(min(1.0, dist[k:].sum()))


def _audio_onsets(y: np.ndarray, sr: int, dur_s: float) -> np.ndarray:
    """Onset times (s) of the sound: peaks of the positive spectral flux, refined by a parabola."""
    env, hop = onset_from_16k(to_16k(to_mono(y), sr), hop_s=1.0 / GRID_HZ)
    env = env[: int(dur_s * GRID_HZ)]
    if env.size < 3:
        return np.zeros(0)
    med = float(np.median(env))
    mad = float(np.median(np.abs(env - med))) * 1.4826
    # above the flux of the clip's steady texture, and not a ripple in the decay of a loud onset
    thr = max(med + ONSET_K * mad, ONSET_REL * float(np.percentile(env, 99)), 1e-6)
    w = ONSET_SEP
    big = maximum_filter1d(env, 2 * w + 1, mode="nearest")
    k = np.flatnonzero((env >= thr) & (env >= big))
    k = k[(k > 0) & (k < env.size - 1)]
    k = k[np.diff(np.concatenate([[-w - 1], k])) > w]  # one onset per plateau
    a, b, c = env[k - 1], env[k], env[k + 1]
    den = a - 2 * b + c
    frac = np.where(den < 0, 0.5 * (a - c) / np.where(den < 0, den, -1.0), 0.0)
    return (k + np.clip(frac, -0.5, 0.5)) * hop


def _motion_events(frames: FrameSet, dur_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Visual events as the intervals ``(start, end]`` in which each happened (seconds).

    A frame difference that stands out of the motion around it is an event; a camera shows it
    from the first frame at or after it, so it happened somewhere between the two frames."""
    m = motion_energy(frames)
    t = np.asarray(frames.times_s, dtype=np.float64)
    for c in scene_cuts(frames):  # a cut is not an event with a sound
        m[c] = m[c - 1] if c > 0 else 0.0
    if t.size < 3:
        return np.zeros(0), np.zeros(0)
    # how busy the shot is changes slowly; events are what stands out of it
    d = m - percentile_filter(m, MOTION_PCT, size=9, mode="nearest")
    spread = max(float(np.median(np.abs(d - np.median(d)))) * 1.4826, MOTION_FLOOR)
    i = np.arange(1, t.size)
    ok = (d[i] >= MOTION_K * spread) & (d[i] >= MOTION_MIN)
    ok &= t[i] <= dur_s
    i = i[ok]
    return t[i - 1], t[i]


def _match_matrix(
    onsets: np.ndarray, a: np.ndarray, b: np.ndarray, lags_s: np.ndarray
) -> np.ndarray:
    """``M[j, l]``: video event ``j`` has an audio onset in its interval when the sound is
    ``lags_s[l]`` late (onset - lag in ``(a_j - TOL, b_j + TOL]``)."""
    M = np.zeros((a.size, lags_s.size), dtype=bool)
    for j in range(a.size):
        lo = np.searchsorted(lags_s, onsets - b[j] - TOL_S, side="right")
        hi = np.searchsorted(lags_s, onsets - a[j] + TOL_S, side="right")
        for s, e in zip(lo, hi, strict=True):
            if e > s:
                M[j, s:e] = True
    return M


def _best(M: np.ndarray, lags_s: np.ndarray, match_w_s: float) -> _Peak | None:
    """The lag that pairs the most video events with an audio onset, and how sure that is."""
    n_ev = M.shape[0]
    if n_ev == 0:
        return None
    count = M.sum(axis=0)
    k1 = int(count.max())
    if k1 == 0:
        return None
    # the plateau (lags with the top count) around the first maximum: its centre is the lag
    # that puts each matched onset in the middle of what its frames allow
    top = count == k1
    j = int(np.argmax(top))
    e = j
    while e + 1 < top.size and top[e + 1]:
        e += 1
    l1 = 0.5 * (lags_s[j] + lags_s[e])
    # each event's chance of a match at an arbitrary lag: how many lags it matches at (an
    # event among dense onsets matches often, one in a quiet stretch rarely)
    p_ev = M.mean(axis=1)
    chance = float(p_ev.mean())
    # the search tries about span / match width independent pairings (Bonferroni)
    n_tries = max(1.0, (lags_s[-1] - lags_s[0]) / match_w_s)
    k = int(np.argmin(np.abs(lags_s - l1)))
    p_chance = min(1.0, _tail(p_ev, k1) * n_tries)
    far = np.abs(lags_s - l1) > match_w_s
    runner_ms, p_runner = None, 0.0
    if far.any():
        l2 = int(np.argmax(np.where(far, count, -1)))
        runner_ms = float(lags_s[l2] * 1000.0)
        # If the runner-up were the true lag, the events it leaves unmatched could still match
        # at the peak only by chance, at the best of n_tries lags
        free = ~M[:, l2]
        n12 = int(np.sum(M[free, k]))
        p_runner = min(1.0, _tail(p_ev[free], n12) * n_tries) if n12 else 1.0
    return _Peak(l1 * 1000.0, k1, n_ev, chance, p_chance, runner_ms, p_runner)


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
    ratio_r = round(ratio, 5) if ratio else None

    # Silence padded at either end (a lead-in, an offset repair) changes the stream's length,
    # not the clock: the rate must explain the duration both with and without it. Trimming
    # alone would call a shifted track (zeros where the shift left a hole) a speed change.
    rate = None
    if _rate_from_durations(audio_dur, frames.duration_s) is not None:
        # (the trimmed duration picks between close rates: 25/23.976 vs 25/24 on short clips)
        rate = _rate_from_durations(audio_dur - _padding_s(y, sr), frames.duration_s)

    glob, peaks = _search(y, sr, frames, rate or 1.0, max_lag_s)
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
        return _cannot_tell(window_ms, ratio)
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


def _search(
    y: np.ndarray, sr: int, frames: FrameSet, rate: float, max_lag_s: float
) -> tuple[_Peak | None, list[_Peak]]:
    """Best lag over the whole clip and in each of 2-4 windows of it (by visual events)."""
    audio_s = y.shape[-1] / sr
    if audio_s < 3.0 or frames.frames.shape[0] < 8:
        return None, []
    onsets = _audio_onsets(y, sr, audio_s) * rate  # audio clock to video clock
    a, b = _motion_events(frames, frames.duration_s)
    if onsets.size == 0 or a.size == 0:
        return None, []
    lags = np.arange(-max_lag_s, max_lag_s + LAG_STEP_S / 2, LAG_STEP_S)
    M = _match_matrix(onsets, a, b, lags)
    match_w = float(np.median(b - a)) + 2 * TOL_S
    glob = _best(M, lags, match_w)
    peaks = []
    for rows in np.array_split(np.arange(a.size), int(np.clip(a.size // 6, 2, 4))):
        p = _best(M[rows], lags, match_w) if rows.size else None
        if p is not None:
            p.centre_s = float(np.mean(b[rows]))
            peaks.append(p)
    return glob, peaks


def _decided(glob: _Peak | None, peaks: list[_Peak]) -> bool:
    """The tests of the module docstring: enough events, not chance, clear of the runner-up,
    no window clearly elsewhere."""
    if glob is None or glob.matched < MIN_MATCHED or glob.share < MIN_SHARE:
        return False
    if glob.p_chance > P_CHANCE or glob.p_runner > P_RUNNER:
        return False
    return all(abs(p.delay_ms - glob.delay_ms) <= AGREE_MS for p in peaks if p.z >= Z_WINDOW)


def _confidence(glob: _Peak) -> float:
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


def _window_trend(peaks: list[_Peak]) -> tuple[float, float] | None:
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
