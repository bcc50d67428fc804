"""The Celery side: the app, its configuration, and the tasks that run jobs and batches.

Delivery guarantees. Tasks are acknowledged late (after they finish) and rejected back to the
queue when their worker process dies, one message at a time per process (prefetch 1). A task
only *claims* its job in the database (see :mod:`avagent.service.jobs`), so a message delivered twice
runs the job at most once at a time and does nothing once the job is finished. Outputs are
written to fixed names atomically, so a job that runs again after a crash writes the same
files again. While a job runs, a heartbeat thread refreshes it every few seconds; each worker's
reaper puts jobs whose heartbeat stopped (their worker was killed) back on the queue; after
``max_attempts`` deliveries a job fails instead of killing workers forever.

Brokers. ``AVAGENT_BROKER_URL`` empty: kombu's ``filesystem://`` transport under
``cache_dir/broker`` (no server; a killed worker's in-flight message is recovered by the
reaper, since that transport has no visibility timeout). ``redis://...`` in production
(visibility timeout above the hard time limit). Job records are the result store; Celery's own
results are not kept.

Queues. ``cpu_queue`` takes jobs on the embedded backends and batch fan-out; ``gpu_queue`` takes
jobs whose planner or scorer needs a model backend, so a GPU worker started with
``avagent worker --queues gpu`` only takes GPU work.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import logging
import os
import posixpath
import socket
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from celery import Celery, signals
from celery.exceptions import SoftTimeLimitExceeded

from avagent.errors import AvagentError, BackendError, MediaError, ParameterError
from avagent.service import storage as st
from avagent.service.jobs import (
    ACTIVE,
    FAILED,
    QUEUED,
    SUCCEEDED,
    Batch,
    Job,
    JobStore,
    consistency_tier,
    new_id,
    utcnow,
)
from avagent.service.settings import Settings, get_settings

logger = logging.getLogger(__name__)

REPAIR_TASK = "avagent.repair"
EXPAND_TASK = "avagent.batch.expand"
FINALIZE_TASK = "avagent.batch.finalize"

current_job: contextvars.ContextVar[str] = contextvars.ContextVar("avagent_job", default="-")


class JobIdFilter(logging.Filter):
    """Adds ``record.job_id`` (the job the current task runs, or '-') to every log line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "job_id"):
            record.job_id = current_job.get()
        return True


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
    celery_app = Celery("avagent")
    celery_app.conf.update(celery_config(settings))
    return celery_app


def queue_for(options: dict[str, Any], settings: Settings) -> str:
    """GPU queue when the job's planner, or the configured scorer/captioner, is a model backend."""
    gpu_planners = {p.strip() for p in settings.gpu_planners.split(",") if p.strip()}
    planner = str(options.get("planner") or settings.planner)
    if planner in gpu_planners or settings.scorer != "embedded" or settings.captioner != "embedded":
        return settings.gpu_queue
    return settings.cpu_queue


def send_repair(celery_app: Celery, job: Job) -> None:
    celery_app.send_task(REPAIR_TASK, args=[job.id], queue=job.queue)


def send_expand(celery_app: Celery, batch_id: str, settings: Settings) -> None:
    celery_app.send_task(EXPAND_TASK, args=[batch_id], queue=settings.cpu_queue)


app = create_celery(get_settings())


# -- per-process context (a forked child builds its own) -----------------------------------------
@dataclass
class _Context:
    settings: Settings
    store: JobStore
    storage: st.Storage


_contexts: dict[int, _Context] = {}


def context() -> _Context:
    ctx = _contexts.get(os.getpid())
    if ctx is None:
        settings = get_settings()
        ctx = _Context(settings, JobStore.from_settings(settings), st.Storage.from_settings(settings))
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


# -- the repair task -------------------------------------------------------------------------
class _Heartbeat:
    """Refreshes the job's heartbeat while it runs; notices cancellation."""

    def __init__(self, store: JobStore, job_id: str, worker: str, every_s: float) -> None:
        self.store, self.job_id, self.worker, self.every_s = store, job_id, worker, every_s
        self.cancelled = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{job_id[:8]}", daemon=True)

    def _run(self) -> None:
        token = current_job.set(self.job_id)
        try:
            while not self._stop.wait(self.every_s):
                try:
                    if not self.store.heartbeat(self.job_id, self.worker):
                        self.cancelled.set()
                        return
                except Exception as exc:  # a missed beat is not fatal; the next one may work
                    logger.warning("heartbeat failed: %s", exc)
        finally:
            current_job.reset(token)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


