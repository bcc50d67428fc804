"""Real service processes on 127.0.0.1 for the service benchmarks: an API (``avagent serve
--no-worker``), ``avagent worker`` processes and a Redis server, all under one temporary folder,
each stopped with bounded waits. Used by :mod:`avagent.bench.service_reliability` and
:mod:`avagent.bench.service_load`; nothing here is mocked.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return True
        time.sleep(0.1)
    return False


def stop(proc: subprocess.Popen[Any], grace_s: float = 10.0, sig: int = signal.SIGTERM) -> None:
    """``sig`` to the process group this module started, then SIGKILL after ``grace_s``."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace_s)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (from /proc)."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            out.append(int(d.name))
    return sorted(out)


def rss_mb(pid: int) -> float:
    """Resident memory of one process, MB (VmRSS)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


@dataclass
class Proc:
    name: str
    proc: subprocess.Popen[Any]
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def tree_rss_mb(self) -> float:
        return rss_mb(self.proc.pid) + sum(rss_mb(c) for c in children(self.proc.pid))


@dataclass
class Stack:
    """One service under ``root``: Settings ``values`` shared by the API and every worker."""

    root: Path
    values: dict[str, Any] = field(default_factory=dict)
    api: Proc | None = None
    api_port: int = 0
    workers: list[Proc] = field(default_factory=list)
    redis: Proc | None = None
    redis_port: int = 0

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.values = {"cache_dir": self.root / "cache", "environment": "test", **self.values}

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AVAGENT_")}
        env.update({f"AVAGENT_{k.upper()}": str(v) for k, v in self.values.items()})
        if os.environ.get("AVAGENT_MEDIA_DIR"):
            env["AVAGENT_MEDIA_DIR"] = os.environ["AVAGENT_MEDIA_DIR"]
        env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
        return env

    def _spawn(self, name: str, args: list[str], extra_env: dict[str, str] | None = None) -> Proc:
        log = self.root / f"{name}.log"
        with open(log, "ab") as out:
            proc = subprocess.Popen(args, env={**self.env(), **(extra_env or {})}, cwd=REPO, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        return Proc(name, proc, log)

    # -- redis -----------------------------------------------------------------------------------
    def start_redis(self) -> str:
        """Redis with an fsync'ed append-only file, so a restart keeps queued messages."""
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self.redis_port = self.redis_port or free_port()
        d = self.root / "redis"
        d.mkdir(exist_ok=True)
        self.redis = self._spawn("redis", [
            exe, "--port", str(self.redis_port), "--bind", "127.0.0.1", "--dir", str(d),
            "--appendonly", "yes", "--appendfsync", "always", "--save", ""])
        if not wait_port(self.redis_port, 15):
            raise RuntimeError(f"redis did not start:\n{self.redis.text()[-2000:]}")
        url = f"redis://127.0.0.1:{self.redis_port}/0"
        self.values["broker_url"] = url
        return url

    def stop_redis(self) -> None:
        if self.redis is not None:
            stop(self.redis.proc, grace_s=10)
            self.redis = None

    # -- API -------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def start_api(self) -> None:
        self.api_port = self.api_port or free_port()
        self.api = self._spawn("api", [sys.executable, "-m", "avagent.service.cli", "serve", "--no-worker",
                                       "--port", str(self.api_port)])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return
            if self.api.proc.poll() is not None:
                break
            time.sleep(0.2)
        raise RuntimeError(f"API did not start:\n{self.api.text()[-3000:]}")

    def stop_api(self) -> None:
        if self.api is not None:
            stop(self.api.proc)
            self.api = None

    # -- workers ---------------------------------------------------------------------------------
    def start_worker(self, name: str = "", concurrency: int = 1, queues: str = "cpu,gpu",
                     ready_timeout_s: float = 90.0, threads: int | None = None) -> Proc:
        """``threads``: math-library threads per process (OMP/OpenBLAS/MKL); None: their default
        (one per core, which oversubscribes the cores once several workers run)."""
        name = name or f"worker{len(self.workers) + 1}"
        extra = {v: str(threads) for v in THREAD_VARS} if threads else None
        w = self._spawn(name, [sys.executable, "-m", "avagent.service.cli", "worker", "--concurrency",
                               str(concurrency), "--queues", queues, "--loglevel", "INFO"], extra)
        deadline = time.monotonic() + ready_timeout_s
        while " ready." not in w.text():
            if w.proc.poll() is not None or time.monotonic() > deadline:
                stop(w.proc)
                raise RuntimeError(f"{name} did not become ready:\n{w.text()[-3000:]}")
            time.sleep(0.1)
        self.workers.append(w)
        return w

    def stop_worker(self, w: Proc) -> None:
        stop(w.proc, grace_s=30)
        with contextlib.suppress(ValueError):
            self.workers.remove(w)

    def worker_logs(self) -> str:
        return "".join(p.read_text(errors="replace") for p in sorted(self.root.glob("worker*.log")))

    def close(self) -> None:
        for w in list(self.workers):
            self.stop_worker(w)
        self.stop_api()
        self.stop_redis()

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def executions(logs: str, job_id: str) -> dict[str, int]:
    """How often worker logs say a job started running and succeeded."""
    lines = [ln for ln in logs.splitlines() if f"job={job_id} " in ln]
    return {"runs": sum(bool(re.search(r": running ", ln)) for ln in lines),
            "succeeded": sum(": succeeded: " in ln for ln in lines),
            "skipped": sum("not claimed" in ln for ln in lines)}


def submit(client: httpx.Client, path: Path, *, headers: dict[str, str] | None = None,
           name: str | None = None, **fields: Any) -> httpx.Response:
    with open(path, "rb") as f:
        return client.post("/v1/jobs", headers=headers or {},
                           files={"file": (name or path.name, f, "application/octet-stream")},
                           data={k: str(v) for k, v in fields.items()})


def wait_jobs(client: httpx.Client, ids: list[str], timeout_s: float,
              headers: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """Poll until every job is finished (or the time is up); returns the last seen records.
    Many jobs are read through the list endpoint once a second, so the polling itself does not
    take the CPU the workers are being measured on."""
    seen: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout_s
    pending = set(ids)
    while pending and time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if len(pending) > 5:
                offset = 0
                while True:
                    page = client.get("/v1/jobs", params={"limit": 200, "offset": offset},
                                      headers=headers or {}).json()
                    for job in page["items"]:
                        if job["id"] in pending or job["id"] in seen:
                            seen[job["id"]] = job
                    offset += len(page["items"])
                    if not page["items"] or offset >= page["total"]:
                        break
            else:
                for jid in list(pending):
                    r = client.get(f"/v1/jobs/{jid}", headers=headers or {})
                    if r.status_code == 200:
                        seen[jid] = r.json()
        pending = {j for j in pending if seen.get(j, {}).get("state") in (None, "queued", "running")}
        if pending:
            time.sleep(1.0 if len(pending) > 5 else 0.3)
    return seen


def replace_section(doc: Path, name: str, body: str) -> None:
    """Put ``body`` between ``<!-- name:begin -->`` and ``<!-- name:end -->`` in ``doc``
    (appended when the markers are missing)."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    text = doc.read_text() if doc.exists() else ""
    block = f"{begin}\n{body.rstrip()}\n{end}"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text)
