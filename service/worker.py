"""The Celery worker side: the repair task, its heartbeat, the reaper, and the worker's app.

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

Nothing here runs at import: :func:`worker_app` builds the app from Settings when a worker
starts. Task names, the configuration and sending are in :mod:`avagent.service.queue` (which is
all the HTTP API imports); the batch tasks are in :mod:`avagent.service.batch_tasks`.

Queues. ``cpu_queue`` takes jobs on the embedded backends and batch fan-out; ``gpu_queue`` takes
jobs whose planner or scorer needs a model backend, so a GPU worker started with
``avagent worker --queues gpu`` only takes GPU work.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from celery import Celery, shared_task, signals
from celery.exceptions import SoftTimeLimitExceeded

from avagent.errors import AvagentError, MediaError, ParameterError
from avagent.service import storage as st
from avagent.service.batch_tasks import maybe_finalize, write_item
from avagent.service.jobs import (
    ACTIVE,
    FAILED,
    SUCCEEDED,
    Job,
    JobStore,
    consistency_tier,
)
from avagent.service.queue import REPAIR_TASK, create_celery, send_repair
from avagent.service.settings import Settings, get_settings
from avagent.service.task_context import (
    JobCancelledError,
    JobIdFilter,
    TaskContext,
    context,
    current_job,
    install_job_id_records,
    is_transient,
)

logger = logging.getLogger(__name__)


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


@shared_task(name=REPAIR_TASK, bind=True, acks_late=True, reject_on_worker_lost=True)
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


def _run_job(ctx: TaskContext, job: Job, worker: str, hb: _Heartbeat) -> None:
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
    options = RepairOptions.from_settings(
        ctx.settings, planner=opts.get("planner"), max_rounds=opts.get("max_rounds"),
        threshold=opts.get("threshold"), outputs=opts.get("outputs") or None,
    )
    with tempfile.TemporaryDirectory(prefix=f"avagent-{job.id[:12]}-") as tmp:
        local_in = Path(tmp) / "in" / job.input_name
        input_sha = storage.get_file(job.source, local_in)
        # A batch item's outputs are keyed by the source's whole name (a.wav and a.flac of one
        # folder must not write one a.repaired.wav); a single job keeps the plain stem.
        stem = job.input_name if job.batch_id else Path(job.input_name).stem
        try:
            report = repair_file(
                local_in, Path(tmp) / "out", options, settings=ctx.settings, progress=progress,
                job_id=job.id, output_stem=stem,
            )
        except AvagentError as exc:
            # The user knows the source by its URI, not by this worker's temporary copy.
            raise type(exc)(str(exc).replace(str(local_in), job.source)) from exc
        if hb.cancelled.is_set():
            raise JobCancelledError(job.id)
        local_outputs = dict(report.get("outputs") or {})
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
            outputs["report"] = st.join(job.output_prefix, f"{stem}.report.json")
        report["outputs"] = dict(outputs)
        if "report" in options.outputs:
            data = (json.dumps(report, indent=2, ensure_ascii=False) + "\n").encode()
            checksums["report"] = hashlib.sha256(data).hexdigest()
            storage.write_bytes(outputs["report"], data)
        previews: dict[str, Any] = {}
        if ctx.settings.preview_max_s > 0:
            progress({"stage": "previews", "round": len(report.get("rounds", [])),
                      "max_rounds": options.max_rounds, "fraction": 0.98})
            after = local_outputs.get("wav") or local_outputs.get("video")
            previews = render_previews(ctx, job, local_in, Path(after) if after else None,
                                       Path(tmp) / "previews")
    scores = dict(report.get("scores") or {})
    summary = {
        "summary": report.get("summary", ""),
        "sync_verdict": report.get("sync_verdict", ""),
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
        "previews": previews,
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


def render_previews(ctx: TaskContext, job: Job, before: Path, after: Path | None,
                    folder: Path) -> dict[str, Any]:
    """The web page's previews of both sides (:mod:`avagent.service.previews`), stored under
    ``<output_prefix>/.avagent/previews/<job>/``: ``{side: {"wav", "png", ...}, "errors": {side:
    reason}}``. A preview that cannot be made is logged and recorded, never fails the job (the
    repair stands); cancellation and the time limit still stop it."""
    from avagent.service import previews as pv

    prefix = st.join(job.output_prefix, f"{pv.PREVIEW_FOLDER}/{job.id}")
    record: dict[str, Any] = {}
    errors: dict[str, str] = {}
    t0 = time.perf_counter()
    for side, source in zip(pv.SIDES, (before, after), strict=True):
        if source is None:
            errors[side] = "no repaired audio was written (neither wav nor video in 'outputs')"
            continue
        try:
            info = pv.render(source, folder, side, max_s=ctx.settings.preview_max_s)
            uris = {kind: st.join(prefix, f"{side}.{kind}") for kind in ("wav", "png")}
            for kind, uri in uris.items():
                ctx.storage.put_file(folder / f"{side}.{kind}", uri)
            record[side] = {**uris, **info}
        except (JobCancelledError, SoftTimeLimitExceeded):
            raise
        except Exception as exc:
            reason = str(exc).replace(str(before), job.source) or type(exc).__name__
            logger.warning("%s preview not rendered (the repair stands): %s", side, reason,
                           exc_info=not isinstance(exc, AvagentError))
            errors[side] = reason
    if errors:
        record["errors"] = errors
    record["seconds"] = round(time.perf_counter() - t0, 3)
    return record


def _after_job(ctx: TaskContext, job: Job) -> None:
    """For batch jobs: record the item in the batch's destination and finish the batch when
    this was its last active job. Never raises (the job's own state is already recorded)."""
    if not job.batch_id:
        return
    try:
        fresh = ctx.store.get_job(job.id)
        if fresh is not None and fresh.state not in ACTIVE:
            batch = ctx.store.get_batch(job.batch_id)
            if batch is not None:
                write_item(ctx, batch, fresh)
        maybe_finalize(ctx, job.batch_id)
    except Exception:
        logger.exception("could not record batch item for batch %s", job.batch_id)



# -- worker process hooks --------------------------------------------------------------------
@signals.after_setup_logger.connect
@signals.after_setup_task_logger.connect
def _add_job_filter(logger: logging.Logger, *args: Any, **kwargs: Any) -> None:
    install_job_id_records()
    for handler in logger.handlers:
        if not any(isinstance(f, JobIdFilter) for f in handler.filters):
            handler.addFilter(JobIdFilter())


def reap_stale(ctx: TaskContext, celery_app: Celery) -> int:
    """Put jobs whose worker died (heartbeat older than ``job_stale_s``) back on their queue."""
    n = 0
    for job in ctx.store.stale_running(ctx.settings.job_stale_s):
        if ctx.store.reset_stale(job.id, ctx.settings.job_stale_s):
            logger.warning("job %s: worker %s stopped beating; requeued", job.id, job.worker)
            send_repair(celery_app, job)
            n += 1
    return n


def _reaper_loop(stop: threading.Event, celery_app: Celery) -> None:
    while not stop.wait(max(1.0, context().settings.job_stale_s / 4)):
        try:
            reap_stale(context(), celery_app)
        except Exception as exc:
            logger.warning("reaper: %s", exc)


_reaper_stop = threading.Event()


@signals.worker_ready.connect
def _start_reaper(sender: Any = None, **_: Any) -> None:
    celery_app = sender.app  # the worker's consumer
    threading.Thread(target=_reaper_loop, args=(_reaper_stop, celery_app), name="reaper",
                     daemon=True).start()


@signals.worker_shutting_down.connect
def _stop_reaper(**_: Any) -> None:
    _reaper_stop.set()


def worker_app(settings: Settings | None = None) -> Celery:
    """The Celery app a worker runs: configured from ``settings`` (default: the global Settings),
    with this module's tasks and :mod:`avagent.service.batch_tasks`' (shared tasks bind to it).
    Importing this module builds no app; ``avagent worker`` calls this."""
    install_job_id_records()
    return create_celery(settings or get_settings())
