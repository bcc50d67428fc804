"""Storage through fsspec on local disk and a real S3 server (SeaweedFS), key safety, and a
batch over an S3 bucket that finishes with a manifest and resumes without redoing work."""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from avagent.errors import ParameterError
from avagent.service import media
from avagent.service.api import create_app
from avagent.service.auth import create_key
from avagent.service.jobs import TIERS, JobStore
from avagent.service.settings import Settings
from avagent.service.storage import Storage, is_under, normalize_uri, safe_key
from tests.service.conftest import S3Server, run_worker, wait_job

pytestmark = pytest.mark.timeout(240)


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("a.mp4", "a.mp4"),
        ("in/sub dir/a b.mp4", "in/sub dir/a b.mp4"),
        ("./in//a.mp4", "in/a.mp4"),
        ("in/..hidden/a.mp4", "in/..hidden/a.mp4"),  # '..' only as a whole segment is refused
        ("../a.mp4", ParameterError),
        ("in/../../etc/passwd", ParameterError),
        ("/etc/passwd", ParameterError),
        ("C:/x.mp4", ParameterError),
        ("in\\..\\x.mp4", ParameterError),
        ("a\x00.mp4", ParameterError),
        ("s3://other/x", ParameterError),
        ("", ParameterError),
        ("./", ParameterError),
    ],
)
def test_safe_key(key: str, expected: Any) -> None:
    if expected is ParameterError:
        with pytest.raises(ParameterError):
            safe_key(key)
    else:
        assert safe_key(key) == expected


def test_uris_and_allowed_prefixes(tmp_path: Path) -> None:
    assert normalize_uri("/data/x/") == "file:///data/x/"
    assert normalize_uri("s3://b//in/./a.mp4") == "s3://b/in/a.mp4"
    for bad in ("relative/x", "http://h/x", "s3://", "file://rel", "s3://b/../x", "/a/../b"):
        with pytest.raises(ParameterError):
            normalize_uri(bad)
    assert is_under("s3://b/in/a.mp4", "s3://b/in/") and not is_under("s3://b/inx/a", "s3://b/in")
    st = Storage(str(tmp_path / "root"))
    assert st.check_allowed(str(tmp_path / "root" / "x.mp4")).startswith("file://")
    assert st.check_allowed("s3://any/x.mp4") == "s3://any/x.mp4"
    with pytest.raises(ParameterError, match="outside the allowed"):
        st.check_allowed(str(tmp_path / "elsewhere.mp4"))
    only = Storage(str(tmp_path / "root"), allowed_prefixes=["s3://mine/in/"])
    with pytest.raises(ParameterError):
        only.check_allowed("s3://other/x.mp4")


def _roundtrip(st: Storage, base: str, tmp_path: Path) -> None:
    src = tmp_path / "blob.bin"
    payload = bytes(range(256)) * 5000  # > 1 MiB: several chunks
    src.write_bytes(payload)
    st.put_file(src, f"{base}/in/a/one.mp4")
    st.write_bytes(f"{base}/in/two.mp4", b"two")
    st.write_bytes(f"{base}/in/notes.txt", b"skip me")
    st.write_bytes(f"{base}/in/.avagent/items/x.json", b"{}")
    assert st.exists(f"{base}/in/two.mp4") and not st.exists(f"{base}/in/three.mp4")
    assert [o.rel for o in st.list(f"{base}/in/", "*.mp4")] == ["a/one.mp4", "two.mp4"]
    assert [o.rel for o in st.list(f"{base}/in", "a/*")] == ["a/one.mp4"]
    got = tmp_path / "back.bin"
    assert st.get_file(f"{base}/in/a/one.mp4", got) == hashlib.sha256(payload).hexdigest()
    assert got.read_bytes() == payload and st.size(f"{base}/in/a/one.mp4") == len(payload)
    st.write_bytes(f"{base}/in/two.mp4", b"two, again")  # overwrite is atomic, not an append
    assert st.read_bytes(f"{base}/in/two.mp4") == b"two, again"
    st.delete(f"{base}/in", recursive=True)
    assert not st.exists(f"{base}/in/two.mp4")
    # S3 has no folders; some servers keep an empty "directory" entry after a delete.
    with contextlib.suppress(FileNotFoundError):
        assert st.list(f"{base}/in/") == []
    with pytest.raises(FileNotFoundError):
        st.list(f"{base}/never-written/")


