"""Request dependencies as typed aliases (``StoreDep``, ``CallerDep``, ...).

Everything lives on ``app.state`` (built once by :func:`avagent.service.api.create_app`), so two apps
with different settings can run side by side in one process (the tests do).
"""

from __future__ import annotations

import math
from typing import Annotated

from celery import Celery
from fastapi import Depends, Header, HTTPException, Request

from avagent.service.auth import AuthError, Caller, RateLimiter, authenticate
from avagent.service.jobs import JobStore
from avagent.service.settings import Settings
from avagent.service.storage import Storage


def _settings(request: Request) -> Settings:
    return request.app.state.settings


def _store(request: Request) -> JobStore:
    return request.app.state.store


def _storage(request: Request) -> Storage:
    return request.app.state.storage


def _celery(request: Request) -> Celery:
    return request.app.state.celery


SettingsDep = Annotated[Settings, Depends(_settings)]
StoreDep = Annotated[JobStore, Depends(_store)]
StorageDep = Annotated[Storage, Depends(_storage)]
CeleryDep = Annotated[Celery, Depends(_celery)]


def _caller(
    request: Request,
    store: StoreDep,
    settings: SettingsDep,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
    x_api_key: Annotated[str | None, Header(description="API key (or Authorization: Bearer)")] = None,
) -> Caller:
    key = x_api_key
    if not key and authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise HTTPException(401, "Authorization must be 'Bearer <key>'",
                                headers={"WWW-Authenticate": "Bearer"})
        key = value.strip()
    try:
        caller = authenticate(store, settings, key)
    except AuthError as exc:
        raise HTTPException(401, str(exc), headers={"WWW-Authenticate": "Bearer"}) from None
    limiter: RateLimiter = request.app.state.limiter
    wait = limiter.take(caller.id, caller.rate_per_minute)
    if wait > 0:
        raise HTTPException(
            429, f"rate limit of {caller.rate_per_minute} requests per minute exceeded",
            headers={"Retry-After": str(max(1, math.ceil(wait)))},
        )
    request.state.caller = caller
    return caller


CallerDep = Annotated[Caller, Depends(_caller)]
