"""The web page: server-side parts with TestClient (pages, signed media, stored previews, refusals),
then the whole thing in a real headless Chromium against a real API and worker: the key typed
into the page, a corrupted real video uploaded through the file field, progress followed to the
end, scores, plan with reasoning, both players and both spectrograms on screen; and a batch view."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from avagent.service.api import create_app
from avagent.service.auth import create_key
from avagent.service.jobs import JobStore
from avagent.service.settings import Settings
from avagent.service.web import tokens
from tests.service.conftest import (
    PNG_1X1,
    REPO,
    _binary,
    free_port,
    run_worker,
    settings_env,
    stop,
    wait_port,
)

pytestmark = pytest.mark.timeout(240)


# -- tokens ------------------------------------------------------------------------------------
def test_media_tokens_open_one_job_of_one_owner_until_they_expire() -> None:
    t = tokens.sign("s3cret", "job1", "alice", ttl_s=60, now=1000.0)
    assert tokens.verify("s3cret", t, "job1", "alice", now=1059.0)
    assert not tokens.verify("s3cret", t, "job1", "alice", now=1061.0)  # expired
    assert not tokens.verify("s3cret", t, "job2", "alice", now=1000.0)  # another job
    assert not tokens.verify("s3cret", t, "job1", "bob", now=1000.0)  # another owner
    assert not tokens.verify("other", t, "job1", "alice", now=1000.0)  # rotated secret
    exp, mac = t.split(".")
    assert not tokens.verify("s3cret", f"{int(exp) + 3600}.{mac}", "job1", "alice", now=1000.0)
    for bad in ("", ".", "x.y", "1000", "-5.abc", "9" * 40 + ".ab"):
        assert not tokens.verify("s3cret", bad, "job1", "alice", now=0.0)


# -- server side, no worker (jobs stay queued) -------------------------------------------------------
@pytest.fixture(scope="module")
def idle_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Settings]]:
    settings = Settings(cache_dir=tmp_path_factory.mktemp("web-idle"), environment="test")
    with TestClient(create_app(settings)) as c:
        yield c, settings


def test_pages_and_static_files(idle_client: tuple[TestClient, Settings]) -> None:
    client, _ = idle_client
    for path, marker in [("/", 'id="upload-form"'), ("/jobs/abc", 'data-job-id="abc"'),
                         ("/batches/b1", 'data-batch-id="b1"')]:
        r = client.get(path)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        assert marker in r.text and 'id="api-key"' in r.text
    # The id lands in an attribute: Jinja escapes it, no markup gets through.
    r = client.get('/jobs/"><img src=x onerror=alert(1)>')
    assert r.status_code == 200
    assert "<img src=x" not in r.text and "&#34;&gt;&lt;img src=x" in r.text
    assert client.get("/ui/static/app.js").headers["content-type"].startswith("text/javascript")
    assert "text/css" in client.get("/ui/static/style.css").headers["content-type"]
    assert client.get("/ui/static/../app.py").status_code == 404
    assert client.get("/ui/static/nothing.js").status_code == 404
    paths = client.get("/openapi.json").json()["paths"]
    assert "/v1/jobs/{job_id}/spectrogram/{side}" in paths and "/" not in paths


def test_a_queued_job_plays_its_input_and_the_api_renders_nothing(
    idle_client: tuple[TestClient, Settings], video_path: Path
) -> None:
    client, settings = idle_client
    data = video_path.read_bytes()
    job = client.post("/v1/jobs", files={"file": ("clip.mp4", data, "video/mp4")}).json()
    jid = job["id"]
    r = client.get(f"/v1/jobs/{jid}/input")
    assert r.status_code == 200 and r.content == data and r.headers["content-type"] == "video/mp4"
    links = client.get(f"/v1/jobs/{jid}/media").json()["links"]
    assert set(links) == {"input"}  # previews are the worker's, once the job finished
    # Previews are rendered by the worker when the job finishes: until then a 409 saying so,
    # with a token or with the key, and nothing is decoded or drawn in this process.
    for path in ("preview/before", "spectrogram/before", "preview/after", "spectrogram/after"):
        r = client.get(f"/v1/jobs/{jid}/{path}?t={links['input'].split('t=')[1]}")
        assert r.status_code == 409, (path, r.text)
        assert r.json()["detail"] == (f"job {jid} is queued; its previews are rendered by the "
                                      "worker when it finishes")
        assert client.get(f"/v1/jobs/{jid}/{path}").status_code == 409
    assert not (settings.cache_dir / "web").exists()
    assert client.get(f"/v1/jobs/{jid}/spectrogram/sideways").status_code == 422
    # A token opens only its own job; a forged or foreign one is a 401, never a 5xx.
    other = client.post("/v1/jobs", files={"file": ("b.mp4", data, "video/mp4")}).json()["id"]
    token = links["input"].split("t=")[1]
    assert client.get(f"/v1/jobs/{other}/preview/before?t={token}").status_code == 401
    assert client.get(f"/v1/jobs/{jid}/preview/before?t=1.abc").status_code == 401
    assert client.get(f"/v1/jobs/nope/input?t={token}").status_code == 401
    assert client.get("/v1/jobs/nope/spectrogram/before").status_code == 404
    for j in (jid, other):
        client.delete(f"/v1/jobs/{j}")
    # Cancelled before it ran: it never will have previews, and says so.
    r = client.get(f"/v1/jobs/{jid}/preview/before")
    assert r.status_code == 404 and "previews exist for succeeded jobs" in r.json()["detail"]


def test_media_needs_the_owners_key(tmp_path: Path, speech_path: Path) -> None:
    settings = Settings(cache_dir=tmp_path, environment="test")
    store = JobStore.from_settings(settings)
    alice, _ = create_key(store, "alice")
    bob, _ = create_key(store, "bob")
    with TestClient(create_app(settings)) as client:
        r = client.post("/v1/jobs", headers={"X-API-Key": alice},
                        files={"file": ("s.wav", speech_path.read_bytes(), "audio/wav")})
        jid = r.json()["id"]
        assert client.get(f"/v1/jobs/{jid}/input").status_code == 401
        assert client.get(f"/v1/jobs/{jid}/media").status_code == 401
        assert client.get(f"/v1/jobs/{jid}/input", headers={"X-API-Key": bob}).status_code == 404
        assert client.get(f"/v1/jobs/{jid}/media",
                          headers={"Authorization": f"Bearer {bob}"}).status_code == 404
        mine = client.get(f"/v1/jobs/{jid}/spectrogram/before", headers={"X-API-Key": alice})
        assert mine.status_code == 409  # hers, not rendered yet (the job is queued)
        theirs = client.get(f"/v1/jobs/{jid}/spectrogram/before", headers={"X-API-Key": bob})
        assert theirs.status_code == 404
        # The page itself is public (a shell); its data needs the key.
        assert client.get("/").status_code == 200


def test_previews_the_worker_did_not_make_are_a_404_with_its_reason(
    idle_client: tuple[TestClient, Settings],
) -> None:
    client, _ = idle_client
    from avagent.service.jobs import Job, new_id

    store, storage = client.app.state.store, client.app.state.storage  # type: ignore[attr-defined]
    src = storage.key_uri("uploads/x/fake.mp4")
    storage.write_bytes(src, b"\x00\x00\x00\x18ftypmp42" + PNG_1X1)  # an mp4 header and garbage
    job, _ = store.create_job(Job(id=new_id(), owner="anonymous", source=src, input_name="fake.mp4",
                                  output_prefix=storage.key_uri("jobs/x"), queue="q"))
    # Queued: the API does not try to decode it (the worker will, and fail the job).
    assert client.get(f"/v1/jobs/{job.id}/spectrogram/before").status_code == 409
    store.claim(job.id, "w", 60)
    store.fail(job.id, "fake.mp4: corrupt")
    r = client.get(f"/v1/jobs/{job.id}/spectrogram/before")
    assert r.status_code == 404 and "previews exist for succeeded jobs" in r.json()["detail"]
    # Succeeded, one side recorded as failed, the other stored and then lost.
    png = storage.key_uri("jobs/y/.avagent/previews/y/before.png")
    storage.write_bytes(png, PNG_1X1)
    done, _ = store.create_job(Job(id=new_id(), owner="anonymous", source=src, input_name="fake.mp4",
                                   output_prefix=storage.key_uri("jobs/y"), queue="q"))
    store.claim(done.id, "w", 60)
    store.succeed(done.id, "w", summary={"previews": {
        "before": {"wav": png[:-3] + "wav", "png": png},
        "errors": {"after": "no repaired audio was written"}}})
    links = client.get(f"/v1/jobs/{done.id}/media").json()["links"]
    assert set(links) == {"input", "before", "spectrogram_before"}
    r = client.get(links["spectrogram_before"])
    assert r.status_code == 200 and r.content == PNG_1X1 and r.headers["content-type"] == "image/png"
    r = client.get(f"/v1/jobs/{done.id}/preview/after")
    assert r.status_code == 404
    assert r.json()["detail"] == f"job {done.id} has no after preview: no repaired audio was written"
    r = client.get(links["before"])  # named in the record, gone from storage
    assert r.status_code == 404 and "gone from storage" in r.json()["detail"]
    storage.delete(src)
    assert client.get(f"/v1/jobs/{job.id}/input").status_code == 404


# -- the real thing: Chromium, API, worker -----------------------------------------------------------
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1280,2000", "--autoplay-policy=no-user-gesture-required"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    chrome = _binary("chromium", "chromium")
    driver_exe = _binary("chromedriver", "chromium-driver")
    if chrome is None or driver_exe is None:
        pytest.skip("chromium/chromium-driver are not installed and cannot be (not root / no apt-get)")
    profile = tempfile.mkdtemp(prefix="avagent-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chrome
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={profile}"]:
        opts.add_argument(flag)
    driver = webdriver.Chrome(options=opts, service=Service(executable_path=driver_exe))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """``avagent serve --no-worker`` and ``avagent worker`` as real processes, with one key."""
    cache = tmp_path_factory.mktemp("web-live")
    values = {"cache_dir": cache, "environment": "test", "job_stale_s": 30}
    key, _ = create_key(JobStore.from_settings(Settings(**values)), "browser")
    port = free_port()
    log = open(cache / "api.log", "wb")  # noqa: SIM115 (closed below)
    api = subprocess.Popen(
        [sys.executable, "-m", "avagent.service.cli", "serve", "--no-worker", "--port", str(port)],
        env=settings_env(values), cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        if not wait_port(port, 30):
            raise RuntimeError((cache / "api.log").read_text()[-3000:])
        with run_worker(values, cache / "worker.log") as worker:
            yield {"url": f"http://127.0.0.1:{port}", "key": key, "values": values,
                   "worker": worker, "cache": cache}
    finally:
        stop(api)
        log.close()


@pytest.fixture(scope="module")
def corrupted_video(video_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real clip with mains hum, dropouts and far too low a level (known faults)."""
    from avagent.bench import corrupt
    from avagent.service import media

    y, sr = media.load_audio(video_path)
    bad, _ = corrupt.mixture(y, sr=sr, seed=7, faults=[
        ("hum", {"fundamental_hz": 50.0, "snr_db": 5.0}), ("dropouts", {"count": 3}),
        ("quiet", {"target_lufs": -42.0})])
    out = tmp_path_factory.mktemp("web-media") / "street.corrupted.mp4"
    media.remux(video_path, np.asarray(bad, dtype=np.float32), sr, out)
    return out


