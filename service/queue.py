"""The queue both sides share: task names, the Celery configuration, routing, and sending.

The HTTP API enqueues work with :meth:`celery.Celery.send_task` by task name through this module;
it never imports the task module (:mod:`avagent.service.worker`), so the API process loads no
pipeline code. Brokers and queues are described in :mod:`avagent.service.worker`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from avagent.service.settings import Settings

if TYPE_CHECKING:
    from celery import Celery

    from avagent.service.jobs import Job

REPAIR_TASK = "avagent.repair"
EXPAND_TASK = "avagent.batch.expand"
FINALIZE_TASK = "avagent.batch.finalize"

LOG_FORMAT = "[%(asctime)s %(levelname)s %(processName)s] job=%(job_id)s %(name)s: %(message)s"


# -- configuration ---------------------------------------------------------------------------
def broker_url(settings: Settings) -> str:
    return settings.broker_url or "filesystem://"


def celery_config(settings: Settings) -> dict[str, Any]:
    url = broker_url(settings)
    conf: dict[str, Any] = {
        "broker_url": url,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_soft_time_limit": settings.task_soft_time_limit_s,
        "task_time_limit": settings.task_time_limit_s,
        "task_ignore_result": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_default_queue": settings.cpu_queue,
        "task_routes": {
            EXPAND_TASK: {"queue": settings.cpu_queue},
            FINALIZE_TASK: {"queue": settings.cpu_queue},
        },
        "broker_connection_retry_on_startup": True,
        "worker_hijack_root_logger": True,
        "worker_log_format": LOG_FORMAT,
        "worker_task_log_format": LOG_FORMAT,
        "worker_send_task_events": False,
        "worker_enable_remote_control": not url.startswith("filesystem"),
    }
    if url.startswith("filesystem"):
        base = settings.cache_dir / "broker"
        for sub in ("queue", "processed", "control"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        conf["broker_transport_options"] = {
            "data_folder_in": str(base / "queue"),
            "data_folder_out": str(base / "queue"),
            "processed_folder": str(base / "processed"),
            "control_folder": str(base / "control"),
            "store_processed": False,
            "polling_interval": 0.2,
        }
    elif url.startswith(("redis://", "rediss://")):
        conf["broker_transport_options"] = {
            # Longer than the hard limit, so a running task is never handed to a second worker.
            "visibility_timeout": int(settings.task_time_limit_s * 2 + 60),
        }
    return conf


def create_celery(settings: Settings) -> Celery:
    """A Celery app for ``settings`` (the API uses one only to send tasks by name)."""
    from celery import Celery

    celery_app = Celery("avagent")
    celery_app.conf.update(celery_config(settings))
    return celery_app


def queue_for(options: dict[str, Any], settings: Settings) -> str:
    """GPU queue when the job's planner, or the configured scorer/captioner, is a model backend."""
    from avagent.service.backends import needs_gpu

    return settings.gpu_queue if needs_gpu(settings, options.get("planner")) else settings.cpu_queue


def send_repair(celery_app: Celery, job: Job) -> None:
    celery_app.send_task(REPAIR_TASK, args=[job.id], queue=job.queue)


def send_expand(celery_app: Celery, batch_id: str, settings: Settings) -> None:
    celery_app.send_task(EXPAND_TASK, args=[batch_id], queue=settings.cpu_queue)


def send_finalize(celery_app: Celery, batch_id: str, settings: Settings) -> None:
    celery_app.send_task(FINALIZE_TASK, args=[batch_id], queue=settings.cpu_queue)
