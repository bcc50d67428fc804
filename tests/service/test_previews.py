"""The web page's previews: rendered by the worker from a bounded decode when the job finishes,
stored with its outputs, served by the API as files; a preview that fails never fails the job."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient

from avagent.service import previews as pv
from avagent.service.jobs import SUCCEEDED, Job, JobStore, new_id
from avagent.service.settings import Settings
from avagent.service.storage import Storage
from avagent.service.task_context import TaskContext, set_context

pytestmark = pytest.mark.timeout(180)


def _blocks(y: np.ndarray, size: int):
    for i in range(0, y.shape[-1], size):
        yield y[..., i : i + size]


def test_the_spectrogram_does_not_depend_on_how_the_audio_is_cut() -> None:
    sr = 8000
    t = np.arange(int(7.3 * sr)) / sr
    y = 0.5 * np.sin(2 * np.pi * 1000 * t)
    whole = pv.Spectrogram(sr)
    whole.feed(y)
    cut = pv.Spectrogram(sr)
    for b in _blocks(y, 777):  # blocks shorter than a window, not a multiple of the hop
        cut.feed(b)
    (ta, fa, da), (tb, fb, db) = whole.finish(), cut.finish()
    assert np.array_equal(ta, tb) and np.array_equal(fa, fb) and np.array_equal(da, db)
    # one column per N_FFT/4 samples (7.3 s at 8 kHz), and the tail gets its own
    assert da.shape == (pv.N_FFT // 2 + 1, (len(y) - pv.N_FFT) // (pv.N_FFT // 4) + 2)
    # a -6 dBFS sine reads -6 dBFS at its bin
    k = int(np.argmin(np.abs(fa - 1000)))
    assert abs(float(np.median(da[k])) - (-6.02)) < 0.2
    # shorter than one window: one zero-padded column
    tiny = pv.Spectrogram(sr)
    tiny.feed(y[:100])
    assert tiny.finish()[2].shape[1] == 1


def test_a_long_input_is_sampled_into_bounded_columns() -> None:
    sr, hours = 4000, 2.0
    spec = pv.Spectrogram(sr)
    n = int(hours * 3600 * sr)
    rng = np.random.default_rng(0)
    block = 0.01 * rng.standard_normal(10 * sr)
    for _ in range(n // len(block)):
        spec.feed(block)
        assert len(spec.columns) < 2 * pv.MAX_COLUMNS and len(spec.buf) <= len(block) + pv.N_FFT
    times, _, db = spec.finish()
    assert pv.MAX_COLUMNS // 2 <= db.shape[1] <= pv.MAX_COLUMNS
    assert times[0] < 1.0 and times[-1] > hours * 3600 - 10  # the whole duration is shown
    assert np.all(np.diff(times) > 0)


def test_render_folds_caps_and_scales_the_preview(tmp_path: Path) -> None:
    sr = 16000
    t = np.arange(12 * sr) / sr
    # six channels of different content, one above full scale (a float output)
    y = np.stack([0.3 * np.sin(2 * np.pi * f * t) for f in (200, 300, 400, 500, 600, 700)])
    y[0::2] = 1.5 * np.sin(2 * np.pi * 200 * t)  # L folds to a 1.5 peak
    src = tmp_path / "six.wav"
    sf.write(src, y.T.astype(np.float32), sr, subtype="FLOAT")
    info = pv.render(src, tmp_path / "out", "after", max_s=5.0)
    assert info == {"duration_s": 12.0, "preview_s": 5.0, "sample_rate": sr, "channels": 6,
                    "columns": info["columns"], "scaled": True}
    wav, rate = sf.read(tmp_path / "out" / "after.wav")
    assert sf.info(tmp_path / "out" / "after.wav").subtype == "PCM_16"
    assert rate == sr and wav.shape == (5 * sr, 2) and np.abs(wav).max() <= 1.0
    assert np.abs(wav).max() > 0.9  # scaled to full scale, not clipped to a square
    png = (tmp_path / "out" / "after.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["after.png", "after.wav"]
    with pytest.raises(ValueError, match="max_s=0"):
        pv.render(src, tmp_path / "out", "after", max_s=0)


# -- the worker renders, the API serves --------------------------------------------------------
def _run(settings: Settings, store: JobStore, storage: Storage, job_id: str) -> Job:
    from avagent.service import worker as w

    w.worker_app(settings)
    set_context(TaskContext(settings, store, storage))
    try:
        w.repair_job.apply(args=[job_id])
    finally:
        set_context(None)
    job = store.get_job(job_id)
    assert job is not None
    return job


def _job(settings: Settings, storage: Storage, path: Path, **options) -> tuple[JobStore, Job]:
    store = JobStore.from_settings(settings)
    src = storage.key_uri(f"uploads/{path.name}")
    storage.put_file(path, src)
    jid = new_id()
    job, _ = store.create_job(Job(
        id=jid, owner="anonymous", queue=settings.cpu_queue, source=src, input_name=path.name,
        output_prefix=storage.key_uri(f"jobs/{jid}"), options={"max_rounds": 1, **options},
    ))
    return store, job


@pytest.mark.slow
@pytest.mark.media
def test_the_worker_stores_both_previews_and_the_api_serves_them(
    tmp_path: Path, video_path: Path
) -> None:
    from avagent.service.api import create_app

    settings = Settings(cache_dir=tmp_path, environment="test", preview_max_s=3.0)
    storage = Storage.from_settings(settings)
    store, job = _job(settings, storage, video_path)
    done = _run(settings, store, storage, job.id)
    assert done.state == SUCCEEDED, done.error
    record = done.summary["previews"]
    assert "errors" not in record and record["seconds"] > 0
    prefix = f"{done.output_prefix}/.avagent/previews/{done.id}"
    for side in ("before", "after"):
        assert record[side]["wav"] == f"{prefix}/{side}.wav" and storage.exists(record[side]["wav"])
        assert record[side]["png"] == f"{prefix}/{side}.png" and storage.exists(record[side]["png"])
        assert abs(record[side]["duration_s"] - 5.57) < 0.1 and record[side]["preview_s"] == 3.0
    assert set(done.outputs) == {"wav", "video", "report"}  # previews are not outputs
    with TestClient(create_app(settings)) as client:
        links = client.get(f"/v1/jobs/{done.id}/media").json()["links"]
        assert set(links) == {"input", "before", "after", "spectrogram_before", "spectrogram_after"}
        for side in ("before", "after"):
            r = client.get(links[side])
            assert r.status_code == 200 and r.headers["content-type"] == "audio/wav"
            y, sr = sf.read(io.BytesIO(r.content))
            assert sr == 48000 and len(y) == 3 * 48000 and np.abs(y).max() > 0.01
            assert client.get(links[side], headers={"Range": "bytes=0-99"}).status_code == 206
            png = client.get(links[f"spectrogram_{side}"])
            assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
    assert not (tmp_path / "web").exists()  # nothing rendered or cached on the API side


@pytest.mark.slow
@pytest.mark.media
def test_a_preview_that_fails_leaves_the_repair_standing(
    tmp_path: Path, speech_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = pv.render

    def broken(source: Path, folder: Path, side: str, *, max_s: float) -> dict:
        if side == "after":
            raise RuntimeError("matplotlib fell over")
        return real(source, folder, side, max_s=max_s)

    monkeypatch.setattr(pv, "render", broken)
    settings = Settings(cache_dir=tmp_path, environment="test")
    storage = Storage.from_settings(settings)
    store, job = _job(settings, storage, speech_path, outputs=["wav"])
    done = _run(settings, store, storage, job.id)
    assert done.state == SUCCEEDED and storage.exists(done.outputs["wav"])
    record = done.summary["previews"]
    assert record["errors"] == {"after": "matplotlib fell over"} and "after" not in record
    assert storage.exists(record["before"]["wav"])
    # Without a sound output there is nothing to preview on the 'after' side, and no previews
    # at all when they are switched off.
    store, job = _job(settings, storage, speech_path, outputs=["report"])
    record = _run(settings, store, storage, job.id).summary["previews"]
    assert set(record) == {"before", "errors", "seconds"} and "no repaired audio" in record["errors"]["after"]
    off = Settings(cache_dir=tmp_path, environment="test", preview_max_s=0)
    store, job = _job(off, storage, speech_path, outputs=["wav"])
    done = _run(off, store, storage, job.id)
    assert done.state == SUCCEEDED and done.summary["previews"] == {}
