"""Known faults: corrupt a clean clip and record the truth (what was done, how to undo it).

Every fault is a pure function ``f(y, *, sr, ..., seed=0) -> (corrupted, Truth)`` over float
arrays shaped ``(n,)`` or ``(channels, n)``; the output keeps the input's shape except where the
fault changes the duration (drift, PAL). Everything random is drawn from ``seed``: the same seed
gives bit-identical arrays and an equal truth.

The truth carries the repair plan in the action table's vocabulary (``[(action, params)]``) and
the facts perception ought to find (``expected``: ``audio_delay_ms``, ``rate``, ``hum_hz``,
``noise_kind``, ``dropouts_s`` ...). Of :mod:`avagent.actions` this module reads only the action
table's names (:func:`~avagent.actions.registry.action_names`, the repair order by family), never
signal code: the faults must not share code with what is being tested, so shifting and
resampling are done here with numpy and ``scipy.signal.resample_poly``.

Sign convention (see :mod:`avagent.perception.facts`): ``audio_delay_ms > 0`` means the sound is LATE; it
is undone by ``speed(offset_ms=-audio_delay_ms)``.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from typing import Any

import numpy as np
import pyloudnorm
from pydantic import BaseModel, Field
from scipy import signal

from avagent.actions.registry import Family, action_names
from avagent.bench import signals
from avagent.bench.metrics import active_mask, bs1770_channels
from avagent.rates import NTSC_PAL, PAL_RATE

# Which action undoes which noise. These follow docs/actions.md (best default on the kind).
NOISE_KIND_OF: dict[str, str] = {
    "white": "broadband",
    "pink": "broadband",
    "hiss": "clicks",  # the vinyl recording is crackle-dominated (kurtosis > 20), not pure hiss
    "brown": "low_rumble",
    "wind": "low_rumble",
    "ambience": "low_rumble",
    "fire": "clicks",
    "applause": "clicks",  # dense claps: impulsive, broadband
    "rain": "broadband",
    "traffic": "low_rumble",
    "engine": "low_rumble",
}
NOISE_REPAIR: dict[str, tuple[str, dict[str, Any]]] = {
    "white": ("wiener", {}),
    "pink": ("wiener", {}),
    "hiss": ("wiener", {}),
    "brown": ("wiener", {}),
    "wind": ("spectral_gating", {"stationary": False}),
    "ambience": ("spectral_gating", {"stationary": False}),
    "fire": ("spectral_gating", {"stationary": False}),
    "applause": ("spectral_gating", {"stationary": False}),
    "rain": ("wiener", {}),
    "traffic": ("wiener", {}),
    "engine": ("wiener", {}),
}


class RepairStep(BaseModel):
    """One step of the plan that undoes a fault: an action of the table and its parameters."""

    action: str
    params: dict[str, Any] = Field(default_factory=dict)


class Truth(BaseModel):
    """What was done to a clip and how to undo it."""

    family: str
    params: dict[str, Any] = Field(default_factory=dict)
    repair: list[RepairStep] = Field(default_factory=list)
    expected: dict[str, Any] = Field(
        default_factory=dict, description="facts perception should measure on the corrupted clip"
    )
    reversible: bool = Field(True, description="the repair plan can restore the clean signal")
    parts: list[Truth] = Field(default_factory=list, description="the faults of a mixture")

    def plan(self) -> list[tuple[str, dict[str, Any]]]:
        return [(s.action, dict(s.params)) for s in self.repair]


Result = tuple[np.ndarray, Truth]


def _as2d(y: np.ndarray) -> tuple[np.ndarray, bool]:
    x = np.asarray(y, dtype=np.float64)
    if x.ndim == 1:
        return x[None, :].copy(), True
    if x.ndim != 2:
        raise ValueError(f"y must be shaped (n,) or (channels, n), got {x.shape}")
    return x.copy(), False


def _back(x: np.ndarray, was_1d: bool) -> np.ndarray:
    return x[0] if was_1d else x


def _scale_to_snr(
    clean: np.ndarray, interference: np.ndarray, snr_db: float, sr: int
) -> np.ndarray:
    """Scale ``interference`` so clean/interference power over the clean's active part is
    exactly ``snr_db``."""
    mask = active_mask(clean, sr=sr)
    p_sig = np.mean(clean[:, mask] ** 2)
    p_int = np.mean(interference[:, mask] ** 2)
    return interference * np.sqrt(p_sig / (p_int * 10 ** (snr_db / 10)))


def clean(y: np.ndarray, *, sr: int, seed: int = 0) -> Result:
    """The control: no fault, nothing to do."""
    x, was_1d = _as2d(y)
    return _back(x, was_1d), Truth(family="clean", expected={"noise_kind": "none"})


def add_noise(
    y: np.ndarray, *, sr: int, kind: str = "white", snr_db: float = 5.0, seed: int = 0
) -> Result:
    """Mix noise ``kind`` (white, pink, brown, wind, hiss, ambience, fire) at ``snr_db`` over the
    clean's active frames (speech pauses do not count)."""
    x, was_1d = _as2d(y)
    n = signals.noise(kind, x.shape[-1], channels=x.shape[0], seed=seed, sr=sr)
    n = _scale_to_snr(x, n, snr_db, sr)
    action, params = NOISE_REPAIR[kind]
    truth = Truth(
        family="noise",
        params={"kind": kind, "snr_db": float(snr_db), "seed": seed},
        repair=[RepairStep(action=action, params=params)],
        expected={"noise_kind": NOISE_KIND_OF[kind], "snr_db": float(snr_db)},
        reversible=False,
    )
    return _back(x + n, was_1d), truth


