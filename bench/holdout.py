"""The seeded split of benchmark sources that rules and thresholds are never tuned on.

A source is *untuned* when a hash of its name (with :data:`SEED`) falls in the lowest
:data:`SHARE` of the unit interval. The test looks at the name alone, so adding a source never
moves another one across the split (a source tuned on stays tuned, an untuned one stays
untuned), and the split is the same on every machine and run. Whoever tunes a rule or a
threshold on the benchmark keeps to :func:`tuned` cases; the report shows the untuned ones
separately (:mod:`avagent.bench.report_split`).
"""

from __future__ import annotations

import hashlib

SEED = 0
SHARE = 1 / 3


def unit(name: str, seed: int = SEED) -> float:
    """``name``'s place in [0, 1): the first 8 bytes of sha256("untuned:SEED:NAME")."""
    h = hashlib.sha256(f"untuned:{seed}:{name}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64


def untuned(name: str, seed: int = SEED, share: float = SHARE) -> bool:
    """Whether the source ``name`` (e.g. ``"event:speech0"``) is kept out of all tuning."""
    return unit(name, seed) < share


def tuned(name: str, seed: int = SEED, share: float = SHARE) -> bool:
    return not untuned(name, seed, share)