@app.task(name=REPAIR_TASK, bind=True, acks_late=True, reject_on_worker_lost=True)
def repair_job(self: Any, job_id: str) -> str:
    """Run one job (see the module docstring for what a redelivery does)."""
    ctx = context()
    settings = ctx.settings
    worker = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    token = current_job.set(job_id)
    try:
        job = ctx.store.claim(job_id, worker, settings.job_stale_s)
        if job is None:
            logger.info("not claimed (finished, cancelled, unknown or running elsewhere)")
            return "skipped"
        if job.attempts > settings.max_attempts:
            ctx.store.fail(
                job_id, f"gave up after {job.attempts - 1} deliveries (the worker died each time)",
                worker=worker,
            )
            _after_job(ctx, job)
            return FAILED
        logger.info("running %s (attempt %d)", job.source, job.attempts)
        try:
            every = max(0.5, min(5.0, settings.job_stale_s / 6))
            with _Heartbeat(ctx.store, job_id, worker, every) as hb:
                _run_job(ctx, job, worker, hb)
            return SUCCEEDED
        except JobCancelledError:
            logger.info("cancelled while running; outputs not published")
            return "cancelled"
        except SoftTimeLimitExceeded:
            reason = f"exceeded the time limit of {settings.task_soft_time_limit_s:g} s"
            logger.warning(reason)
            ctx.store.fail(job_id, reason, worker=worker)
            return FAILED
        except Exception as exc:
            retries = int(self.request.retries or 0)
            if is_transient(exc) and retries < settings.task_max_retries:
                delay = settings.task_retry_backoff_s * (2**retries)
                logger.warning("transient error, retry %d in %.1f s: %s", retries + 1, delay, exc)
                ctx.store.requeue(job_id, worker, f"retry {retries + 1} after: {exc}")
                raise self.retry(exc=exc, countdown=delay, max_retries=settings.task_max_retries) from None
            if isinstance(exc, (MediaError, ParameterError)):
                reason = str(exc)
                logger.info("failed: %s", reason)
            elif isinstance(exc, FileNotFoundError):
                reason = f"source not found: {job.source}"
                logger.info("failed: %s", reason)
            else:
                reason = f"{type(exc).__name__}: {exc}"
                logger.exception("failed")
            ctx.store.fail(job_id, reason, worker=worker)
            return FAILED
        finally:
            _after_job(ctx, job)
    finally:
        current_job.reset(token)


def _run_job(ctx: _Context, job: Job, worker: str, hb: _Heartbeat) -> None:
    from avagent.service.pipeline import RepairOptions, repair_file

    store, storage = ctx.store, ctx.storage
    last_t, last_stage = [0.0], [""]

    def progress(event: dict[str, Any]) -> None:
        if hb.cancelled.is_set():
            raise JobCancelledError(job.id)
        now = time.monotonic()
        stage = str(event.get("stage", ""))
        if stage != last_stage[0] or now - last_t[0] >= 0.5:
            last_t[0], last_stage[0] = now, stage
            clean = {
                "stage": stage,
                "round": int(event.get("round", 0)),
                "max_rounds": int(event.get("max_rounds", 0)),
                "fraction": round(float(event.get("fraction", 0.0)), 4),
            }
            if not store.heartbeat(job.id, worker, clean):
                hb.cancelled.set()
                raise JobCancelledError(job.id)

    opts = dict(job.options or {})
    options = RepairOptions(
        planner=str(opts.get("planner", ctx.settings.planner)),
        max_rounds=int(opts.get("max_rounds", ctx.settings.max_rounds)),
        threshold=float(opts.get("threshold", ctx.settings.threshold)),
        outputs=tuple(opts.get("outputs") or ("wav", "video", "report")),
    )
    with tempfile.TemporaryDirectory(prefix=f"avagent-{job.id[:12]}-") as tmp:
        local_in = Path(tmp) / "in" / job.input_name
        input_sha = storage.get_file(job.source, local_in)
        report = repair_file(
            local_in, Path(tmp) / "out", options, settings=ctx.settings, progress=progress,
            job_id=job.id,
        )
        if hb.cancelled.is_set():
            raise JobCancelledError(job.id)
        outputs: dict[str, str] = {}
        checksums: dict[str, str] = {"input": input_sha}
        for kind in ("wav", "video"):
            local = report.get("outputs", {}).get(kind)
            if not local:
                continue
            uri = st.join(job.output_prefix, Path(local).name)
            checksums[kind] = st.sha256_file(Path(local))
            storage.put_file(Path(local), uri)
            outputs[kind] = uri
        report["input"] = job.source
        report["job_id"] = job.id
        if "report" in options.outputs:
            outputs["report"] = st.join(job.output_prefix, f"{Path(job.input_name).stem}.report.json")
        report["outputs"] = dict(outputs)
        if "report" in options.outputs:
            data = (json.dumps(report, indent=2, ensure_ascii=False) + "\n").encode()
            checksums["report"] = hashlib.sha256(data).hexdigest()
            storage.write_bytes(outputs["report"], data)
    scores = dict(report.get("scores") or {})
    summary = {
        "summary": report.get("summary", ""),
        "chosen_round": report.get("chosen_round"),
        "baseline": report.get("baseline"),
        "rounds": [
            {
                "index": r.get("index"),
                "plan": [s.get("action") for s in r.get("plan", [])],
                "scores": r.get("scores"),
                "improved": r.get("improved"),
            }
            for r in report.get("rounds", [])
        ],
        "timings_s": report.get("timings_s", {}),
        "captions": report.get("captions", {}),
    }
    ok = store.succeed(
        job.id, worker,
        outputs=outputs, checksums=checksums, summary=summary,
        score_alignment=scores.get("alignment"), score_sync=scores.get("sync"),
        accepted=bool(report.get("accepted")),
        tier=consistency_tier(report, options.threshold),
        rounds=len(report.get("rounds", [])),
        duration_s=float((report.get("timings_s") or {}).get("total", 0.0)),
        progress={"stage": "done", "round": len(report.get("rounds", [])),
                  "max_rounds": options.max_rounds, "fraction": 1.0},
    )
    if not ok:
        raise JobCancelledError(job.id)
    logger.info("succeeded: %s", report.get("summary", ""))


