"""Objective measures of a repair against the clean original.

All functions take arrays shaped ``(n,)`` or ``(channels, n)`` (time last). Where a measure
compares two signals of different lengths, both are cut to the shorter one. Multichannel handling
is stated per function.

Sign conventions follow :mod:`avagent.perception.facts`: a positive offset means the estimate is LATE
relative to the reference; a positive pitch error means the estimate is HIGHER.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyloudnorm
from scipy import signal
from scipy.ndimage import maximum_filter1d, uniform_filter1d

_EPS = 1e-20


def _2d(y: np.ndarray) -> np.ndarray:
    y = np.asarray(y, dtype=np.float64)
    return y[None, :] if y.ndim == 1 else y.reshape(-1, y.shape[-1])


def _pair(reference: np.ndarray, estimate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r, e = _2d(reference), _2d(estimate)
    n = min(r.shape[-1], e.shape[-1])
    r, e = r[..., :n], e[..., :n]
    if r.shape[0] != e.shape[0]:
        # Compare on the channel mean when the layouts differ (e.g. mono repair of a stereo clip).
        r, e = r.mean(axis=0, keepdims=True), e.mean(axis=0, keepdims=True)
    return r, e


def si_sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Scale-invariant signal-to-distortion ratio in dB (Le Roux et al., 2019).

    Both signals are made zero-mean; the estimate is projected on the reference and the ratio of
    the projection's energy to the residual's is returned. For ``(channels, n)`` input it is
    computed per channel and the dB values are averaged (channels with a silent reference are
    skipped). Lengths are cut to the shorter signal.

    Parameters
    ----------
    reference, estimate : np.ndarray
        Clean signal and the signal to judge, ``(n,)`` or ``(channels, n)``.

    Returns
    -------
    float
        SI-SDR in dB; capped at 200 dB for an exact (scaled) copy.

    Examples
    --------
    >>> x = np.sin(np.arange(1000) / 7)
    >>> si_sdr(x, 0.5 * x) > 100
    True
    """
    r, e = _pair(reference, estimate)
    r = r - r.mean(axis=-1, keepdims=True)
    e = e - e.mean(axis=-1, keepdims=True)
    values = []
    for rc, ec in zip(r, e, strict=True):
        rr = float(np.dot(rc, rc))
        if rr <= _EPS:
            continue
        alpha = float(np.dot(ec, rc)) / rr
        target = alpha * rc
        resid = ec - target
        num, den = float(np.dot(target, target)), float(np.dot(resid, resid))
        values.append(min(200.0, 10 * np.log10((num + _EPS) / (den + _EPS))))
    return float(np.mean(values)) if values else float("nan")


def active_mask(
    y: np.ndarray, *, sr: int, frame_ms: float = 20.0, threshold_db: float = -35.0
) -> np.ndarray:
    """Per-sample mask of the active part of ``y``: 20 ms frames whose power (all channels) is
    within ``threshold_db`` of the 95th-percentile frame power. Pauses between words fall out."""
    x = _2d(y)
    n = x.shape[-1]
    hop = max(1, int(sr * frame_ms / 1000))
    m = int(np.ceil(n / hop))
    p = np.pad(np.mean(x**2, axis=0), (0, m * hop - n)).reshape(m, hop).mean(axis=1)
    ref = np.percentile(p, 95)
    if ref <= 0:
        return np.zeros(n, dtype=bool)
    frames = p >= ref * 10 ** (threshold_db / 10)
    return np.repeat(frames, hop)[:n]


def si_sdr_improvement(reference: np.ndarray, corrupted: np.ndarray, estimate: np.ndarray) -> float:
    """SI-SDR of ``estimate`` minus SI-SDR of ``corrupted``, both against ``reference`` (dB)."""
    return si_sdr(reference, estimate) - si_sdr(reference, corrupted)


