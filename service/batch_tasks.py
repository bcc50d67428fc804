"""The batch tasks: expand a batch into jobs, record each finished item, write the manifest."""

from __future__ import annotations

import hashlib
import json
import logging
import posixpath
from typing import Any

from celery import shared_task

from avagent.errors import ParameterError
from avagent.service import storage as st
from avagent.service.jobs import (
    FAILED,
    QUEUED,
    SUCCEEDED,
    Batch,
    Job,
    new_id,
    utcnow,
)
from avagent.service.queue import EXPAND_TASK, FINALIZE_TASK, queue_for, send_repair
from avagent.service.task_context import TaskContext, context, current_job, is_transient

logger = logging.getLogger(__name__)


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


def write_item(ctx: TaskContext, batch: Batch, job: Job) -> None:
    line = manifest_line(job)
    ctx.storage.write_bytes(_item_uri(batch.dest, job.source), json.dumps(line).encode())


def _read_items(ctx: TaskContext, dest: str) -> dict[str, dict[str, Any]]:
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


@shared_task(name=EXPAND_TASK, bind=True, acks_late=True, reject_on_worker_lost=True)
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
                send_repair(self.app, job)
            elif job.state == FAILED:
                write_item(ctx, batch, job)
        ctx.store.update_batch(batch_id, state="running", total=len(objects), skipped=skipped)
        logger.info("batch %s: %d objects, %d already done", batch_id, len(objects), skipped)
        maybe_finalize(ctx, batch_id)
        return len(objects) - skipped
    finally:
        current_job.reset(token)


@shared_task(name=FINALIZE_TASK, acks_late=True)
def finalize_batch(batch_id: str) -> None:
    maybe_finalize(context(), batch_id)


def maybe_finalize(ctx: TaskContext, batch_id: str) -> bool:
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
