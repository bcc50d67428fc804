"""Servers the LLM tests talk to: a scripted stub for faults, and the real embedded llama.cpp."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from tests.agent.openai_stub import Scripted


@pytest.fixture
def scripted() -> Iterator[Scripted]:
    srv = Scripted()
    t = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="session")
def llama_server() -> Iterator[object]:
    """SmolLM2-135M-Instruct on llama.cpp's OpenAI server (127.0.0.1, one thread), stopped after
    the session."""
    from avagent.agent.llm_local import LocalLlamaServer, llama_server_available, smollm2_path
    from avagent.errors import BackendError

    if not llama_server_available():
        pytest.skip("llama-cpp-python[server] is not installed (make setup builds it)")
    try:
        smollm2_path()
    except BackendError as exc:
        pytest.skip(str(exc))
    server = LocalLlamaServer(n_threads=1)
    server.start()
    yield server
    server.stop()
    assert not server.running
