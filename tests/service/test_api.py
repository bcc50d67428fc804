"""The HTTP API against a real worker process on the embedded broker (no servers), plus the
error paths (401/404/409/413/415/422/429) that never reach a worker."""

from __future__ import annotations

import io
import json
import signal
import time
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from avagent.service.api import create_app
from avagent.service.auth import create_key
from avagent.service.jobs import TIERS, Batch, Job, JobStore, new_id
from avagent.service.settings import Settings
from tests.service.conftest import (
    PNG_1X1,
    run_worker,
    wait_job,
    write_video_only,
    write_zero_length,
)

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def svc_values(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    cache = tmp_path_factory.mktemp("svc")
    return {"cache_dir": cache, "environment": "test", "job_stale_s": 30}


@pytest.fixture(scope="module")
def settings(svc_values: dict[str, Any]) -> Settings:
    return Settings(**svc_values)


@pytest.fixture(scope="module")
def worker(svc_values: dict[str, Any]) -> Iterator[Any]:
    with run_worker(svc_values, Path(svc_values["cache_dir"]) / "worker.log") as w:
        yield w


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


@pytest.fixture(scope="module")
def keys(settings: Settings) -> dict[str, dict[str, str]]:
    store = JobStore.from_settings(settings)
    alice, _ = create_key(store, "alice")
    bob, _ = create_key(store, "bob")
    return {"alice": {"Authorization": f"Bearer {alice}"}, "bob": {"X-API-Key": bob}}


def upload(client: TestClient, headers: dict[str, str], name: str, data: bytes,
           ctype: str = "video/mp4", **fields: str) -> Any:
    return client.post("/v1/jobs", headers=headers, files={"file": (name, data, ctype)},
                       data=fields)


# -- end to end ---------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.media
def test_upload_repair_download_end_to_end(
    client: TestClient, worker: Any, keys: dict[str, dict[str, str]], video_path: Path
) -> None:
    alice = keys["alice"]
    r = upload(client, alice, "My Clip (1).mp4", video_path.read_bytes(), max_rounds="2",
               outputs="wav,video,report")
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["state"] == "queued" and r.headers["Location"] == f"/v1/jobs/{job['id']}"
    assert job["input_name"] == "My_Clip_1.mp4"
    assert job["options"] == {"max_rounds": 2, "outputs": ["wav", "video", "report"]}

    saw_running = wait_job(client, job["id"], alice, until=lambda j: j["state"] != "queued")
    done = wait_job(client, job["id"], alice)
    assert done["state"] == "succeeded", (done, worker.tail())
    assert saw_running["state"] in ("running", "succeeded")
    assert 0.0 <= done["scores"]["alignment"] <= 1.0 and 0.0 <= done["scores"]["sync"] <= 1.0
    assert done["tier"] in TIERS and done["tier"] != "failed"
    assert 1 <= done["rounds"] <= 2 and done["progress"]["fraction"] == 1.0
    assert done["timings_s"]["total"] > 0 and done["attempts"] == 1
    assert set(done["links"]) >= {"self", "audio", "video", "report"}

    wav = client.get(done["links"]["audio"], headers=alice)
    assert wav.status_code == 200 and wav.headers["content-type"] == "audio/wav"
    with wave.open(io.BytesIO(wav.content)) as w:  # input: 48 kHz mono, 5.6 s
        assert w.getframerate() == 48000 and w.getnchannels() == 1
        assert abs(w.getnframes() / 48000 - 5.6) < 0.3
    video = client.get(done["links"]["video"], headers=alice)
    assert video.status_code == 200 and video.content[4:8] == b"ftyp"
    assert 'filename="My_Clip_1.repaired.mp4"' in video.headers["content-disposition"]
    report = client.get(done["links"]["report"], headers=alice).json()
    for key in ("input", "captions", "analysis", "rounds", "chosen_round", "accepted", "backends",
                "timings_s", "outputs"):
        assert key in report
    assert report["job_id"] == job["id"] and report["input"] == job["source"]
    assert set(report["outputs"]) == {"wav", "video", "report"}

    # Bob cannot see Alice's job or its files; the listing shows each caller only their own.
    bob = keys["bob"]
    assert client.get(f"/v1/jobs/{job['id']}", headers=bob).status_code == 404
    assert client.get(f"/v1/jobs/{job['id']}/audio", headers=bob).status_code == 404
    assert client.delete(f"/v1/jobs/{job['id']}", headers=bob).status_code == 404
    assert all(j["id"] != job["id"] for j in client.get("/v1/jobs", headers=bob).json()["items"])
    assert any(j["id"] == job["id"] for j in client.get("/v1/jobs", headers=alice).json()["items"])

    # A finished job cannot be cancelled; metrics count it.
    assert client.delete(f"/v1/jobs/{job['id']}", headers=alice).status_code == 409
    metrics = client.get("/metrics").text
    assert 'avagent_jobs{state="succeeded"}' in metrics
    assert "avagent_job_duration_seconds_count" in metrics and "avagent_job_score_bucket" in metrics


@pytest.mark.slow
@pytest.mark.media
def test_source_uri_job_and_worker_side_failure(
    client: TestClient, worker: Any, keys: dict[str, dict[str, str]], settings: Settings,
    speech_path: Path,
) -> None:
    alice = keys["alice"]
    storage = client.app.state.storage  # type: ignore[attr-defined]
    src = storage.key_uri("inbox/speech.wav")
    storage.put_file(speech_path, src)
    r = client.post("/v1/jobs", headers=alice, json={"source": src, "outputs": ["wav", "report"],
                                                     "max_rounds": 1})
    assert r.status_code == 202, r.text
    # A file that passes the upload checks but not decoding fails as a job, with a reason.
    bad = storage.key_uri("inbox/broken.wav")
    storage.write_bytes(bad, b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x00" * 200)
    r2 = client.post("/v1/jobs", headers=alice, json={"source": bad})
    assert r2.status_code == 202, r2.text
    done = wait_job(client, r.json()["id"], alice)
    assert done["state"] == "succeeded", (done, worker.tail())
    assert "video" not in done["links"] and "audio" in done["links"]
    assert client.get(f"/v1/jobs/{done['id']}/video", headers=alice).status_code == 404
    failed = wait_job(client, r2.json()["id"], alice)
    assert failed["state"] == "failed" and failed["tier"] == "failed"
    assert "broken.wav" in failed["error"] and "Traceback" not in failed["error"]
    assert client.get(f"/v1/jobs/{failed['id']}/audio", headers=alice).status_code == 409


# -- refusals before any work ---------------------------------------------------------------------
@pytest.mark.media
def test_upload_refusals(client: TestClient, keys: dict[str, dict[str, str]], tmp_path: Path,
                         video_path: Path) -> None:
    alice = keys["alice"]
    png = upload(client, alice, "holiday.mp4", PNG_1X1 + b"\x00" * 2000)
    assert png.status_code == 415 and "PNG image" in png.json()["detail"]
    assert upload(client, alice, "empty.mp4", b"").status_code == 422
    truncated = upload(client, alice, "cut.mp4", video_path.read_bytes()[:100_000])
    assert truncated.status_code == 422 and "truncated" in truncated.json()["detail"]
    silent = upload(client, alice, "silent.mp4", write_video_only(tmp_path / "v.mp4").read_bytes())
    assert silent.status_code == 422 and "no audio track" in silent.json()["detail"]
    zero = upload(client, alice, "zero.mp4", write_zero_length(tmp_path / "z.mp4").read_bytes())
    assert zero.status_code == 422, zero.text
    text = client.post("/v1/jobs", headers={**alice, "Content-Type": "text/plain"}, content=b"hello")
    assert text.status_code == 415
    raw_png = client.post("/v1/jobs", headers={**alice, "Content-Type": "video/mp4"}, content=PNG_1X1)
    assert raw_png.status_code == 415
    nofile = client.post("/v1/jobs", headers=alice, files={"other": ("a.txt", b"x")})
    assert nofile.status_code == 422 and "'file'" in nofile.json()["detail"]
    # None of these left a job behind.
    assert all(j["input_name"] not in ("cut.mp4", "silent.mp4", "zero.mp4", "holiday.mp4")
               for j in client.get("/v1/jobs?limit=200", headers=alice).json()["items"])


def test_option_and_source_validation(client: TestClient, keys: dict[str, dict[str, str]]) -> None:
    alice = keys["alice"]
    cases = [
        {"source": "s3://b/x.mp4", "planner": "nope"},
        {"source": "s3://b/x.mp4", "max_rounds": 99},
        {"source": "s3://b/x.mp4", "threshold": 1.5},
        {"source": "s3://b/x.mp4", "outputs": ["mp3"]},
        {"source": "s3://b/x.mp4", "colour": "red"},
        {},
    ]
    for body in cases:
        r = client.post("/v1/jobs", headers=alice, json=body)
        assert r.status_code == 422, (body, r.text)
    for source in ("/etc/passwd", "file:///etc/passwd", "../../etc/passwd",
                   "s3://bucket/in/../../x.mp4", "http://example.com/x.mp4", "bucket\x00/x"):
        r = client.post("/v1/jobs", headers=alice, json={"source": source})
        assert r.status_code == 422, (source, r.text)
    storage = client.app.state.storage  # type: ignore[attr-defined]
    r = client.post("/v1/jobs", headers=alice, json={"source": storage.key_uri("missing/x.mp4")})
    assert r.status_code == 422 and "does not exist" in r.json()["detail"]
    wav_header = b"RIFF\x00\x00\x00\x00WAVE" + b"\x00" * 600
    bad = client.post("/v1/jobs", headers=alice, files={"file": ("a.wav", wav_header)},
                      data={"options": "{not json"})
    assert bad.status_code == 422
    for path in ("/v1/jobs?limit=0", "/v1/jobs?state=weird", "/v1/jobs/x/nonsense"):
        assert client.get(path, headers=alice).status_code == 422, path
    batch = client.post("/v1/batches", headers=alice,
                        json={"source": "s3://b/in/", "dest": "s3://b/in/out/", "pattern": "*.mp4"})
    assert batch.status_code == 422 and "inside source" in batch.json()["detail"]
    batch = client.post("/v1/batches", headers=alice,
                        json={"source": "s3://b/in/", "dest": "s3://b/out/", "pattern": "../*"})
    assert batch.status_code == 422


def test_offset_beyond_the_database_integer_is_422(
    client: TestClient, keys: dict[str, dict[str, str]]
) -> None:
    # schemathesis: offset=22033414902718268222203756544 reached SQLite (OverflowError, 500).
    alice = keys["alice"]
    for path in ("/v1/jobs", "/v1/batches"):
        r = client.get(path, headers=alice, params={"offset": 22033414902718268222203756544})
        assert r.status_code == 422, r.text
        assert r.json()["detail"][0]["loc"] == ["query", "offset"]
        r = client.get(path, headers=alice, params={"offset": 2**31 - 1, "limit": 5})
        assert r.status_code == 200 and r.json()["items"] == [] and r.json()["next"] is None


def test_json_body_that_is_not_utf8_is_422(
    client: TestClient, keys: dict[str, dict[str, str]]
) -> None:
    # schemathesis: a body of b"\xb8" made a validation error carrying raw bytes, which
    # FastAPI's handler failed to encode (UnicodeDecodeError, 500).
    alice = {**keys["alice"], "Content-Type": "application/json"}
    for body, where in ((b"\xb8", 0), (b'{"source": "s3://b/\xff.mp4"}', 19)):
        r = client.post("/v1/jobs", headers=alice, content=body)
        assert r.status_code == 422, r.text
        assert r.json()["detail"] == f"the JSON body is not valid UTF-8 (byte 0x{body[where]:02x} at {where})"
    r = client.post("/v1/jobs", headers=alice, content=b"not json")  # valid UTF-8, not JSON
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "json_invalid"


def test_source_that_is_a_folder_is_422(
    client: TestClient, keys: dict[str, dict[str, str]], settings: Settings
) -> None:
    # schemathesis fed a batch's source prefix back into POST /v1/jobs: the job was queued on a
    # folder, and its /input and /spectrogram answered 500 (IsADirectoryError, a short body).
    alice = keys["alice"]
    storage = client.app.state.storage  # type: ignore[attr-defined]
    storage.write_bytes(storage.key_uri("folder-src/a.wav"), b"RIFF")
    for source in (storage.key_uri("folder-src"), storage.key_uri("folder-src") + "/",
                   storage.key_uri("folder-src/a.wav") + "/"):
        r = client.post("/v1/jobs", headers=alice, json={"source": source})
        assert r.status_code == 422, (source, r.text)
        assert "is a folder, not a file" in r.json()["detail"] and "/v1/batches" in r.json()["detail"]
    # A job that points at a folder anyway (made before this check): 404 and 409, never 500s.
    store = JobStore.from_settings(settings)
    key, rec = create_key(store, "dave")
    store.create_job(Job(id=new_id(), owner=rec.id, source=storage.key_uri("folder-src"),
                         input_name="folder-src.wav", output_prefix=storage.key_uri("jobs/x"),
                         options={}))
    dave = {"X-API-Key": key}
    jid = client.get("/v1/jobs", headers=dave).json()["items"][0]["id"]
    r = client.get(f"/v1/jobs/{jid}/input", headers=dave)
    assert r.status_code == 404 and "gone from storage" in r.json()["detail"], r.text
    for path in ("spectrogram/before", "preview/before"):  # the API renders nothing: not yet
        r = client.get(f"/v1/jobs/{jid}/{path}", headers=dave)
        assert r.status_code == 409 and "rendered by the worker" in r.json()["detail"], (path, r.text)


def test_empty_idempotency_key_is_422(client: TestClient, keys: dict[str, dict[str, str]]) -> None:
    # schemathesis: 'Idempotency-Key: ' skipped the lookup but was stored, so the second batch
    # with it broke the (owner, key) unique constraint (IntegrityError, 500).
    alice = keys["alice"]
    storage = client.app.state.storage  # type: ignore[attr-defined]
    body = {"source": storage.key_uri("idem-in/"), "dest": storage.key_uri("idem-out/")}
    for path, kwargs in (("/v1/batches", {"json": body}),
                         ("/v1/jobs", {"json": {"source": storage.key_uri("idem-in/x.mp4")}}),
                         ("/v1/jobs", {"files": {"file": ("a.wav", b"RIFF")}})):
        for _ in range(2):
            r = client.post(path, headers={**alice, "Idempotency-Key": ""}, **kwargs)
            assert r.status_code == 422, (path, r.text)
            assert r.json()["detail"][0]["loc"] == ["header", "Idempotency-Key"]
    first = client.post("/v1/batches", headers={**alice, "Idempotency-Key": "b-1"}, json=body)
    again = client.post("/v1/batches", headers={**alice, "Idempotency-Key": "b-1"}, json=body)
    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"] and again.headers["Idempotent-Replayed"] == "true"


def test_batch_idempotency_race_returns_the_winner(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two requests with one key both miss the lookup; the loser's insert returns the winner.
    store = JobStore.from_settings(settings)

    def batch() -> Batch:
        return Batch(id=new_id(), owner="race", source="s3://b/in/", dest="s3://b/out/",
                     pattern="*", options={}, idempotency_key="same")

    winner, _ = store.create_batch(batch())
    real = store._batch_by_idempotency
    calls: list[str] = []

    def first_lookup_misses(owner: str, key: str) -> Batch | None:
        calls.append(key)
        return None if len(calls) == 1 else real(owner, key)

    monkeypatch.setattr(store, "_batch_by_idempotency", first_lookup_misses)
    got, created = store.create_batch(batch())
    assert not created and got.id == winner.id and len(calls) == 2


def test_auth_and_unknown_ids(client: TestClient, keys: dict[str, dict[str, str]]) -> None:
    assert client.get("/v1/jobs").status_code == 401  # keys exist: anonymous is off
    for headers in ({"Authorization": "Bearer avk_000000000000_wrong"}, {"X-API-Key": "nonsense"},
                    {"Authorization": "Basic dXNlcjpwYXNz"}):
        r = client.get("/v1/jobs", headers=headers)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    alice = keys["alice"]
    for path in ("/v1/jobs/0123456789abcdef", "/v1/jobs/..%2F..%2Fetc", "/v1/batches/nope",
                 "/v1/jobs/0123/report"):
        assert client.get(path, headers=alice).status_code == 404, path
    assert client.delete("/v1/jobs/0123456789abcdef", headers=alice).status_code == 404
    for path in ("/healthz", "/readyz", "/openapi.json", "/docs"):
        assert client.get(path).status_code == 200, path
    spec = client.get("/openapi.json").json()
    assert {"/v1/jobs", "/v1/jobs/{job_id}", "/v1/batches", "/v1/batches/{batch_id}"} <= set(spec["paths"])
    assert {"JobCreate", "JobPublic", "BatchCreate", "BatchPublic"} <= set(spec["components"]["schemas"])


# -- a service with no worker: jobs stay queued --------------------------------------------------
@pytest.fixture
def idle(tmp_path: Path) -> Iterator[tuple[TestClient, Settings]]:
    settings = Settings(cache_dir=tmp_path, environment="test", max_upload_mb=0.2)
    with TestClient(create_app(settings)) as c:
        yield c, settings


def test_size_limit_streaming_and_declared(idle: tuple[TestClient, Settings], video_path: Path) -> None:
    client, _ = idle
    big = video_path.read_bytes()  # 384 kB > 0.2 MB
    r = upload(client, {}, "big.mp4", big)
    assert r.status_code == 413 and "AVAGENT_MAX_UPLOAD_MB" in r.json()["detail"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit is enforced while streaming
        for i in range(0, len(big), 65536):
            yield big[i : i + 65536]

    r = client.post("/v1/jobs", headers={"Content-Type": "video/mp4"}, content=chunks())
    assert r.status_code == 413
    assert not list((idle[1].cache_dir / "spool").iterdir())  # spool cleaned up


@pytest.mark.media
def test_anonymous_idempotency_cancel_pagination(idle: tuple[TestClient, Settings],
                                                 speech_path: Path) -> None:
    client, _ = idle
    data = speech_path.read_bytes()
    first = upload(client, {"Idempotency-Key": "k1"}, "a.wav", data, "audio/wav")
    again = upload(client, {"Idempotency-Key": "k1"}, "a.wav", data, "audio/wav")
    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"] and again.headers["Idempotent-Replayed"] == "true"
    raw = client.post("/v1/jobs?filename=b.wav&max_rounds=1",
                      headers={"Content-Type": "audio/wav"}, content=data)
    assert raw.status_code == 202 and raw.json()["options"] == {"max_rounds": 1}
    page = client.get("/v1/jobs?limit=1").json()
    assert page["total"] == 2 and len(page["items"]) == 1 and "offset=1" in page["next"]
    assert client.get(page["next"]).json()["next"] is None

    jid = first.json()["id"]
    assert client.get(f"/v1/jobs/{jid}/audio").status_code == 409
    cancelled = client.delete(f"/v1/jobs/{jid}")
    assert cancelled.status_code == 202 and cancelled.json()["state"] == "cancelled"
    assert client.delete(f"/v1/jobs/{jid}").status_code == 409
    assert client.get("/v1/jobs?state=cancelled").json()["total"] == 1

    # Creating the first key ends the anonymous mode.
    key, _ = create_key(client.app.state.store, "carol", rate_per_minute=3, max_concurrent=1)  # type: ignore[attr-defined]
    assert client.get("/v1/jobs").status_code == 401
    carol = {"X-API-Key": key}
    assert client.get("/v1/jobs", headers=carol).json()["total"] == 0
    assert upload(client, carol, "c.wav", data, "audio/wav").status_code == 202
    busy = upload(client, carol, "d.wav", data, "audio/wav")  # 1 job queued = her limit
    assert busy.status_code == 429 and "Retry-After" in busy.headers
    limited = client.get("/v1/jobs", headers=carol)  # 4th request within the minute
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1


def test_production_requires_keys(tmp_path: Path) -> None:
    settings = Settings(cache_dir=tmp_path, environment="production", secret_key="s3cr3t-value")
    with TestClient(create_app(settings)) as client:
        assert client.get("/v1/jobs").status_code == 401


def test_readyz_reports_broken_parts(tmp_path: Path) -> None:
    port_nobody_listens = 1
    settings = Settings(cache_dir=tmp_path, environment="test",
                        broker_url=f"redis://127.0.0.1:{port_nobody_listens}/0")
    with TestClient(create_app(settings)) as client:
        r = client.get("/readyz")
        assert r.status_code == 503
        body = r.json()
        assert body["checks"]["broker"]["ok"] is False and body["checks"]["database"]["ok"] is True
        assert json.dumps(body)  # serialisable, with reasons


@pytest.mark.slow
@pytest.mark.media
def test_cancel_running_job_publishes_nothing(
    client: TestClient, worker: Any, keys: dict[str, dict[str, str]], video_path: Path
) -> None:
    alice = keys["alice"]
    r = upload(client, alice, "cancel-me.mp4", video_path.read_bytes(), max_rounds="3")
    jid = r.json()["id"]
    wait_job(client, jid, alice, until=lambda j: j["state"] == "running")
    cancelled = client.delete(f"/v1/jobs/{jid}", headers=alice)
    assert cancelled.status_code == 202 and cancelled.json()["state"] == "cancelled"
    deadline = time.monotonic() + 30
    while "cancelled while running" not in worker.tail(200_000) and time.monotonic() < deadline:
        time.sleep(0.2)
    job = client.get(f"/v1/jobs/{jid}", headers=alice).json()
    assert job["state"] == "cancelled" and "audio" not in job["links"]
    assert client.get(f"/v1/jobs/{jid}/audio", headers=alice).status_code == 409
    storage = client.app.state.storage  # type: ignore[attr-defined]
    assert not storage.exists(storage.key_uri(f"jobs/{jid}/cancel-me.repaired.wav"))


def test_keys_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                      capsys: pytest.CaptureFixture[str]) -> None:
    from avagent.service.cli import main
    from avagent.service.settings import get_settings

    monkeypatch.setenv("AVAGENT_CACHE_DIR", str(tmp_path))
    get_settings.cache_clear()
    try:
        assert main(["keys", "create", "--name", "ci"]) == 0
        key = capsys.readouterr().out.strip()
        assert key.startswith("avk_")
        store = JobStore.from_settings(Settings(cache_dir=tmp_path))
        (record,) = store.list_keys()
        assert record.name == "ci" and key not in record.key_hash  # only the hash is stored
        assert main(["keys", "list"]) == 0 and record.id in capsys.readouterr().out
        assert main(["keys", "revoke", record.id]) == 0
        assert main(["keys", "revoke", record.id]) == 2  # already revoked: one clear line
        assert "already revoked" in capsys.readouterr().err
        with TestClient(create_app(Settings(cache_dir=tmp_path, environment="test"))) as c:
            r = c.get("/v1/jobs", headers={"X-API-Key": key})
            assert r.status_code == 401 and "revoked" in r.json()["detail"]
    finally:
        get_settings.cache_clear()


@pytest.mark.slow
@pytest.mark.media
def test_serve_runs_api_and_worker_with_one_command(tmp_path: Path, speech_path: Path) -> None:
    import subprocess
    import sys

    import httpx

    from tests.service.conftest import REPO, free_port, settings_env, stop, wait_port

    port = free_port()
    log = open(tmp_path / "serve.log", "wb")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(
        [sys.executable, "-m", "avagent.service.cli", "serve", "--port", str(port)],
        env=settings_env({"cache_dir": tmp_path, "environment": "development"}), cwd=REPO,
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        assert wait_port(port, 60), (tmp_path / "serve.log").read_text()
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=30) as http:
            r = http.post("/v1/jobs", files={"file": ("speech.wav", speech_path.read_bytes())},
                          data={"max_rounds": "1"})
            assert r.status_code == 202, r.text
            deadline = time.monotonic() + 60
            while (job := http.get(f"/v1/jobs/{r.json()['id']}").json())["state"] in ("queued", "running"):
                assert time.monotonic() < deadline, job
                time.sleep(0.3)
            assert job["state"] == "succeeded", (tmp_path / "serve.log").read_text()[-3000:]
        proc.send_signal(signal.SIGTERM)  # stops the API, which stops its worker
        proc.wait(timeout=40)
        out = subprocess.run(["ps", "-o", "pid=", "--sid", str(proc.pid)], capture_output=True, text=True)
        assert out.stdout.strip() == "", f"left behind: {out.stdout}"
    finally:
        stop(proc)
        log.close()
