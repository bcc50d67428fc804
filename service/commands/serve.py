"""``avagent serve``: the HTTP API and, unless ``--no-worker``, one worker subprocess.

With the defaults nothing else is needed: the broker is a folder, jobs live in SQLite and files
in ``cache_dir/storage``. In production point AVAGENT_BROKER_URL, AVAGENT_DATABASE_URL and
AVAGENT_STORAGE_ROOT at Redis, PostgreSQL and S3, and run workers separately (``--no-worker``).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys

logger = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--no-worker", dest="worker", action="store_false",
                   help="only the API; run `avagent worker` elsewhere")
    p.add_argument("--worker-concurrency", type=int, default=1, help="jobs at once in the worker")
    p.add_argument("--queues", default="cpu,gpu", help="queues of the embedded worker")
    p.add_argument("--api-workers", type=int, default=1, help="uvicorn worker processes")


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from avagent.service.api import create_app
    from avagent.service.settings import get_settings

    settings = get_settings()

    def _exit(signum: int, _frame: object) -> None:
        # uvicorn re-raises the signal after its graceful shutdown; exiting through Python
        # (not the default handler) lets the finally below stop the worker too.
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _exit)
    worker = None
    if args.worker:
        cmd = [sys.executable, "-m", "avagent.service.cli", "worker", "--queues", args.queues,
               "--concurrency", str(args.worker_concurrency)]
        worker = subprocess.Popen(cmd, env=os.environ.copy())
        logger.info("worker started (pid %d)", worker.pid)
    try:
        if args.api_workers > 1:
            uvicorn.run("avagent.service.api.app:create_app", factory=True, host=args.host,
                        port=args.port, workers=args.api_workers)
        else:
            uvicorn.run(create_app(settings), host=args.host, port=args.port)
    finally:
        if worker is not None and worker.poll() is None:
            worker.send_signal(signal.SIGTERM)  # warm shutdown: the running job finishes
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait(timeout=10)
    return 0
