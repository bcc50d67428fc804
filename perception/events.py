"""Sparse audio and visual event trains, and the lag that pairs them best.

* **sound**: onsets, the peaks of the positive spectral flux (log band energies, 100 Hz) that
  stand out of the clip's texture, refined to a few ms by a parabola;
* **picture**: frame changes (in colour when the frames carry it: a flash may change hue far
  more than grey level) that stand out of the motion around them. A camera shows an event from
  the first frame at or after it, so each visual event is the interval ``(t[i-1], t[i]]``
  between the two frames it falls between (40 ms at 25 fps), not a point. Scene cuts are not
  events; a flash (a jump that returns to the picture before it within a few frames) is one
  event, at its onset, not two.

For every lag (1 ms steps) :func:`match_matrix` marks the visual events that have a sound onset
inside their interval (±``TOL_S``); :func:`best_lag` takes the centre of the plateau of the top
count and measures how sure it is (chance and runner-up tests, see :mod:`.sync`).

``BIAS_MS`` removes what the detector itself adds: a log flux over a centred 32 ms window reacts
as soon as the window's leading half reaches a hit, so onsets read 3.6 ms early (clicks at known
times in -70 dBFS noise; the real drum hits of the benchmark read 2.5-5 ms early). The motion
interval is unbiased by construction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import maximum_filter1d, percentile_filter

from avagent.perception.features import onset_from_16k
from avagent.perception.frames import FrameSet
from avagent.perception.spectrum import to_16k, to_mono
from avagent.perception.video import motion_energy, scene_cuts

GRID_HZ = 100.0  # onset envelope frame rate
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
FLASH_FRAMES = 4  # a flash returns to the picture before it within this many frames
TOL_S = 0.010  # onset timing jitter allowed either side of an event's frame interval


@dataclass
class Peak:
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


def tail_prob(p: np.ndarray, k: int) -> float:
    """P(at least ``k`` of independent events with probabilities ``p`` happen)."""
    if k <= 0:
        return 1.0
    dist = np.zeros(p.size + 1)
    dist[0] = 1.0
    for q in p:  # Poisson-binomial by convolution
        dist[1:] = dist[1:] * (1 - q) + dist[:-1] * q
        dist[0] *= 1 - q
    return float(min(1.0, dist[k:].sum()))


def audio_onsets(y: np.ndarray, sr: int, dur_s: float) -> np.ndarray:
    """Onset times (s) of the sound: peaks of the positive spectral flux, refined by a parabola."""
    env, hop = onset_from_16k(to_16k(to_mono(y), sr), hop_s=1.0 / GRID_HZ, band_floor=True)
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


def frame_change(frames: FrameSet) -> np.ndarray:
    """Mean absolute change between consecutive frames (0..1), in colour when the frames carry
    it: a flash may change hue far more than grey level (a red lamp at the same luminance
    moves gray by < 1 level but R, G, B by 50-80). Entry ``i`` is the change into frame ``i``."""
    c = frames.colour
    if c is None or c.shape[0] < 2:
        return motion_energy(frames)
    d = np.abs(np.diff(c.astype(np.int16), axis=0)).mean(axis=(1, 2, 3)) / 255.0
    return np.maximum(np.concatenate([d[:1], d]).astype(np.float64), motion_energy(frames))


def _flashes(frames: FrameSet, cuts: list[int]) -> set[int]:
    """The "cuts" that are flashes: the picture returns to what it was within ``FLASH_FRAMES``
    (the frame before the jump and one a few frames after it differ by under a third of the
    jump). A lamp, a muzzle flash or a camera flash fills the grey histogram like a cut does."""
    f = frames.frames.astype(np.int16)
    out = set()
    for c in cuts:
        if c < 1:
            continue
        jump = float(np.abs(f[c] - f[c - 1]).mean())
        back = [float(np.abs(f[k] - f[c - 1]).mean())
                for k in range(c + 1, min(c + 1 + FLASH_FRAMES, f.shape[0]))]
        if back and min(back) < jump / 3:
            out.add(c)
    return out


def motion_events(frames: FrameSet, dur_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Visual events as the intervals ``(start, end]`` in which each happened (seconds).

    A frame change (:func:`frame_change`) that stands out of the motion around it is an event;
    a camera shows it from the first frame at or after it, so it happened somewhere between
    the two frames. Cuts are not events; flashes (a jump that returns) are, by their onset."""
    m = frame_change(frames)
    t = np.asarray(frames.times_s, dtype=np.float64)
    cuts = scene_cuts(frames)
    flashes = _flashes(frames, cuts)
    for c in cuts:  # a cut is not an event with a sound (a flash is)
        if c not in flashes:
            m[c] = m[c - 1] if c > 0 else 0.0
    if t.size < 3:
        return np.zeros(0), np.zeros(0)
    # how busy the shot is changes slowly; events are what stands out of it
    d = m - percentile_filter(m, MOTION_PCT, size=9, mode="nearest")
    spread = max(float(np.median(np.abs(d - np.median(d)))) * 1.4826, MOTION_FLOOR)
    i = np.arange(1, t.size)
    ok = (d[i] >= MOTION_K * spread) & (d[i] >= MOTION_MIN)
    ok &= t[i] <= dur_s
    i = _drop_returns(frames, i[ok])
    return t[i - 1], t[i]


def _drop_returns(frames: FrameSet, idx: np.ndarray) -> np.ndarray:
    """Event frames without the ends of flashes: an event within ``FLASH_FRAMES`` of the one
    before whose picture is back to what preceded that one (closer to it than a third of the
    first jump) is the flash going off, not a second event; nor is the frame right after an
    event (one event's motion spans two frames)."""
    f = frames.colour if frames.colour is not None else frames.frames
    keep: list[int] = []
    for i in idx:
        if keep and i - keep[-1] <= 1:
            continue
        if keep and i - keep[-1] <= FLASH_FRAMES and keep[-1] >= 1:
            p = keep[-1]
            pre = f[p - 1].astype(np.int16)
            jump = float(np.abs(f[p].astype(np.int16) - pre).mean())
            if float(np.abs(f[i].astype(np.int16) - pre).mean()) < jump / 3:
                continue
        keep.append(int(i))
    return np.asarray(keep, dtype=np.int64)


def match_matrix(
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


def best_lag(
    M: np.ndarray, lags_s: np.ndarray, match_w_s: float, tries: float = 1.0
) -> Peak | None:
    """The lag that pairs the most video events with an audio onset, and how sure that is.

    ``tries``: how many other searches like this one were made (clock rates tried): the
    p-values are corrected for them as for the lags."""
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
    n_tries = max(1.0, (lags_s[-1] - lags_s[0]) / match_w_s) * max(1.0, tries)
    k = int(np.argmin(np.abs(lags_s - l1)))
    p_chance = min(1.0, tail_prob(p_ev, k1) * n_tries)
    far = np.abs(lags_s - l1) > match_w_s
    runner_ms, p_runner = None, 0.0
    if far.any():
        l2 = int(np.argmax(np.where(far, count, -1)))
        runner_ms = float(lags_s[l2] * 1000.0)
        # If the runner-up were the true lag, the events it leaves unmatched could still match
        # at the peak only by chance, at the best of n_tries lags
        free = ~M[:, l2]
        n12 = int(np.sum(M[free, k]))
        p_runner = min(1.0, tail_prob(p_ev[free], n12) * n_tries) if n12 else 1.0
    return Peak(l1 * 1000.0, k1, n_ev, chance, p_chance, runner_ms, p_runner)
