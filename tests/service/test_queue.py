"""The queue: a Redis broker (real redis-server), CPU/GPU queue routing, redelivery that does no
harm, and a job that survives its worker being killed (SIGKILL) on the embedded broker."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from avagent.errors import BackendError, MediaError, ParameterError
from avagent.service.api import create_app
from avagent.service.jobs import QUEUED, RUNNING, Job, JobStore, consistency_tier, new_id
from avagent.service.queue import queue_for
from avagent.service.settings import Settings
from avagent.service.storage import Storage
from avagent.service.task_context import TaskContext, is_transient, set_context
from tests.service.conftest import run_worker, wait_job

pytestmark = pytest.mark.timeout(180)


# -- pure rules ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (ConnectionResetError("reset"), True),
        (TimeoutError("slow"), True),
        (OSError(5, "I/O error"), True),
        (BackendError("vLLM answered 503"), True),
        (FileNotFoundError("gone"), False),
        (PermissionError("denied"), False),
        (MediaError("x.mp4: corrupt"), False),
        (ParameterError("max_rounds=99"), False),
        (ValueError("bug"), False),
    ],
)
def test_transient_errors_are_retried_and_bad_input_is_not(exc: BaseException, transient: bool) -> None:
    assert is_transient(exc) is transient


def test_queue_routing_by_backend(tmp_path: Path) -> None:
    s = Settings(cache_dir=tmp_path, gpu_planners="llm")
    assert queue_for({"planner": "rules"}, s) == s.cpu_queue
    assert queue_for({"planner": "llm"}, s) == s.gpu_queue
    assert queue_for({}, Settings(cache_dir=tmp_path, scorer="imagebind")) == s.gpu_queue


@pytest.mark.parametrize(
    ("report", "tier"),
    [
        ({"accepted": True, "chosen_round": 0, "rounds": [], "scores": {"alignment": 0.9, "sync": 0.9}}, "accepted"),
        ({"accepted": False, "chosen_round": 2, "rounds": [{"index": 1}, {"index": 2}],
          "scores": {"alignment": 0.7, "sync": 0.8}}, "improved"),
        ({"accepted": False, "chosen_round": 0, "rounds": [{"index": 1}],
          "scores": {"alignment": 0.5, "sync": 0.6}}, "rejected"),
        (None, "failed"),
    ],
)
def test_consistency_tiers(report: dict[str, Any] | None, tier: str) -> None:
    assert consistency_tier(report, 0.85) == tier


def test_claim_runs_a_job_once_and_takes_over_dead_workers(tmp_path: Path) -> None:
    store = JobStore.from_settings(Settings(cache_dir=tmp_path))
    job, _ = store.create_job(Job(id=new_id(), owner="o", source="s3://b/k.mp4", input_name="k.mp4",
                                  output_prefix="s3://b/out", queue="q"))
    assert store.claim(job.id, "w1", stale_s=60) is not None
    assert store.claim(job.id, "w2", stale_s=60) is None  # alive elsewhere: a duplicate is dropped
    assert store.heartbeat(job.id, "w1") and not store.heartbeat(job.id, "w2")
    taken = store.claim(job.id, "w2", stale_s=0)  # w1 stopped beating: w2 takes over
    assert taken is not None and taken.attempts == 2 and taken.state == RUNNING
    assert not store.succeed(job.id, "w1")  # the dead worker's late result is ignored
    assert store.succeed(job.id, "w2", tier="accepted")
    assert store.claim(job.id, "w3", stale_s=0) is None  # finished: redelivery is a no-op
    assert not store.cancel(job.id)


# -- Redis broker -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def redis_service(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    cache = tmp_path_factory.mktemp("redis-svc")
    values = {"cache_dir": cache, "environment": "test", "broker_url": redis_url,
              "gpu_planners": "random"}
    with run_worker(values, cache / "worker.log", queues="cpu") as worker:
        yield {"values": values, "worker": worker}


@pytest.mark.slow
@pytest.mark.media
def test_redis_broker_runs_jobs_and_gpu_work_waits_for_a_gpu_worker(
    redis_service: dict[str, Any], redis_url: str, speech_path: Path
) -> None:
    import redis

    settings = Settings(**redis_service["values"])
    with TestClient(create_app(settings)) as client:
        ready = client.get("/readyz").json()
        assert ready["checks"]["broker"]["ok"], ready
        data = speech_path.read_bytes()
        cpu = client.post("/v1/jobs", files={"file": ("speech.wav", data, "audio/wav")},
                          data={"max_rounds": "1"})
        gpu = client.post("/v1/jobs", files={"file": ("speech.wav", data, "audio/wav")},
                          data={"planner": "random", "max_rounds": "1"})
        assert cpu.status_code == gpu.status_code == 202
        assert cpu.json()["queue"] == settings.cpu_queue and gpu.json()["queue"] == settings.gpu_queue
        done = wait_job(client, cpu.json()["id"], {})
        assert done["state"] == "succeeded", (done, redis_service["worker"].tail())
        # The CPU-only worker never takes GPU work: its message waits in Redis.
        assert client.get(f"/v1/jobs/{gpu.json()['id']}").json()["state"] == QUEUED
        assert redis.Redis.from_url(redis_url).llen(settings.gpu_queue) == 1
        assert 'avagent_queue_depth{queue="avagent.gpu"} 1.0' in client.get("/metrics").text
        assert client.delete(f"/v1/jobs/{gpu.json()['id']}").status_code == 202


# -- a worker killed mid-job --------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.media
def test_job_survives_worker_killed_mid_job(tmp_path: Path, video_path: Path) -> None:
    values = {"cache_dir": tmp_path, "environment": "test", "job_stale_s": 2}
    settings = Settings(**values)
    with TestClient(create_app(settings)) as client:
        r = client.post("/v1/jobs", files={"file": ("clip.mp4", video_path.read_bytes(), "video/mp4")},
                        data={"max_rounds": "3"})
        assert r.status_code == 202
        jid = r.json()["id"]
        with run_worker(values, tmp_path / "w1.log") as w1:
            wait_job(client, jid, {}, timeout_s=60, until=lambda j: j["state"] == RUNNING)
            os.killpg(w1.proc.pid, signal.SIGKILL)  # no warm shutdown, no ack, no goodbye
            w1.proc.wait(timeout=10)
        time.sleep(0.5)
        assert client.get(f"/v1/jobs/{jid}").json()["state"] == RUNNING  # orphaned for now
        with run_worker(values, tmp_path / "w2.log") as w2:
            done = wait_job(client, jid, {}, timeout_s=90)
            assert done["state"] == "succeeded", (done, w2.tail())
            assert done["attempts"] == 2
            assert "requeued" in w2.tail(100_000)
        assert client.get(f"/v1/jobs/{jid}/audio").status_code == 200


class _FlakyStorage(Storage):
    """Real local storage whose first ``fail`` downloads raise a connection reset."""

    def __init__(self, root: str, fail: int) -> None:
        super().__init__(root)
        self.fail = fail

    def get_file(self, uri: str, local: Path) -> str:
        if self.fail > 0:
            self.fail -= 1
            raise ConnectionResetError(104, "Connection reset by peer")
        return super().get_file(uri, local)


@pytest.mark.slow
@pytest.mark.media
@pytest.mark.parametrize(("failures", "state"), [(1, "succeeded"), (5, "failed")])
def test_transient_storage_errors_retry_then_succeed_or_fail(
    tmp_path: Path, speech_path: Path, failures: int, state: str
) -> None:
    from avagent.service import worker as w

    settings = Settings(cache_dir=tmp_path, task_max_retries=2, task_retry_backoff_s=0.01)
    store = JobStore.from_settings(settings)
    storage = _FlakyStorage(str(tmp_path / "storage"), fail=failures)
    src = storage.key_uri("in/speech.wav")
    storage.put_file(speech_path, src)
    job, _ = store.create_job(Job(
        id=new_id(), owner="o", queue=settings.cpu_queue, source=src, input_name="speech.wav",
        output_prefix=storage.key_uri("out"), options={"max_rounds": 1, "outputs": ["wav"]},
    ))
    w.worker_app(settings)
    set_context(TaskContext(settings, store, storage))
    try:
        w.repair_job.apply(args=[job.id])  # eager: retries run in-line
    finally:
        set_context(None)
    done = store.get_job(job.id)
    assert done is not None and done.state == state
    if state == "succeeded":
        assert done.attempts == 2 and storage.exists(done.outputs["wav"])
    else:
        assert done.attempts == 3 and "Connection reset" in (done.error or "")


# -- import boundaries --------------------------------------------------------------------------
def _run_python(code: str, tmp_path: Path) -> None:
    import subprocess
    import sys

    env = {**os.environ, "AVAGENT_CACHE_DIR": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_the_api_enqueues_without_importing_the_task_module(tmp_path: Path) -> None:
    _run_python(
        "import sys\n"
        "from avagent.service.api.app import create_app\n"
        "from avagent.service.settings import Settings\n"
        "app = create_app(Settings())\n"
        "assert app.state.celery.main == 'avagent'\n"
        "loaded = [m for m in ('avagent.service.worker', 'avagent.service.batch_tasks',\n"
        "                      'avagent.service.pipeline') if m in sys.modules]\n"
        "assert not loaded, loaded\n",
        tmp_path,
    )


def test_importing_the_worker_builds_no_app_until_asked(tmp_path: Path) -> None:
    _run_python(
        "from celery import Celery\n"
        "made = []\n"
        "init = Celery.__init__\n"
        "def spy(self, *a, **k):\n"
        "    made.append(a)\n"
        "    init(self, *a, **k)\n"
        "Celery.__init__ = spy\n"
        "from avagent.service import worker\n"
        "from avagent.service.queue import EXPAND_TASK, FINALIZE_TASK, REPAIR_TASK\n"
        "from avagent.service.settings import Settings, get_settings\n"
        "assert made == [], made\n"
        "assert get_settings.cache_info().currsize == 0  # global Settings never read\n"
        "app = worker.worker_app(Settings(cpu_queue='cpu-x'))\n"
        "assert len(made) == 1 and app.conf.task_default_queue == 'cpu-x'\n"
        "assert {REPAIR_TASK, EXPAND_TASK, FINALIZE_TASK} <= set(app.tasks)\n",
        tmp_path,
    )
