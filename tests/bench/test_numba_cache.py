"""librosa's numba kernels are compiled once, alone, before worker pools (numba/numba#10128)."""

from __future__ import annotations

import signal

import pytest

from avagent.bench import suite


@pytest.fixture
def fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(suite, "_warmed", False)


def test_warm_compiles_onset_detect_in_a_child(fresh: None) -> None:
    suite.warm_numba_cache()
    assert suite._warmed
    suite.warm_numba_cache()  # a second call starts no process


def test_a_child_that_crashes_clears_the_cache_and_retries(
        fresh: None, tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A broken cache pair is a race we cannot stage reliably: a child that dies on SIGSEGV the
    # first time stands for it.
    marker = tmp_path / "crashed"
    monkeypatch.setattr(suite, "_WARM", (
        f"import os, signal, pathlib; m = pathlib.Path({str(marker)!r})\n"
        "if not m.exists(): m.touch(); os.kill(os.getpid(), signal.SIGSEGV)"))
    cleared = []
    monkeypatch.setattr(suite, "_clear_librosa_cache", lambda: cleared.append(1) or 0)
    suite.warm_numba_cache()
    assert marker.exists() and cleared == [1] and suite._warmed


def test_a_crash_that_survives_a_clean_cache_is_an_error(
        fresh: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(suite, "_WARM", f"import os; os.kill(os.getpid(), {int(signal.SIGSEGV)})")
    monkeypatch.setattr(suite, "_clear_librosa_cache", lambda: 0)
    with pytest.raises(RuntimeError, match="numba"):
        suite.warm_numba_cache()
    assert not suite._warmed