def add_hum(
    y: np.ndarray,
    *,
    sr: int,
    fundamental_hz: float = 50.0,
    snr_db: float = 5.0,
    harmonics: int = 6,
    seed: int = 0,
) -> Result:
    """Mains hum at ``fundamental_hz`` (50 or 60) with ``harmonics`` partials at ``snr_db``."""
    x, was_1d = _as2d(y)
    h = signals.hum(
        x.shape[-1],
        sr=sr,
        fundamental_hz=fundamental_hz,
        harmonics=harmonics,
        channels=x.shape[0],
        seed=seed,
    )
    h = _scale_to_snr(x, h, snr_db, sr)
    truth = Truth(
        family="hum",
        params={
            "fundamental_hz": float(fundamental_hz),
            "snr_db": float(snr_db),
            "harmonics": harmonics,
            "seed": seed,
        },
        repair=[RepairStep(action="remove_hum", params={"fundamental_hz": float(fundamental_hz)})],
        expected={"noise_kind": "hum", "hum_hz": float(fundamental_hz), "snr_db": float(snr_db)},
        reversible=False,
    )
    return _back(x + h, was_1d), truth


def _shift(x: np.ndarray, k: int) -> np.ndarray:
    out = np.zeros_like(x)
    n = x.shape[-1]
    if k >= 0:
        out[:, k:] = x[:, : max(0, n - k)]
    else:
        out[:, : max(0, n + k)] = x[:, -k:]
    return out


def offset(y: np.ndarray, *, sr: int, audio_delay_ms: float = 300.0, seed: int = 0) -> Result:
    """Sound late (``audio_delay_ms > 0``: silence before, end dropped) or early (< 0: start
    dropped, silence after); same length. The delay is rounded to whole samples and the truth
    records the delay actually applied."""
    x, was_1d = _as2d(y)
    k = round(audio_delay_ms * sr / 1000.0)
    delay = k * 1000.0 / sr
    truth = Truth(
        family="offset",
        params={"audio_delay_ms": delay},
        repair=[RepairStep(action="speed", params={"offset_ms": -delay})],
        expected={"audio_delay_ms": delay, "verdict": "offset"},
        reversible=False,  # the dropped end (or start) is gone
    )
    return _back(_shift(x, k), was_1d), truth


