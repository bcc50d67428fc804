"""The AV-MAE trainer on the tiny config, over real clips of the labelled dataset."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from avagent.errors import MediaError
from avagent.service.cli import main as cli
from avagent.training import avdata
from avagent.training.pretrain import TrainConfig, TrainingError, load_checkpoint, train

pytestmark = pytest.mark.media


def _cfg(dataset: Path, out: Path, **kw: object) -> TrainConfig:
    base: dict[str, object] = dict(manifest=str(dataset / "raw.jsonl"), out=str(out), tiers="all",
                                   model="tiny", batch_size=8, max_steps=12, warmup_steps=2,
                                   lr=2e-3, num_workers=0, log_every=100, ckpt_every=100,
                                   threads=1)
    base.update(kw)
    return TrainConfig(**base)  # type: ignore[arg-type]


def test_dataset_is_deterministic_and_labelled(dataset: Path) -> None:
    a, b = avdata.make_clip(7, seed=3), avdata.make_clip(7, seed=3)
    assert np.array_equal(a.y, b.y) and np.array_equal(a.frames, b.frames)
    assert a.id.endswith(avdata.CLASS_NAMES[7]) and a.label == 7
    # The picture follows the sound: frame brightness correlates with the sound's envelope.
    lines = [json.loads(x) for x in (dataset / "raw.jsonl").read_text().splitlines()]
    assert len(lines) == 40 and {x["label"] for x in lines} == set(range(10))
    drum = avdata.make_clip(0, seed=3)
    env = avdata._envelope(drum.y, np.arange(drum.frames.shape[0]) / avdata.FPS)
    assert np.corrcoef(env, drum.frames.reshape(len(env), -1).mean(1))[0, 1] > 0.5


def test_a_few_steps_lower_the_loss_with_workers(dataset: Path, tmp_path: Path) -> None:
    summary = train(_cfg(dataset, tmp_path, max_steps=16, num_workers=2))
    hist = [h["loss"] for h in load_checkpoint(tmp_path / "last.pt")["history"]]
    assert np.mean(hist[-4:]) < np.mean(hist[:4]) - 0.1, hist
    assert 0 <= summary["data_wait_share"] < 1 and summary["samples_per_s"] > 0


def test_resume_continues_the_same_curve(dataset: Path, tmp_path: Path) -> None:
    train(_cfg(dataset, tmp_path / "straight", max_steps=8))
    straight = load_checkpoint(tmp_path / "straight" / "last.pt")
    train(_cfg(dataset, tmp_path / "split", max_steps=8, stop_at=4))  # pre-empted at step 4
    train(_cfg(dataset, tmp_path / "split", max_steps=8, resume=True))
    resumed = load_checkpoint(tmp_path / "split" / "last.pt")
    assert resumed["step"] == straight["step"] == 8
    assert resumed["train_config"]["max_steps"] == 8 and resumed["mae_config"]["dim"] == 64
    a = [h["loss"] for h in straight["history"]]
    b = [h["loss"] for h in resumed["history"]]
    np.testing.assert_allclose(b, a, rtol=1e-5)


def test_two_gloo_processes_give_the_loss_of_one(dataset: Path, tmp_path: Path) -> None:
    one = train(_cfg(dataset, tmp_path / "one", max_steps=3))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "avagent.service.cli", "train", "mae", "--manifest", str(dataset / "raw.jsonl"),
           "--out", str(tmp_path / "two"), "--tiers", "all", "--model", "tiny",
           "--batch-size", "8", "--max-steps", "3", "--warmup-steps", "2", "--lr", "2e-3",
           "--num-workers", "0", "--threads", "1"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    two = json.loads(proc.stdout.strip().splitlines()[-1])
    assert two["world_size"] == 2 and one["world_size"] == 1
    a = [h["loss"] for h in load_checkpoint(tmp_path / "one" / "last.pt")["history"]]
    b = [h["loss"] for h in load_checkpoint(tmp_path / "two" / "last.pt")["history"]]
    np.testing.assert_allclose(b, a, rtol=1e-4)  # the same global batch, steps 1-3


def _manifest_with(dataset: Path, tmp_path: Path, line: int, wav: str) -> Path:
    lines = [json.loads(x) for x in (dataset / "raw.jsonl").read_text().splitlines()]
    lines[line]["outputs"]["wav"] = wav
    p = tmp_path / "manifest.jsonl"
    p.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return p


def test_missing_file_is_named_before_training(dataset: Path, tmp_path: Path) -> None:
    gone = str(tmp_path / "gone.repaired.wav")
    m = _manifest_with(dataset, tmp_path, 4, gone)
    with pytest.raises(MediaError, match=rf"line 5: sound file {gone} is missing"):
        train(_cfg(dataset, tmp_path / "run", manifest=str(m)))


def test_broken_file_is_named_in_one_line(dataset: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really a wav file")
    m = _manifest_with(dataset, tmp_path, 2, str(broken))
    rc = cli(["train", "mae", "--manifest", str(m), "--out", str(tmp_path / "run"), "--tiers",
              "all", "--batch-size", "8", "--max-steps", "3", "--num-workers", "1"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert f"line 3: {broken}" in err


def test_tier_filter_and_bad_manifest(dataset: Path, tmp_path: Path) -> None:
    from avagent.training.data import read_manifest

    lines = [json.loads(x) for x in (dataset / "raw.jsonl").read_text().splitlines()]
    for i, x in enumerate(lines):
        x["tier"] = ("accepted", "improved", "rejected", "failed")[i % 4]
    p = tmp_path / "m.jsonl"
    p.write_text("".join(json.dumps(x) + "\n" for x in lines) + "{not json\n")
    with pytest.raises(MediaError, match=r"line 41: not a manifest record"):
        read_manifest(p)
    p.write_text("".join(json.dumps(x) + "\n" for x in lines))
    assert len(read_manifest(p, tiers=("accepted", "improved"))) == 20
    assert len(read_manifest(p)) == 40


def test_non_finite_loss_stops_the_run(dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match="loss is nan at step 0"):
        train(_cfg(dataset, tmp_path, model_overrides={"temperature": 0.0}))
    assert not (tmp_path / "last.pt").exists()


def test_probe_and_unknown_subcommand(dataset: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    train(_cfg(dataset, tmp_path / "run", manifest=str(dataset / "clean.jsonl"), max_steps=6))
    rc = cli(["train", "probe", "--checkpoint", str(tmp_path / "run" / "last.pt"), "--manifest",
              str(dataset / "clean.jsonl"), "--finetune-epochs", "1", "--linear-steps", "50",
              "--num-workers", "0"])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rc == 0 and out["train"] == 30 and out["test"] == 10
    assert 0 <= out["linear_top1"] <= 1 and 0 <= out["finetune_top1"] <= 1
    assert cli(["train", "nope"]) == 2
    assert "choose one of" in capsys.readouterr().err
    shutil.rmtree(tmp_path / "run")
    assert cli(["train", "probe", "--checkpoint", str(tmp_path / "x.pt"), "--manifest",
                str(dataset / "clean.jsonl"), "--num-workers", "0"]) == 2
