"""``/healthz`` (the process answers), ``/readyz`` (database, broker, storage, backends) and
``/metrics`` (Prometheus)."""

from __future__ import annotations

import logging
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from avagent.service.backends import backend_name
from avagent.service.jobs import JobStore
from avagent.service.queue import celery_config
from avagent.service.settings import Settings

logger = logging.getLogger(__name__)

router = APIRouter(tags=["health"])

DURATION_BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800)
ROUND_BUCKETS = tuple(float(i) for i in range(0, 11))
SCORE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 1.0)


@router.get("/healthz", summary="Liveness: the process answers")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


def _check(fn: Any) -> dict[str, Any]:
    t0 = time.perf_counter()
    try:
        detail = fn()
        return {"ok": True, "ms": round((time.perf_counter() - t0) * 1e3, 1), **(detail or {})}
    except Exception as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:500]}


def check_broker(settings: Settings) -> dict[str, Any]:
    from kombu import Connection

    conf = celery_config(settings)
    with Connection(conf["broker_url"], connect_timeout=2,
                    transport_options=conf.get("broker_transport_options", {})) as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
        return {"transport": conn.transport_cls if isinstance(conn.transport_cls, str) else "ok"}


def check_backends(settings: Settings) -> dict[str, Any]:
    import importlib

    from avagent.agent.planner import PLANNERS

    importlib.import_module("avagent.service.pipeline")
    out: dict[str, Any] = {"planners": list(PLANNERS), "scorer": backend_name(settings, "scorer"),
                           "captioner": backend_name(settings, "captioner")}
    if settings.llm_base_url:
        url = settings.llm_base_url.rstrip("/") + "/models"
        req = urllib.request.Request(url, headers={"Authorization": f"Bearer {settings.llm_api_key}"})
        with urllib.request.urlopen(req, timeout=2) as resp:
            out["llm"] = f"{url} -> {resp.status}"
    return out


@router.get("/readyz", summary="Readiness: database, broker, storage and backends")
def readyz(request: Request) -> JSONResponse:
    state = request.app.state
    checks = {
        "database": _check(state.store.ping),
        "broker": _check(lambda: check_broker(state.settings)),
        "storage": _check(state.storage.ping),
        "backends": _check(lambda: check_backends(state.settings)),
    }
    ok = all(c["ok"] for c in checks.values())
    return JSONResponse({"status": "ready" if ok else "not ready", "checks": checks},
                        status_code=200 if ok else 503)


class JobCollector(Collector):
    """Job metrics read from the job table at scrape time, so every API replica reports the
    same numbers whatever worker ran the jobs."""

    def __init__(self, store: JobStore) -> None:
        self.store = store

    def collect(self) -> Iterator[Any]:
        try:
            states = self.store.state_counts()
            depths = self.store.queue_depths()
            hists = {
                "duration": self.store.histogram("duration_s", DURATION_BUCKETS),
                "rounds": self.store.histogram("rounds", ROUND_BUCKETS),
                "alignment": self.store.histogram("score_alignment", SCORE_BUCKETS),
                "sync": self.store.histogram("score_sync", SCORE_BUCKETS),
            }
        except Exception as exc:
            logger.warning("metrics: job store unavailable: %s", exc)
            return
        g = GaugeMetricFamily("avagent_jobs", "Jobs by state", labels=["state"])
        for st, n in states.items():
            g.add_metric([st], n)
        yield g
        q = GaugeMetricFamily("avagent_queue_depth", "Jobs waiting per queue", labels=["queue"])
        for name, n in depths.items():
            q.add_metric([name], n)
        yield q
        yield _hist("avagent_job_duration_seconds", "Processing time of succeeded jobs",
                    DURATION_BUCKETS, hists["duration"])
        yield _hist("avagent_job_rounds", "Agent rounds per succeeded job", ROUND_BUCKETS,
                    hists["rounds"])
        h = HistogramMetricFamily("avagent_job_score", "Final scores of succeeded jobs",
                                  labels=["score"])
        for name in ("alignment", "sync"):
            counts, count, total = hists[name]
            h.add_metric([name], _buckets(SCORE_BUCKETS, counts, count), total)
        yield h


def _buckets(edges: tuple[float, ...], counts: list[int], count: int) -> list[tuple[str, float]]:
    return [(f"{e:g}", float(c)) for e, c in zip(edges, counts, strict=True)] + [("+Inf", float(count))]


def _hist(name: str, doc: str, edges: tuple[float, ...], data: tuple[list[int], int, float]) -> Any:
    counts, count, total = data
    return HistogramMetricFamily(name, doc, buckets=_buckets(edges, counts, count), sum_value=total)


def make_registry(store: JobStore) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(JobCollector(store))
    return registry


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.registry), media_type=CONTENT_TYPE_LATEST)