def _varispeed(x: np.ndarray, rate: float) -> np.ndarray:
    """Resample so the rows play ``rate`` times faster at the same sample rate (tape-style:
    shorter and higher for rate > 1)."""
    frac = Fraction(rate).limit_denominator(10_000)
    # n -> n * down/up samples; rate = up/down... play faster = fewer samples.
    up, down = frac.denominator, frac.numerator
    out = signal.resample_poly(x, up, down, axis=-1)
    m = round(x.shape[-1] / rate)
    if out.shape[-1] < m:
        out = np.pad(out, ((0, 0), (0, m - out.shape[-1])))
    return out[:, :m]


def drift(y: np.ndarray, *, sr: int, rate: float = 1.002, equal_length: bool = False,
          seed: int = 0) -> Result:
    """Audio clock ``rate`` times the video clock (1.001-1.003 typical): the sound runs fast,
    ends early and drifts ahead by ``(1 - 1/rate)`` of the elapsed time; pitch follows.

    ``equal_length``: the drifted sound is then cut or padded (silence at the end) to the
    input's length, as a muxer does that fits the audio stream to the picture's; the stream
    durations then say nothing and only the content can find the rate."""
    x, was_1d = _as2d(y)
    out = _varispeed(x, rate)
    if equal_length:
        n = x.shape[-1]
        out = out[:, :n] if out.shape[-1] >= n else np.pad(out, ((0, 0), (0, n - out.shape[-1])))
    params: dict[str, Any] = {"rate": float(rate)}
    if equal_length:
        params["equal_length"] = True
    truth = Truth(
        family="drift",
        params=params,
        repair=[
            RepairStep(
                action="speed",
                params={"rate": 1.0 / float(rate), "target_duration_s": x.shape[-1] / sr},
            )
        ],
        expected={
            "rate": float(rate),
            "verdict": "drift",
            "duration_ratio": out.shape[-1] / x.shape[-1],
        },
    )
    return _back(out, was_1d), truth


def pal(y: np.ndarray, *, sr: int, seed: int = 0) -> Result:
    """PAL speed-up: 23.976 fps film audio played at 25 fps, 4.27 % fast (4.1 % shorter) and
    72 cents (0.72 semitone) higher. Undone by ``speed(rate=23.976/25)``, pitch included."""
    x, was_1d = _as2d(y)
    out = _varispeed(x, PAL_RATE)
    truth = Truth(
        family="pal",
        params={"rate": PAL_RATE, "pitch_cents": 1200 * float(np.log2(PAL_RATE))},
        repair=[
            RepairStep(
                action="speed", params={"rate": NTSC_PAL, "target_duration_s": x.shape[-1] / sr}
            )
        ],
        expected={
            "rate": PAL_RATE,
            "verdict": "drift",
            "duration_ratio": out.shape[-1] / x.shape[-1],
        },
    )
    return _back(out, was_1d), truth


def _lufs(x: np.ndarray, sr: int) -> float:
    return float(pyloudnorm.Meter(sr).integrated_loudness(bs1770_channels(x).T))


def quiet(y: np.ndarray, *, sr: int, target_lufs: float = -40.0, seed: int = 0) -> Result:
    """Turn the whole clip down to ``target_lufs`` (integrated, BS.1770)."""
    x, was_1d = _as2d(y)
    before = _lufs(x, sr)
    gain_db = target_lufs - before
    truth = Truth(
        family="quiet",
        params={"target_lufs": float(target_lufs), "gain_db": float(gain_db), "clean_lufs": before},
        repair=[RepairStep(action="volume", params={"target_lufs": round(before, 2)})],
        expected={"loudness_lufs": float(target_lufs)},
    )
    return _back(x * 10 ** (gain_db / 20), was_1d), truth