def _wait(driver: Any, cond: Any, timeout_s: float, what: str) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout_s, poll_frequency=0.2).until(cond)
    except Exception:
        raise AssertionError(f"{what} not seen in {timeout_s} s; page says: "
                             f"{driver.find_element('tag name', 'body').text[:1500]}") from None


def _screenshot(driver: Any, name: str, folder: Path) -> Path:
    path = folder / name
    driver.save_screenshot(str(path))
    keep = os.environ.get("AVAGENT_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(keep) / name)
    return path


@pytest.mark.slow
@pytest.mark.media
def test_browser_upload_follow_listen_and_read_the_plan(
    browser: Any, live: dict[str, Any], corrupted_video: Path, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    d, url = browser, live["url"]
    t0 = time.monotonic()
    d.get(url + "/")
    # Keys exist on this server: without one the page says so instead of showing jobs.
    _wait(d, lambda d: "enter your API key" in d.find_element(By.ID, "error").text, 15, "401 hint")
    d.find_element(By.ID, "api-key").send_keys(live["key"])
    d.find_element(By.CSS_SELECTOR, "#key-form button[type=submit]").click()
    _wait(d, lambda d: "in use" in d.find_element(By.ID, "key-status").text, 15, "key saved")
    assert d.execute_script("return localStorage.getItem('avagent.key')") == live["key"]

    d.find_element(By.ID, "file").send_keys(str(corrupted_video))
    d.find_element(By.ID, "max_rounds").clear()
    d.find_element(By.ID, "max_rounds").send_keys("3")
    d.find_element(By.ID, "upload-button").click()
    _wait(d, lambda d: "/jobs/" in d.current_url, 30, "redirect to the job page")
    job_id = d.current_url.rsplit("/", 1)[1]
    _wait(d, lambda d: d.find_element(By.ID, "state").text == "succeeded", 90, "state succeeded")

    # Scores, tier and summary from the JSON API.
    import httpx

    align = float(d.find_element(By.ID, "score-alignment").text)
    assert 0.0 <= align <= 1.0
    job = httpx.get(f"{url}/v1/jobs/{job_id}", headers={"X-API-Key": live["key"]}, timeout=30).json()
    verdict = job["scores"]["sync_verdict"]
    sync_text = d.find_element(By.ID, "score-sync").text
    if verdict in ("cannot_tell", "no_picture"):  # a neutral prior is not shown as a number
        assert sync_text == verdict.replace("_", " ")
    else:
        assert 0.0 <= float(sync_text) <= 1.0
    assert d.find_element(By.ID, "tier").text in ("accepted", "improved")
    assert "repaired with" in d.find_element(By.ID, "summary").text
    # The plan with its reasoning, per round, and the baseline row.
    _wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, "#rounds tbody tr"), 15, "rounds table")
    rows = d.find_elements(By.CSS_SELECTOR, "#rounds tbody tr")
    assert len(rows) >= 2 and "untouched" in rows[0].text
    steps = d.find_elements(By.CSS_SELECTOR, "#rounds ol.steps li")
    actions = [s.find_element(By.TAG_NAME, "code").text.split("(")[0] for s in steps]
    assert "remove_hum" in actions and "volume" in actions, actions
    assert all(s.find_element(By.CLASS_NAME, "reasoning").text.strip() for s in steps)
    assert d.find_elements(By.CSS_SELECTOR, "#rounds tr.chosen")
    assert "mains hum at 50 Hz" in d.find_element(By.ID, "caption-audio").text
    assert "560x320" in d.find_element(By.ID, "caption-video").text

    # Both players load real audio (the browser decoded the WAV: a duration exists) ...
    for side in ("before", "after"):
        _wait(d, lambda d, s=side: d.execute_script(
            f"const a = document.getElementById('player-{s}'); return a.readyState >= 1 && a.duration > 5"),
            30, f"{side} player loaded")
        # ... and both spectrograms are real decoded images.
        _wait(d, lambda d, s=side: d.execute_script(
            f"const i = document.getElementById('spec-{s}'); return i.complete && i.naturalWidth > 500"),
            30, f"{side} spectrogram")
    before_src = d.execute_script("return document.getElementById('player-before').currentSrc")
    assert f"/v1/jobs/{job_id}/preview/before?t=" in before_src
    shot = _screenshot(d, "web-job.png", tmp_path)
    assert shot.stat().st_size > 50_000
    # The page's audio is the job's: the repaired WAV is louder than the -42 LUFS input.
    levels = d.execute_script("""
        const out = {};
        for (const s of ['before', 'after']) {
          const r = await fetch(document.getElementById('player-' + s).currentSrc);
          const buf = await new AudioContext().decodeAudioData(await r.arrayBuffer());
          const x = buf.getChannelData(0); let e = 0; for (const v of x) e += v * v;
          out[s] = Math.sqrt(e / x.length);
        }
        return out;""")
    assert levels["after"] > 4 * levels["before"], levels
    assert time.monotonic() - t0 < 60, f"took {time.monotonic() - t0:.1f} s"


