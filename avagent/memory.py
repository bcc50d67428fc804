"""Give freed heap memory back to the operating system between the stages of a long job.

glibc keeps freed small and mid-sized blocks in its arenas, so after a stage that made many
temporary arrays the process's resident size stays near that stage's peak. ``malloc_trim(0)``
returns the free pages; elsewhere (musl, macOS) this is a no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
from functools import lru_cache
from typing import Any


@lru_cache(maxsize=1)
def _libc() -> Any:
    name = ctypes.util.find_library("c")
    try:
        lib = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return lib if lib is not None and hasattr(lib, "malloc_trim") else None


def release() -> None:
    """Collect garbage and trim the C heap (cheap: milliseconds)."""
    gc.collect()
    lib = _libc()
    if lib is not None:
        lib.malloc_trim(0)