def test_local_storage(tmp_path: Path) -> None:
    st = Storage(str(tmp_path / "root"))
    _roundtrip(st, st.root, tmp_path)
    assert not list((tmp_path / "root").rglob("*.part"))
    st.ping()


def test_s3_storage(s3_server: S3Server, tmp_path: Path) -> None:
    settings = Settings(cache_dir=tmp_path, storage_root=f"s3://{s3_server.bucket}/svc",
                        s3_endpoint_url=s3_server.endpoint, s3_access_key_id="k",
                        s3_secret_access_key="s", s3_region="us-east-1")
    st = Storage.from_settings(settings)
    _roundtrip(st, f"s3://{s3_server.bucket}/roundtrip", tmp_path)
    st.ping()


# -- a batch over a bucket ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def s3_service(s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    cache = tmp_path_factory.mktemp("s3-svc")
    values = {
        "cache_dir": cache, "environment": "test",
        "storage_root": f"s3://{s3_server.bucket}/service",
        "s3_endpoint_url": s3_server.endpoint, "s3_access_key_id": "k",
        "s3_secret_access_key": "s", "s3_region": "us-east-1",
    }
    settings = Settings(**values)
    store = JobStore.from_settings(settings)
    key, _ = create_key(store, "batcher")
    other, _ = create_key(store, "someone-else")
    with run_worker(values, cache / "worker.log") as worker, TestClient(create_app(settings)) as client:
        yield {"client": client, "worker": worker, "settings": settings,
               "me": {"X-API-Key": key}, "other": {"X-API-Key": other}}


