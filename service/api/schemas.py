"""Request and response models, one group per resource."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from avagent.service.backends import check_planner
from avagent.service.settings import ROUNDS_RANGE, THRESHOLD_RANGE

OutputKind = Literal["wav", "video", "report"]
JobState = Literal["queued", "running", "succeeded", "failed", "cancelled"]
Tier = Literal["accepted", "improved", "rejected", "failed"]

# Largest ``offset`` a list endpoint takes: SQLite and PostgreSQL hold OFFSET in a signed 64-bit
# integer, and a bigger Python int failed inside the driver (500, found by schemathesis).
MAX_OFFSET = 2**31 - 1


class RepairOptionsIn(BaseModel):
    """What to run; every field defaults to the server's settings."""

    model_config = ConfigDict(extra="forbid")

    planner: str | None = Field(None, description="planner name, e.g. 'rules'", max_length=64)
    max_rounds: int | None = Field(None, ge=ROUNDS_RANGE[0], le=ROUNDS_RANGE[1])
    threshold: float | None = Field(None, ge=THRESHOLD_RANGE[0], le=THRESHOLD_RANGE[1])
    outputs: list[OutputKind] | None = Field(
        None, min_length=1, description="files to write (default: wav, video, report)"
    )

    @field_validator("planner")
    @classmethod
    def _known_planner(cls, v: str | None) -> str | None:
        return None if v is None else check_planner(v)  # the rule RepairOptions.check uses

    @field_validator("outputs")
    @classmethod
    def _unique(cls, v: list[str] | None) -> list[str] | None:
        return list(dict.fromkeys(v)) if v is not None else None


class JobCreate(RepairOptionsIn):
    """JSON body of ``POST /v1/jobs`` when the input already lies in storage."""

    source: str = Field(
        ..., min_length=1, max_length=2000,
        description="URI of the input: s3://bucket/key or a path under the storage root",
    )


class Progress(BaseModel):
    stage: str = "queued"
    round: int = 0
    max_rounds: int = 0
    fraction: float = 0.0
    note: str | None = None


class Scores(BaseModel):
    alignment: float | None = None
    sync: float | None = None


class JobPublic(BaseModel):
    id: str
    state: JobState
    source: str
    input_name: str
    options: dict[str, Any]
    queue: str
    batch_id: str | None = None
    progress: Progress
    scores: Scores
    accepted: bool | None = None
    tier: Tier | None = Field(None, description="accepted | improved | rejected | failed")
    rounds: int | None = None
    chosen_round: int | None = None
    summary: str | None = None
    timings_s: dict[str, float] = Field(default_factory=dict)
    error: str | None = Field(None, description="why it failed or was cancelled")
    attempts: int = 0
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    links: dict[str, str] = Field(default_factory=dict)


class JobList(BaseModel):
    items: list[JobPublic]
    total: int
    limit: int
    offset: int
    next: str | None = Field(None, description="URL of the next page, if any")


class BatchCreate(RepairOptionsIn):
    source: str = Field(..., min_length=1, max_length=2000, description="prefix, e.g. s3://b/in/")
    dest: str = Field(..., min_length=1, max_length=2000, description="prefix, e.g. s3://b/out/")
    pattern: str = Field("*", min_length=1, max_length=300, description="glob, e.g. '*.mp4'")

    @field_validator("pattern")
    @classmethod
    def _safe_pattern(cls, v: str) -> str:
        if "\x00" in v or ".." in v.split("/") or v.startswith("/"):
            raise ValueError(f"pattern={v!r} must be a relative glob without '..'")
        return v


class BatchCounts(BaseModel):
    total: int = Field(0, description="objects matched under source")
    skipped: int = Field(0, description="already done in dest by an earlier run")
    queued: int = 0
    running: int = 0
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0


class BatchPublic(BaseModel):
    id: str
    state: Literal[
        "expanding", "running", "succeeded", "completed_with_errors", "failed", "cancelled"
    ]
    source: str
    dest: str
    pattern: str
    options: dict[str, Any]
    counts: BatchCounts
    progress: float = Field(0.0, description="0..1 over all matched objects")
    manifest: str | None = Field(None, description="URI of manifest.jsonl once finished")
    error: str | None = None
    created_at: datetime
    finished_at: datetime | None = None
    links: dict[str, str] = Field(default_factory=dict)


class BatchList(BaseModel):
    items: list[BatchPublic]
    total: int
    limit: int
    offset: int
    next: str | None = None


class Problem(BaseModel):
    """Every error answer: ``{"detail": "..."}`` (422 keeps FastAPI's list of field errors)."""

    detail: str | list[Any]
