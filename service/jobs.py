"""Job, batch and API-key records (SQLAlchemy): SQLite under ``cache_dir`` by default,
PostgreSQL (or any SQLAlchemy URL) through ``AVAGENT_DATABASE_URL``.

The job table is the service's source of truth and its result store: the API writes a job as
``queued`` and sends its id through Celery; a worker *claims* it with one conditional UPDATE
(``queued`` -> ``running``, or a ``running`` job whose heartbeat went stale), so a redelivered
message for a finished or live job does nothing. Every later transition is conditional on the
job still being ``running`` under that claim, which is also how cancellation reaches a worker.

States: ``queued`` -> ``running`` -> ``succeeded`` | ``failed`` | ``cancelled``.

Consistency tiers (per finished job, also in batch manifests):

* ``accepted`` -- both scores of the chosen round are >= the threshold;
* ``improved`` -- below the threshold, but a repair round beat the untouched input;
* ``rejected`` -- no round beat the input (the output is the input's sound, unchanged) and the
  input scores below the threshold: keep the pair out of pretraining;
* ``failed`` -- the job failed (the reason is in ``error``).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    Integer,
    String,
    Text,
    UniqueConstraint,
    case,
    func,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from avagent.service.database import database_url, get_engine
from avagent.service.settings import Settings

logger = logging.getLogger(__name__)

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = "queued", "running", "succeeded", "failed", "cancelled"
STATES = (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED)
ACTIVE = (QUEUED, RUNNING)
TERMINAL = (SUCCEEDED, FAILED, CANCELLED)
TIERS = ("accepted", "improved", "rejected", "failed")

ANONYMOUS = "anonymous"


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)  # naive UTC: same in SQLite and PostgreSQL


def new_id() -> str:
    return uuid.uuid4().hex


def consistency_tier(report: dict[str, Any] | None, threshold: float) -> str:
    """The tier of a finished job (see the module docstring)."""
    if not report:
        return "failed"
    rounds = report.get("rounds") or []
    chosen = report.get("chosen_round")
    scores = _chosen_scores(report)
    if report.get("accepted") or (
        scores and min(scores.get("alignment", 0.0), scores.get("sync", 0.0)) >= threshold
    ):
        return "accepted"
    if chosen and int(chosen) > 0 and rounds:
        return "improved"
    return "rejected"


def _chosen_scores(report: dict[str, Any]) -> dict[str, float]:
    """Scores of the chosen round; round 0 (the untouched input) may be listed or not."""
    chosen = report.get("chosen_round")
    rounds = report.get("rounds") or []
    for i, r in enumerate(rounds):
        if int(r.get("index", i + 1)) == chosen:
            return dict(r.get("scores") or {})
    if report.get("scores"):
        return dict(report["scores"])
    baseline = report.get("baseline") or {}
    return dict(baseline.get("scores") or {})


def _rowcount(result: Any) -> int:
    """Rows an UPDATE matched (a CursorResult's rowcount; typed loosely by SQLAlchemy)."""
    return int(getattr(result, "rowcount", 0) or 0)


class Base(DeclarativeBase):
    pass


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)  # public part of the key
    name: Mapped[str] = mapped_column(String(200))
    key_hash: Mapped[str] = mapped_column(String(128))  # sha256 of the whole key (hex)
    rate_per_minute: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_concurrent: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (UniqueConstraint("owner", "idempotency_key", name="uq_jobs_owner_idem"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner: Mapped[str] = mapped_column(String(64), index=True)
    state: Mapped[str] = mapped_column(String(16), index=True, default=QUEUED)
    queue: Mapped[str] = mapped_column(String(64), default="")
    source: Mapped[str] = mapped_column(Text)  # URI the worker reads the input from
    input_name: Mapped[str] = mapped_column(String(255))  # file name the outputs are named after
    output_prefix: Mapped[str] = mapped_column(Text)  # URI "folder" the outputs land in
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    batch_id: Mapped[str | None] = mapped_column(String(32), index=True, nullable=True)
    batch_rel: Mapped[str | None] = mapped_column(Text, nullable=True)  # key under batch source
    source_etag: Mapped[str | None] = mapped_column(String(200), nullable=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(300), nullable=True)
    # progress: {"stage", "round", "max_rounds", "fraction"}
    progress: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    outputs: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # kind -> URI
    checksums: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # kind -> sha256
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # rounds, timings, ...
    score_alignment: Mapped[float | None] = mapped_column(Float, nullable=True)
    score_sync: Mapped[float | None] = mapped_column(Float, nullable=True)
    accepted: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    tier: Mapped[str | None] = mapped_column(String(16), nullable=True)
    rounds: Mapped[int | None] = mapped_column(Integer, nullable=True)
    duration_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    worker: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    started_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class Batch(Base):
    __tablename__ = "batches"
    __table_args__ = (UniqueConstraint("owner", "idempotency_key", name="uq_batches_owner_idem"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner: Mapped[str] = mapped_column(String(64), index=True)
    source: Mapped[str] = mapped_column(Text)
    dest: Mapped[str] = mapped_column(Text)
    pattern: Mapped[str] = mapped_column(String(300), default="*")
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # expanding -> running -> done (counts tell succeeded/failed); failed: the listing failed
    state: Mapped[str] = mapped_column(String(16), default="expanding")
    total: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    manifest_uri: Mapped[str | None] = mapped_column(Text, nullable=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(300), nullable=True)
    cancelled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)



class JobStore:
    """All reads and writes of job, batch and key records."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = get_engine(url, Base.metadata)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> JobStore:
        return cls(database_url(settings))

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions.begin() as s:
            yield s

    def ping(self) -> None:
        with self.session() as s:
            s.execute(select(1))

    # -- keys ------------------------------------------------------------------------------
    def add_key(self, key: ApiKey) -> ApiKey:
        with self.session() as s:
            s.add(key)
        return key

    def get_key(self, key_id: str) -> ApiKey | None:
        with self.session() as s:
            return s.get(ApiKey, key_id)

    def list_keys(self) -> list[ApiKey]:
        with self.session() as s:
            return list(s.scalars(select(ApiKey).order_by(ApiKey.created_at)))

    def active_key_count(self) -> int:
        with self.session() as s:
            return int(
                s.scalar(select(func.count()).select_from(ApiKey).where(ApiKey.revoked_at.is_(None)))
                or 0
            )

    def revoke_key(self, key_id: str) -> bool:
        with self.session() as s:
            res = s.execute(
                update(ApiKey)
                .where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )
            return _rowcount(res) > 0

    # -- jobs ------------------------------------------------------------------------------
    def create_job(self, job: Job) -> tuple[Job, bool]:
        """Insert ``job``; with an idempotency key already used by its owner, return the
        existing job instead. Returns ``(job, created)``."""
        if job.idempotency_key is not None:
            existing = self.find_job_by_idempotency(job.owner, job.idempotency_key)
            if existing is not None:
                return existing, False
        try:
            with self.session() as s:
                s.add(job)
        except Exception:
            # A concurrent request with the same idempotency key won the insert.
            if job.idempotency_key is not None:
                existing = self.find_job_by_idempotency(job.owner, job.idempotency_key)
                if existing is not None:
                    return existing, False
            raise
        return job, True

    def find_job_by_idempotency(self, owner: str, key: str) -> Job | None:
        with self.session() as s:
            return s.scalar(select(Job).where(Job.owner == owner, Job.idempotency_key == key))

    def get_job(self, job_id: str, owner: str | None = None) -> Job | None:
        """The job, or None when it does not exist or belongs to someone else."""
        with self.session() as s:
            job = s.get(Job, job_id)
            if job is None or (owner is not None and job.owner != owner):
                return None
            return job

    def list_jobs(
        self, owner: str, *, limit: int, offset: int, state: str | None = None,
        batch_id: str | None = None,
    ) -> tuple[list[Job], int]:
        with self.session() as s:
            q = select(Job).where(Job.owner == owner)
            if state:
                q = q.where(Job.state == state)
            if batch_id:
                q = q.where(Job.batch_id == batch_id)
            total = int(s.scalar(select(func.count()).select_from(q.subquery())) or 0)
            rows = s.scalars(
                q.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit).offset(offset)
            )
            return list(rows), total

    def active_jobs(self, owner: str) -> int:
        """Queued or running single jobs (batch jobs are limited by the batch, not the key)."""
        with self.session() as s:
            return int(
                s.scalar(
                    select(func.count()).select_from(Job).where(
                        Job.owner == owner, Job.state.in_(ACTIVE), Job.batch_id.is_(None)
                    )
                )
                or 0
            )

    def claim(self, job_id: str, worker: str, stale_s: float) -> Job | None:
        """Take a job for running: ``queued``, or ``running`` with a stale heartbeat (its worker
        died). None when it is finished, cancelled, or alive elsewhere."""
        now = utcnow()
        with self.session() as s:
            res = s.execute(
                update(Job)
                .where(
                    Job.id == job_id,
                    (Job.state == QUEUED)
                    | ((Job.state == RUNNING) & (Job.heartbeat_at < now - timedelta(seconds=stale_s))),
                )
                .values(
                    state=RUNNING, worker=worker, attempts=Job.attempts + 1, heartbeat_at=now,
                    started_at=func.coalesce(Job.started_at, now), error=None,
                    progress={"stage": "queued", "round": 0, "max_rounds": 0, "fraction": 0.0},
                )
            )
            if not _rowcount(res):
                return None
            return s.get(Job, job_id)

    def _running_update(self, job_id: str, claimed_by: str, **values: Any) -> bool:
        """Update a job only while it is running under the claim ``claimed_by``."""
        with self.session() as s:
            res = s.execute(
                update(Job)
                .where(Job.id == job_id, Job.state == RUNNING, Job.worker == claimed_by)
                .values(**values)
            )
            return _rowcount(res) > 0

    def heartbeat(self, job_id: str, worker: str, progress: dict[str, Any] | None = None) -> bool:
        """Refresh the heartbeat (and progress); False when the job was cancelled or taken."""
        values: dict[str, Any] = {"heartbeat_at": utcnow()}
        if progress is not None:
            values["progress"] = progress
        return self._running_update(job_id, worker, **values)

    def succeed(self, job_id: str, worker: str, **values: Any) -> bool:
        now = utcnow()
        return self._running_update(job_id, worker, state=SUCCEEDED, finished_at=now, **values)

    def fail(self, job_id: str, reason: str, *, worker: str | None = None) -> bool:
        """Fail a running (or, with ``worker=None``, an active) job with a reason."""
        values = {"state": FAILED, "error": reason[:4000], "finished_at": utcnow(), "tier": "failed"}
        if worker is not None:
            return self._running_update(job_id, worker, **values)
        with self.session() as s:
            res = s.execute(update(Job).where(Job.id == job_id, Job.state.in_(ACTIVE)).values(**values))
            return _rowcount(res) > 0

    def requeue(self, job_id: str, worker: str, note: str) -> bool:
        """Back to ``queued`` (a retry is on its way)."""
        return self._running_update(
            job_id, worker, state=QUEUED, worker=None,
            progress={"stage": "queued", "round": 0, "max_rounds": 0, "fraction": 0.0, "note": note},
        )

    def cancel(self, job_id: str) -> bool:
        with self.session() as s:
            res = s.execute(
                update(Job)
                .where(Job.id == job_id, Job.state.in_(ACTIVE))
                .values(state=CANCELLED, finished_at=utcnow(), error="cancelled by the caller")
            )
            return _rowcount(res) > 0

    def stale_running(self, stale_s: float) -> list[Job]:
        cutoff = utcnow() - timedelta(seconds=stale_s)
        with self.session() as s:
            return list(
                s.scalars(select(Job).where(Job.state == RUNNING, Job.heartbeat_at < cutoff))
            )

    def reset_stale(self, job_id: str, stale_s: float) -> bool:
        """A dead worker's job back to ``queued`` (only if still stale)."""
        cutoff = utcnow() - timedelta(seconds=stale_s)
        with self.session() as s:
            res = s.execute(
                update(Job)
                .where(Job.id == job_id, Job.state == RUNNING, Job.heartbeat_at < cutoff)
                .values(state=QUEUED, worker=None)
            )
            return _rowcount(res) > 0

    def queued_jobs(self) -> list[Job]:
        with self.session() as s:
            return list(s.scalars(select(Job).where(Job.state == QUEUED)))

    # -- batches ---------------------------------------------------------------------------
    def create_batch(self, batch: Batch) -> tuple[Batch, bool]:
        """Like :meth:`create_job`: an idempotency key its owner used already returns that
        batch, also when a concurrent request with the key won the insert."""
        if batch.idempotency_key is not None:
            existing = self._batch_by_idempotency(batch.owner, batch.idempotency_key)
            if existing is not None:
                return existing, False
        try:
            with self.session() as s:
                s.add(batch)
        except IntegrityError:
            if batch.idempotency_key is not None:
                existing = self._batch_by_idempotency(batch.owner, batch.idempotency_key)
                if existing is not None:
                    return existing, False
            raise
        return batch, True

    def _batch_by_idempotency(self, owner: str, key: str) -> Batch | None:
        with self.session() as s:
            return s.scalar(select(Batch).where(Batch.owner == owner, Batch.idempotency_key == key))

    def get_batch(self, batch_id: str, owner: str | None = None) -> Batch | None:
        with self.session() as s:
            b = s.get(Batch, batch_id)
            if b is None or (owner is not None and b.owner != owner):
                return None
            return b

    def list_batches(self, owner: str, *, limit: int, offset: int) -> tuple[list[Batch], int]:
        with self.session() as s:
            q = select(Batch).where(Batch.owner == owner)
            total = int(s.scalar(select(func.count()).select_from(q.subquery())) or 0)
            rows = s.scalars(
                q.order_by(Batch.created_at.desc(), Batch.id.desc()).limit(limit).offset(offset)
            )
            return list(rows), total

    def update_batch(self, batch_id: str, **values: Any) -> None:
        with self.session() as s:
            s.execute(update(Batch).where(Batch.id == batch_id).values(**values))

    def batch_counts(self, batch_id: str) -> dict[str, int]:
        with self.session() as s:
            rows = s.execute(
                select(Job.state, func.count()).where(Job.batch_id == batch_id).group_by(Job.state)
            )
            counts = dict.fromkeys(STATES, 0)
            counts.update({state: int(n) for state, n in rows})
            return counts

    def batch_progress(self, batch_id: str) -> float:
        """Mean fraction over the batch's jobs (finished jobs count as 1)."""
        with self.session() as s:
            rows = s.execute(select(Job.state, Job.progress).where(Job.batch_id == batch_id))
            fractions = [
                1.0 if state in TERMINAL else float((p or {}).get("fraction", 0.0))
                for state, p in rows
            ]
        return sum(fractions) / len(fractions) if fractions else 0.0

    def batch_jobs(self, batch_id: str) -> list[Job]:
        with self.session() as s:
            return list(s.scalars(select(Job).where(Job.batch_id == batch_id)))

    def cancel_batch(self, batch_id: str) -> int:
        with self.session() as s:
            s.execute(update(Batch).where(Batch.id == batch_id).values(cancelled=True))
            res = s.execute(
                update(Job)
                .where(Job.batch_id == batch_id, Job.state.in_(ACTIVE))
                .values(state=CANCELLED, finished_at=utcnow(), error="batch cancelled by the caller")
            )
            return _rowcount(res)

    # -- metrics ---------------------------------------------------------------------------
    def state_counts(self) -> dict[str, int]:
        with self.session() as s:
            counts = dict.fromkeys(STATES, 0)
            counts.update(
                {st: int(n) for st, n in s.execute(select(Job.state, func.count()).group_by(Job.state))}
            )
            return counts

    def queue_depths(self) -> dict[str, int]:
        with self.session() as s:
            rows = s.execute(
                select(Job.queue, func.count()).where(Job.state == QUEUED).group_by(Job.queue)
            )
            return {q: int(n) for q, n in rows}

    def histogram(self, column: str, buckets: Sequence[float]) -> tuple[list[int], int, float]:
        """Cumulative bucket counts, count and sum of a numeric job column over succeeded
        jobs (one query, so /metrics stays cheap with many jobs)."""
        col = getattr(Job, column)
        with self.session() as s:
            exprs = [func.sum(case((col <= b, 1), else_=0)) for b in buckets]
            row = s.execute(
                select(func.count(col), func.coalesce(func.sum(col), 0.0), *exprs).where(
                    Job.state == SUCCEEDED, col.is_not(None)
                )
            ).one()
        count, total = int(row[0] or 0), float(row[1] or 0.0)
        return [int(v or 0) for v in row[2:]], count, total