def snr_db(reference: np.ndarray, noisy: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Plain SNR of ``noisy`` against ``reference`` (no rescaling), over ``mask`` if given."""
    r, e = _pair(reference, noisy)
    d = e - r
    if mask is not None:
        r, d = r[..., mask[: r.shape[-1]]], d[..., mask[: r.shape[-1]]]
    return float(10 * np.log10((np.sum(r**2) + _EPS) / (np.sum(d**2) + _EPS)))


def _parabolic(c: np.ndarray, i: int) -> float:
    """Sub-sample position of the peak of ``c`` at index ``i`` (fitted parabola's vertex)."""
    if i <= 0 or i >= len(c) - 1:
        return float(i)
    a, b, d = c[i - 1], c[i], c[i + 1]
    den = a - 2 * b + d
    return float(i) if den == 0 else i + 0.5 * (a - d) / den


def _xcorr(e: np.ndarray, r: np.ndarray, max_lag: float) -> tuple[np.ndarray, int]:
    """Cross-correlation of ``e`` against ``r`` at lags ``-m..m`` (FFT), and ``m``."""
    nfft = int(2 ** np.ceil(np.log2(len(r) + len(e))))
    xc = np.fft.irfft(np.fft.rfft(e, nfft) * np.conj(np.fft.rfft(r, nfft)), nfft)
    m = int(min(max_lag, nfft // 2 - 1))
    # xc[k] is the correlation at lag k (circular indexing for k < 0)
    return (np.concatenate([xc[-m:], xc[: m + 1]]) if m > 0 else xc[:1]), m


_ENV_HZ = 1000.0  # rate of the amplitude envelope that guides the offset search
_ENV_WIN_S = 0.010  # its RMS window
_ENV_DETREND_S = 0.2  # slow level changes removed from it
_REFINE_MS = 20.0  # the waveform peak is searched this close to the envelope's lag


def _envelope(x: np.ndarray, sr: int) -> tuple[np.ndarray, int]:
    hop = max(1, round(sr / _ENV_HZ))
    env = np.sqrt(uniform_filter1d(x * x, size=max(1, round(_ENV_WIN_S * sr)), mode="nearest"))
    env = env[::hop]
    env = env - uniform_filter1d(env, size=max(1, round(_ENV_DETREND_S * sr / hop)), mode="nearest")
    return env, hop


def residual_offset_ms(
    reference: np.ndarray, estimate: np.ndarray, *, sr: int, max_ms: float = 1000.0
) -> float:
    """Delay of ``estimate`` relative to ``reference`` in ms (> 0: estimate is late).

    On the channel means, at lags within ``±max_ms``: the lag that maximises the sum of two
    correlation coefficients, the amplitude envelopes' (10 ms RMS at 1 kHz, slow level changes
    removed) and the waveforms' (its best within 20 ms); then the waveform peak there, refined to
    a fraction of a sample by a parabola. Either alone fails somewhere: periodic syllables make
    envelopes match one period off, where the waveforms do not. The envelope term is what keeps a
    drifting clip honest: 0.2 % of clock drift smears the waveforms' phase over a few seconds
    (4 ms over 2 s is four cycles at 1 kHz), and on repetitive music the waveform correlation
    alone then peaks at a repeat of a phrase (guitar drifting 0.2 %: 662 ms instead of -7 ms),
    while envelopes do not care about phase. Signals of different lengths are fine: each is
    correlated as it is.
    """
    r = _2d(reference).mean(axis=0)
    e = _2d(estimate).mean(axis=0)
    r = r - r.mean()
    e = e - e.mean()
    c, max_lag = _xcorr(e, r, max_ms * sr / 1000.0)
    er, hop = _envelope(r, sr)
    ee, _ = _envelope(e, sr)
    ce, me = _xcorr(ee, er, max_ms * sr / 1000.0 / hop)
    # both as correlation coefficients; the waveform's as its best within _REFINE_MS of each
    # envelope lag (what a small drift leaves of its peak)
    w = max(1, round(_REFINE_MS * sr / 1000.0))
    cw = maximum_filter1d(c, 2 * w + 1, mode="nearest") / (
        np.sqrt(np.sum(r * r) * np.sum(e * e)) + _EPS)
    ce = ce / (np.sqrt(np.sum(er * er) * np.sum(ee * ee)) + _EPS)
    at = np.clip(max_lag + (np.arange(ce.size) - me) * hop, 0, c.size - 1)
    coarse = int(at[int(np.argmax(ce + cw[at]))])
    lo, hi = max(0, coarse - w), min(c.size, coarse + w + 1)
    i = lo + int(np.argmax(c[lo:hi]))
    lag = _parabolic(c, i) - max_lag
    return float(lag * 1000.0 / sr)


def bs1770_channels(x: np.ndarray) -> np.ndarray:
    """The channels BS.1770 weighs: 5.1 (FFmpeg order FL FR FC LFE SL SR) without its LFE, which
    the standard leaves out; pyloudnorm then weighs L R C Ls Rs as the standard does."""
    x = _2d(x)
    return np.delete(x, 3, axis=0) if x.shape[0] == 6 else x


def loudness_lufs(y: np.ndarray, *, sr: int) -> float:
    """Integrated loudness (ITU-R BS.1770-4, gated) in LUFS via pyloudnorm; -inf for silence."""
    data = bs1770_channels(y).T
    if data.shape[0] < int(0.4 * sr):
        raise ValueError(f"need at least 400 ms of audio for loudness, got {data.shape[0]} samples")
    return float(pyloudnorm.Meter(sr).integrated_loudness(data))


def loudness_error_lu(estimate: np.ndarray, *, sr: int, target_lufs: float) -> float:
    """Measured loudness of ``estimate`` minus ``target_lufs`` (LU; > 0 means too loud)."""
    return loudness_lufs(estimate, sr=sr) - float(target_lufs)


def true_peak_dbtp(y: np.ndarray, *, sr: int) -> float:
    """True peak in dBTP: the largest |sample| after 4x oversampling (BS.1770-4 annex 2)."""
    x = _2d(y)
    factor = 4 if sr < 96_000 else 2 if sr < 192_000 else 1
    up = signal.resample_poly(x, factor, 1, axis=-1) if factor > 1 else x
    peak = max(float(np.max(np.abs(up))), float(np.max(np.abs(x))))
    return float(20 * np.log10(peak + _EPS))


def _log_spectrum(
    y: np.ndarray, sr: int, fmin: float, fmax: float, cents_per_bin: float
) -> np.ndarray:
    x = _2d(y).mean(axis=0)
    nperseg = min(len(x), 1 << 15)
    f, p = signal.welch(x, fs=sr, nperseg=nperseg, noverlap=nperseg // 2, window="hann")
    grid = fmin * 2 ** (np.arange(0, 1200 * np.log2(fmax / fmin), cents_per_bin) / 1200)
    # log-compressed magnitude: every partial counts, not just the loudest one.
    mag = np.log1p(np.sqrt(p) / (np.sqrt(p).max() + _EPS) * 1e3)
    return np.interp(grid, f, mag)


def pitch_error_cents(
    reference: np.ndarray,
    estimate: np.ndarray,
    *,
    sr: int,
    fmin_hz: float = 60.0,
    fmax_hz: float = 8000.0,
    max_cents: float = 300.0,
) -> float:
    """Pitch of ``estimate`` relative to ``reference`` in cents (> 0: estimate is higher).

    A transposition by a factor ``k`` shifts the whole spectrum by ``1200·log2(k)`` cents on a
    log-frequency axis, whatever the content (speech with moving f0, chords, drums). So the
    long-term spectra (Welch, 0.68 s frames at 48 kHz) are put on a 1-cent log-frequency grid
    between ``fmin_hz`` and ``fmax_hz``, log-compressed and mean-removed, and the lag of their
    cross-correlation within ``±max_cents`` is the answer, refined by a parabola.
    """
    step = 1.0
    a = _log_spectrum(reference, sr, fmin_hz, fmax_hz, step)
    b = _log_spectrum(estimate, sr, fmin_hz, fmax_hz, step)
    a, b = a - a.mean(), b - b.mean()
    max_lag = int(max_cents / step)
    n = len(a)
    lags = np.arange(-max_lag, max_lag + 1)
    c = np.empty(len(lags))
    for j, k in enumerate(lags):
        if k >= 0:
            c[j] = np.dot(b[k:], a[: n - k]) / (n - k)
        else:
            c[j] = np.dot(b[: n + k], a[-k:]) / (n + k)
    i = int(np.argmax(c))
    return float((_parabolic(c, i) - max_lag) * step)


@dataclass
class GapResidue:
    """Digital-silence runs inside sound: how many, how long in total, and where (seconds)."""

    count: int
    total_ms: float
    runs_s: list[tuple[float, float]] = field(default_factory=list)


def silence_runs(
    y: np.ndarray, *, sr: int, min_ms: float = 10.0, floor: float = 1e-6
) -> list[tuple[int, int]]:
    """Sample spans ``[start, end)`` where every channel stays within ``±floor`` for at least
    ``min_ms`` (``floor`` 1e-6 = -120 dBFS: exact zeros plus the crumbs a filter leaves)."""
    x = _2d(y)
    quiet = np.all(np.abs(x) <= floor, axis=0).astype(np.int8)
    d = np.diff(np.concatenate([[0], quiet, [0]]))
    starts, ends = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
    min_len = max(1, round(min_ms * sr / 1000))
    return [(int(s), int(e)) for s, e in zip(starts, ends, strict=True) if e - s >= min_len]


def gap_residue(y: np.ndarray, *, sr: int, min_ms: float = 10.0, floor: float = 1e-6) -> GapResidue:
    """Digital-silence runs ≥ ``min_ms`` INSIDE sound (runs touching the clip's start or end are
    leading/trailing silence, not dropouts, and are not counted)."""
    n = _2d(y).shape[-1]
    runs = [
        (s, e) for s, e in silence_runs(y, sr=sr, min_ms=min_ms, floor=floor) if s > 0 and e < n
    ]
    return GapResidue(
        count=len(runs),
        total_ms=sum(e - s for s, e in runs) * 1000.0 / sr,
        runs_s=[(s / sr, e / sr) for s, e in runs],
    )


def span_error_db(
    reference: np.ndarray, estimate: np.ndarray, spans_s: list[tuple[float, float]], *, sr: int,
    context_s: float = 1.0,
) -> float:
    """Error energy inside ``spans_s`` relative to the reference's energy there (dB), with the
    estimate first brought to the reference's level.

    0 dB is what leaving a dropout silent scores; below 0 the fill resembles what was lost. The
    level is the least-squares gain of the estimate onto the reference over ``context_s`` around
    each span (the spans left out): a repair that also normalised the loudness (a quiet clip
    brought up 20 dB) is judged on its fill, not on the level change, which the loudness measure
    judges. The gain is read outside the spans, so it cannot flatter a fill.
    """
    r, e = _pair(reference, estimate)
    n = r.shape[-1]
    idx = np.zeros(n, dtype=bool)
    near = np.zeros(n, dtype=bool)
    c = int(context_s * sr)
    for a, b in spans_s:
        i, j = int(a * sr), int(b * sr)
        idx[i:j] = True
        near[max(0, i - c) : min(n, j + c)] = True
    near &= ~idx
    ee = float(np.sum(e[..., near] ** 2))
    g = float(np.sum(e[..., near] * r[..., near])) / ee if ee > _EPS else 1.0
    g = g if g > 0 else 1.0
    err = np.sum((g * e[..., idx] - r[..., idx]) ** 2)
    ref = np.sum(r[..., idx] ** 2)
    return float(10 * np.log10((err + _EPS) / (ref + _EPS)))
