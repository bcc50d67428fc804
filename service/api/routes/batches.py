"""``/v1/batches``: one job per object under a source prefix, results and a manifest under dest.

Re-submitting the same source/dest/pattern is a resume: objects whose item record in
``dest/.avagent/items/`` says they succeeded (and whose ETag did not change since) are skipped.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse

from avagent.errors import ParameterError
from avagent.service import storage as st
from avagent.service.api.deps import CallerDep, CeleryDep, SettingsDep, StorageDep, StoreDep
from avagent.service.api.schemas import (
    MAX_OFFSET,
    BatchCounts,
    BatchCreate,
    BatchList,
    BatchPublic,
    Problem,
)
from avagent.service.auth import Caller
from avagent.service.jobs import Batch, JobStore, new_id
from avagent.service.queue import send_expand, send_finalize

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/batches", tags=["batches"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "missing, wrong or revoked API key"},
    404: {"model": Problem, "description": "no such batch (or not yours)"},
    429: {"model": Problem, "description": "rate limit; see Retry-After"},
}


def batch_public(store: JobStore, b: Batch) -> BatchPublic:
    counts = store.batch_counts(b.id)
    n_jobs = sum(counts.values())
    if b.total:
        progress = (b.skipped + store.batch_progress(b.id) * n_jobs) / b.total
    else:
        progress = 1.0 if b.state not in ("expanding", "running") else 0.0
    links = {"self": f"/v1/batches/{b.id}", "jobs": f"/v1/jobs?batch_id={b.id}"}
    if b.manifest_uri:
        links["manifest"] = f"/v1/batches/{b.id}/manifest"
    return BatchPublic(
        id=b.id, state=b.state,
        source=b.source, dest=b.dest, pattern=b.pattern, options=dict(b.options or {}),
        counts=BatchCounts(total=b.total, skipped=b.skipped, **counts),
        progress=round(min(1.0, progress), 4), manifest=b.manifest_uri, error=b.error,
        created_at=b.created_at, finished_at=b.finished_at, links=links,
    )


def _owned(store: JobStore, batch_id: str, caller: Caller) -> Batch:
    b = store.get_batch(batch_id, owner=caller.id)
    if b is None:
        raise HTTPException(404, f"batch {batch_id!r} not found")
    return b


@router.post(
    "",
    status_code=202,
    response_model=BatchPublic,
    summary="Repair every object under a prefix",
    description=(
        "Lists `source` (s3:// or a folder under the storage root) for objects matching "
        "`pattern` and queues one job per object; outputs keep their folder under `dest`, and "
        "`dest/manifest.jsonl` lists input, outputs, scores, consistency tier and checksums "
        "when the batch ends. Submitting again resumes: finished objects are skipped."
    ),
    responses={**_ERRORS, 422: {"model": Problem, "description": "bad prefix or options"}},
)
def create_batch(
    spec: BatchCreate,
    caller: CallerDep,
    store: StoreDep,
    storage: StorageDep,
    settings: SettingsDep,
    celery: CeleryDep,
    idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key", min_length=1, max_length=200)
    ] = None,
) -> JSONResponse:
    try:
        source = storage.check_allowed(spec.source)
        dest = storage.check_allowed(spec.dest)
    except ParameterError as exc:
        raise HTTPException(422, str(exc)) from None
    source, dest = source.rstrip("/") + "/", dest.rstrip("/") + "/"
    if st.is_under(dest, source):
        raise HTTPException(422, "dest must not lie inside source (outputs would become inputs)")
    options = spec.model_dump(exclude_none=True, exclude={"source", "dest", "pattern"})
    batch = Batch(
        id=new_id(), owner=caller.id, source=source, dest=dest, pattern=spec.pattern,
        options=options, idempotency_key=idempotency_key,
    )
    batch, created = store.create_batch(batch)
    if created:
        try:
            send_expand(celery, batch.id, settings)
        except Exception as exc:
            store.update_batch(batch.id, state="failed", error=f"queue unavailable: {exc}")
            raise HTTPException(503, "the job queue is unavailable; try again later") from None
        logger.info("batch %s: %s -> %s (%s) queued", batch.id, source, dest, spec.pattern)
    headers = {"Location": f"/v1/batches/{batch.id}"}
    if not created:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(batch_public(store, batch).model_dump(mode="json"), 202, headers=headers)


@router.get("", response_model=BatchList, summary="List your batches, newest first",
            responses=_ERRORS)
def list_batches(
    request: Request,
    caller: CallerDep,
    store: StoreDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> BatchList:
    rows, total = store.list_batches(caller.id, limit=limit, offset=offset)
    nxt = None
    if offset + len(rows) < total:
        nxt = str(request.url.include_query_params(offset=offset + len(rows), limit=limit))
    return BatchList(items=[batch_public(store, b) for b in rows], total=total, limit=limit,
                     offset=offset, next=nxt)


@router.get("/{batch_id}", response_model=BatchPublic, summary="Counts and progress",
            responses=_ERRORS)
def get_batch(batch_id: str, caller: CallerDep, store: StoreDep) -> BatchPublic:
    return batch_public(store, _owned(store, batch_id, caller))


@router.delete("/{batch_id}", status_code=202, response_model=BatchPublic,
               summary="Cancel the batch's queued and running jobs", responses=_ERRORS)
def cancel_batch(
    batch_id: str, caller: CallerDep, store: StoreDep, celery: CeleryDep, settings: SettingsDep
) -> BatchPublic:
    b = _owned(store, batch_id, caller)
    n = store.cancel_batch(b.id)
    logger.info("batch %s: cancelled (%d jobs)", b.id, n)
    try:  # close the batch now if no job is left running
        send_finalize(celery, b.id, settings)
    except Exception as exc:
        logger.warning("batch %s: cannot queue finalize: %s", b.id, exc)
    return batch_public(store, _owned(store, batch_id, caller))


@router.get("/{batch_id}/manifest", summary="The batch's manifest.jsonl",
            response_class=StreamingResponse,
            responses={**_ERRORS, 409: {"model": Problem, "description": "not finished yet"}})
def get_manifest(
    batch_id: str, caller: CallerDep, store: StoreDep, storage: StorageDep
) -> StreamingResponse:
    b = _owned(store, batch_id, caller)
    if not b.manifest_uri:
        raise HTTPException(409, f"batch {batch_id} is {b.state}; the manifest is written at the end")
    return StreamingResponse(storage.iter_bytes(b.manifest_uri), media_type="application/jsonl")
