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


@pytest.mark.media
@pytest.mark.parametrize("guard", ["snap", "level"])
def test_a_span_given_in_rounded_seconds_is_filled_at_the_level_around_it(guard, monkeypatch):
    # The benchmark's game score, hum removed, three dropouts, the spans as a report gives
    # them (four decimals): the last one (39 ms, AR-interpolated) missed a zero sample at each
    # edge, the interpolation was pinned to zero there and rang 20 dB over the music around
    # it (SI-SDR 0.8 dB against 12.6 before the fill). Either guard alone keeps it quiet:
    # spans grown over the silence at their edges, or an AR fill louder than its context
    # replaced by copies.
    import avagent.actions.fill_blanks as fb
    from avagent.bench import metrics, suite

    if guard == "snap":
        monkeypatch.setattr(fb, "_LSAR_MAX_GAIN", 1e9)
    else:
        monkeypatch.setattr(fb, "_snapped", lambda clip, spans, sr: spans)
    case = next(c for c in suite.build_cases("full")
                if c.id == "game_music/mix(hum50-5dB+dropouts+quiet)")
    spans = [[round(a, 4), round(b, 4)] for a, b in case.truth.expected["dropouts_s"]]
    dehummed = remove_hum(case.y, sr=case.sr, fundamental_hz=50.0)
    out = fill_blanks(dehummed, sr=case.sr, spans_s=spans)
    for a, b in spans:
        i, j = round(a * case.sr), round(b * case.sr)
        around = np.sqrt(np.mean(np.r_[dehummed[..., i - 2400 : i].ravel(),
                                       dehummed[..., j : j + 2400].ravel()] ** 2))
        assert np.sqrt(np.mean(out[..., i:j] ** 2)) < 2.0 * around
    assert metrics.si_sdr(case.clean, out) > metrics.si_sdr(case.clean, dehummed)
