"""Dropouts and their context (issue 11): a fill only as confident as the context is predictable,
and hum removal that neither learns from nor writes into a dropout."""

from __future__ import annotations

import numpy as np
import pytest

from avagent.actions.fill_blanks import fill_blanks
from avagent.actions.hum import remove_hum

SR = 48000
GAPS = ((1.0, 1.12), (2.3, 2.42), (3.6, 3.72))  # 120 ms each: copied, not AR-interpolated


def _holed(x: np.ndarray) -> np.ndarray:
    y = x.copy()
    for a, b in GAPS:
        y[..., round(a * SR) : round(b * SR)] = 0.0
    return y


def _gap_error_db(clean: np.ndarray, out: np.ndarray) -> float:
    idx = np.zeros(clean.shape[-1], bool)
    for a, b in GAPS:
        idx[round(a * SR) : round(b * SR)] = True
    return float(10 * np.log10(np.sum((out[..., idx] - clean[..., idx]) ** 2)
                               / np.sum(clean[..., idx] ** 2)))


def test_fill_of_unpredictable_context_stays_low_but_not_silent(rng):
    # white noise: no copy of the context resembles what was lost; a confident fill would
    # double the error energy (+3 dB), the untested taper cost +0.7 dB
    clean = 0.3 * rng.standard_normal(5 * SR)
    out = fill_blanks(_holed(clean), sr=SR, spans_s=[list(g) for g in GAPS])
    assert _gap_error_db(clean, out) < 0.3
    for a, b in GAPS:  # filled: not digital silence, at a low level
        inside = out[round(a * SR) : round(b * SR)]
        assert 0.03 * 0.3 < np.sqrt(np.mean(inside**2)) < 0.5 * 0.3


def test_fill_of_predictable_context_is_confident():
    t = np.arange(5 * SR) / SR
    clean = 0.5 * np.sin(2 * np.pi * 220 * t) + 0.2 * np.sin(2 * np.pi * 331 * t)
    out = fill_blanks(_holed(clean), sr=SR, spans_s=[list(g) for g in GAPS])
    assert _gap_error_db(clean, out) < -10.0  # measured: -14.7


@pytest.mark.parametrize("channels", [1, 2])
def test_remove_hum_leaves_dropouts_silent_and_the_hum_gone_around_them(channels):
    t = np.arange(5 * SR) / SR
    tone = 0.2 * np.sin(2 * np.pi * 440 * t + np.arange(channels)[:, None])
    hum = 0.1 * np.sin(2 * np.pi * 50 * t) + 0.03 * np.sin(2 * np.pi * 150 * t)
    y = _holed(tone + hum)
    out = remove_hum(y, sr=SR, fundamental_hz=50.0)
    held = np.zeros(t.size, bool)
    for a, b in GAPS:
        s, e = round(a * SR), round(b * SR)
        held[s:e] = True
        assert np.all(out[:, s:e] == 0.0)  # a dropout stays a dropout (no anti-hum written)
    residue = out[:, ~held] - tone[:, ~held]
    # averaged with the dropouts' zeros the hum tracked low: -21.8 dB left (measured; -31 now,
    # -40 without dropouts)
    assert 10 * np.log10(np.mean(residue**2) / np.mean(hum**2)) < -28.0
