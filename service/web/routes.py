"""Web pages (``/``, ``/jobs/{id}``, ``/batches/{id}``) and the media the job page plays and shows:

* ``GET /v1/jobs/{id}/input`` -- the original input file, as submitted;
* ``GET /v1/jobs/{id}/preview/{before|after}`` -- a 16-bit WAV any browser plays;
* ``GET /v1/jobs/{id}/spectrogram/{before|after}`` -- a PNG;
* ``GET /v1/jobs/{id}/media`` -- the URLs above, signed for an hour (for ``<audio>``/``<img>``).

The media routes take the API key like every other route, or a token from ``/media``. Previews
and spectrograms are files the worker rendered when the job finished
(:mod:`avagent.service.previews`); this process only serves them: a job still queued or
running answers 409, one without them 404 with the reason.
"""

from __future__ import annotations

import logging
import posixpath
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, Response, StreamingResponse
from fastapi.templating import Jinja2Templates

from avagent.service.api.deps import CallerDep, SettingsDep, StorageDep, StoreDep, _caller
from avagent.service.api.schemas import Problem
from avagent.service.jobs import ACTIVE, SUCCEEDED, Job, JobStore
from avagent.service.previews import SIDES, Side
from avagent.service.settings import Settings
from avagent.service.storage import Storage
from avagent.service.web import tokens

logger = logging.getLogger(__name__)

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
router = APIRouter()
STATIC = {p.name: p for p in (HERE / "static").iterdir() if p.suffix in (".js", ".css")}

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "missing, wrong or revoked API key, or a bad token"},
    404: {"model": Problem, "description": "no such job (or not yours)"},
    429: {"model": Problem, "description": "rate limit; see Retry-After"},
}
_TYPES = {
    ".wav": "audio/wav", ".flac": "audio/flac", ".mp3": "audio/mpeg", ".ogg": "audio/ogg",
    ".mp4": "video/mp4", ".m4v": "video/mp4", ".mov": "video/quicktime", ".webm": "video/webm",
    ".mkv": "video/x-matroska", ".avi": "video/x-msvideo", ".ogv": "video/ogg",
}
Token = Annotated[str | None, Query(max_length=200, description="signed token from /media")]


# -- pages ---------------------------------------------------------------------------------------
def _page(request: Request, name: str, **ctx: Any) -> HTMLResponse:
    settings: Settings = request.app.state.settings
    return templates.TemplateResponse(
        request, name, {"environment": settings.environment, **ctx},
        headers={"Cache-Control": "no-store"},
    )


@router.get("/ui/static/{name}", include_in_schema=False)
def static_file(name: str) -> FileResponse:
    path = STATIC.get(name)
    if path is None:
        raise HTTPException(404, f"no static file {name!r}")
    ctype = "text/javascript" if path.suffix == ".js" else "text/css"
    return FileResponse(path, media_type=ctype, headers={"Cache-Control": "no-cache"})


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def index_page(request: Request) -> HTMLResponse:
    settings: Settings = request.app.state.settings
    return _page(request, "index.html", max_upload_mb=settings.max_upload_mb,
                 max_rounds=settings.max_rounds, threshold=settings.threshold)


@router.get("/jobs/{job_id}", response_class=HTMLResponse, include_in_schema=False)
def job_page(request: Request, job_id: str) -> HTMLResponse:
    return _page(request, "job.html", job_id=job_id)


@router.get("/batches/{batch_id}", response_class=HTMLResponse, include_in_schema=False)
def batch_page(request: Request, batch_id: str) -> HTMLResponse:
    return _page(request, "batch.html", batch_id=batch_id)


# -- media ---------------------------------------------------------------------------------------
def _job_for_media(request: Request, job_id: str, t: str | None, store: JobStore,
                   settings: Settings) -> Job:
    """The job, opened by a signed token or by the caller's key (same 401/404 as the API)."""
    if t:
        job = store.get_job(job_id)
        if job is None or not tokens.verify(settings.secret_key, t, job.id, job.owner):
            raise HTTPException(401, "media token is invalid or expired; ask /media again")
        return job
    caller = _caller(request, store, settings, request.headers.get("authorization"),
                     request.headers.get("x-api-key"))
    job = store.get_job(job_id, owner=caller.id)
    if job is None:
        raise HTTPException(404, f"job {job_id!r} not found")
    return job


def _preview(job: Job, side: Side, kind: Literal["wav", "png"]) -> str:
    """URI of the stored preview file, or an HTTP error saying why there is none. The worker
    renders previews when the job finishes; this process never decodes or renders."""
    if job.state in ACTIVE:
        raise HTTPException(409, f"job {job.id} is {job.state}; its previews are rendered by the "
                                 "worker when it finishes")
    record = (job.summary or {}).get("previews") or {}
    uri = (record.get(side) or {}).get(kind)
    if not uri:
        why = (record.get("errors") or {}).get(side)
        if why:
            raise HTTPException(404, f"job {job.id} has no {side} preview: {why}")
        if job.state != SUCCEEDED:
            raise HTTPException(404, f"job {job.id} {job.state}; previews exist for succeeded jobs")
        raise HTTPException(404, f"job {job.id} has no {side} preview (none was rendered: "
                                 "AVAGENT_PREVIEW_MAX_S=0, or the job ran before workers made them)")
    return str(uri)


