"""ImageBind's input preprocessing, rewritten in numpy (no torchaudio, torchvision or pytorchvideo).

ImageBind's own ``imagebind.data`` module needs torchaudio and torchvision, which do not import
beside torch 2.13.0. These functions reproduce what it feeds the model:

- audio: 16 kHz mono, 2 s clips, each turned into a kaldi-style log-mel filterbank
  (``torchaudio.compliance.kaldi.fbank`` with ``htk_compat=True, use_energy=False,
  window_type="hanning", num_mel_bins=128, dither=0, frame_length=25 ms, frame_shift=10 ms``),
  cut or zero-padded to 204 frames and normalised with ImageBind's mean −4.268 / std 9.138;
  shaped ``(clips, 1, 128, 204)``.
- pictures: shorter side resized to 224 px (bicubic), centre-cropped to 224×224, scaled to [0, 1]
  and normalised with CLIP's mean/std; two frames per clip, shaped ``(clips, 3, 2, 224, 224)``
  (ImageBind's video input: 2-frame clips, its Conv3d kernel spans 2 frames).
"""

from __future__ import annotations

from functools import lru_cache
from math import gcd

import numpy as np

SAMPLE_RATE = 16000
CLIP_S = 2.0
NUM_MEL_BINS = 128
TARGET_FRAMES = 204
AUDIO_MEAN = -4.268
AUDIO_STD = 9.138
IMAGE_SIZE = 224
CLIP_RGB_MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
CLIP_RGB_STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)

_WIN = 400  # 25 ms at 16 kHz
_HOP = 160  # 10 ms
_NFFT = 512  # kaldi rounds the window up to a power of two
_PREEMPH = 0.97
_LOW_HZ = 20.0
_EPS = float(np.finfo(np.float32).eps)


