"""``/v1/jobs``: submit one file (upload or storage URI), follow it, fetch its results, cancel."""

from __future__ import annotations

import logging
import posixpath
import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, HTTPException, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import ValidationError

from avagent.errors import MediaError, ParameterError
from avagent.service import storage as st
from avagent.service.api.deps import CallerDep, CeleryDep, SettingsDep, StorageDep, StoreDep
from avagent.service.api.schemas import (
    MAX_OFFSET,
    JobCreate,
    JobList,
    JobPublic,
    Problem,
    RepairOptionsIn,
)
from avagent.service.api.upload import (
    Spool,
    UploadError,
    input_name,
    options_from_fields,
    read_multipart,
)
from avagent.service.auth import Caller
from avagent.service.jobs import ACTIVE, SUCCEEDED, Job, JobStore, new_id
from avagent.service.queue import queue_for, send_repair
from avagent.service.settings import Settings

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

MAX_JSON_BYTES = 64 * 1024
MULTIPART_SLACK = 1 << 20  # headers and small fields around the file part

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "missing, wrong or revoked API key"},
    404: {"model": Problem, "description": "no such job (or not yours)"},
    429: {"model": Problem, "description": "rate or concurrency limit; see Retry-After"},
}

_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "planner": {"type": "string"},
                        "max_rounds": {"type": "integer", "minimum": 1, "maximum": 10},
                        "threshold": {"type": "number", "minimum": 0, "maximum": 1},
                        "outputs": {"type": "string", "description": "comma-separated: wav,video,report"},
                        "options": {"type": "string", "description": "all options as one JSON object"},
                    },
                }
            },
            "application/json": {"schema": {"$ref": "#/components/schemas/JobCreate"}},
            "video/*": {"schema": {"type": "string", "format": "binary"}},
            "audio/*": {"schema": {"type": "string", "format": "binary"}},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}

RESULT_KINDS = {"audio": "wav", "video": "video", "report": "report"}
_MEDIA_TYPES = {
    ".wav": "audio/wav", ".mp4": "video/mp4", ".m4v": "video/mp4", ".mov": "video/quicktime",
    ".mkv": "video/x-matroska", ".webm": "video/webm", ".avi": "video/x-msvideo",
    ".ogv": "video/ogg", ".json": "application/json",
}


def job_public(job: Job, request: Request | None = None) -> JobPublic:
    base = f"/v1/jobs/{job.id}"
    links = {"self": base}
    if job.state == SUCCEEDED:
        for name, kind in RESULT_KINDS.items():
            if kind in (job.outputs or {}):
                links[name] = f"{base}/{name}"
    if job.batch_id:
        links["batch"] = f"/v1/batches/{job.batch_id}"
    summary = job.summary or {}
    return JobPublic(
        id=job.id, state=job.state, source=job.source, input_name=job.input_name,
        options=dict(job.options or {}), queue=job.queue, batch_id=job.batch_id,
        progress=dict(job.progress or {}),
        scores={"alignment": job.score_alignment, "sync": job.score_sync},
        accepted=job.accepted, tier=job.tier,
        rounds=job.rounds, chosen_round=summary.get("chosen_round"),
        summary=summary.get("summary"), timings_s=summary.get("timings_s") or {},
        error=job.error, attempts=job.attempts, created_at=job.created_at,
        started_at=job.started_at, finished_at=job.finished_at, links=links,
    )


def _owned(store: JobStore, job_id: str, caller: Caller) -> Job:
    job = store.get_job(job_id, owner=caller.id)
    if job is None:
        raise HTTPException(404, f"job {job_id!r} not found")
    return job


def _options(raw: dict[str, Any]) -> dict[str, Any]:
    try:
        opts = RepairOptionsIn.model_validate(raw)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False)) from None
    return opts.model_dump(exclude_none=True)


def _accepted(job: Job, replayed: bool) -> JSONResponse:
    body = job_public(job).model_dump(mode="json")
    headers = {"Location": f"/v1/jobs/{job.id}"}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(body, status_code=202, headers=headers)


