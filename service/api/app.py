"""The app factory: routers, error handlers, request metrics and the OpenAPI description."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import Counter, Histogram

from avagent import __version__
from avagent.errors import AvagentError, BackendError, MediaError, ParameterError
from avagent.service.auth import RateLimiter
from avagent.service.jobs import JobStore
from avagent.service.settings import Settings, get_settings
from avagent.service.storage import Storage

logger = logging.getLogger(__name__)

DESCRIPTION = """\
Repairs the sound of videos (noise, offset, drift, loudness, dropouts) and explains what it did.

* `POST /v1/jobs` a file (multipart `file`, or a raw body) or `{"source": "s3://..."}` → 202 with
  the job; follow `GET /v1/jobs/{id}`; download `/audio`, `/video`, `/report` once it succeeded.
* `POST /v1/batches` `{"source": "s3://b/in/", "dest": "s3://b/out/", "pattern": "*.mp4"}` fans
  out one job per object; `dest/manifest.jsonl` lists every result. Re-submitting resumes.
* Send your key as `Authorization: Bearer <key>` or `X-API-Key` (`avagent keys create`). In
  development, until the first key exists, requests without a key act as one anonymous user.

Consistency tiers: **accepted** (both scores ≥ threshold), **improved** (below threshold but a
repair beat the input), **rejected** (nothing beat the input; the sound is left as it was),
**failed**.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    from avagent.service import web
    from avagent.service.api.routes import batches, health, jobs
    from avagent.service.queue import create_celery

    settings = settings or get_settings()
    app = FastAPI(
        title="avagent",
        version=__version__,
        description=DESCRIPTION,
        docs_url="/docs",
        redoc_url="/redoc",
        openapi_url="/openapi.json",
    )
    app.state.settings = settings
    app.state.store = JobStore.from_settings(settings)
    app.state.storage = Storage.from_settings(settings)
    app.state.celery = create_celery(settings)
    app.state.limiter = RateLimiter()
    registry = health.make_registry(app.state.store)
    app.state.registry = registry
    requests = Counter("avagent_http_requests", "HTTP requests", ["method", "route", "status"],
                       registry=registry)
    latency = Histogram("avagent_http_request_duration_seconds", "HTTP request latency",
                        ["method", "route"], registry=registry)

    @app.middleware("http")
    async def _metrics(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        t0 = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            route = request.scope.get("route")
            path = getattr(route, "path", "unmatched")
            requests.labels(request.method, path, str(status)).inc()
            latency.labels(request.method, path).observe(time.perf_counter() - t0)

    @app.exception_handler(AvagentError)
    async def _avagent_error(_: Request, exc: AvagentError) -> JSONResponse:
        if isinstance(exc, BackendError):
            return JSONResponse({"detail": str(exc)}, status_code=503)
        status = 422 if isinstance(exc, (ParameterError, MediaError)) else 400
        return JSONResponse({"detail": str(exc)}, status_code=status)

    app.include_router(web.router)  # the web page; before jobs: /v1/jobs/{id}/input and /media
    app.include_router(jobs.router)
    app.include_router(batches.router)
    app.include_router(health.router)

    def openapi() -> dict[str, Any]:
        # POST /v1/jobs reads its body itself (streaming), so JobCreate is added by hand.
        if app.openapi_schema is None:
            from fastapi.openapi.utils import get_openapi

            from avagent.service.api.schemas import JobCreate

            schema = get_openapi(title=app.title, version=app.version,
                                 description=app.description, routes=app.routes)
            defs = JobCreate.model_json_schema(ref_template="#/components/schemas/{model}")
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(defs.pop("$defs", {}))
            components["JobCreate"] = defs
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
