"""Sync from a visible speaker: the mouth's motion matched against the speech envelope.

* **Face**: OpenCV's Haar cascade (``haarcascade_frontalface_default``, shipped inside
  ``opencv-python-headless``) every ``DETECT_EVERY_S`` seconds of frames; the box is followed between
  detections (linear between the two nearest detections of the same track). Detections are
  grouped into tracks by overlap; the track is the one found most often, and it must be found
  in at least ``MIN_FOUND`` of the detection frames. (FINDINGS: on a real webcam clip Haar also
  locked onto a bookshelf and a title card; choosing by motion picked the wrong one, so the
  choice is by persistence and a static "face" simply gives no mouth motion.)
* **Mouth motion**: duplicate frames (webcams at 15 fps inside 30 fps files repeat frames
  irregularly) are removed first; then the lower-middle part of the box is compared with the
  same region of the previous kept frame after the best shift of ±``COMP_PX`` pixels (head
  motion compensated), mean absolute difference.
* **Sound**: the change of the amplitude envelope (40 ms, 100 Hz) across each kept frame's
  interval, at every lag of ±``MAX_LAG_S`` (10 ms steps), and only where speech is loud (``SPEECH_DB`` over the clip's
  quiet floor): a mouth moving in silence (typing, chewing) says nothing.
* **Verdict**: the correlation's peak must stand ``Z_PEAK`` robust spreads above the other
  lags, and each of the 2-3 windows of the clip must have its own peak (``Z_WINDOW``) within
  ``AGREE_MS`` of it. Lips lead the sound: the measured lead ``LIPS_LEAD_MS`` is removed (see
  :func:`calibrate_lead`: the median peak lag over in-sync clips). No real in-sync talking-head
  footage was available offline here, so it is 0 until measured; on short webcam clips expect
  an honest "cannot tell".

Sign: ``delay_ms > 0``: the sound is late.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from avagent.perception.frames import FrameSet
from avagent.perception.spectrum import to_16k, to_mono

DETECT_EVERY_S = 0.8  # Haar detection this often (every 10th frame at 12.5 fps, 20th at 25)
UPSCALE = 2  # frames under 320 px wide are doubled for detection (a 160 px frame: 1 of 3 found)
MIN_FOUND = 0.5
IOU_SAME = 0.3
DUP_LEVEL = 0.5  # a frame whose mean |Δ| to the previous is under this (grey levels) repeats it
COMP_PX = 2
HOP_S = 0.01
MAX_LAG_S = 1.0
SPEECH_DB = 15.0
Z_PEAK = 3.5
Z_WINDOW = 3.0
AGREE_MS = 80.0
LIPS_LEAD_MS = 0.0  # not measured on real footage yet: see calibrate_lead


@dataclass
class MouthSync:
    """What the mouth says about sync: ``delay_ms`` only when decided."""

    delay_ms: float | None
    z: float
    window_ms: list[float]
    why: str


def detect_faces(frames: FrameSet, every: int | None = None) -> dict[int, list[tuple]]:
    """Haar face boxes ``(x, y, w, h)`` on every ``every``-th grey frame, by frame index
    (default: every ``DETECT_EVERY_S`` at the frames' sampling rate; detection is the cue's
    cost, and a face moves little in 0.8 s).

    Measured on the astronaut test face at 160 px with a drawn mouth and 1 px jitter: found in
    4 of 12 detection frames as is, 12 of 12 doubled."""
    import cv2  # lazily: an optional, heavy import

    casc = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    if every is None:
        every = max(1, round(DETECT_EVERY_S * float(frames.sample_fps)))
    out = {}
    up = UPSCALE if frames.frames.shape[2] < 320 else 1
    for i in range(0, frames.frames.shape[0], every):
        f = frames.frames[i]
        if up > 1:  # small analysis frames: Haar's 24 px window misses a 30 px face
            f = cv2.resize(f, None, fx=up, fy=up, interpolation=cv2.INTER_LINEAR)
        boxes = casc.detectMultiScale(f, 1.1, 5, minSize=(24, 24))
        out[i] = [tuple(round(int(v) / up) for v in b) for b in boxes]
    return out


def _iou(a: tuple, b: tuple) -> float:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(0, x1 - x0) * max(0, y1 - y0)
    return inter / float(a[2] * a[3] + b[2] * b[3] - inter)


def face_track(frames: FrameSet, dets: dict[int, list[tuple]] | None = None) -> np.ndarray | None:
    """One box per frame ``(T, 4)`` for the most persistent face, or None."""
    dets = detect_faces(frames) if dets is None else dets
    tracks: list[dict[int, tuple]] = []
    for i in sorted(dets):
        for b in dets[i]:
            best = max(tracks, key=lambda t: _iou(t[max(t)], b), default=None)
            if best is not None and i not in best and _iou(best[max(best)], b) >= IOU_SAME:
                best[i] = b
            else:
                tracks.append({i: b})
    if not tracks:
        return None
    t = max(tracks, key=len)
    if len(t) < max(2, MIN_FOUND * len(dets)):
        return None
    idx = np.array(sorted(t))
    boxes = np.array([t[i] for i in idx], dtype=np.float64)
    T = frames.frames.shape[0]
    return np.stack([np.interp(np.arange(T), idx, boxes[:, k]) for k in range(4)], axis=1)


def mouth_motion(frames: FrameSet, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(times, motion) at the kept (non-duplicate) frames: motion-compensated mean |Δ| of the
    mouth region (lower-middle of the face box) against the previous kept frame.

    A frame repeats the one before when the *face box* changed by under ``DUP_LEVEL``: a webcam
    inset over a screencast (4 % of the picture) or a still face small in a wide shot changes
    the whole frame by far less than that even while the mouth moves."""
    f = frames.frames.astype(np.int16)
    H, W = f.shape[1:]
    keep = [0]
    for i in range(1, f.shape[0]):
        x, y, w, h = (round(float(v)) for v in boxes[i])
        x0, y0 = min(max(x, 0), W - 1), min(max(y, 0), H - 1)
        x1, y1 = max(min(x + w, W), x0 + 1), max(min(y + h, H), y0 + 1)
        if float(np.abs(f[i, y0:y1, x0:x1] - f[keep[-1], y0:y1, x0:x1]).mean()) >= DUP_LEVEL:
            keep.append(i)
    times, motion = [], []
    p = COMP_PX
    for prev, i in itertools.pairwise(keep):
        x, y, w, h = boxes[i]
        x0, x1 = int(x + 0.25 * w), int(x + 0.75 * w)
        y0, y1 = int(y + 0.62 * h), int(min(y + 0.95 * h, H))
        if x1 - x0 < 4 or y1 - y0 < 3 or x0 < p or y0 < p or x1 + p > W or y1 + p > H:
            continue
        cur = f[i, y0:y1, x0:x1]
        best = min(
            float(np.abs(cur - f[prev, y0 + dy : y1 + dy, x0 + dx : x1 + dx]).mean())
            for dy in range(-p, p + 1)
            for dx in range(-p, p + 1)
        )
        times.append((frames.times_s[prev], frames.times_s[i]))
        motion.append(best)
    return np.asarray(times, dtype=np.float64).reshape(-1, 2), np.asarray(motion)