def _enqueue(store: JobStore, celery: Any, job: Job) -> None:
    try:
        send_repair(celery, job)
    except Exception as exc:
        logger.error("job %s: cannot queue: %s", job.id, exc)
        store.fail(job.id, f"the queue is unavailable: {exc}")
        raise HTTPException(503, "the job queue is unavailable; try again later") from None


@router.post(
    "",
    status_code=202,
    response_model=JobPublic,
    summary="Submit a file for repair",
    description=(
        "Upload a video or audio file (multipart field `file`, or the raw body with a `video/*`, "
        "`audio/*` or `application/octet-stream` content type and options as query parameters), "
        "or send JSON `{\"source\": \"s3://bucket/key\"}`. Answers 202 with the job and its links. "
        "The type is judged from the content (415), the size limit is enforced while streaming "
        "(413), and files FFmpeg cannot use (truncated, 0 s, no audio track) are refused (422). "
        "An `Idempotency-Key` header makes retries return the first job."
    ),
    openapi_extra=_UPLOAD_BODY,
    responses={
        **_ERRORS,
        413: {"model": Problem, "description": "upload above AVAGENT_MAX_UPLOAD_MB"},
        415: {"model": Problem, "description": "not a video/audio container, by content"},
        422: {"model": Problem, "description": "bad options, unusable media or source"},
        503: {"model": Problem, "description": "queue unavailable"},
    },
)
async def create_job(
    request: Request,
    caller: CallerDep,
    store: StoreDep,
    storage: StorageDep,
    settings: SettingsDep,
    celery: CeleryDep,
    idempotency_key: Annotated[
        str | None,
        Header(alias="Idempotency-Key", min_length=1, max_length=200, description="retry-safe key"),
    ] = None,
) -> Response:
    if idempotency_key:
        existing = await run_in_threadpool(store.find_job_by_idempotency, caller.id, idempotency_key)
        if existing is not None:
            return _accepted(existing, replayed=True)
    active = await run_in_threadpool(store.active_jobs, caller.id)
    if active >= caller.max_concurrent:
        raise HTTPException(
            429, f"{active} jobs are queued or running for this key (limit {caller.max_concurrent})",
            headers={"Retry-After": "5"},
        )
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "application/json":
        return await _create_from_source(request, caller, store, storage, settings, celery,
                                         idempotency_key)
    if ctype == "multipart/form-data" or ctype.startswith(("video/", "audio/")) or (
        ctype == "application/octet-stream"
    ):
        return await _create_from_upload(request, ctype, caller, store, storage, settings, celery,
                                         idempotency_key)
    raise HTTPException(
        415, f"content type {ctype or '(none)'!r} not accepted: send multipart/form-data with a "
             "'file' field, a raw video/* or audio/* body, or application/json with 'source'",
    )