@pytest.mark.slow
@pytest.mark.media
def test_browser_batch_view_shows_progress_to_the_end(
    browser: Any, live: dict[str, Any], speech_path: Path, tmp_path: Path
) -> None:
    import httpx
    from selenium.webdriver.common.by import By

    storage_root = Path(live["cache"]) / "storage"
    src = storage_root / "batch-in"
    src.mkdir(parents=True, exist_ok=True)
    for name in ("a.wav", "b.wav"):
        shutil.copy(speech_path, src / name)
    headers = {"Authorization": f"Bearer {live['key']}"}
    r = httpx.post(live["url"] + "/v1/batches", headers=headers, timeout=30,
                   json={"source": str(src), "dest": str(storage_root / "batch-out"),
                         "pattern": "*.wav", "max_rounds": 1})
    assert r.status_code == 202, r.text
    d = browser
    d.get(live["url"] + "/")  # same origin: the key goes into localStorage as the field puts it
    d.execute_script("localStorage.setItem('avagent.key', arguments[0])", live["key"])
    d.get(live["url"] + f"/batches/{r.json()['id']}")
    _wait(d, lambda d: d.find_element(By.ID, "state").text == "succeeded", 60, "batch succeeded")
    assert d.find_element(By.ID, "count-succeeded").text == "2"
    assert d.find_element(By.ID, "progress-text").text == "100 %"
    assert len(d.find_elements(By.CSS_SELECTOR, "#jobs tbody tr")) == 2
    assert d.find_element(By.CSS_SELECTOR, "#manifest button").text == "download manifest.jsonl"
    _screenshot(d, "web-batch.png", tmp_path)
    # The index lists this key's jobs (the upload of the first test and the two batch jobs).
    d.get(live["url"] + "/")
    _wait(d, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#jobs tbody tr")) >= 2, 15, "job list")
    assert d.find_elements(By.CSS_SELECTOR, "#batches tbody tr a")
    _screenshot(d, "web-index.png", tmp_path)