def _speech_feature(y: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """(amplitude envelope over 40 ms, 0..1, speech gate) at ``HOP_S``: the mouth opens with
    the amplitude, so its changes follow the amplitude's, not the level's in dB."""
    x = to_16k(to_mono(np.asarray(y, dtype=np.float64)), sr)
    hop = int(16000 * HOP_S)
    n = x.size // hop
    p = np.mean(x[: n * hop].reshape(n, hop) ** 2, axis=1)
    a = np.sqrt(np.convolve(p, np.ones(4) / 4, "same"))
    e = 20 * np.log10(a + 1e-10)
    gate = e > float(np.percentile(e, 10)) + SPEECH_DB
    return a / (a.max() + 1e-12), gate.astype(np.float64)


def _corr_over_lags(iv: np.ndarray, m: np.ndarray, e: np.ndarray, g: np.ndarray,
                    lags: np.ndarray) -> np.ndarray:
    """Correlation, at each lag, of the mouth's change between two kept frames with the
    change of the sound's amplitude envelope between the same instants ``+ lag``, over the intervals that are mostly speech."""
    cg = np.concatenate([[0.0], np.cumsum(g)])
    r = np.full(lags.size, np.nan)
    for k, lag in enumerate(lags):
        a = np.clip(np.round((iv[:, 0] + lag) / HOP_S).astype(int), 0, e.size - 1)
        b = np.clip(np.round((iv[:, 1] + lag) / HOP_S).astype(int), 0, e.size - 1)
        ok = (b > a) & ((cg[b + 1] - cg[a]) >= 0.5 * (b - a + 1))
        if ok.sum() < 8:
            continue
        s, mm = np.abs(e[b] - e[a])[ok], m[ok]
        if s.std() == 0 or mm.std() == 0:
            continue
        r[k] = float(np.corrcoef(s, mm)[0, 1])
    return r


def _peak(r: np.ndarray, lags: np.ndarray) -> tuple[float, float]:
    """(lag ms, z) of the correlation peak; z: peak over the median in robust spreads."""
    if np.all(np.isnan(r)):
        return 0.0, 0.0
    k = int(np.nanargmax(r))
    v = r[~np.isnan(r)]
    med = float(np.median(v))
    mad = float(np.median(np.abs(v - med))) * 1.4826 + 1e-6
    return float(lags[k] * 1000.0), (float(r[k]) - med) / mad


def mouth_sync(y: np.ndarray, sr: int, frames: FrameSet, boxes: np.ndarray | None = None,
               lead_ms: float = LIPS_LEAD_MS) -> MouthSync:
    """How late the sound is against the speaker's mouth, or why it cannot tell."""
    boxes = face_track(frames) if boxes is None else boxes
    if boxes is None:
        return MouthSync(None, 0.0, [], "no persistent face")
    iv, m = mouth_motion(frames, boxes)
    if m.size < 20 or float(np.percentile(m, 90)) < DUP_LEVEL:
        return MouthSync(None, 0.0, [], "the mouth does not move")
    d, g = _speech_feature(y, sr)
    lags = np.arange(-MAX_LAG_S, MAX_LAG_S + 1e-9, HOP_S)
    lag, z = _peak(_corr_over_lags(iv, m, d, g, lags), lags)
    wins = []
    for rows in np.array_split(np.arange(m.size), 3 if m.size >= 90 else 2):
        wl, wz = _peak(_corr_over_lags(iv[rows], m[rows], d, g, lags), lags)
        wins.append((wl, wz))
    wms = [round(w - lead_ms, 1) for w, _ in wins]
    if z < Z_PEAK:
        return MouthSync(None, round(z, 2), wms, f"no clear peak (z {z:.1f})")
    if any(wz < Z_WINDOW or abs(wl - lag) > AGREE_MS for wl, wz in wins):
        return MouthSync(None, round(z, 2), wms, "the windows of the clip disagree")
    return MouthSync(round(lag - lead_ms, 1), round(z, 2), wms, "decided")


def calibrate_lead(clips: list[tuple[np.ndarray, int, FrameSet]]) -> float | None:
    """The lips' lead (ms) from in-sync clips: the median raw peak lag of the decided ones
    (negative when the mouth moves first); set ``LIPS_LEAD_MS`` to it. None if none decide."""
    got = [s.delay_ms for s in (mouth_sync(y, sr, f, lead_ms=0.0) for y, sr, f in clips)
           if s.delay_ms is not None]
    return float(np.median(got)) if got else None
