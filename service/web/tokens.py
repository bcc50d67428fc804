"""Short-lived signed media URLs.

``<audio src>`` and ``<img src>`` cannot send ``Authorization``; ``GET /v1/jobs/{id}/media`` (which
needs the key) hands out URLs carrying ``?t=<expiry>.<mac>``, an HMAC-SHA256 under
``AVAGENT_SECRET_KEY`` over the job id, its owner and the expiry. A token opens only that job's
media, only until it expires, and stops working when the secret changes.
"""

from __future__ import annotations

import hashlib
import hmac
import time

TTL_S = 3600


def _mac(secret: str, job_id: str, owner: str, exp: int) -> str:
    msg = f"avagent-media|{job_id}|{owner}|{exp}".encode()
    return hmac.new(secret.encode(), msg, hashlib.sha256).hexdigest()[:32]


def sign(secret: str, job_id: str, owner: str, *, ttl_s: int = TTL_S, now: float | None = None) -> str:
    exp = int((now if now is not None else time.time()) + ttl_s)
    return f"{exp}.{_mac(secret, job_id, owner, exp)}"


def verify(secret: str, token: str, job_id: str, owner: str, *, now: float | None = None) -> bool:
    """Whether ``token`` opens ``job_id`` of ``owner`` now."""
    exp_s, _, mac = token.partition(".")
    if not exp_s.isdigit() or len(exp_s) > 12 or not mac:
        return False
    exp = int(exp_s)
    if exp < (now if now is not None else time.time()):
        return False
    return hmac.compare_digest(mac, _mac(secret, job_id, owner, exp))
