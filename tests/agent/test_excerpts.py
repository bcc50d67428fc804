"""Long inputs judged on excerpts: placement, reading through a timing plan, loudness resolved."""

from __future__ import annotations

import numpy as np
import pytest

from avagent.agent.excerpts import Excerpt, Excerpts, mean_scores, place
from avagent.loudness import loudness_lufs
from avagent.reflection.scorers import Scores

SR = 8000


def _track(rng: np.random.Generator, seconds: float) -> np.ndarray:
    n = int(seconds * SR)
    env = 0.5 + 0.5 * np.sin(2 * np.pi * np.arange(n) / SR / 7.0)  # loudness varies in time
    return (0.05 * env * rng.standard_normal(n)).astype(np.float32)[None, :]


def _reader(y: np.ndarray):
    def read(a: int, b: int) -> np.ndarray:
        out = np.zeros((y.shape[0], b - a), np.float32)
        lo, hi = max(a, 0), min(b, y.shape[1])
        if hi > lo:
            out[:, lo - a : hi - a] = y[:, lo:hi]
        return out
    return read


def test_place_spreads_windows_and_moves_some_onto_evidence() -> None:
    w = place(3600.0, count=8, length_s=30.0)
    assert len(w) == 8 and all(b - a == 30.0 for a, b in w)
    assert w[0][0] > 0 and w[-1][1] < 3600.0
    moved = place(3600.0, count=8, length_s=30.0, evidence_s=[1000.0, 50.0, 3000.0])
    starts = [a for a, _ in moved]
    assert 985.0 in starts and 35.0 in starts  # the first two located faults, centred
    assert place(40.0, count=8, length_s=30.0) == [(5.0, 35.0)]


def test_an_offset_plan_reads_the_sound_from_where_it_came(rng) -> None:
    y = _track(rng, 120.0)
    late = np.concatenate([np.zeros((1, SR // 2), np.float32), y[:, : -SR // 2]], axis=1)
    ex = Excerpts(read=_reader(late), sr=SR, n=late.shape[1],
                  items=[Excerpt(20.0, 40.0), Excerpt(70.0, 90.0)], loudness_lufs=None)
    fixed, _ = ex.apply([("speed", {"offset_ms": -500.0})])
    for e, got in zip(ex.items, fixed, strict=True):
        want = y[:, int(e.start_s * SR) : int(e.stop_s * SR)]
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_a_loudness_target_becomes_the_whole_tracks_gain(rng) -> None:
    y = _track(rng, 300.0)
    whole = loudness_lufs(y, sr=SR)
    ex = Excerpts(read=_reader(y), sr=SR, n=y.shape[1],
                  items=[Excerpt(a, b) for a, b in place(300.0, count=4, length_s=20.0)],
                  loudness_lufs=whole)
    _, resolved = ex.apply([("volume", {"target_lufs": -20.0, "true_peak_dbtp": -1.0})])
    (name, params), = resolved
    assert name == "volume" and "target_lufs" not in params
    assert params["gain_db"] == pytest.approx(-20.0 - whole, abs=0.01)
    out = y * 10 ** (params["gain_db"] / 20)
    assert loudness_lufs(out, sr=SR) == pytest.approx(-20.0, abs=0.1)


def test_mean_scores_keeps_the_shared_details() -> None:
    s = mean_scores([Scores(alignment=0.2, sync=1.0, details={"noise": 0.2, "hum": 1.0}),
                     Scores(alignment=0.6, sync=0.5, details={"noise": 0.6})])
    assert s.alignment == pytest.approx(0.4) and s.sync == pytest.approx(0.75)
    assert s.details == {"noise": 0.4}
