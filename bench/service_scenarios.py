"""Service reliability scenarios on real processes: kill a worker mid-job, restart the API and the
broker with jobs queued, and bad input (see :mod:`avagent.bench.service_reliability`)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from avagent.bench.service_stack import (
    Stack,
    children,
    executions,
    submit,
    wait_jobs,
)

logger = logging.getLogger("avagent.bench.service_reliability")


FIVE_XX = re.compile(r'" 5\d\d ')  # uvicorn access log: "GET /path HTTP/1.1" 500 ...


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def wait_state(client: httpx.Client, jid: str, want: str, timeout_s: float,
                min_stage: str | None = None) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    job: dict[str, Any] = {}
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{jid}").json()
        stage = (job.get("progress") or {}).get("stage")
        if job["state"] == want and (min_stage is None or stage not in (None, "queued", "decode")):
            return job
        if job["state"] in ("succeeded", "failed", "cancelled") and want == "running":
            raise RuntimeError(f"job {jid} finished before it could be killed: {job['state']}")
        time.sleep(0.05)
    raise RuntimeError(f"job {jid} not {want} in {timeout_s} s: {job}")


def outputs_intact(client: httpx.Client, job: dict[str, Any], store_root: Path) -> bool:
    """Downloaded outputs decode and match the checksums the worker recorded."""
    from avagent.service.jobs import JobStore
    from avagent.service.settings import Settings

    rec = JobStore.from_settings(Settings(cache_dir=store_root)).get_job(job["id"])
    if rec is None:
        return False
    ok = True
    for kind, name in (("wav", "audio"), ("video", "video")):
        if kind not in (rec.checksums or {}):
            continue
        r = client.get(f"/v1/jobs/{job['id']}/{name}")
        ok &= r.status_code == 200 and sha256_hex(r.content) == rec.checksums[kind]
    r = client.get(f"/v1/jobs/{job['id']}/report")
    ok &= r.status_code == 200 and r.json().get("job_id") == job["id"]
    return bool(ok)


# -- 1. kill a worker mid-job ------------------------------------------------------------------
def kill_scenario(root: Path, video: Path, broker: str, target: str) -> dict[str, Any]:
    """``target``: 'child' (the pool process running the job) or 'worker' (its whole group)."""
    values: dict[str, Any] = {"job_stale_s": 4}
    if broker == "redis":
        # Redis hands an unacked message out again after its visibility timeout, which the
        # service sets to 2 x hard limit + 60 s; a short hard limit keeps the wait observable.
        values |= {"task_soft_time_limit_s": 10, "task_time_limit_s": 12}
    with Stack(root, values) as stack:
        if broker == "redis":
            stack.start_redis()
        stack.start_api()
        w1 = stack.start_worker("worker1")
        client = httpx.Client(base_url=stack.url, timeout=30)
        jid = submit(client, video, max_rounds=3).json()["id"]
        wait_state(client, jid, "running", 60, min_stage="perceive")
        t_kill = time.monotonic()
        unacked_after_kill = None
        if target == "child":
            kids = children(w1.proc.pid)
            os.kill(kids[0], signal.SIGKILL)  # the parent survives and sees the child die
        else:
            os.killpg(w1.proc.pid, signal.SIGKILL)  # no warm shutdown, no ack, no goodbye
            w1.proc.wait(timeout=10)
            stack.workers.remove(w1)
            if broker == "redis":
                import redis

                unacked_after_kill = redis.Redis.from_url(stack.values["broker_url"]).hlen("unacked")
            stack.start_worker("worker2")
        job = wait_jobs(client, [jid], 120)[jid]
        t_done = time.monotonic() - t_kill
        logs = stack.worker_logs()
        ex = executions(logs, jid)
        result = {
            "broker": broker, "killed": target, "state": job["state"], "attempts": job["attempts"],
            "recovered_s": round(t_done, 1), "runs": ex["runs"], "succeeded_lines": ex["succeeded"],
            "outputs_intact": job["state"] == "succeeded" and outputs_intact(client, job, stack.values["cache_dir"]),
            "reaper_requeued": f"job {jid}: worker" in logs and "requeued" in logs,
            "redundant_deliveries_skipped": ex["skipped"],
            "lost_reported": "WorkerLostError" in logs or "Process 'ForkPoolWorker" in logs,
        }
        if broker == "redis" and target == "worker":
            # Wait for Redis itself to hand the lost message out again (visibility timeout):
            # it must find the job finished and do nothing.
            import redis

            r = redis.Redis.from_url(stack.values["broker_url"])
            vis = int(values["task_time_limit_s"] * 2 + 60)
            deadline = t_kill + vis + 30
            while time.monotonic() < deadline and executions(stack.worker_logs(), jid)["skipped"] == 0:
                time.sleep(1)
            ex2 = executions(stack.worker_logs(), jid)
            result |= {"unacked_after_kill": unacked_after_kill, "visibility_timeout_s": vis,
                       "broker_redelivered_noop": ex2["skipped"] >= 1 and ex2["succeeded"] == 1,
                       "unacked_left": r.hlen("unacked")}
        client.close()
        return result


# -- 2. restart API and broker while jobs are queued ---------------------------------------------
def restart_scenario(root: Path, clips: list[Path], broker: str, n_jobs: int) -> dict[str, Any]:
    with Stack(root, {"job_stale_s": 10}) as stack:
        if broker == "redis":
            stack.start_redis()
        stack.start_api()
        client = httpx.Client(base_url=stack.url, timeout=30)
        ids = []
        for i in range(n_jobs):  # no worker yet: everything waits in the queue
            r = submit(client, clips[i % len(clips)], name=f"clip{i}.wav", max_rounds=1,
                       outputs="wav,report")
            assert r.status_code == 202, r.text
            ids.append(r.json()["id"])
        queued_before = queue_len(stack)
        stack.stop_api()
        if broker == "redis":
            stack.stop_redis()
            stack.start_redis()  # same port and folder: the append-only file comes back
        stack.start_api()
        queued_after = queue_len(stack)
        client = httpx.Client(base_url=stack.url, timeout=30)
        stack.start_worker("worker1")
        redis_restarts_while_running = 0
        if broker == "redis":  # and once more while the worker is busy with them
            wait_jobs(client, ids[: max(1, n_jobs // 3)], 120)
            stack.stop_redis()
            time.sleep(1.0)
            stack.start_redis()
            redis_restarts_while_running = 1
        done = wait_jobs(client, ids, 300)
        logs = stack.worker_logs()
        listed = client.get("/v1/jobs", params={"limit": 200}).json()
        states = [done.get(j, {}).get("state") for j in ids]
        ex = [executions(logs, j) for j in ids]
        client.close()
        return {
            "broker": broker, "jobs": n_jobs, "queued_before_restart": queued_before,
            "queued_after_restart": queued_after,
            "broker_restarts_while_running": redis_restarts_while_running,
            "succeeded": states.count("succeeded"), "lost": n_jobs - states.count("succeeded"),
            "ran_twice": sum(e["succeeded"] > 1 for e in ex),
            "redundant_deliveries_skipped": sum(e["skipped"] for e in ex),
            "jobs_listed": listed["total"],
        }


def queue_len(stack: Stack) -> int:
    from avagent.service.settings import Settings

    s = Settings(**stack.values)
    if stack.values.get("broker_url", "").startswith("redis"):
        import redis

        return int(redis.Redis.from_url(stack.values["broker_url"]).llen(s.cpu_queue))
    folder = Path(stack.values["cache_dir"]) / "broker" / "queue"
    return sum(1 for p in folder.glob("*.msg")) if folder.exists() else 0


# -- 3. bad input --------------------------------------------------------------------------------
def bad_files(folder: Path, video: Path) -> dict[str, Path]:
    import av

    folder.mkdir(parents=True, exist_ok=True)
    files = {"empty file": folder / "empty.mp4"}
    files["empty file"].write_bytes(b"")
    data = video.read_bytes()
    files["truncated mp4"] = folder / "truncated.mp4"
    files["truncated mp4"].write_bytes(data[: len(data) // 3])
    png = bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")
    files["PNG renamed .mp4"] = folder / "image.mp4"
    files["PNG renamed .mp4"].write_bytes(png * 8)
    zero = folder / "zero.mp4"
    c = av.open(str(zero), "w")
    s = c.add_stream("mpeg4", rate=10)
    s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
    c.add_stream("aac", rate=48000)
    c.start_encoding()
    c.close()
    files["0-second video"] = zero
    silent = folder / "noaudio.mp4"
    with av.open(str(silent), "w") as c:
        s = c.add_stream("mpeg4", rate=10)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        for i in range(10):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 20, np.uint8), format="rgb24")
            for pkt in s.encode(frame):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)
    files["no audio track"] = silent
    return files


def bad_input_scenario(root: Path, video: Path) -> list[dict[str, Any]]:
    from avagent.service.auth import create_key
    from avagent.service.jobs import JobStore
    from avagent.service.settings import Settings

    rows: list[dict[str, Any]] = []
    with Stack(root, {"max_upload_mb": 2, "job_stale_s": 10}) as stack:
        store = JobStore.from_settings(Settings(**stack.values))
        alice, _ = create_key(store, "alice")
        bob, _ = create_key(store, "bob")
        stack.start_api()
        stack.start_worker("worker1")
        A = {"Authorization": f"Bearer {alice}"}
        B = {"X-API-Key": bob}
        client = httpx.Client(base_url=stack.url, timeout=60)

        def row(case: str, r: httpx.Response, expect: str) -> None:
            try:
                detail = r.json().get("detail")
            except ValueError:
                detail = r.text[:200]
            rows.append({"case": case, "status": r.status_code, "expected": expect,
                         "detail": detail if isinstance(detail, str) else json.dumps(detail)[:200]})

        for case, path in bad_files(root / "bad", video).items():
            row(case, submit(client, path, headers=A), "4xx")
        big = root / "bad" / "big.mp4"
        big.write_bytes(video.read_bytes() + os.urandom(3_000_000))  # a real mp4 head, 3.6 MB
        row("oversized upload (limit 2 MB)", submit(client, big, headers=A), "413")
        r = client.post("/v1/jobs", headers={**A, "Content-Type": "video/mp4"},
                        content=iter([b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 1_000_000] * 3))
        row("oversized streamed body, no Content-Length", r, "413")
        row("no key", client.get("/v1/jobs"), "401")
        row("wrong key", client.get("/v1/jobs", headers={"Authorization": "Bearer avk_0000_nope"}), "401")
        row("malformed Authorization", client.get("/v1/jobs", headers={"Authorization": "Basic eDp5"}), "401")
        good = submit(client, video, headers=A, max_rounds=1)
        jid = good.json()["id"]
        row("someone else's job id (GET)", client.get(f"/v1/jobs/{jid}", headers=B), "404")
        row("someone else's job id (DELETE)", client.delete(f"/v1/jobs/{jid}", headers=B), "404")
        row("someone else's job id (audio)", client.get(f"/v1/jobs/{jid}/audio", headers=B), "404")
        row("someone else's job id (input)", client.get(f"/v1/jobs/{jid}/input", headers=B), "404")
        row("unknown job id", client.get("/v1/jobs/0123456789abcdef", headers=A), "404")
        row("'../' in a job source", client.post("/v1/jobs", headers=A, json={
            "source": f"{stack.values['cache_dir']}/storage/../../../etc/passwd"}), "422")
        row("source outside allowed prefixes", client.post("/v1/jobs", headers=A, json={"source": "/etc/passwd"}), "422")
        row("'..' in a batch pattern", client.post("/v1/batches", headers=A, json={
            "source": f"{stack.values['cache_dir']}/storage/in/", "dest": f"{stack.values['cache_dir']}/storage/out/",
            "pattern": "../*"}), "422")
        row("'..' in a batch dest", client.post("/v1/batches", headers=A, json={
            "source": f"{stack.values['cache_dir']}/storage/in/", "dest": f"{stack.values['cache_dir']}/storage/../x/"}), "422")
        r = submit(client, video, headers=A, name="../../../etc/evil.mp4", max_rounds=1)
        stored = r.json().get("source", "") if r.status_code == 202 else ""
        rows.append({"case": "'../' in an upload's file name", "status": r.status_code, "expected": "2xx, name sanitised",
                     "detail": f"stored as {Path(stored).name!r} under uploads/<job>/" if stored else r.text[:200]})
        row("unknown planner", client.post("/v1/jobs", headers=A, files={"file": ("a.mp4", video.read_bytes())},
                                           data={"planner": "nope"}), "422")
        row("max_rounds=99", client.post("/v1/jobs", headers=A, files={"file": ("a.mp4", video.read_bytes())},
                                         data={"max_rounds": "99"}), "422")
        row("text/plain body", client.post("/v1/jobs", headers={**A, "Content-Type": "text/plain"}, content=b"hi"), "415")

        # Object names a batch finds in storage that try to climb out: the listing is filtered
        # by safe_key, so such an object becomes a failed job with a reason.
        src = Path(stack.values["cache_dir"]) / "storage" / "batch-in"
        (src / "sub").mkdir(parents=True, exist_ok=True)
        (src / "sub" / "ok.mp4").write_bytes(video.read_bytes())
        (src / "sub" / "broken.mp4").write_bytes(video.read_bytes()[:5000])
        b = client.post("/v1/batches", headers=A, json={
            "source": str(src), "dest": str(Path(stack.values["cache_dir"]) / "storage" / "batch-out"),
            "pattern": "*.mp4", "max_rounds": 1})
        bid = b.json()["id"]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            bs = client.get(f"/v1/batches/{bid}", headers=A).json()
            if bs["state"] not in ("expanding", "running"):
                break
            time.sleep(0.5)
        bjobs = client.get("/v1/jobs", headers=A, params={"batch_id": bid}).json()["items"]
        broken = [j for j in bjobs if j["input_name"] == "broken.mp4"]
        rows.append({"case": "truncated object in a batch", "status": 202, "expected": "failed job with a reason",
                     "detail": f"batch {bs['state']}; job {broken[0]['state'] if broken else '?'}: "
                               f"{(broken[0]['error'] or '')[:150] if broken else ''}"})
        wait_jobs(client, [jid], 60, headers=A)
        logs = stack.api.text() if stack.api else ""
        n5xx = len(FIVE_XX.findall(logs))
        rows.append({"case": "API log", "status": 0, "expected": "no tracebacks",
                     "detail": f"{logs.count('Traceback')} tracebacks, {n5xx} 5xx answers logged"})
        client.close()
    return rows


def api_log_text(stack: Stack) -> str:
    return stack.api.text() if stack.api else ""


