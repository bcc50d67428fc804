"""Mouth-motion sync on a real face photograph (scikit-image's astronaut) whose mouth is
animated by real speech (the ALSA voice): detection, tracking, duplicate frames, head jitter."""

from __future__ import annotations

import numpy as np
import pytest

from avagent.bench import signals
from avagent.perception.frames import FrameSet

cv2 = pytest.importorskip("cv2")
skdata = pytest.importorskip("skimage.data")

from avagent.perception import faces  # noqa: E402


def talking_head(delay_ms: float, *, seed: int = 0, dur: float = 9.0, static: bool = False,
                 other_voice: bool = False, jitter: bool = True,
                 inset_in: tuple[int, int] | None = None):
    """``inset_in=(W, H)``: the 160 px head as a webcam inset at (24, 16) of a still W x H
    picture (a screencast's terminal); ``jitter=False``: a head on a tripod."""
    sr = 48000
    clip = signals.speech(duration_s=dur, seed=seed)
    voice = np.asarray(clip.y, np.float64)[0]
    # the mouth opens with the voice's envelope (40 ms RMS), the sound is delay_ms late
    hop = sr // 100
    env = np.sqrt(np.convolve(voice**2, np.ones(4 * hop) / (4 * hop), "same"))[::hop]
    env = env / (env.max() + 1e-12)
    heard = voice
    if other_voice:
        heard = np.asarray(signals.speech(duration_s=dur, seed=seed + 5).y, np.float64)[0]
    k = round(delay_ms * sr / 1000)
    y = np.zeros_like(heard)
    if k >= 0:
        y[k:] = heard[: heard.size - k]
    else:
        y[:k] = heard[-k:]
    y = y + np.random.default_rng(seed).standard_normal(y.size) * 1e-4
    base = cv2.resize(cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2GRAY), (160, 160),
                      interpolation=cv2.INTER_AREA)
    x, yb, w, h = cv2.CascadeClassifier(
        cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
    ).detectMultiScale(base, 1.1, 5, minSize=(20, 20))[0]
    cx, cy = int(x + w / 2), int(yb + 0.8 * h)
    fps = 12.5
    times = np.arange(int(dur * fps)) / fps
    rng = np.random.default_rng(seed + 1)
    out = np.empty((times.size, 160, 160), np.uint8)
    for i, t in enumerate(times):
        if i % 3 == 2:  # a webcam repeating frames
            out[i] = out[i - 1]
            times[i] = t
            continue
        f = base.copy()
        o = 0.0 if static else float(env[min(int(t * 100), env.size - 1)])
        cv2.ellipse(f, (cx, cy), (5, 1 + int(4 * o)), 0, 0, 360, 30, -1)
        shift = tuple(rng.integers(-1, 2, 2)) if jitter else (0, 0)
        out[i] = np.roll(f, shift, axis=(0, 1))  # head jitter
        if not jitter:  # a camera's sensor noise (1 grey level): a new frame is never a copy
            out[i] = np.clip(out[i] + rng.normal(0, 1, out[i].shape), 0, 255).astype(np.uint8)
    if inset_in is not None:
        W, H = inset_in
        screen = np.random.default_rng(seed + 2).integers(0, 40, (H, W)).astype(np.uint8)
        big = np.repeat(screen[None], times.size, axis=0)
        big[:, 16:176, 24:184] = out
        return y, sr, FrameSet(big, times, fps, 25.0, W, H, dur)
    return y, sr, FrameSet(out, times, fps, 25.0, 640, 640, dur)


@pytest.mark.media
@pytest.mark.parametrize("delay_ms", [240.0, -400.0, 0.0])
def test_mouth_follows_planted_offsets(delay_ms):
    y, sr, frames = talking_head(delay_ms)
    s = faces.mouth_sync(y, sr, frames)
    assert s.delay_ms is not None, s
    assert abs(s.delay_ms - delay_ms) <= 45.0


@pytest.mark.media
def test_a_still_head_in_a_webcam_inset_is_read():
    # the inset is 6 % of the picture and the head does not move: the whole frame changes by
    # under the duplicate level while the mouth moves, so duplicates are judged on the face box
    y, sr, frames = talking_head(240.0, jitter=False, inset_in=(800, 450))
    found = faces.detect_faces(frames)[0]  # Haar finds this 34 px face in 5 of 12 detections
    assert found
    boxes = np.tile(np.asarray(found[0], dtype=np.float64), (frames.frames.shape[0], 1))
    s = faces.mouth_sync(y, sr, frames, boxes)
    assert s.delay_ms is not None, s
    assert abs(s.delay_ms - 240.0) <= 45.0


@pytest.mark.media
def test_still_mouth_and_another_voice_cannot_tell():
    y, sr, frames = talking_head(240.0, static=True)
    assert faces.mouth_sync(y, sr, frames).delay_ms is None
    y, sr, frames = talking_head(240.0, other_voice=True)
    assert faces.mouth_sync(y, sr, frames).delay_ms is None


@pytest.mark.media
def test_no_face_cannot_tell():
    y, sr, frames = talking_head(0.0)
    blank = FrameSet(np.full_like(frames.frames, 90), frames.times_s, 12.5, 25.0, 640, 640, 9.0)
    s = faces.mouth_sync(y, sr, blank)
    assert s.delay_ms is None and s.why == "no persistent face"
