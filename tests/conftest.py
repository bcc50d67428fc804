"""Shared fixtures: a seeded rng, synthetic signals and the real sample media."""

from __future__ import annotations

import os
from pathlib import Path

# MKL's results may depend on how its operands happen to be aligned in memory, so a tensor
# computed twice in one process can differ in its last bits after other tests moved the heap
# (seen once in a whole run: a resumed SFT run's loss off by 6e-3 after two steps). STRICT
# conditional numerical reproducibility removes that; it must be set before MKL starts.
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

import numpy as np
import pytest

from avagent.bench import media


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def media_dir() -> Path:
    """Root of the fetched real media (``make media`` fetches it; tests fetch it if missing)."""
    for name in media.SOURCES:
        media.fetch(name)
    return media.cache_root()


@pytest.fixture(scope="session")
def speech_path(media_dir: Path) -> Path:
    return media_dir / "speech" / "Front_Center.wav"


@pytest.fixture(scope="session")
def video_path(media_dir: Path) -> Path:
    """A real 5.6 s h264/aac mp4 (560x320, 30 fps, 48 kHz mono)."""
    return media_dir / "videos" / "mp4.mp4"


@pytest.fixture(scope="session")
def bunny_path(media_dir: Path) -> Path:
    """Big Buck Bunny, 5.3 s 720p with 6-channel AAC."""
    return media_dir / "bunny" / "bigbuckbunny.mp4"
