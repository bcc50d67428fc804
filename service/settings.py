"""One Settings object for CLI, API, worker and agent (environment prefix ``AVAGENT_``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_PLACEHOLDERS = {"", "changeme", "change-me", "secret", "dev-secret"}


# The loop's limits, one definition for Settings, the CLI, the pipeline and the API's schemas.
ROUNDS_RANGE = (1, 10)
THRESHOLD_RANGE = (0.0, 1.0)


def _default_cache() -> Path:
    return Path.home() / ".cache" / "avagent"


class Settings(BaseSettings):
    """Everything configurable, read once from the environment (and ``.env``)."""

    model_config = SettingsConfigDict(env_prefix="AVAGENT_", env_file=".env", extra="ignore")

    environment: Literal["development", "production", "test"] = "development"
    cache_dir: Path = Field(default_factory=_default_cache, description="models, samples")

    # Media limits: refuse before decoding something that would take minutes or all memory.
    max_duration_s: float = Field(14400.0, gt=0, description="longest input accepted, seconds")
    # Inputs longer than this (for stereo; x 2 / channels otherwise) are repaired in blocks at
    # constant memory: spooled to scratch disk, judged on excerpts, rendered and written block by
    # block (docs/performance.md).
    stream_above_s: float = Field(
        60.0, gt=0, description="longer stereo inputs are streamed (scaled by 2/channels), s")
    scratch_dir: Path | None = Field(None, description="spool files of long inputs (default TMPDIR)")
    max_upload_mb: float = Field(512.0, gt=0)
    frame_rate_hz: float = Field(25.0, gt=0, description="video frames sampled for perception")
    frame_width: int = Field(160, ge=16, description="sampled frames are resized to this width")
    # Colour frames for the sync estimator's visual events (a lamp may change hue far more than
    # grey level); 3x the frame memory of a whole-clip input (docs/sync.md).
    frame_colour: bool = Field(False, description="keep sampled frames in colour for sync")

    # Agent loop.
    planner: str = "rules"
    scorer: str = "embedded"
    captioner: str = "embedded"
    max_rounds: int = Field(3, ge=ROUNDS_RANGE[0], le=ROUNDS_RANGE[1])
    threshold: float = Field(0.85, ge=THRESHOLD_RANGE[0], le=THRESHOLD_RANGE[1])

    # Heavy backends (OpenAI-compatible servers such as vLLM); empty means not configured.
    llm_base_url: str = ""
    llm_api_key: str = "EMPTY"
    planner_model: str = ""
    # Captioners over OpenAI-compatible servers (AVAGENT_CAPTIONER=llm: llm-audio + llm-video);
    # an empty base URL means "not configured": the embedded captions are used.
    audio_caption_base_url: str = ""  # e.g. vLLM serving Qwen2-Audio / Qwen2.5-Omni
    audio_caption_model: str = ""
    video_caption_base_url: str = ""  # e.g. vLLM serving Qwen2.5-VL / Video-LLaVA
    video_caption_model: str = ""
    caption_timeout_s: float = Field(60.0, gt=0, description="one caption request, seconds")
    caption_frames: int = Field(8, ge=1, le=64, description="frames sent to the vision LLM")
    # ImageBind scorer (--scorer imagebind): user-supplied weights (Meta's imagebind_huge.pth or
    # our checkpoint format) and their calibration (default: <weights>.calibration.json).
    imagebind_weights: Path | None = None
    imagebind_calibration: Path | None = None
    imagebind_device: str = ""  # empty: cuda when present, else cpu
    imagebind_dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    imagebind_batch_size: int = Field(16, ge=1)
    # The learned critic (--scorer learned): a critic.pt written by `avagent train critic`.
    critic_checkpoint: Path | None = Field(
        None, description="calibrated AV-MAE checkpoint for the learned scorer")
    # The LLM planner (--planner llm): a server (vLLM with our LoRA as `planner_model`), or with
    # no URL the embedded SmolLM2 on llama.cpp (planner_gguf / planner_lora override its files).
    planner_base_url: str = Field("", description="empty: llm_base_url; both empty: embedded")
    planner_lora: Path | None = Field(None, description="GGUF LoRA for the embedded planner")
    planner_gguf: Path | None = Field(None, description="GGUF model instead of SmolLM2-135M")
    planner_threads: int = Field(1, ge=1, description="llama.cpp threads of the embedded planner")
    llm_timeout_s: float = Field(60.0, gt=0, description="per request to an LLM server")
    llm_max_retries: int = Field(1, ge=0, description="extra tries after a timeout/5xx")
    llm_concurrency: int = Field(4, ge=1, description="requests in flight per client")
    llm_dialect: Literal["auto", "openai", "vllm", "llamacpp", "none"] = "auto"

    # Service.
    secret_key: str = "dev-secret"
    broker_url: str = ""  # empty: embedded file-system broker under cache_dir
    database_url: str = ""  # empty: SQLite under cache_dir
    storage_root: str = ""  # fsspec URI; empty: cache_dir / "storage"
    # S3 (s3fs) for storage_root and batch sources/destinations; empty: boto's own defaults.
    s3_endpoint_url: str = ""
    s3_access_key_id: str = ""
    s3_secret_access_key: str = ""
    s3_region: str = ""
    # Comma-separated URI prefixes a job or batch may read from / write to; empty: the storage
    # root and any s3:// bucket the credentials reach (never other local paths).
    source_prefixes: str = ""

    # API limits per key (in-process token bucket per API replica) and the anonymous dev user.
    rate_limit_per_minute: int = Field(default=600, ge=1, description="requests per key per minute")
    max_concurrent_jobs: int = Field(default=16, ge=1, description="queued+running single jobs per key")
    allow_anonymous: bool = Field(
        default=True, description="development/test only: no keys exist -> one anonymous local user"
    )

    # Queue (Celery). A job goes to gpu_queue when it needs a model backend.
    cpu_queue: str = "avagent.cpu"
    gpu_queue: str = "avagent.gpu"
    gpu_planners: str = Field(default="llm,vllm", description="comma-separated planners that need a GPU")
    task_soft_time_limit_s: float = Field(default=900.0, gt=0)
    task_time_limit_s: float = Field(default=960.0, gt=0)
    task_max_retries: int = Field(default=3, ge=0, description="retries for transient storage/backend errors")
    task_retry_backoff_s: float = Field(default=2.0, gt=0, description="first retry delay; doubles")
    job_stale_s: float = Field(
        default=60.0, gt=0, description="a running job without heartbeat this long is requeued"
    )
    max_attempts: int = Field(default=4, ge=1, description="deliveries of one job before it is failed")
    preview_max_s: float = Field(
        default=300.0, ge=0,
        description="the web page's before/after preview WAVs hold this many seconds from the "
                    "start (the spectrograms show the whole clip); 0: the worker renders none")
    worker_max_memory_mb: float = Field(
        default=1536.0, ge=0,
        description="a worker child whose resident memory passes this after a job is replaced by a "
                    "fresh one (Celery's worker_max_memory_per_child); 0: never")

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
