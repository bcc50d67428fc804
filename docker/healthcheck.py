"""The images' HEALTHCHECK, one script for both commands (standard library only, imports nothing of
ours, so it costs milliseconds and cannot initialise CUDA):

* ``avagent serve``: GET http://127.0.0.1:$PORT/healthz must answer 200;
* ``avagent worker``: the broker (``AVAGENT_BROKER_URL``, redis://host:port) must accept a TCP
  connection, or, on the embedded filesystem broker, its queue folder must exist.

The mode comes from the container's main process (``/proc/1/cmdline``) unless given:
``python healthcheck.py [serve|worker]``. Exit 0 healthy, 1 not (with one line saying why).
"""

from __future__ import annotations

import os
import socket
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path


def mode_from_cmdline(cmdline: bytes) -> str:
    args = [a.decode(errors="replace") for a in cmdline.split(b"\0") if a]
    for a in args:
        if a in ("serve", "worker"):
            return a
    raise SystemExit(f"unhealthy: main process {args} is neither 'serve' nor 'worker'")


def check_serve(port: int) -> str:
    url = f"http://127.0.0.1:{port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=4) as r:  # HEALTHCHECK --timeout=5s
            if r.status == 200:
                return f"{url} answered 200"
            raise SystemExit(f"unhealthy: {url} answered {r.status}")
    except (OSError, urllib.error.URLError) as exc:
        raise SystemExit(f"unhealthy: {url}: {exc}") from None


def check_worker(broker_url: str, cache_dir: str) -> str:
    if not broker_url or broker_url.startswith("filesystem"):
        queue = Path(cache_dir) / "broker" / "queue"
        if queue.is_dir():
            return f"embedded broker folder {queue} exists"
        raise SystemExit(f"unhealthy: embedded broker folder {queue} is missing")
    u = urllib.parse.urlsplit(broker_url)
    host, port = u.hostname or "localhost", u.port or 6379
    try:
        with socket.create_connection((host, port), timeout=4):
            return f"broker {host}:{port} accepts connections"
    except OSError as exc:
        raise SystemExit(f"unhealthy: broker {host}:{port}: {exc}") from None


def main(argv: list[str]) -> int:
    mode = argv[0] if argv else mode_from_cmdline(Path("/proc/1/cmdline").read_bytes())
    if mode == "serve":
        print(check_serve(int(os.environ.get("HEALTHCHECK_PORT", "8000"))))
    elif mode == "worker":
        print(check_worker(os.environ.get("AVAGENT_BROKER_URL", ""),
                           os.environ.get("AVAGENT_CACHE_DIR", "/var/lib/avagent")))
    else:
        raise SystemExit(f"unhealthy: unknown mode {mode!r} (serve or worker)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
