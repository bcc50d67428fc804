"""``avagent worker``: a Celery worker that runs repair jobs and batch fan-out.

``--queues cpu`` (default ``cpu,gpu`` on a machine that has both kinds of work) picks which
queues this worker consumes; a GPU box runs ``avagent worker --queues gpu`` so it only takes
jobs that need a model backend. The broker, database and storage come from Settings
(``AVAGENT_BROKER_URL``, ``AVAGENT_DATABASE_URL``, ``AVAGENT_STORAGE_ROOT``).
"""

from __future__ import annotations

import argparse
import os


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--queues", default="cpu,gpu",
                   help="comma-separated: cpu, gpu, or full queue names (default: cpu,gpu)")
    p.add_argument("--concurrency", type=int, default=max(1, (os.cpu_count() or 2) // 2),
                   help="jobs at once (processes for the prefork pool)")
    p.add_argument("--pool", choices=["prefork", "solo", "threads"], default="prefork",
                   help="prefork enforces time limits and survives a crashing job (default)")
    p.add_argument("--loglevel", default="INFO")


def queue_names(spec: str) -> list[str]:
    from avagent.service.settings import get_settings

    settings = get_settings()
    alias = {"cpu": settings.cpu_queue, "gpu": settings.gpu_queue}
    names = [alias.get(q.strip(), q.strip()) for q in spec.split(",") if q.strip()]
    return list(dict.fromkeys(names))


def run(args: argparse.Namespace) -> int:
    from avagent.service.queue import broker_url
    from avagent.service.settings import get_settings
    from avagent.service.worker import worker_app

    queues = queue_names(args.queues)
    argv = [
        "worker", f"--loglevel={args.loglevel}", "-Q", ",".join(queues),
        f"--concurrency={args.concurrency}", f"--pool={args.pool}",
        f"--hostname=avagent-{os.getpid()}@%h",
    ]
    settings = get_settings()
    if broker_url(settings).startswith("filesystem"):
        # The file-system transport has no broadcast to gossip or mingle over.
        argv += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    worker_app(settings).worker_main(argv)
    return 0
