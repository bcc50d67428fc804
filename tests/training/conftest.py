"""A small labelled AV dataset (40 real-recording clips) shared by the training tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from avagent.training import avdata


@pytest.fixture(scope="session")
def dataset(media_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("avdata")
    os.environ["AVAGENT_FEATURE_CACHE"] = str(root / "features")  # workers inherit it
    return avdata.generate(40, seed=3, root=root, jobs=1)
