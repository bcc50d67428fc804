"""API keys and per-key limits.

A key looks like ``avk_<id>_<secret>``: ``id`` (12 hex) is stored in clear and finds the
record; only the SHA-256 of the whole key is stored, so a leaked database does not leak keys.
(Keys carry 256 bits of randomness, so a fast hash is as safe as a slow one here.)

Callers send ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``. Each key sees only its own
jobs and batches. In development and test, while **no** key exists (and ``allow_anonymous`` is
on), requests without a key act as one local user, ``anonymous``; as soon as one key is created,
keys are required. Production always requires a key.

Rate limit: a token bucket per key and API process (``rate_limit_per_minute``, or the key's own
``rate_per_minute``), answering 429 with ``Retry-After``. With several API replicas the
effective rate is at most replicas x limit; put the shared limit in the ingress if it matters.
Concurrency: at most ``max_concurrent_jobs`` single jobs queued or running per key (batches
count as one submission; their jobs are paced by the workers).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass

from avagent.service.jobs import ANONYMOUS, ApiKey, JobStore
from avagent.service.settings import Settings

PREFIX = "avk"


@dataclass(frozen=True)
class Caller:
    """Who is asking: a key id (or ``anonymous``) and its limits."""

    id: str
    name: str
    rate_per_minute: int
    max_concurrent: int


class AuthError(Exception):
    """No key, or a wrong or revoked one (401)."""


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def create_key(
    store: JobStore, name: str, *, rate_per_minute: int | None = None,
    max_concurrent: int | None = None,
) -> tuple[str, ApiKey]:
    """Make a key; return ``(the key, its record)``. The key is shown once and never stored."""
    key_id = secrets.token_hex(6)
    key = f"{PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
    record = ApiKey(
        id=key_id, name=name, key_hash=hash_key(key), rate_per_minute=rate_per_minute,
        max_concurrent=max_concurrent,
    )
    store.add_key(record)
    return key, record


def authenticate(store: JobStore, settings: Settings, key: str | None) -> Caller:
    """The caller behind ``key``; raises :class:`AuthError` with a reason."""
    if not key:
        if (
            settings.environment in ("development", "test")
            and settings.allow_anonymous
            and store.active_key_count() == 0
        ):
            return Caller(
                ANONYMOUS, ANONYMOUS, settings.rate_limit_per_minute, settings.max_concurrent_jobs
            )
        raise AuthError("an API key is required (Authorization: Bearer <key> or X-API-Key)")
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != PREFIX:
        raise AuthError("malformed API key")
    record = store.get_key(parts[1])
    if record is None or not hmac.compare_digest(record.key_hash, hash_key(key)):
        raise AuthError("unknown API key")
    if record.revoked_at is not None:
        raise AuthError("API key revoked")
    return Caller(
        id=record.id,
        name=record.name,
        rate_per_minute=record.rate_per_minute or settings.rate_limit_per_minute,
        max_concurrent=record.max_concurrent or settings.max_concurrent_jobs,
    )


class RateLimiter:
    """Token buckets keyed by caller id: ``rate`` requests per minute, bursts up to ``rate``."""

    def __init__(self) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}  # id -> (tokens, last time)
        self._lock = threading.Lock()

    def take(self, caller_id: str, rate_per_minute: int) -> float:
        """Take one token; return 0 when allowed, else the seconds until one is free."""
        now = time.monotonic()
        per_s = rate_per_minute / 60.0
        with self._lock:
            tokens, last = self._buckets.get(caller_id, (float(rate_per_minute), now))
            tokens = min(float(rate_per_minute), tokens + (now - last) * per_s)
            if tokens >= 1.0:
                self._buckets[caller_id] = (tokens - 1.0, now)
                return 0.0
            self._buckets[caller_id] = (tokens, now)
            return (1.0 - tokens) / per_s