def clipped(
    y: np.ndarray, *, sr: int, gain_db: float = 12.0, ceiling: float = 1.0, seed: int = 0
) -> Result:
    """Gain by ``gain_db`` then hard-clip at ``±ceiling`` (an overdriven recorder). Clipping
    cannot be undone by the table's actions; the plan brings the level back to the clean
    loudness under a true-peak ceiling."""
    x, was_1d = _as2d(y)
    before = _lufs(x, sr)
    out = np.clip(x * 10 ** (gain_db / 20), -ceiling, ceiling)
    frac = float(np.mean(np.abs(out) >= ceiling))
    truth = Truth(
        family="clipped",
        params={"gain_db": float(gain_db), "ceiling": float(ceiling), "clean_lufs": before},
        repair=[RepairStep(action="volume", params={"target_lufs": round(before, 2)})],
        expected={"clipping_fraction": frac},
        reversible=False,
    )
    return _back(out, was_1d), truth


def dropouts(
    y: np.ndarray,
    *,
    sr: int,
    count: int = 4,
    min_ms: float = 20.0,
    max_ms: float = 200.0,
    seed: int = 0,
) -> Result:
    """Zero ``count`` spans of ``min_ms``-``max_ms`` (digital silence on every channel), each
    wholly inside active sound and at least 100 ms from the next."""
    x, was_1d = _as2d(y)
    rng = np.random.default_rng(seed)
    n = x.shape[-1]
    mask = active_mask(x, sr=sr)
    # Candidate starts: every position whose whole span would be active sound.
    csum = np.concatenate([[0], np.cumsum(~mask)])
    taken = np.zeros(n, dtype=bool)
    guard = int(0.1 * sr)
    spans: list[tuple[int, int]] = []
    for _ in range(count):
        length = round(rng.uniform(min_ms, max_ms) * sr / 1000)
        starts = np.arange(guard, n - length - guard)
        ok = (csum[starts + length] - csum[starts]) == 0
        ok &= ~taken[starts] & ~taken[np.minimum(starts + length, n - 1)]
        cands = starts[ok]
        if len(cands) == 0:
            break
        s = int(rng.choice(cands))
        spans.append((s, s + length))
        taken[max(0, s - guard) : s + length + guard] = True
    spans.sort()
    for s, e in spans:
        x[:, s:e] = 0.0
    spans_s = [(s / sr, e / sr) for s, e in spans]
    truth = Truth(
        family="dropouts",
        params={
            "count": len(spans),
            "min_ms": float(min_ms),
            "max_ms": float(max_ms),
            "spans_s": spans_s,
            "seed": seed,
        },
        # the repair knows where the gaps are: fill_blanks(spans_s=...) needs no detector
        repair=[RepairStep(action="fill_blanks", params={"spans_s": spans_s})],
        expected={"dropouts_s": spans_s},
        reversible=False,
    )
    return _back(x, was_1d), truth


FAMILIES: dict[str, Callable[..., Result]] = {
    "clean": clean,
    "noise": add_noise,
    "hum": add_hum,
    "offset": offset,
    "drift": drift,
    "pal": pal,
    "quiet": quiet,
    "clipped": clipped,
    "dropouts": dropouts,
}

# Faults happen in this order in a mixture (recording, transmission, level, then timing); the
# repair runs timing first, then gaps, noise, and level last.
_APPLY_ORDER = ("noise", "hum", "dropouts", "quiet", "clipped", "offset", "drift", "pal")
_REPAIR_FAMILIES: tuple[Family, ...] = ("timing", "repair", "tonal", "noise", "level")
_REPAIR_ORDER = tuple(a for family in _REPAIR_FAMILIES for a in action_names(family))


def corrupt(family: str, y: np.ndarray, *, sr: int, seed: int = 0, **params: Any) -> Result:
    """Apply fault ``family`` (a key of :data:`FAMILIES`) with ``params``."""
    try:
        func = FAMILIES[family]
    except KeyError:
        raise ValueError(f"family={family!r}; valid: {', '.join(FAMILIES)}") from None
    return func(y, sr=sr, seed=seed, **params)


