"""`avagent repair --planner llm` end to end, as the README user runs it: no server configured,
the embedded SmolLM2 is started on llama.cpp and stopped when the command exits."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from avagent.agent.llm_local import llama_server_available
from avagent.service import media

pytestmark = pytest.mark.slow
needs_llama = pytest.mark.skipif(
    not llama_server_available(),
    reason="llama-cpp-python[server] is not installed (make setup builds it)")


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AVAGENT_")}
    env["AVAGENT_CACHE_DIR"] = str(tmp_path / "cache")
    return env


@needs_llama
def test_repair_with_the_embedded_llm_planner(tmp_path, video_path):
    y, sr = media.load_audio(video_path)
    t = np.arange(y.shape[-1]) / sr
    clip = tmp_path / "hum.mp4"
    media.remux(video_path, (y + 0.05 * np.sin(2 * np.pi * 50 * t)).astype(np.float32), sr, clip)
    out = subprocess.run(
        [sys.executable, "-m", "avagent.service.cli", "-v", "repair", str(clip), "-o",
         str(tmp_path / "out"), "--planner", "llm", "--max-rounds", "2", "--quiet"],
        capture_output=True, text=True, timeout=600, env=_env(tmp_path),
    )
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads((tmp_path / "out" / "hum.report.json").read_text())
    assert report["options"]["planner"] == "llm"
    assert report["rounds"]
    for r in report["rounds"]:
        assert r["planner"] in {"llm", "rules"}
        # Every fallback says why; an LLM plan has none.
        assert (r["planner"] == "rules") == bool(r["fallback"]), r
    # The managed server was started on a local port and is gone after the command.
    started = re.search(r"starting the embedded LLM: .* --port (\d+)", out.stderr)
    assert started, out.stderr[-2000:]
    with socket.socket() as s, pytest.raises(OSError):
        s.settimeout(1)
        s.connect(("127.0.0.1", int(started.group(1))))


def test_missing_adapter_is_one_line_and_exit_2(tmp_path, video_path):
    out = subprocess.run(
        [sys.executable, "-m", "avagent.service.cli", "repair", str(video_path), "-o",
         str(tmp_path / "out"), "--planner", "llm", "--planner-lora", str(tmp_path / "no.gguf")],
        capture_output=True, text=True, timeout=300, env=_env(tmp_path),
    )
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "no.gguf" in out.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
