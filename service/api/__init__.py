"""The HTTP API (FastAPI): ``create_app(settings)`` builds one app with its own job store,
storage, Celery producer and metrics registry."""

from avagent.service.api.app import create_app

__all__ = ["create_app"]