def mixture(
    y: np.ndarray, *, sr: int, faults: list[tuple[str, dict[str, Any]]], seed: int = 0
) -> Result:
    """Apply two or three faults in a realistic order and merge their repair plans.

    An offset is applied before a rate change, so a single ``speed(rate, offset_ms)`` (rate
    first, then offset) undoes both.
    """
    names = [f for f, _ in faults]
    if len(set(names)) != len(names) or "clean" in names:
        raise ValueError(f"faults={names} must be distinct, real faults")
    if "drift" in names and "pal" in names:
        raise ValueError("drift and pal are both rate faults; pick one")
    ordered = sorted(faults, key=lambda f: _APPLY_ORDER.index(f[0]))
    x = np.asarray(y, dtype=np.float64)
    # Loudness targets refer to the clean clip, not to an intermediate (noisy) stage.
    clean_lufs = _lufs(_as2d(x)[0], sr)
    parts: list[Truth] = []
    for i, (family, params) in enumerate(ordered):
        x, t = corrupt(family, x, sr=sr, seed=seed + 1000 * i, **params)
        parts.append(t)
    speed_params: dict[str, Any] = {}
    steps: list[RepairStep] = []
    for t in parts:
        for s in t.repair:
            if s.action == "speed":
                speed_params.update(s.params)
            elif s.action == "volume":
                steps.append(
                    RepairStep(action="volume", params={"target_lufs": round(clean_lufs, 2)})
                )
            else:
                steps.append(s)
    if speed_params:
        steps.append(RepairStep(action="speed", params=speed_params))
    steps.sort(key=lambda s: _REPAIR_ORDER.index(s.action))
    expected: dict[str, Any] = {}
    for t in parts:
        expected.update(t.expected)
    truth = Truth(
        family="mixture",
        params={"faults": names},
        repair=steps,
        expected=expected,
        reversible=all(t.reversible for t in parts),
        parts=parts,
    )
    return x, truth


def sample(
    y: np.ndarray, *, sr: int, seed: int = 0, families: tuple[str, ...] | None = None
) -> Result:
    """Draw one fault (or a mixture of two or three) with parameters in the benchmark's ranges.

    Ranges: noise SNR 0-15 dB over every kind; hum 50/60 Hz at 0-15 dB; offset ±120-800 ms;
    drift 1.001-1.003; quiet to -40 LUFS; clipping gain 6-18 dB; 2-5 dropouts of 20-200 ms.
    """
    rng = np.random.default_rng(seed)
    pool = families or (*FAMILIES, "mixture")
    family = str(rng.choice(pool))
    if family == "mixture":
        k = int(rng.integers(2, 4))
        cands = [f for f in FAMILIES if f not in ("clean", "pal")]
        picked = list(rng.choice(cands, size=k, replace=False))
        if "quiet" in picked and "clipped" in picked:
            picked.remove("clipped")
        return mixture(y, sr=sr, faults=[(f, _draw(f, rng)) for f in picked], seed=seed)
    return corrupt(family, y, sr=sr, seed=seed, **_draw(family, rng))


def _draw(family: str, rng: np.random.Generator) -> dict[str, Any]:
    if family == "noise":
        kinds = list(NOISE_KIND_OF)
        return {"kind": str(rng.choice(kinds)), "snr_db": float(rng.uniform(0, 15))}
    if family == "hum":
        return {
            "fundamental_hz": float(rng.choice([50.0, 60.0])),
            "snr_db": float(rng.uniform(0, 15)),
        }
    if family == "offset":
        return {"audio_delay_ms": float(rng.choice([-1, 1]) * rng.uniform(120, 800))}
    if family == "drift":
        return {"rate": float(rng.uniform(1.001, 1.003))}
    if family == "clipped":
        return {"gain_db": float(rng.uniform(6, 18))}
    if family == "dropouts":
        return {"count": int(rng.integers(2, 6))}
    return {}
