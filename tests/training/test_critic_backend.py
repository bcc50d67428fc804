"""The learned critic through Settings: AVAGENT_CRITIC_CHECKPOINT → make_scorer → `learned`,
`avagent backends` naming the checkpoint, and one clear line when it is not set or missing.

A tiny untrained AV-MAE with a hand-written calibration stands in for `avagent train critic`'s
output, so these need torch but no media.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from avagent.errors import BackendError
from avagent.perception.frames import FrameSet
from avagent.service.backend_status import describe_backends
from avagent.service.backends import backend, make_scorer
from avagent.service.cli import main
from avagent.service.settings import Settings, get_settings


@pytest.fixture(scope="module")
def critic_pt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    from avagent.training.mae import AVMAE, MODEL_PRESETS
    from avagent.training.pretrain import TrainConfig, load_checkpoint, save_checkpoint

    torch.manual_seed(0)
    mcfg = MODEL_PRESETS["tiny"]
    path = tmp_path_factory.mktemp("critic") / "critic.pt"
    save_checkpoint(path, AVMAE(mcfg), None, mcfg, TrainConfig(), 0, float("inf"), [])
    state = load_checkpoint(path)
    state["critic"] = {"alignment": {"a": 4.0, "b": -1.0}, "sync": {"c": 20.0, "d": 0.0}}
    torch.save(state, path)
    return path


def _frames(seconds: float = 2.5, fps: float = 12.5) -> FrameSet:
    t = int(seconds * fps)
    frames = np.random.default_rng(0).integers(0, 255, (t, 48, 64), dtype=np.uint8)
    return FrameSet(frames, np.arange(t) / fps, fps, fps, 64, 48, t / fps)


def test_settings_build_the_learned_scorer_from_its_checkpoint(critic_pt: Path, tmp_path: Path,
                                                                monkeypatch) -> None:
    monkeypatch.setenv("AVAGENT_SCORER", "learned")
    monkeypatch.setenv("AVAGENT_CRITIC_CHECKPOINT", str(critic_pt))
    s = Settings(cache_dir=tmp_path)
    assert s.critic_checkpoint == critic_pt
    assert backend(s, "scorer").kwargs == {"checkpoint": critic_pt}
    scorer = make_scorer(s)
    assert scorer.name == "learned" and scorer.cal["sync"]["c"] == 20.0
    y = np.random.default_rng(1).normal(0, 0.1, (1, 16000 * 5 // 2))
    scores, facts = scorer.score(y, sr=16000, frames=_frames())
    assert 0 <= scores.alignment <= 1 and 0 <= scores.sync <= 1
    # the calibration stored in the file is the one applied: σ(4·cos − 1) (details are rounded)
    cos = scores.details["agreement"]
    assert scores.alignment == pytest.approx(1 / (1 + np.exp(-(4 * cos - 1))), abs=1e-3)
    assert facts.audio.duration_s == pytest.approx(2.5, abs=0.01)


def test_the_learned_critic_runs_on_the_cpu_queue(tmp_path) -> None:
    from avagent.service.backends import needs_gpu

    assert not needs_gpu(Settings(cache_dir=tmp_path, scorer="learned"))
    assert needs_gpu(Settings(cache_dir=tmp_path, scorer="imagebind"))


def test_learned_without_a_checkpoint_is_a_backend_error_naming_the_setting(tmp_path) -> None:
    with pytest.raises(BackendError, match="AVAGENT_CRITIC_CHECKPOINT"):
        make_scorer(Settings(cache_dir=tmp_path, scorer="learned"))
    missing = tmp_path / "nope.pt"
    with pytest.raises(BackendError, match=r"nope\.pt' is not a file"):
        make_scorer(Settings(cache_dir=tmp_path, scorer="learned", critic_checkpoint=missing))
    with pytest.raises(BackendError, match="AVAGENT_CRITIC_CHECKPOINT"):
        make_scorer(Settings(cache_dir=tmp_path), "learned")  # a per-job override alike


def test_repair_cli_refuses_learned_without_checkpoint_in_one_line(tmp_path, capsys,
                                                                   monkeypatch) -> None:
    import soundfile as sf

    clip = tmp_path / "a.wav"
    sf.write(clip, np.zeros(16000, np.float32), 16000)
    monkeypatch.delenv("AVAGENT_CRITIC_CHECKPOINT", raising=False)
    get_settings.cache_clear()
    try:
        code = main(["repair", str(clip), "-o", str(tmp_path / "o"), "--quiet",
                     "--scorer", "learned"])
        err = capsys.readouterr().err.strip().splitlines()
        assert code != 0 and len(err) == 1 and "AVAGENT_CRITIC_CHECKPOINT" in err[0]
        code = main(["repair", str(clip), "-o", str(tmp_path / "o"), "--quiet",
                     "--scorer", "learned", "--critic-checkpoint", str(tmp_path / "gone.pt")])
        err = capsys.readouterr().err.strip().splitlines()
        assert code != 0 and len(err) == 1 and "gone.pt" in err[0] and "not a file" in err[0]
    finally:
        get_settings.cache_clear()
    assert not (tmp_path / "o").exists()  # refused before any file was decoded


def test_backends_shows_the_critic_checkpoint(critic_pt: Path, tmp_path: Path, capsys,
                                              monkeypatch) -> None:
    monkeypatch.setenv("AVAGENT_SCORER", "learned")
    monkeypatch.setenv("AVAGENT_CRITIC_CHECKPOINT", str(critic_pt))
    get_settings.cache_clear()
    try:
        assert main(["backends", "--json", "--no-probe"]) == 0
    finally:
        get_settings.cache_clear()
    row = {r["role"]: r for r in json.loads(capsys.readouterr().out)}["scorer"]
    assert row["backend"] == "learned" and row["reachable"] is True
    assert str(critic_pt) in row["detail"]
    gone = describe_backends(Settings(cache_dir=tmp_path, scorer="learned",
                                      critic_checkpoint=tmp_path / "x.pt"), probe=False)[-1]
    assert gone["reachable"] is False and "not a file" in gone["detail"]
    monkeypatch.delenv("AVAGENT_CRITIC_CHECKPOINT")
    unset = describe_backends(Settings(cache_dir=tmp_path, scorer="learned"), probe=False)[-1]
    assert unset["reachable"] is False and "AVAGENT_CRITIC_CHECKPOINT" in unset["detail"]


@pytest.mark.media
def test_bench_check_scores_the_suite_with_both_scorers(critic_pt: Path, media_dir: Path) -> None:
    from avagent.training.critic import bench_check

    r = bench_check(critic_pt, size="tiny", systems=("none", "oracle"))
    assert r["cases"] == 4 and r["systems"] == ["none", "oracle"] and r["errors"] == []
    for scorer in ("embedded", "learned"):
        c = r[scorer]
        assert c["n"] == 8 and c["acceptable"] >= 4  # the oracle's outputs are acceptable
        assert c["within_case_alignment_cases"] == 0  # two versions rank nothing
    assert r["timing_cases"] == 1 and r["offsets"][0]["truth_ms"] == pytest.approx(400, abs=5)
    assert r["offset_within_1_frame"]["learned"] in (0.0, 1.0)
    from avagent.bench import suite

    assert r["offset_within_1_frame"]["frame_ms"] == pytest.approx(1000 / suite.FPS)  # 40 ms