def _serve(storage: Storage, uri: str, media_type: str, what: str) -> Response:
    headers = {"Cache-Control": "private, max-age=3600"}
    if uri.startswith("file://"):  # local storage: a FileResponse answers Range requests
        path = Path(uri[len("file://"):])
        if not path.is_file():
            raise HTTPException(404, f"the {what} is gone from storage")
        return FileResponse(path, media_type=media_type, headers=headers)
    try:
        size = storage.size(uri)
    except FileNotFoundError:
        raise HTTPException(404, f"the {what} is gone from storage") from None
    return StreamingResponse(storage.iter_bytes(uri), media_type=media_type,
                             headers={**headers, "Content-Length": str(size)})


@router.get("/v1/jobs/{job_id}/media", tags=["jobs"], responses=_ERRORS,
            summary="Signed URLs of the job's input, previews and spectrograms (for the web page)")
def media_links(job_id: str, caller: CallerDep, store: StoreDep, settings: SettingsDep) -> dict[str, Any]:
    job = store.get_job(job_id, owner=caller.id)
    if job is None:
        raise HTTPException(404, f"job {job_id!r} not found")
    t = tokens.sign(settings.secret_key, job.id, job.owner)
    base = f"/v1/jobs/{job.id}"
    links = {"input": f"{base}/input?t={t}"}
    record = {} if job.state in ACTIVE else ((job.summary or {}).get("previews") or {})
    for side in SIDES:  # only what the worker rendered and stored
        if (record.get(side) or {}).get("wav"):
            links[side] = f"{base}/preview/{side}?t={t}"
        if (record.get(side) or {}).get("png"):
            links[f"spectrogram_{side}"] = f"{base}/spectrogram/{side}?t={t}"
    return {"links": links, "expires_at": int(t.split(".")[0])}


@router.get("/v1/jobs/{job_id}/input", tags=["jobs"], response_class=StreamingResponse,
            summary="The job's original input file, as submitted",
            responses={**_ERRORS, 200: {"content": {"video/mp4": {}, "audio/wav": {}}}})
def get_input(request: Request, job_id: str, store: StoreDep, storage: StorageDep,
              settings: SettingsDep, t: Token = None) -> StreamingResponse:
    job = _job_for_media(request, job_id, t, store, settings)
    try:  # a folder has a size too, but streaming it fails after the headers went out
        if not storage.is_file(job.source):
            raise FileNotFoundError(job.source)
        size = storage.size(job.source)
    except FileNotFoundError:
        raise HTTPException(404, f"the input of job {job_id} is gone from storage") from None
    ext = posixpath.splitext(job.input_name)[1].lower()
    return StreamingResponse(
        storage.iter_bytes(job.source), media_type=_TYPES.get(ext, "application/octet-stream"),
        headers={"Content-Length": str(size),
                 "Content-Disposition": f'inline; filename="{job.input_name}"'},
    )


_NOT_READY = {"model": Problem, "description": "the job is queued or running: previews are "
                                                "rendered by the worker when it finishes"}
_NO_PREVIEW = {"model": Problem, "description": "no such job (or not yours), or no preview of "
                                                "that side (the reason the worker recorded)"}


@router.get("/v1/jobs/{job_id}/preview/{side}", tags=["jobs"], response_class=FileResponse,
            summary="Before (input) or after (repaired) sound as a 16-bit WAV for a browser",
            responses={**_ERRORS, 200: {"content": {"audio/wav": {}}}, 404: _NO_PREVIEW,
                       409: _NOT_READY})
def get_preview(request: Request, job_id: str, side: Side, store: StoreDep,
                storage: StorageDep, settings: SettingsDep, t: Token = None) -> Response:
    job = _job_for_media(request, job_id, t, store, settings)
    return _serve(storage, _preview(job, side, "wav"), "audio/wav", f"{side} preview of job {job.id}")


@router.get("/v1/jobs/{job_id}/spectrogram/{side}", tags=["jobs"], response_class=FileResponse,
            summary="Spectrogram (PNG) of the input (before) or the repaired sound (after)",
            responses={**_ERRORS, 200: {"content": {"image/png": {}}}, 404: _NO_PREVIEW,
                       409: _NOT_READY})
def get_spectrogram(request: Request, job_id: str, side: Side, store: StoreDep,
                    storage: StorageDep, settings: SettingsDep, t: Token = None) -> Response:
    job = _job_for_media(request, job_id, t, store, settings)
    return _serve(storage, _preview(job, side, "png"), "image/png",
                  f"{side} spectrogram of job {job.id}")