async def _create_from_source(
    request: Request, caller: Caller, store: JobStore, storage: st.Storage, settings: Settings,
    celery: Any, idempotency_key: str | None,
) -> Response:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_JSON_BYTES:
            raise HTTPException(413, f"JSON body above {MAX_JSON_BYTES} bytes")
    try:  # decoded here: a validation error must not carry raw bytes (its encoder cannot)
        text = body.decode("utf-8") if body else "{}"
    except UnicodeDecodeError as exc:
        raise HTTPException(
            422, f"the JSON body is not valid UTF-8 (byte 0x{body[exc.start]:02x} at {exc.start})"
        ) from None
    try:
        spec = JobCreate.model_validate_json(text)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False)) from None
    try:
        source = storage.check_allowed(spec.source)
    except ParameterError as exc:
        raise HTTPException(422, str(exc)) from None
    folder = (f"source {spec.source!r} is a folder, not a file: submit a folder as a batch "
              "(POST /v1/batches)")
    if source.endswith("/"):
        raise HTTPException(422, folder)
    try:
        is_file = await run_in_threadpool(storage.is_file, source)
        exists = is_file or await run_in_threadpool(storage.exists, source)
    except Exception as exc:  # storage unreachable now: let the worker retry later
        logger.warning("cannot check %s now: %s", source, exc)
        is_file = exists = True
    if not exists:
        raise HTTPException(422, f"source {spec.source!r} does not exist")
    if not is_file:  # a job on a folder answered 500 on /input and /spectrogram (schemathesis)
        raise HTTPException(422, folder)
    name = posixpath.basename(source.rstrip("/"))
    try:
        name = st.safe_key(name)
    except ParameterError as exc:
        raise HTTPException(422, str(exc)) from None
    options = spec.model_dump(exclude_none=True, exclude={"source"})
    job_id = new_id()
    job = Job(
        id=job_id, owner=caller.id, queue=queue_for(options, settings), source=source,
        input_name=name, output_prefix=storage.key_uri(f"jobs/{job_id}"), options=options,
        idempotency_key=idempotency_key,
    )
    job, created = await run_in_threadpool(store.create_job, job)
    if created:
        await run_in_threadpool(_enqueue, store, celery, job)
        logger.info("job %s: queued from %s on %s", job.id, source, job.queue)
    return _accepted(job, replayed=not created)


async def _create_from_upload(
    request: Request, ctype: str, caller: Caller, store: JobStore, storage: st.Storage,
    settings: Settings, celery: Any, idempotency_key: str | None,
) -> Response:
    from avagent.service import media

    limit = int(settings.max_upload_mb * 1e6)
    declared = request.headers.get("content-length")
    slack = MULTIPART_SLACK if ctype == "multipart/form-data" else 0
    if declared and declared.isdigit() and int(declared) > limit + slack:
        raise HTTPException(
            413, f"upload of {int(declared) / 1e6:.1f} MB is larger than the limit of "
                 f"{settings.max_upload_mb:g} MB (AVAGENT_MAX_UPLOAD_MB)"
        )
    spool_root = settings.cache_dir / "spool"
    spool_root.mkdir(parents=True, exist_ok=True)
    tmpdir = Path(tempfile.mkdtemp(prefix="upload-", dir=spool_root))
    try:
        spool = Spool(tmpdir / "body", limit)
        try:
            if ctype == "multipart/form-data":
                _, params = _parse_ctype(request.headers.get("content-type", ""))
                boundary = params.get("boundary")
                if not boundary:
                    raise UploadError(400, "multipart/form-data without a boundary")
                fields, filename = await read_multipart(request.stream(), boundary.encode(), spool)
            else:
                async for chunk in request.stream():
                    spool.write(chunk)
                fields = {k: request.query_params.getlist(k) for k in request.query_params}
                filename = request.query_params.get("filename")
            spool.close()
        except UploadError as exc:
            raise HTTPException(exc.status, exc.detail) from None
        except OSError as exc:  # disk full: our problem, not the caller's
            raise HTTPException(507, f"cannot spool the upload: {exc}") from None
        finally:
            spool.abort()
        try:
            options = _options(options_from_fields(fields))
        except UploadError as exc:
            raise HTTPException(exc.status, exc.detail) from None
        name = input_name(filename, spool.kind, media.AUDIO_EXTS | media.VIDEO_EXTS)
        local = tmpdir / name
        (tmpdir / "body").rename(local)
        try:
            info = await run_in_threadpool(media.probe, local, max_duration_s=settings.max_duration_s)
        except MediaError as exc:
            raise HTTPException(422, str(exc).replace(str(local), name)) from None
        if not info.has_audio:
            raise HTTPException(422, f"{name}: has no audio track, so there is no sound to repair")
        job_id = new_id()
        source = storage.key_uri(f"uploads/{job_id}/{name}")
        await run_in_threadpool(storage.put_file, local, source)
        job = Job(
            id=job_id, owner=caller.id, queue=queue_for(options, settings), source=source,
            input_name=name, output_prefix=storage.key_uri(f"jobs/{job_id}"), options=options,
            idempotency_key=idempotency_key,
        )
        job, created = await run_in_threadpool(store.create_job, job)
        if created:
            await run_in_threadpool(_enqueue, store, celery, job)
            logger.info("job %s: queued upload %s (%d bytes) on %s", job.id, name, spool.size, job.queue)
        else:
            await run_in_threadpool(storage.delete, source)
        return _accepted(job, replayed=not created)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def _parse_ctype(value: str) -> tuple[str, dict[str, str]]:
    from python_multipart.multipart import parse_options_header

    ctype, params = parse_options_header(value)
    return ctype.decode(), {k.decode(): v.decode() for k, v in params.items()}


