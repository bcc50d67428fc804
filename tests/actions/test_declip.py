"""Declip's self-test (issue 11): a programme whose peaks were already flat-topped is left as it
came; one whose peaks the model predicts is rebuilt."""

from __future__ import annotations

import numpy as np
import pytest

from avagent.actions.declip import declip, self_test

SR = 48000


def _hits(rng, *, flat_topped: bool, n_hits: int = 12) -> np.ndarray:
    """Decaying 150 Hz drum-like hits at seeded times and levels; ``flat_topped``: each hit was
    recorded clipped at 60 % of its own peak (as some drum samples are)."""
    n = 6 * SR
    y = np.zeros(n)
    t = np.arange(round(0.4 * SR)) / SR
    for k in range(n_hits):
        hit = np.sin(2 * np.pi * 150 * t + rng.uniform(0, np.pi)) * np.exp(-t / 0.08)
        if flat_topped:
            hit = np.clip(hit, -0.6, 0.6)
        i = round((0.2 + 0.45 * k) * SR)
        y[i : i + t.size] += rng.uniform(0.4, 1.0) * hit
    return y / np.abs(y).max() * 1.3  # then clipped at full scale by the caller: 2.3 dB over


@pytest.mark.parametrize("flat_topped", [False, True])
def test_declip_rebuilds_only_peaks_its_model_predicts(flat_topped):
    rng = np.random.default_rng(5)
    truth = _hits(rng, flat_topped=flat_topped)
    clipped = np.clip(truth, -1.0, 1.0)
    n_test, gain_db = self_test(clipped)
    assert n_test >= 3
    out = declip(clipped, sr=SR)
    err = lambda z: float(np.sum((z - truth) ** 2))  # noqa: E731
    if flat_topped:
        assert gain_db >= 0.0, gain_db
        assert np.array_equal(out, clipped)  # left as it came
        # ... where the rebuild without the test would have moved it away from the truth
        assert err(declip(clipped, sr=SR, self_test=False)) > err(clipped)
    else:
        assert gain_db < 0.0, gain_db
        assert err(out) < 0.7 * err(clipped)  # measured: 0.53


def test_declip_self_test_without_test_peaks_trusts_the_model():
    # a clipped square-ish tone: every peak reaches the clip level, none is left to test on
    t = np.arange(SR) / SR
    y = np.clip(1.5 * np.sin(2 * np.pi * 200 * t), -1, 1)
    n_test, gain_db = self_test(y)
    assert n_test == 0 and np.isnan(gain_db)
    assert np.abs(declip(y, sr=SR)).max() > 1.2
