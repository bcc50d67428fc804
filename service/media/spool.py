"""A sound track spooled to disk: written block by block, read back in any range.

Long inputs are repaired without holding the track in memory: the decoder writes it here once,
the agent reads excerpts from it, the repaired track is spooled the same way, and the writers
(:func:`~avagent.service.media.write_audio`, :func:`~avagent.service.media.remux`) take a spool
where they take an array and read it a block at a time. Samples are float32, interleaved, in a
temporary file (4 bytes x channels x samples: a 2-hour 5.1 film at 48 kHz is 8.3 GB); reads are
plain ``np.fromfile`` calls, so nothing stays mapped into the process.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from avagent.errors import MediaError

_ITEM = 4  # float32


class Spool:
    """``(channels, n)`` float32 samples in a file; ``spool[:, a:b]`` reads that range."""

    def __init__(self, path: str | os.PathLike[str], channels: int, sr: int) -> None:
        self.path = Path(path)
        self.channels = int(channels)
        self.sr = int(sr)
        self.n = 0
        self.peak = 0.0  # largest |sample| written
        self._offset = 0  # a view's first sample (see __getitem__)
        self._fh: Any = open(self.path, "wb")  # noqa: SIM115 - closed by close()

    # -- writing
    def write(self, block: np.ndarray) -> None:
        x = np.asarray(block, dtype=np.float32).reshape(self.channels, -1)
        if not x.shape[1]:
            return
        try:
            np.ascontiguousarray(x.T).tofile(self._fh)
        except OSError as exc:
            raise MediaError(f"cannot spool audio to {self.path}: {exc}") from None
        self.n += x.shape[1]
        self.peak = max(self.peak, float(np.max(np.abs(x))))

    def close(self) -> Spool:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        return self

    # -- reading
    @property
    def shape(self) -> tuple[int, int]:
        return (self.channels, self.n - self._offset)

    @property
    def duration_s(self) -> float:
        return self.shape[1] / self.sr

    def read(self, start: int, stop: int) -> np.ndarray:
        """Samples ``[start, stop)`` as ``(channels, m)``; parts outside the track are silence."""
        start, stop = int(start), int(stop)
        out = np.zeros((self.channels, max(0, stop - start)), np.float32)
        a, b = max(start, 0), min(stop, self.shape[1])
        if b > a:
            with open(self.path, "rb") as fh:
                fh.seek((self._offset + a) * self.channels * _ITEM)
                x = np.fromfile(fh, dtype=np.float32, count=(b - a) * self.channels)
            out[:, a - start : b - start] = x.reshape(-1, self.channels).T
        return out

    def __getitem__(self, key: Any) -> Any:
        """``spool[:, a:b]`` reads samples (an array); ``spool[:, a:]`` is a view from ``a``."""
        if not (isinstance(key, tuple) and len(key) == 2 and key[0] == slice(None)
                and isinstance(key[1], slice) and key[1].step in (None, 1)):
            raise TypeError("a Spool is read as spool[:, start:stop]")
        s = key[1]
        n = self.shape[1]
        start = 0 if s.start is None else (s.start if s.start >= 0 else n + s.start)
        start = min(max(start, 0), n)
        if s.stop is None:
            view = object.__new__(Spool)
            view.__dict__.update(self.__dict__, _fh=None, _offset=self._offset + start)
            return view
        stop = s.stop if s.stop >= 0 else n + s.stop
        return self.read(start, min(max(stop, start), n))

    def blocks(self, size: int) -> Iterator[np.ndarray]:
        for a in range(0, self.shape[1], size):
            yield self.read(a, min(a + size, self.shape[1]))

    def unlink(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)