def wait_batch(client: TestClient, batch_id: str, headers: dict[str, str],
               timeout_s: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        body = client.get(f"/v1/batches/{batch_id}", headers=headers).json()
        if body["state"] not in ("expanding", "running"):
            return body
        time.sleep(0.3)
    raise AssertionError(f"batch still {body.get('state')}: {body}")


@pytest.mark.slow
@pytest.mark.media
def test_batch_over_s3_with_manifest_and_resume(
    s3_service: dict[str, Any], s3_server: S3Server, video_path: Path, speech_path: Path,
    tmp_path: Path,
) -> None:
    client, me = s3_service["client"], s3_service["me"]
    fs = s3_server.fs()
    b = s3_server.bucket
    fs.put_file(str(video_path), f"{b}/in/cam1/clip.mp4")
    fs.put_file(str(speech_path), f"{b}/in/voice.wav")
    # The same stem in another format, with other content: its outputs must not meet voice.wav's.
    y, sr = media.load_audio(speech_path)
    media.write_audio(tmp_path / "voice.flac", 0.2 * y, sr)
    fs.put_file(str(tmp_path / "voice.flac"), f"{b}/in/voice.flac")
    fs.pipe_file(f"{b}/in/readme.txt", b"not media")
    fs.pipe_file(f"{b}/in/broken.wav", b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x00" * 300)

    spec = {"source": f"s3://{b}/in/", "dest": f"s3://{b}/out/", "pattern": "*.[mwf][pal][4vac]*",
            "max_rounds": 1}
    r = client.post("/v1/batches", headers=me, json=spec)
    assert r.status_code == 202, r.text
    batch = wait_batch(client, r.json()["id"], me)
    worker = s3_service["worker"]
    assert batch["state"] == "completed_with_errors", (batch, worker.tail())
    assert batch["counts"] == {"total": 4, "skipped": 0, "queued": 0, "running": 0,
                               "succeeded": 3, "failed": 1, "cancelled": 0}
    assert batch["progress"] == 1.0 and batch["manifest"] == f"s3://{b}/out/manifest.jsonl"

    lines = [json.loads(x) for x in fs.cat_file(f"{b}/out/manifest.jsonl").decode().splitlines()]
    by_input = {x["input"]: x for x in lines}
    assert set(by_input) == {f"s3://{b}/in/cam1/clip.mp4", f"s3://{b}/in/voice.wav",
                             f"s3://{b}/in/voice.flac", f"s3://{b}/in/broken.wav"}
    clip = by_input[f"s3://{b}/in/cam1/clip.mp4"]
    assert clip["state"] == "succeeded" and clip["tier"] in TIERS and clip["tier"] != "failed"
    # outputs are keyed by the source's relative path with its extension
    assert clip["outputs"] == {"wav": f"s3://{b}/out/cam1/clip.mp4.repaired.wav",
                               "video": f"s3://{b}/out/cam1/clip.mp4.repaired.mp4",
                               "report": f"s3://{b}/out/cam1/clip.mp4.report.json"}
    named = [uri for x in lines for uri in x.get("outputs", {}).values()]
    assert len(named) == len(set(named)) == 3 + 2 + 2  # no two items write one object
    for line in lines:  # every checksum describes what landed in the bucket under that name
        for kind, uri in line.get("outputs", {}).items():
            data = fs.cat_file(uri[len("s3://"):])
            assert line["checksum"][kind] == "sha256:" + hashlib.sha256(data).hexdigest(), uri
    assert clip["checksum"]["input"] == "sha256:" + hashlib.sha256(video_path.read_bytes()).hexdigest()
    assert 0 <= clip["scores"]["alignment"] <= 1 and 0 <= clip["scores"]["sync"] <= 1
    broken = by_input[f"s3://{b}/in/broken.wav"]
    assert broken["tier"] == "failed" and broken["error"]
    # the error names the object the user gave, not the worker's temporary copy
    assert f"s3://{b}/in/broken.wav" in broken["error"] and "/tmp/" not in broken["error"]
    assert "video" not in by_input[f"s3://{b}/in/voice.wav"]["outputs"]

    # Someone else's key sees nothing of it.
    assert client.get(f"/v1/batches/{batch['id']}", headers=s3_service["other"]).status_code == 404
    assert client.get(f"/v1/jobs?batch_id={batch['id']}", headers=s3_service["other"]).json()["total"] == 0
    assert client.get(f"/v1/jobs?batch_id={batch['id']}", headers=me).json()["total"] == 4
    manifest = client.get(f"/v1/batches/{batch['id']}/manifest", headers=me)
    assert manifest.status_code == 200 and len(manifest.text.splitlines()) == 4

    # Re-submitting resumes: the two finished objects are skipped, only the failed one runs again.
    again = client.post("/v1/batches", headers=me, json=spec)
    assert again.status_code == 202 and again.json()["id"] != batch["id"]
    resumed = wait_batch(client, again.json()["id"], me)
    assert resumed["counts"]["skipped"] == 3 and resumed["counts"]["failed"] == 1
    assert resumed["counts"]["succeeded"] == 0
    assert len(fs.cat_file(f"{b}/out/manifest.jsonl").decode().splitlines()) == 4


@pytest.mark.slow
@pytest.mark.media
def test_s3_storage_root_upload_and_source_job(
    s3_service: dict[str, Any], s3_server: S3Server, speech_path: Path
) -> None:
    client, me = s3_service["client"], s3_service["me"]
    r = client.post("/v1/jobs", headers=me, files={"file": ("voice.wav", speech_path.read_bytes(),
                                                            "audio/wav")}, data={"max_rounds": "1"})
    assert r.status_code == 202, r.text
    assert r.json()["source"].startswith(f"s3://{s3_server.bucket}/service/uploads/")
    fs = s3_server.fs()
    fs.put_file(str(speech_path), f"{s3_server.bucket}/direct/voice.wav")
    r2 = client.post("/v1/jobs", headers=me,
                     json={"source": f"s3://{s3_server.bucket}/direct/voice.wav", "max_rounds": 1})
    assert r2.status_code == 202, r2.text
    missing = client.post("/v1/jobs", headers=me, json={"source": f"s3://{s3_server.bucket}/nope.wav"})
    assert missing.status_code == 422
    for jid in (r.json()["id"], r2.json()["id"]):
        done = wait_job(client, jid, me)
        assert done["state"] == "succeeded", (done, s3_service["worker"].tail())
        wav = client.get(f"/v1/jobs/{jid}/audio", headers=me)
        assert wav.status_code == 200 and wav.content[:4] == b"RIFF"
    bad = client.post("/v1/batches", headers=me,
                      json={"source": f"s3://{s3_server.bucket}/no-such-prefix/",
                            "dest": f"s3://{s3_server.bucket}/out2/"})
    failed = wait_batch(client, bad.json()["id"], me)
    assert failed["state"] == "failed" and "does not exist" in failed["error"]
