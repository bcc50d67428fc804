"""`avagent backends`: each role's backend, whether it answers, and the fallback in force."""

from __future__ import annotations

import json
import socket
import threading

import pytest

from avagent.service.backend_status import describe_backends
from avagent.service.backends import backend
from avagent.service.cli import main
from avagent.service.settings import Settings, get_settings
from tests.agent.openai_stub import Scripted


@pytest.fixture
def models_server():
    srv = Scripted()
    srv.replies = [(200, {"object": "list", "data": [{"id": "avagent-planner",
                                                      "owned_by": "vllm"}]}, 0.0)] * 4
    t = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _rows(monkeypatch, capsys, **env) -> list[dict]:
    for k, v in env.items():
        monkeypatch.setenv(f"AVAGENT_{k.upper()}", v)
    get_settings.cache_clear()
    try:
        assert main(["backends", "--json"]) == 0
    finally:
        get_settings.cache_clear()
    return {r["role"]: r for r in json.loads(capsys.readouterr().out)}


def test_default_roles_are_in_process(monkeypatch, capsys):
    rows = _rows(monkeypatch, capsys, planner="rules")
    assert set(rows) == {"planner", "audio captioner", "video captioner", "scorer"}
    assert rows["planner"]["backend"] == "rules" and rows["planner"]["reachable"] is True


def test_llm_planner_server_up_and_down(monkeypatch, capsys, models_server):
    up = _rows(monkeypatch, capsys, planner="llm", llm_base_url=models_server.url,
               planner_model="avagent-planner")["planner"]
    assert up["reachable"] is True and "avagent-planner" in up["detail"]
    assert up["fallback"].startswith("rules (on every failed or unsafe plan)")
    wrong = _rows(monkeypatch, capsys, planner="llm", llm_base_url=models_server.url,
                  planner_model="other")["planner"]
    assert wrong["reachable"] is False and "'other' not served" in wrong["detail"]
    port = _closed_port()
    down = _rows(monkeypatch, capsys, planner="llm",
                 llm_base_url=f"http://127.0.0.1:{port}/v1")["planner"]
    assert down["reachable"] is False and f"127.0.0.1:{port}" in down["detail"]
    assert down["fallback"] == "rules (server down)"


def test_no_probe_and_planner_kwargs(tmp_path):
    s = Settings(planner="llm", llm_base_url="http://127.0.0.1:1/v1", planner_model="p",
                 planner_lora=tmp_path / "a.gguf", llm_timeout_s=7)
    row = describe_backends(s, probe=False)[0]
    assert row["reachable"] is None
    kw = backend(s, "planner").kwargs
    assert kw["base_url"] == "http://127.0.0.1:1/v1" and kw["model"] == "p"
    assert kw["timeout_s"] == 7 and kw["lora_path"] == tmp_path / "a.gguf"
    assert backend(s, "planner", "rules").kwargs == {}


def test_unknown_planner_is_one_line(capsys):
    assert main(["backends", "--planner", "gpt"]) == 2
    assert "valid planners" in capsys.readouterr().err
