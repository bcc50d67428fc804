"""ImageBind's audio and vision towers, loaded from a user-supplied checkpoint (no download).

The model classes come from ``imagebind-unofficial`` (CC BY-NC-SA 4.0: the code and Meta's
weights are for non-commercial use; it is the optional extra ``avagent[imagebind]``). Its package
``__init__`` imports torchaudio, torchvision and pytorchvideo, which do not import beside torch
2.13.0, and its model code imports two names from ``timm.layers`` (timm needs torchvision). So we
import ``imagebind.models.imagebind_model`` without running the package ``__init__`` and supply
``DropPath`` and ``trunc_normal_`` for the duration of that import (a real timm is used when it
imports). Only the audio and vision towers are kept: the text, depth, thermal and IMU towers are
dropped after construction (a third of the huge model).

Checkpoints: either Meta's ``imagebind_huge.pth`` (a bare state dict; the huge configuration is
assumed) or our own format ``{"format": "avagent-imagebind/1", "config": {...}, "state_dict":
{...}, "calibration": {...}}`` written by :func:`save_checkpoint`. Models are loaded once per
process and device (:func:`load_imagebind`), on CUDA when present; nothing runs on import.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
import threading
import types
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from avagent.errors import BackendError

if TYPE_CHECKING:  # torch is imported only when a model is built
    import torch

logger = logging.getLogger(__name__)

FORMAT = "avagent-imagebind/1"
KEEP = ("vision", "audio")
# imagebind_huge(): the configuration of Meta's released checkpoint.
HUGE_CONFIG: dict[str, Any] = {
    "vision_embed_dim": 1280,
    "vision_num_blocks": 32,
    "vision_num_heads": 16,
    "text_embed_dim": 1024,
    "text_num_blocks": 24,
    "text_num_heads": 16,
    "out_embed_dim": 1024,
    "audio_drop_path": 0.1,
    "imu_drop_path": 0.7,
}
INSTALL_HINT = (
    "pip install --no-deps imagebind-unofficial==0.1.1 && pip install ftfy regex iopath einops "
    "(the 'imagebind' extra; CC BY-NC-SA 4.0)"
)

_module: types.ModuleType | None = None
_import_lock = threading.Lock()


def _timm_shim() -> dict[str, types.ModuleType]:
    from torch import nn

    class DropPath(nn.Module):
        """Stochastic depth per sample (timm.layers.DropPath); identity in eval mode."""

        def __init__(self, drop_prob: float = 0.0, scale_by_keep: bool = True) -> None:
            super().__init__()
            self.drop_prob = float(drop_prob)
            self.scale_by_keep = scale_by_keep

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if self.drop_prob == 0.0 or not self.training:
                return x
            keep = 1.0 - self.drop_prob
            mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
            if self.scale_by_keep and keep > 0.0:
                mask.div_(keep)
            return x * mask

    def trunc_normal_(
        tensor: torch.Tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0
    ) -> torch.Tensor:
        return nn.init.trunc_normal_(tensor, mean=mean, std=std, a=a, b=b)

    timm = types.ModuleType("timm")
    layers = types.ModuleType("timm.layers")
    layers.DropPath = DropPath  # type: ignore[attr-defined]
    layers.trunc_normal_ = trunc_normal_  # type: ignore[attr-defined]
    timm.layers = layers  # type: ignore[attr-defined]
    return {"timm": timm, "timm.layers": layers}


def model_module() -> types.ModuleType:
    """``imagebind.models.imagebind_model``, imported without the package ``__init__``."""
    global _module
    with _import_lock:
        if _module is not None:
            return _module
        spec = importlib.util.find_spec("imagebind")
        if spec is None or not spec.submodule_search_locations:
            raise BackendError(f"ImageBind code is not installed: {INSTALL_HINT}")
        try:
            import timm.layers  # noqa: F401  (a working timm: use it)

            shim: dict[str, types.ModuleType] = {}
        except Exception:  # timm absent, or broken beside this torch (it imports torchvision)
            for name in [m for m in sys.modules if m == "timm" or m.startswith("timm.")]:
                del sys.modules[name]
            shim = _timm_shim()
        saved = {name: sys.modules.get(name) for name in ("imagebind", *shim)}
        if "imagebind" not in sys.modules:
            pkg = types.ModuleType("imagebind")
            pkg.__path__ = list(spec.submodule_search_locations)
            sys.modules["imagebind"] = pkg
        sys.modules.update(shim)
        try:
            _module = importlib.import_module("imagebind.models.imagebind_model")
        except ImportError as exc:
            raise BackendError(f"ImageBind model code failed to import ({exc}): {INSTALL_HINT}") from exc
        finally:
            for name, mod in saved.items():  # leave no stub behind for other importers
                if mod is None:
                    sys.modules.pop(name, None)
                else:
                    sys.modules[name] = mod
        return _module


def build_model(config: dict[str, Any] | None = None) -> torch.nn.Module:
    """An ``ImageBindModel`` with ``config`` (default: huge), random weights, audio + vision only."""
    cfg = dict(HUGE_CONFIG if config is None else config)
    model = model_module().ImageBindModel(**cfg)
    for part in ("modality_preprocessors", "modality_trunks", "modality_heads",
                 "modality_postprocessors"):
        modules = getattr(model, part)
        for key in list(modules.keys()):
            if key not in KEEP:
                del modules[key]
    return model.eval()


def save_checkpoint(
    path: str | Path,
    model: torch.nn.Module,
    config: dict[str, Any],
    calibration: dict[str, Any] | None = None,
) -> Path:
    """Write ``model`` in our self-describing format (weights, config, calibration)."""
    import torch

    path = Path(path)
    payload: dict[str, Any] = {"format": FORMAT, "config": dict(config),
                               "state_dict": model.state_dict()}
    if calibration is not None:
        payload["calibration"] = calibration
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    return path


class ImageBindBackend:
    """A loaded model on one device: batched audio and vision embeddings (L2-normalised numpy)."""

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        config: dict[str, Any],
        device: str,
        dtype: str = "float32",
        calibration: dict[str, Any] | None = None,
        path: Path | None = None,
    ) -> None:
        self.model = model
        self.config = config
        self.device = device
        self.dtype = dtype
        self.calibration = calibration
        self.path = path
        self.lock = threading.Lock()  # one forward at a time per loaded model

    def embed(self, modality: str, x: np.ndarray, *, batch_size: int = 16) -> np.ndarray:
        """Embeddings of ``x`` (audio ``(n, 1, 128, 204)``, vision ``(n, 3, 2, 224, 224)``)."""
        import torch

        if modality not in KEEP:
            raise BackendError(f"modality={modality!r} is not loaded; loaded: {', '.join(KEEP)}")
        m: Any = self.model  # ImageBindModel: ModuleDicts keyed by modality
        dt = getattr(torch, self.dtype)
        outs: list[np.ndarray] = []
        with self.lock, torch.inference_mode():
            for i in range(0, x.shape[0], max(1, batch_size)):
                xb = torch.from_numpy(np.ascontiguousarray(x[i : i + batch_size]))
                xb = xb.to(self.device, dtype=dt)
                # The model's own forward, minus its averaging over a clips axis (we keep clips).
                pre = m.modality_preprocessors[modality](**{modality: xb})
                z = m.modality_trunks[modality](**pre["trunk"])
                z = m.modality_heads[modality](z, **pre["head"])
                z = m.modality_postprocessors[modality](z)
                z = torch.nn.functional.normalize(z.float(), dim=-1)
                outs.append(z.cpu().numpy())
        if not outs:
            return np.zeros((0, int(self.config.get("out_embed_dim", 768))), np.float32)
        return np.concatenate(outs).astype(np.float32)


_cache: dict[tuple[str, int, int, str, str], ImageBindBackend] = {}
_cache_lock = threading.Lock()


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def check_weights(path: str | Path | None) -> Path:
    """``path`` as a Path when it names a file; else a BackendError saying what to set."""
    if path is None or str(path) == "":
        raise BackendError(
            "the imagebind scorer needs weights: set AVAGENT_IMAGEBIND_WEIGHTS to a checkpoint "
            "(Meta's imagebind_huge.pth or one written by avagent.reflection.imagebind_model."
            "save_checkpoint)"
        )
    p = Path(path).expanduser()
    if not p.is_file():
        raise BackendError(f"ImageBind weights not found: {str(p)!r} (AVAGENT_IMAGEBIND_WEIGHTS)")
    return p


def load_imagebind(
    path: str | Path | None, *, device: str | None = None, dtype: str = "float32"
) -> ImageBindBackend:
    """Load the checkpoint at ``path`` once per (path, device, dtype); CUDA when present.

    A file replaced on disk (another size or modification time) is loaded again.
    """
    p = check_weights(path)
    if dtype not in ("float32", "float16", "bfloat16"):
        raise BackendError(f"dtype={dtype!r} must be float32, float16 or bfloat16")
    dev = device or default_device()
    st = p.stat()
    key = (str(p.resolve()), st.st_mtime_ns, st.st_size, dev, dtype)
    with _cache_lock:
        if key in _cache:
            return _cache[key]
        backend = _load(p, dev, dtype)
        _cache[key] = backend
        return backend


def _load(p: Path, device: str, dtype: str) -> ImageBindBackend:
    import time

    import torch

    t0 = time.perf_counter()
    try:
        payload = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt file, pickle refused, not a torch file
        raise BackendError(f"cannot read ImageBind weights {str(p)!r}: {exc}") from exc
    if isinstance(payload, dict) and payload.get("format") == FORMAT:
        config, state, calibration = payload["config"], payload["state_dict"], payload.get("calibration")
    elif isinstance(payload, dict) and all(isinstance(v, torch.Tensor) for v in payload.values()):
        config, state, calibration = dict(HUGE_CONFIG), payload, None  # Meta's bare state dict
    else:
        raise BackendError(f"{str(p)!r} is neither an ImageBind state dict nor format {FORMAT!r}")
    model = build_model(config)
    own = model.state_dict()
    state = {k: v for k, v in state.items() if k in own}
    missing = sorted(set(own) - set(state))
    if missing:
        raise BackendError(
            f"ImageBind weights {str(p)!r} lack {len(missing)} audio/vision tensors "
            f"(first: {missing[:3]}); wrong checkpoint for config {config}"
        )
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:  # shape mismatch
        raise BackendError(f"ImageBind weights {str(p)!r} do not fit the model: {exc}") from exc
    model = model.to(device=device, dtype=getattr(torch, dtype)).eval()
    logger.info("loaded ImageBind %s on %s (%s) in %.1f s", p, device, dtype, time.perf_counter() - t0)
    return ImageBindBackend(model, config=config, device=device, dtype=dtype,
                            calibration=calibration, path=p)
