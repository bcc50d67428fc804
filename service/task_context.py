"""What a task runs with: the per-process settings, job store and storage, the job id on every
log line, and which errors are worth a retry."""

from __future__ import annotations

import contextvars
import logging
import os
from dataclasses import dataclass

from avagent.errors import AvagentError, BackendError
from avagent.service import storage as st
from avagent.service.jobs import (
    JobStore,
)
from avagent.service.settings import Settings, get_settings

logger = logging.getLogger(__name__)

current_job: contextvars.ContextVar[str] = contextvars.ContextVar("avagent_job", default="-")


class JobIdFilter(logging.Filter):
    """Adds ``record.job_id`` (the job the current task runs, or '-') to every log line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "job_id"):
            record.job_id = current_job.get()
        return True



# -- per-process context (a forked child builds its own) -----------------------------------------
@dataclass
class TaskContext:
    """The settings, job store and storage of one worker process."""

    settings: Settings
    store: JobStore
    storage: st.Storage


_contexts: dict[int, TaskContext] = {}


def set_context(ctx: TaskContext | None) -> None:
    """Use ``ctx`` in this process from now on (None: build it from Settings on next use)."""
    if ctx is None:
        _contexts.pop(os.getpid(), None)
    else:
        _contexts[os.getpid()] = ctx


def context() -> TaskContext:
    ctx = _contexts.get(os.getpid())
    if ctx is None:
        settings = get_settings()
        ctx = TaskContext(settings, JobStore.from_settings(settings), st.Storage.from_settings(settings))
        _contexts[os.getpid()] = ctx
    return ctx


# -- errors ----------------------------------------------------------------------------------
class JobCancelledError(Exception):
    """The job was cancelled (or taken by another worker) while it ran."""


def is_transient(exc: BaseException) -> bool:
    """Worth a retry: storage, network, database-lock and model-backend hiccups. Bad media,
    bad options and missing sources are not."""
    if isinstance(exc, BackendError):
        return True
    if isinstance(exc, AvagentError):
        return False
    if isinstance(exc, (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)):
        return False
    if isinstance(exc, (ConnectionError, TimeoutError, OSError)):
        return True
    name = type(exc).__module__ + "." + type(exc).__name__
    transient_names = ("botocore.exceptions", "aiohttp.client_exceptions", "redis.exceptions")
    if name.startswith(transient_names):
        return True
    return name in ("sqlalchemy.exc.OperationalError", "sqlalchemy.exc.DisconnectionError")
