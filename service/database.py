"""The database connection: which URL Settings name, and one engine per URL per process.

SQLite under ``cache_dir`` by default (WAL, so the API and the workers read while another
writes); PostgreSQL or any SQLAlchemy URL through ``AVAGENT_DATABASE_URL``.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from sqlalchemy import MetaData, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from avagent.service.settings import Settings

logger = logging.getLogger(__name__)


def database_url(settings: Settings) -> str:
    if settings.database_url:
        return settings.database_url
    settings.cache_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{settings.cache_dir / 'avagent.sqlite3'}"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL: the API and the worker processes read while the other writes.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


_engines: dict[tuple[int, str], Engine] = {}
_engines_lock = threading.Lock()


def create_tables(engine: Engine, metadata: MetaData, attempts: int = 5) -> None:
    """``create_all`` checks, then creates: two processes starting on one new database (the API
    and a worker) can both see no table and one then fails with "already exists". Checking
    again settles it."""
    for attempt in range(attempts):
        try:
            metadata.create_all(engine)
            return
        except OperationalError as exc:
            if "already exists" not in str(exc) or attempt == attempts - 1:
                raise
            logger.info("tables created by another process meanwhile; checking again")


def get_engine(url: str, metadata: MetaData) -> Engine:
    """One engine per URL per process (a forked worker child gets its own), with the tables of
    ``metadata`` created."""
    key = (os.getpid(), url)
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            if url.startswith("sqlite"):
                engine = create_engine(
                    url, connect_args={"timeout": 30, "check_same_thread": False}
                )
                event.listen(engine, "connect", _sqlite_pragmas)
            else:
                engine = create_engine(url, pool_pre_ping=True)
            create_tables(engine, metadata)
            _engines[key] = engine
        return engine
