"""DNSMOS P.835 (SIG, BAK, OVRL) with the ONNX model bundled in ``speechmos``.

``speechmos.dnsmos`` imports ``requests`` and runs the P.808 model as well; we only need the
P.835 model, so it is run directly (one 9.01 s window per call, ~0.3–0.5 s on one core).
"""

from __future__ import annotations

import logging
import threading

import numpy as np

from avagent.errors import BackendError
from avagent.perception.vad import data_dir, onnx_session

logger = logging.getLogger(__name__)

DNSMOS_SR = 16000
INPUT_SAMPLES = 144160  # 9.01 s at 16 kHz, fixed by the model
_lock = threading.Lock()
_session = None

# Polynomial mapping of the raw model outputs (Microsoft DNS challenge, non-personalised).
_P_SIG = np.poly1d([-0.08397278, 1.22083953, 0.0052439])
_P_BAK = np.poly1d([-0.13166888, 1.60915514, -0.39604546])
_P_OVR = np.poly1d([-0.06766283, 1.11546468, 0.04602535])


def _dnsmos_session():
    global _session
    with _lock:
        if _session is None:
            path = data_dir("speechmos", "dnsmos_models") / "sig_bak_ovr.onnx"
            if not path.exists():
                raise BackendError(f"DNSMOS model not found at {path}")
            _session = onnx_session(path)
        return _session


def dnsmos(y16: np.ndarray) -> dict[str, float]:
    """DNSMOS P.835 scores (1–5) of 16 kHz mono speech.

    Audio shorter than the model's 9.01 s window is repeated to fill it (what the reference
    implementation does); longer audio is scored on its first 9.01 s only, so callers pass the
    few seconds of speech they care about.

    Returns
    -------
    dict
        ``{"sig": ..., "bak": ..., "ovrl": ...}``.
    """
    x = np.asarray(y16, dtype=np.float32).reshape(-1)
    if x.size == 0:
        raise BackendError("dnsmos got empty audio")
    peak = float(np.max(np.abs(x)))
    if peak > 1.0:
        x = x / peak
    if x.size < INPUT_SAMPLES:
        x = np.resize(x, INPUT_SAMPLES)  # np.resize repeats the array
    x = x[:INPUT_SAMPLES][None, :]
    sig, bak, ovr = _dnsmos_session().run(None, {"input_1": x})[0][0]
    return {
        "sig": round(float(_P_SIG(sig)), 3),
        "bak": round(float(_P_BAK(bak)), 3),
        "ovrl": round(float(_P_OVR(ovr)), 3),
    }