@router.get("", response_model=JobList, summary="List your jobs, newest first",
            responses=_ERRORS)
def list_jobs(
    request: Request,
    caller: CallerDep,
    store: StoreDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    state: Annotated[
        Literal["queued", "running", "succeeded", "failed", "cancelled"] | None, Query()
    ] = None,
    batch_id: Annotated[str | None, Query(max_length=64)] = None,
) -> JobList:
    jobs, total = store.list_jobs(caller.id, limit=limit, offset=offset, state=state,
                                  batch_id=batch_id)
    nxt = None
    if offset + len(jobs) < total:
        nxt = str(request.url.include_query_params(offset=offset + len(jobs), limit=limit))
    return JobList(items=[job_public(j) for j in jobs], total=total, limit=limit, offset=offset,
                   next=nxt)


@router.get("/{job_id}", response_model=JobPublic, summary="A job's state, progress and scores",
            responses=_ERRORS)
def get_job(job_id: str, caller: CallerDep, store: StoreDep) -> JobPublic:
    return job_public(_owned(store, job_id, caller))


@router.delete("/{job_id}", status_code=202, response_model=JobPublic,
               summary="Cancel a queued or running job",
               responses={**_ERRORS, 409: {"model": Problem, "description": "already finished"}})
def cancel_job(job_id: str, caller: CallerDep, store: StoreDep) -> JobPublic:
    job = _owned(store, job_id, caller)
    if job.state not in ACTIVE or not store.cancel(job.id):
        fresh = _owned(store, job_id, caller)
        raise HTTPException(409, f"job {job_id} is already {fresh.state}")
    logger.info("job %s: cancelled by %s", job.id, caller.id)
    return job_public(_owned(store, job_id, caller))


@router.get(
    "/{job_id}/{kind}",
    summary="Download a result: the repaired audio (WAV), video, or the report (JSON)",
    response_class=StreamingResponse,
    responses={
        **_ERRORS,
        200: {"content": {"audio/wav": {}, "video/mp4": {}, "application/json": {}}},
        409: {"model": Problem, "description": "the job has not succeeded (yet)"},
    },
)
def get_result(
    job_id: str, kind: Literal["audio", "video", "report"], caller: CallerDep, store: StoreDep,
    storage: StorageDep,
) -> StreamingResponse:
    job = _owned(store, job_id, caller)
    if job.state != SUCCEEDED:
        raise HTTPException(409, f"job {job_id} is {job.state}; results exist once it succeeded")
    uri = (job.outputs or {}).get(RESULT_KINDS[kind])
    if not uri:
        what = "audio-only input" if kind == "video" else "not requested in 'outputs'"
        raise HTTPException(404, f"job {job_id} has no {kind} output ({what})")
    try:
        size = storage.size(uri)
    except FileNotFoundError:
        raise HTTPException(404, f"the {kind} output of job {job_id} is gone from storage") from None
    filename = posixpath.basename(uri)
    media_type = _MEDIA_TYPES.get(posixpath.splitext(filename)[1].lower(), "application/octet-stream")
    return StreamingResponse(
        storage.iter_bytes(uri),
        media_type=media_type,
        headers={
            "Content-Length": str(size),
            "Content-Disposition": f'attachment; filename="{filename}"',
        },
    )