def _after_job(ctx: _Context, job: Job) -> None:
    """For batch jobs: record the item in the batch's destination and finish the batch when
    this was its last active job. Never raises (the job's own state is already recorded)."""
    if not job.batch_id:
        return
    try:
        fresh = ctx.store.get_job(job.id)
        if fresh is not None and fresh.state not in ACTIVE:
            batch = ctx.store.get_batch(job.batch_id)
            if batch is not None:
                _write_item(ctx, batch, fresh)
        maybe_finalize(ctx, job.batch_id)
    except Exception:
        logger.exception("could not record batch item for batch %s", job.batch_id)


# -- batches ---------------------------------------------------------------------------------
ITEMS = ".avagent/items"


def _item_uri(dest: str, source_uri: str) -> str:
    return st.join(dest, f"{ITEMS}/{hashlib.sha256(source_uri.encode()).hexdigest()[:40]}.json")


def manifest_line(job: Job) -> dict[str, Any]:
    """One manifest record: input, outputs, scores, consistency tier, checksums."""
    return {
        "input": job.source,
        "rel": job.batch_rel,
        "job_id": job.id,
        "state": job.state,
        "outputs": dict(job.outputs or {}),
        "scores": {"alignment": job.score_alignment, "sync": job.score_sync},
        "accepted": job.accepted,
        "tier": job.tier or ("failed" if job.state == FAILED else job.state),
        "checksum": {k: f"sha256:{v}" for k, v in (job.checksums or {}).items()},
        "error": job.error,
        "source_etag": job.source_etag,
        "finished_at": job.finished_at.isoformat() + "Z" if job.finished_at else None,
    }


def _write_item(ctx: _Context, batch: Batch, job: Job) -> None:
    line = manifest_line(job)
    ctx.storage.write_bytes(_item_uri(batch.dest, job.source), json.dumps(line).encode())


def _read_items(ctx: _Context, dest: str) -> dict[str, dict[str, Any]]:
    """Recorded items under ``dest`` by input URI (missing folder: none)."""
    items: dict[str, dict[str, Any]] = {}
    try:
        found = ctx.storage.list(st.join(dest, ITEMS), "*.json")
    except FileNotFoundError:
        return items
    except ParameterError:
        return items
    for obj in found:
        try:
            line = json.loads(ctx.storage.read_bytes(obj.uri))
        except (OSError, ValueError):
            continue
        items[str(line.get("input"))] = line
    return items


