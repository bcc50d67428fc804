"""The learned critic: calibration on the tiny dataset, the `learned` scorer and its errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from avagent.errors import BackendError
from avagent.reflection.scorers import get_scorer
from avagent.service.cli import main as cli
from avagent.training import avdata
from avagent.training.pretrain import TrainConfig, load_checkpoint, train

pytestmark = pytest.mark.media


def test_calibrated_critic_scores_a_clip_and_its_shifted_copy(
        dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    train(TrainConfig(manifest=str(dataset / "clean.jsonl"), out=str(tmp_path), tiers="all",
                      batch_size=8, max_steps=4, num_workers=0, threads=1))
    rc = cli(["train", "critic", "--checkpoint", str(tmp_path / "last.pt"), "--manifest",
              str(dataset / "clean.jsonl"), "--limit", "12"])
    entry = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rc == 0 and entry["pairs"] == 12 and 0 <= entry["auc_alignment"] <= 1
    assert "critic" in load_checkpoint(tmp_path / "critic.pt")

    scorer = get_scorer("learned", checkpoint=str(tmp_path / "critic.pt"))
    from avagent.training.ablation import _frameset

    clip = avdata.make_clip(4, seed=3)
    frames = _frameset(clip)
    y = clip.y[None, :]
    scores, facts = scorer.score(y, sr=avdata.SR, frames=frames)
    assert 0 <= scores.alignment <= 1 and 0 <= scores.sync <= 1
    assert abs(scores.details["audio_delay_ms"]) <= 800 and facts.audio.duration_s > 1.9
    late = np.concatenate([np.zeros((1, 6400)), y[:, :-6400]], axis=1)  # 400 ms late
    shifted, _ = scorer.score(late, sr=avdata.SR, frames=frames, timing_changed=True)
    assert shifted.details["agreement"] != scores.details["agreement"]


def test_learned_scorer_needs_a_calibrated_checkpoint(dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="needs checkpoint"):
        get_scorer("learned")
    bad = tmp_path / "x.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(BackendError, match="cannot read"):
        get_scorer("learned", checkpoint=str(bad))
