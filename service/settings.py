"""One Settings object for CLI, API, worker and agent (environment prefix ``AVAGENT_``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_PLACEHOLDERS = {"", "changeme", "change-me", "secret", "dev-secret"}


def _default_cache() -> Path:
    return Path.home() / ".cache" / "avagent"


class Settings(BaseSettings):
    """Everything configurable, read once from the environment (and ``.env``)."""

    model_config = SettingsConfigDict(env_prefix="AVAGENT_", env_file=".env", extra="ignore")

    environment: Literal["development", "production", "test"] = "development"
    cache_dir: Path = Field(default_factory=_default_cache, description="models, samples")

    # Media limits: refuse before decoding something that would take minutes or all memory.
    max_duration_s: float = Field(600.0, gt=0, description="longest input accepted, seconds")
    max_upload_mb: float = Field(512.0, gt=0)
    frame_rate_hz: float = Field(12.5, gt=0, description="video frames sampled for perception")
    frame_width: int = Field(160, ge=16, description="sampled frames are resized to this width")

    # Agent loop.
    planner: str = "rules"
    scorer: str = "embedded"
    captioner: str = "embedded"
    max_rounds: int = Field(3, ge=1, le=10)
    threshold: float = Field(0.85, ge=0.0, le=1.0)

    # Heavy backends (OpenAI-compatible servers such as vLLM); empty means not configured.
    llm_base_url: str = ""
    llm_api_key: str = "EMPTY"
    planner_model: str = ""
    audio_caption_model: str = ""
    video_caption_model: str = ""
    imagebind_checkpoint: Path | None = None

    # Service.
    secret_key: str = "dev-secret"
    broker_url: str = ""  # empty: embedded file-system broker under cache_dir
    database_url: str = ""  # empty: SQLite under cache_dir
    storage_root: str = ""  # fsspec URI; empty: cache_dir / "storage"

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> Settings:
        if self.environment == "production" and self.secret_key.lower() in _PLACEHOLDERS:
            raise ValueError(
                "AVAGENT_SECRET_KEY is a placeholder; set a real secret in production"
            )
        return self


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (tests clear the cache with ``get_settings.cache_clear()``)."""
    return Settings()