def to_mono_16k(y: np.ndarray, *, sr: int) -> np.ndarray:
    """Mix ``y`` (``(..., n)``) down to mono float32 and resample it to 16 kHz (polyphase)."""
    from scipy.signal import resample_poly

    x = np.asarray(y, dtype=np.float32)
    if x.ndim > 1:
        x = x.reshape(-1, x.shape[-1]).mean(axis=0)
    if sr != SAMPLE_RATE:
        g = gcd(int(sr), SAMPLE_RATE)
        x = resample_poly(x, SAMPLE_RATE // g, int(sr) // g).astype(np.float32)
    return x


@lru_cache(maxsize=4)
def _mel_banks(num_bins: int = NUM_MEL_BINS) -> np.ndarray:
    """Kaldi's triangular mel filters on the mel scale 1127·ln(1 + f/700), ``(num_bins, 257)``."""

    def mel(f: np.ndarray | float) -> np.ndarray:
        return 1127.0 * np.log(1.0 + np.asarray(f, dtype=np.float64) / 700.0)

    nyquist = SAMPLE_RATE / 2
    lo, hi = mel(_LOW_HZ), mel(nyquist)
    delta = (hi - lo) / (num_bins + 1)
    b = np.arange(num_bins, dtype=np.float64)[:, None]
    left, center, right = lo + b * delta, lo + (b + 1) * delta, lo + (b + 2) * delta
    m = mel((SAMPLE_RATE / _NFFT) * np.arange(_NFFT // 2, dtype=np.float64))[None, :]
    up = (m - left) / (center - left)
    down = (right - m) / (right - center)
    banks = np.maximum(0.0, np.minimum(up, down))
    # kaldi's banks stop below Nyquist; the power spectrum has one more bin (weight 0).
    return np.pad(banks, ((0, 0), (0, 1))).astype(np.float32)


def fbank(clips: np.ndarray) -> np.ndarray:
    """Kaldi-style log-mel filterbank of 16 kHz clips ``(c, n)`` → ``(c, frames, 128)`` float32.

    Matches ``torchaudio.compliance.kaldi.fbank`` with ImageBind's arguments (see the module
    docstring); ``snip_edges``: ``1 + (n − 400) // 160`` frames.
    """
    from scipy import fft as scipy_fft

    x = np.asarray(clips, dtype=np.float32)
    n = x.shape[-1]
    if n < _WIN:
        return np.zeros((x.shape[0], 0, NUM_MEL_BINS), dtype=np.float32)
    n_frames = 1 + (n - _WIN) // _HOP
    idx = np.arange(_WIN)[None, :] + _HOP * np.arange(n_frames)[:, None]
    fr = x[:, idx]  # (c, frames, 400)
    fr = fr - fr.mean(axis=-1, keepdims=True)  # remove_dc_offset
    prev = np.concatenate([fr[..., :1], fr[..., :-1]], axis=-1)  # kaldi replicates the first sample
    fr = fr - _PREEMPH * prev
    spec = scipy_fft.rfft(fr * _window(), n=_NFFT, axis=-1)  # float32 in, complex64 out
    power = spec.real**2 + spec.imag**2  # (c, frames, 257)
    mel = (power.reshape(-1, power.shape[-1]) @ _mel_banks().T).reshape(*power.shape[:2], -1)
    return np.log(np.maximum(mel, _EPS)).astype(np.float32)


@lru_cache(maxsize=1)
def _window() -> np.ndarray:
    return np.hanning(_WIN).astype(np.float32)  # symmetric Hann, as kaldi's "hanning"


def audio_clips(x16: np.ndarray, starts_s: np.ndarray, *, clip_s: float = CLIP_S) -> np.ndarray:
    """ImageBind audio input for clips of ``x16`` (mono 16 kHz) starting at ``starts_s``.

    Returns ``(len(starts_s), 1, 128, 204)`` float32. A clip reaching past either end is cut to
    the samples that exist and its filterbank zero-padded to 204 frames, as ImageBind pads.
    """
    n_clip = round(clip_s * SAMPLE_RATE)
    out = np.zeros((len(starts_s), 1, NUM_MEL_BINS, TARGET_FRAMES), dtype=np.float32)
    full: list[int] = []
    segs: list[np.ndarray] = []
    for i, t in enumerate(np.asarray(starts_s, dtype=np.float64)):
        a = max(0, round(t * SAMPLE_RATE))
        seg = x16[a : a + n_clip]
        if seg.shape[0] == n_clip:
            full.append(i)
            segs.append(seg)
        else:
            seg = seg - seg.mean() if seg.size else seg
            out[i, 0] = _pad_frames(fbank(seg[None, :]))[0].T
    if segs:
        batch = np.stack(segs)
        batch = batch - batch.mean(axis=-1, keepdims=True)  # ImageBind: waveform -= mean
        out[full, 0] = _pad_frames(fbank(batch)).transpose(0, 2, 1)
    return (out - AUDIO_MEAN) / AUDIO_STD


def _pad_frames(fb: np.ndarray) -> np.ndarray:
    t = fb.shape[1]
    if t >= TARGET_FRAMES:
        return fb[:, :TARGET_FRAMES]
    return np.pad(fb, ((0, 0), (0, TARGET_FRAMES - t), (0, 0)))


def image(frame: np.ndarray) -> np.ndarray:
    """One picture (``(H, W)`` gray or ``(H, W, 3)`` RGB, uint8) → ``(3, 224, 224)`` float32.

    Shorter side to 224 px (bicubic), centre crop, CLIP normalisation; gray is repeated to RGB.
    """
    from PIL import Image

    f = np.asarray(frame)
    if f.ndim == 2:
        f = np.repeat(f[:, :, None], 3, axis=2)
    if f.ndim != 3 or f.shape[2] != 3:
        raise ValueError(f"frame shape {f.shape} is neither (H, W) nor (H, W, 3)")
    if f.dtype != np.uint8:
        f = np.clip(f, 0, 255).astype(np.uint8)
    h, w = f.shape[:2]
    scale = IMAGE_SIZE / min(h, w)
    nh, nw = max(IMAGE_SIZE, round(h * scale)), max(IMAGE_SIZE, round(w * scale))
    img = Image.fromarray(f).resize((nw, nh), Image.Resampling.BICUBIC)
    top, left = (nh - IMAGE_SIZE) // 2, (nw - IMAGE_SIZE) // 2
    arr = np.asarray(img, dtype=np.float32)[top : top + IMAGE_SIZE, left : left + IMAGE_SIZE] / 255.0
    return ((arr - CLIP_RGB_MEAN) / CLIP_RGB_STD).transpose(2, 0, 1).astype(np.float32)


def vision_clips(
    frames: np.ndarray, times_s: np.ndarray, starts_s: np.ndarray, *, clip_s: float = CLIP_S
) -> np.ndarray:
    """ImageBind video input for 2 s clips at ``starts_s``: ``(clips, 3, 2, 224, 224)`` float32.

    Each clip takes the frames nearest its first and last instant (ImageBind samples two frames
    uniformly over a clip, its first and last); ``frames`` is ``(T, H, W)`` or ``(T, H, W, 3)``.
    """
    times = np.asarray(times_s, dtype=np.float64)
    step = float(np.median(np.diff(times))) if times.size > 1 else 0.0
    cache: dict[int, np.ndarray] = {}
    out = np.empty((len(starts_s), 3, 2, IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
    for i, t in enumerate(np.asarray(starts_s, dtype=np.float64)):
        for k, when in enumerate((t, t + clip_s - step)):
            j = int(np.argmin(np.abs(times - when)))
            if j not in cache:
                cache[j] = image(frames[j])
            out[i, :, k] = cache[j]
    return out