@app.task(name=EXPAND_TASK, bind=True, acks_late=True, reject_on_worker_lost=True)
def expand_batch(self: Any, batch_id: str) -> int:
    """List the batch's source, skip objects already done in ``dest``, queue one job per rest."""
    ctx = context()
    token = current_job.set(f"batch:{batch_id[:12]}")
    try:
        batch = ctx.store.get_batch(batch_id)
        if batch is None or batch.state != "expanding":
            return 0
        try:
            objects = ctx.storage.list(batch.source, batch.pattern)
            done = _read_items(ctx, batch.dest)
        except FileNotFoundError:
            ctx.store.update_batch(batch_id, state="failed", finished_at=utcnow(),
                                   error=f"source {batch.source} does not exist")
            return 0
        except Exception as exc:
            retries = int(self.request.retries or 0)
            if is_transient(exc) and retries < ctx.settings.task_max_retries:
                raise self.retry(
                    exc=exc, countdown=ctx.settings.task_retry_backoff_s * 2**retries,
                    max_retries=ctx.settings.task_max_retries,
                ) from None
            ctx.store.update_batch(batch_id, state="failed", finished_at=utcnow(),
                                   error=f"cannot list {batch.source}: {exc}")
            return 0
        skipped = 0
        queue = queue_for(batch.options or {}, ctx.settings)
        for obj in objects:
            prev = done.get(obj.uri)
            if prev and prev.get("state") == SUCCEEDED and prev.get("source_etag") == obj.etag:
                skipped += 1
                continue
            job = Job(
                id=new_id(), owner=batch.owner, queue=queue, source=obj.uri,
                input_name=posixpath.basename(obj.rel) or "input", output_prefix=batch.dest,
                options=dict(batch.options or {}), batch_id=batch.id, batch_rel=obj.rel,
                source_etag=obj.etag, idempotency_key=f"batch:{batch.id}:{obj.uri}"[:300],
            )
            try:
                rel = st.safe_key(obj.rel)
                job.input_name = st.safe_key(posixpath.basename(rel))
                folder = posixpath.dirname(rel)
                job.output_prefix = st.join(batch.dest, folder) if folder else batch.dest
            except ParameterError as exc:
                job.state, job.error, job.tier = FAILED, f"unsafe object name: {exc}", "failed"
                job.finished_at = utcnow()
            job, _created = ctx.store.create_job(job)
            if job.state == QUEUED:
                send_repair(app, job)
            elif job.state == FAILED:
                _write_item(ctx, batch, job)
        ctx.store.update_batch(batch_id, state="running", total=len(objects), skipped=skipped)
        logger.info("batch %s: %d objects, %d already done", batch_id, len(objects), skipped)
        maybe_finalize(ctx, batch_id)
        return len(objects) - skipped
    finally:
        current_job.reset(token)


@app.task(name=FINALIZE_TASK, acks_late=True)
def finalize_batch(batch_id: str) -> None:
    maybe_finalize(context(), batch_id)


def maybe_finalize(ctx: _Context, batch_id: str) -> bool:
    """When no job of the batch is active any more: write ``dest/manifest.jsonl`` (all items
    recorded under ``dest`` from this batch's source, sorted by input) and close the batch.
    Idempotent: two workers finishing the last two jobs may both write the same manifest."""
    batch = ctx.store.get_batch(batch_id)
    if batch is None or batch.state not in ("running",):
        return False
    counts = ctx.store.batch_counts(batch_id)
    if counts["queued"] or counts["running"]:
        return False
    items = _read_items(ctx, batch.dest)
    lines = [
        line for uri, line in sorted(items.items())
        if st.is_under(uri, batch.source) and _matches(line.get("rel") or "", batch.pattern)
    ]
    manifest = st.join(batch.dest, "manifest.jsonl")
    ctx.storage.write_bytes(manifest, "".join(json.dumps(x) + "\n" for x in lines).encode())
    if batch.cancelled:
        state = "cancelled"
    elif counts["failed"]:
        state = "completed_with_errors"
    else:
        state = "succeeded"
    ctx.store.update_batch(batch_id, state=state, manifest_uri=manifest, finished_at=utcnow())
    logger.info("batch %s %s: manifest %s (%d lines)", batch_id, state, manifest, len(lines))
    return True


def _matches(rel: str, pattern: str) -> bool:
    import fnmatch

    target = rel if "/" in pattern else posixpath.basename(rel)
    return fnmatch.fnmatchcase(target, pattern)


# -- worker process hooks --------------------------------------------------------------------
@signals.after_setup_logger.connect
@signals.after_setup_task_logger.connect
def _add_job_filter(logger: logging.Logger, *args: Any, **kwargs: Any) -> None:
    for handler in logger.handlers:
        if not any(isinstance(f, JobIdFilter) for f in handler.filters):
            handler.addFilter(JobIdFilter())


def reap_stale(ctx: _Context, celery_app: Celery) -> int:
    """Put jobs whose worker died (heartbeat older than ``job_stale_s``) back on their queue."""
    n = 0
    for job in ctx.store.stale_running(ctx.settings.job_stale_s):
        if ctx.store.reset_stale(job.id, ctx.settings.job_stale_s):
            logger.warning("job %s: worker %s stopped beating; requeued", job.id, job.worker)
            send_repair(celery_app, job)
            n += 1
    return n


def _reaper_loop(stop: threading.Event) -> None:
    while not stop.wait(max(1.0, context().settings.job_stale_s / 4)):
        try:
            reap_stale(context(), app)
        except Exception as exc:
            logger.warning("reaper: %s", exc)


_reaper_stop = threading.Event()


@signals.worker_ready.connect
def _start_reaper(**_: Any) -> None:
    threading.Thread(target=_reaper_loop, args=(_reaper_stop,), name="reaper", daemon=True).start()


@signals.worker_shutting_down.connect
def _stop_reaper(**_: Any) -> None:
    _reaper_stop.set()
