"""Graceful drain, measured on real processes: a real ``avagent worker`` on a real Redis gets
SIGTERM (what the kubelet and ``docker stop`` send to the container's PID 1, and only to it) in
the middle of a job that takes seconds.

* Within the grace period: the worker finishes the running job (Celery's warm shutdown with
  late acks), takes no new one, and exits; the job that was waiting stays in Redis and the next
  worker runs it. Each job runs once, and its outputs match the checksums recorded for them.
* Past the grace period (SIGKILL after SIGTERM, what Kubernetes does when a job outlives
  ``terminationGracePeriodSeconds``): the job is requeued by the next worker's reaper and
  completed by it, once, with intact outputs.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from avagent.service.api import create_app
from avagent.service.jobs import QUEUED, RUNNING, SUCCEEDED, JobStore
from avagent.service.settings import Settings
from avagent.service.storage import Storage
from tests.service.conftest import run_worker, wait_job

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow, pytest.mark.media]

GRACE_S = 60.0  # this test's grace period; the deployments' is 1000 s (the hard limit + 40 s)
CLIP_S = 10.0  # a job of a few seconds on one core (docs/deploy.md, Sizing)


@pytest.fixture
def clip(tmp_path: Path, speech_path: Path) -> bytes:
    """CLIP_S seconds of real speech (the recording repeated), as WAV bytes."""
    import soundfile

    y, sr = soundfile.read(speech_path, always_2d=True)
    y = np.tile(y, (int(CLIP_S * sr) // len(y) + 1, 1))[: int(CLIP_S * sr)]
    buf = io.BytesIO()
    soundfile.write(buf, y, sr, format="WAV")
    return buf.getvalue()


@pytest.fixture
def service(redis_url: str, tmp_path: Path) -> dict[str, Any]:
    import redis

    db = redis_url.rsplit("/", 1)[0] + "/6"  # a database of its own on the session's Redis
    redis.Redis.from_url(db).flushdb()
    values = {"cache_dir": tmp_path / "svc", "environment": "test", "broker_url": db,
              "job_stale_s": 4}
    return {"values": values, "settings": Settings(**values), "redis": redis.Redis.from_url(db)}


def _submit(client: TestClient, clip: bytes) -> str:
    r = client.post("/v1/jobs", files={"file": ("speech.wav", clip, "audio/wav")},
                    data={"max_rounds": "1", "outputs": "wav,report"})
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


def _runs(logs: list[Path], job_id: str) -> int:
    """How many times any worker started running ``job_id`` (the task logs 'running ...')."""
    pattern = re.compile(rf"job={job_id} \S+: running ")
    return sum(len(pattern.findall(p.read_text(errors="replace"))) for p in logs if p.exists())


def _check_outputs(settings: Settings, job_id: str) -> None:
    """The outputs exist, match the checksums the worker recorded, and the audio is whole."""
    import soundfile

    job = JobStore.from_settings(settings).get_job(job_id)
    assert job is not None and job.state == SUCCEEDED, job
    storage = Storage.from_settings(settings)
    for kind in ("wav", "report"):
        data = storage.read_bytes(job.outputs[kind])
        assert hashlib.sha256(data).hexdigest() == job.checksums[kind], kind
    info = soundfile.info(io.BytesIO(storage.read_bytes(job.outputs["wav"])))
    assert abs(info.duration - CLIP_S) < 0.05, info.duration


def test_sigterm_drains_and_a_job_outliving_the_grace_period_is_requeued_once(
    service: dict[str, Any], clip: bytes, tmp_path: Path
) -> None:
    settings, values = service["settings"], service["values"]
    logs = [tmp_path / f"w{i}.log" for i in (1, 2, 3)]
    with TestClient(create_app(settings)) as client:
        # 1. Warm shutdown: w1 finishes A, takes neither B nor C, exits.
        with run_worker(values, logs[0], queues="cpu") as w1:
            a, b, c = (_submit(client, clip) for _ in range(3))
            wait_job(client, a, {}, timeout_s=60, until=lambda j: j["state"] == RUNNING)
            t0 = time.monotonic()
            os.kill(w1.proc.pid, signal.SIGTERM)  # the main process only, like the kubelet
            w1.proc.wait(timeout=GRACE_S)
            drain_s = time.monotonic() - t0
            assert w1.proc.returncode == 0, w1.tail()
            assert "Warm shutdown" in w1.tail(100_000)
        done_a = client.get(f"/v1/jobs/{a}").json()
        assert done_a["state"] == SUCCEEDED and done_a["attempts"] == 1, (done_a, w1.tail())
        assert [client.get(f"/v1/jobs/{j}").json()["state"] for j in (b, c)] == [QUEUED, QUEUED]
        assert service["redis"].llen(settings.cpu_queue) == 2  # both messages still in Redis
        print(f"drain: the worker exited {drain_s:.1f} s after SIGTERM, its job done")
        # 2. Past the grace period: w2 gets SIGTERM during B, then SIGKILL (every process).
        with run_worker(values, logs[1], queues="cpu") as w2:
            wait_job(client, b, {}, timeout_s=60, until=lambda j: j["state"] == RUNNING)
            os.kill(w2.proc.pid, signal.SIGTERM)
            time.sleep(0.5)  # a grace period shorter than the job
            assert w2.proc.poll() is None, "the worker left before its job was done"
            os.killpg(w2.proc.pid, signal.SIGKILL)
            w2.proc.wait(timeout=10)
        assert client.get(f"/v1/jobs/{b}").json()["state"] == RUNNING  # orphaned for now
        assert client.get(f"/v1/jobs/{c}").json()["state"] == QUEUED
        # 3. The next worker's reaper requeues B; it runs B and C.
        with run_worker(values, logs[2], queues="cpu") as w3:
            done_b = wait_job(client, b, {}, timeout_s=120)
            done_c = wait_job(client, c, {}, timeout_s=120)
            assert "requeued" in w3.tail(100_000)
    assert drain_s < GRACE_S
    assert done_b["state"] == SUCCEEDED and done_b["attempts"] == 2, done_b
    assert done_c["state"] == SUCCEEDED and done_c["attempts"] == 1, done_c
    # Each job finished once; B was started twice (the killed run never published anything).
    assert (_runs(logs, a), _runs(logs, b), _runs(logs, c)) == (1, 2, 1)
    for job_id in (a, b, c):
        _check_outputs(settings, job_id)
