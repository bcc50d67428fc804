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
from avagent.service.media.spool import Spool

logger = logging.getLogger(__name__)

# What write_audio can write, and its default and allowed sample encodings.
AUDIO_WRITE_EXTS: frozenset[str] = frozenset({".wav", ".flac"})
_SUBTYPES = {".wav": ("PCM_16", "PCM_24", "PCM_32", "FLOAT"), ".flac": ("PCM_16", "PCM_24")}
# FFmpeg encoder and sample format per (suffix, subtype), for files that carry a channel layout
_AV_CODECS = {
    (".wav", "PCM_16"): ("pcm_s16le", "s16"),
    (".wav", "PCM_24"): ("pcm_s24le", "s32"),
    (".wav", "PCM_32"): ("pcm_s32le", "s32"),
    (".wav", "FLOAT"): ("pcm_f32le", "flt"),
    (".flac", "PCM_16"): ("flac", "s16"),
    (".flac", "PCM_24"): ("flac", "s32"),
}
# the layouts libsndfile writes by itself (no WAVE_FORMAT_EXTENSIBLE mask needed)
_PLAIN_LAYOUTS = {1: "mono", 2: "stereo"}
WRITE_BLOCK = 1 << 16  # samples per encoded block: bounded memory whatever the length


def subtypes(suffix: str) -> tuple[str, ...]:
    """The sample encodings :func:`write_audio` offers for a ``.wav`` or ``.flac`` file."""
    return _SUBTYPES[suffix.lower()]


def subtype_for(suffix: str, stored: str | None) -> str:
    """The subtype that keeps ``stored`` (the input's sample encoding) in a ``suffix`` file:
    itself where the format holds it, else the nearest it does (FLAC tops out at 24-bit);
    PCM_16 when the input had none (lossy codecs)."""
    allowed = _SUBTYPES[suffix.lower()]
    if stored in allowed:
        return str(stored)
    if stored in ("PCM_32", "FLOAT", "DOUBLE"):
        return "FLOAT" if "FLOAT" in allowed else "PCM_24"
    return "PCM_16"


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
    layout: str | None = None,
    inputs: Iterable[PathLike] = (),
) -> Path:
    """Write ``y`` as WAV or FLAC (chosen by the suffix), atomically.

    Parameters
    ----------
    path : path-like
        Destination ending in ``.wav`` or ``.flac``.
    y : np.ndarray or Spool
        ``(n,)`` or ``(channels, n)`` float samples in [-1, 1]; integer encodings clip outside.
        A :class:`~avagent.service.media.spool.Spool` is written a block at a time.
    sr : int
        Sample rate in Hz.
    subtype : str, optional
        ``"PCM_16"`` (default), ``"PCM_24"``, ``"PCM_32"`` or ``"FLOAT"`` (WAV only).
    layout : str, optional
        FFmpeg channel layout (``"5.1"``, ``"7.1"``, ...) to record in the file (WAV's channel
        mask, FLAC's); given for more than two channels it is written through FFmpeg.
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
    spooled = isinstance(y, Spool)  # a long track on disk: written a block at a time
    arr = y if spooled else as_channels_first(y, sr)
    clip = False
    if subtype != "FLOAT":
        peak = y.peak if spooled else float(np.max(np.abs(arr)))
        if peak > 1.0:
            logger.warning("%s: peak %.2f above full scale, clipped for %s", dest, peak, subtype)
            clip = True
            if not spooled:
                arr = np.clip(arr, -1.0, 1.0)
    if suffix == ".wav" and layout and layout != _PLAIN_LAYOUTS.get(arr.shape[0]):
        with atomic_output(dest, inputs=inputs) as tmp:
            _write_with_layout(tmp, arr, int(sr), suffix, subtype, layout, dest, clip)
        return dest
    fmt = "WAV" if suffix == ".wav" else "FLAC"
    with atomic_output(dest, inputs=inputs) as tmp:
        try:
            if spooled:
                with sf.SoundFile(str(tmp), "w", int(sr), arr.shape[0], subtype=subtype,
                                  format=fmt) as fh:
                    for start in range(0, arr.shape[1], WRITE_BLOCK):
                        block = arr[:, start : start + WRITE_BLOCK]
                        fh.write((np.clip(block, -1.0, 1.0) if clip else block).T)
            else:
                sf.write(str(tmp), arr.T, int(sr), subtype=subtype, format=fmt)
        except (OSError, RuntimeError, sf.LibsndfileError) as exc:
            raise MediaError(f"{dest}: cannot write ({exc})") from None
    return dest


def _write_with_layout(
    tmp: Path, arr: Any, sr: int, suffix: str, subtype: str, layout: str, dest: Path,
    clip: bool = False,
) -> None:
    import av
    import av.error

    codec, fmt = _AV_CODECS[(suffix, subtype)]
    try:
        if av.AudioLayout(layout).nb_channels != arr.shape[0]:
            raise ParameterError(
                f"layout={layout!r} does not have {arr.shape[0]} channels"
            )
        with av.open(str(tmp), "w", format="wav" if suffix == ".wav" else "flac") as out:
            st = out.add_stream(codec, rate=sr, layout=layout)
            resampler = av.AudioResampler(format=fmt, layout=layout, rate=sr)
            for start in range(0, arr.shape[1], WRITE_BLOCK):
                block = arr[:, start : start + WRITE_BLOCK]
                if clip:
                    block = np.clip(block, -1.0, 1.0)
                block = np.ascontiguousarray(block.T, np.float32)
                frame = av.AudioFrame.from_ndarray(block.reshape(1, -1), format="flt", layout=layout)
                frame.sample_rate = sr
                for f in resampler.resample(frame):
                    for p in st.encode(f):
                        out.mux(p)
            for p in st.encode(None):
                out.mux(p)
    except (ValueError, av.error.FFmpegError) as exc:
        raise MediaError(f"{dest}: cannot write with layout {layout!r} ({exc})") from None
