"""Writing: atomic outputs next to their destination, refusing to overwrite an input, audio files."""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from avagent.audio import validate_audio
from avagent.errors import MediaError, ParameterError
from avagent.service.media.container import PathLike, as_path

logger = logging.getLogger(__name__)

# What write_audio can write, and its default and allowed sample encodings.
AUDIO_WRITE_EXTS: frozenset[str] = frozenset({".wav", ".flac"})
_SUBTYPES = {".wav": ("PCM_16", "PCM_24", "PCM_32", "FLOAT"), ".flac": ("PCM_16", "PCM_24")}


# --------------------------------------------------------------------------------------------
# Writing


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.resolve() == b.resolve():
            return True
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def refuse_overwrite(output: PathLike, inputs: Iterable[PathLike]) -> None:
    """Raise :class:`MediaError` when ``output`` is the same file as any of ``inputs``."""
    out = as_path(output)
    for inp in inputs:
        if _same_file(out, as_path(inp)):
            raise MediaError(f"refusing to overwrite input {inp}: choose another output path")


@contextmanager
def atomic_output(path: PathLike, *, inputs: Iterable[PathLike] = ()) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it to ``path`` when the block succeeds.

    The temporary file keeps ``path``'s suffix (FFmpeg picks the format from it) and is deleted
    when the block raises. Parent folders are created. ``inputs`` are files that must never be
    overwritten.

    Examples
    --------
    >>> with atomic_output("out/clip.wav") as tmp:  # doctest: +SKIP
    ...     soundfile.write(tmp, y.T, sr)
    """
    dest = as_path(path)
    refuse_overwrite(dest, inputs)
    if dest.is_dir():
        raise MediaError(f"{dest}: is a folder; give a file name to write")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MediaError(f"{dest}: cannot create its folder ({exc})") from None
    tmp = dest.with_name(f".{dest.stem}.{secrets.token_hex(4)}.tmp{dest.suffix}")
    try:
        yield tmp
        if not tmp.exists():
            raise MediaError(f"{dest}: nothing was written")
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def as_channels_first(y: Any, sr: Any) -> np.ndarray:
    arr = validate_audio(y, sr=sr)
    if arr.ndim == 1:
        arr = arr[np.newaxis, :]
    if arr.ndim != 2:
        raise ParameterError(f"y must be shaped (n,) or (channels, n), got {arr.shape}")
    return arr


def write_audio(
    path: PathLike,
    y: Any,
    sr: int,
    *,
    subtype: str | None = None,
    inputs: Iterable[PathLike] = (),
) -> Path:
    """Write ``y`` as WAV or FLAC (chosen by the suffix), atomically.

    Parameters
    ----------
    path : path-like
        Destination ending in ``.wav`` or ``.flac``.
    y : np.ndarray
        ``(n,)`` or ``(channels, n)`` float samples in [-1, 1]; integer encodings clip outside.
    sr : int
        Sample rate in Hz.
    subtype : str, optional
        ``"PCM_16"`` (default), ``"PCM_24"``, ``"PCM_32"`` or ``"FLOAT"`` (WAV only).
    inputs : paths
        Files that must not be overwritten (the destination may not be one of them).

    Returns
    -------
    Path
        ``path``.
    """
    import soundfile as sf

    dest = as_path(path)
    suffix = dest.suffix.lower()
    if suffix not in AUDIO_WRITE_EXTS:
        raise ParameterError(
            f"cannot write audio as {dest.name!r}: use a .wav or .flac file name"
        )
    subtype = (subtype or "PCM_16").upper()
    if subtype not in _SUBTYPES[suffix]:
        raise ParameterError(
            f"subtype={subtype!r} is not available for {suffix}; use one of "
            f"{', '.join(_SUBTYPES[suffix])}"
        )
    arr = as_channels_first(y, sr)
    if subtype != "FLOAT":
        peak = float(np.max(np.abs(arr)))
        if peak > 1.0:
            logger.warning("%s: peak %.2f above full scale, clipped for %s", dest, peak, subtype)
            arr = np.clip(arr, -1.0, 1.0)
    fmt = "WAV" if suffix == ".wav" else "FLAC"
    with atomic_output(dest, inputs=inputs) as tmp:
        try:
            sf.write(str(tmp), arr.T, int(sr), subtype=subtype, format=fmt)
        except (OSError, RuntimeError, sf.LibsndfileError) as exc:
            raise MediaError(f"{dest}: cannot write ({exc})") from None
    return dest
