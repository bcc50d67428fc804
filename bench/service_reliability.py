"""Reliability of the service, measured on real processes on 127.0.0.1 (no mocks):

1. ``kill``: SIGKILL a worker in the middle of a job -- only its pool child (the Celery parent sees
   the loss: ``reject_on_worker_lost``) or the whole worker -- with the embedded broker and with
   Redis. The job must complete exactly once, with outputs whose checksums match the record.
2. ``restart``: restart the API and the broker while jobs wait in the queue (and Redis again while
   they run): none lost, none run twice.
3. ``bad``: bad input gets a clear 4xx or a failed job with a reason, never a 5xx.
4. ``fuzz``: schemathesis against the live OpenAPI, checking ``not_a_server_error``.

    python -m avagent.bench.service_reliability                  # everything, writes docs/service.md
    python -m avagent.bench.service_reliability --only kill,bad  # a part

Numbers go between the ``reliability-<part>`` markers of ``docs/service.md`` and to ``--json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from avagent.bench import media as bench_media
from avagent.bench.service_stack import (
    REPO,
    Stack,
    children,
    executions,
    replace_section,
    submit,
    wait_jobs,
)

logger = logging.getLogger("avagent.bench.service_reliability")

PARTS = ("kill", "restart", "bad", "fuzz")
FIVE_XX = re.compile(r'" 5\d\d ')  # uvicorn access log: "GET /path HTTP/1.1" 500 ...


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _wait_state(client: httpx.Client, jid: str, want: str, timeout_s: float,
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


def _outputs_intact(client: httpx.Client, job: dict[str, Any], store_root: Path) -> bool:
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
        ok &= r.status_code == 200 and _sha(r.content) == rec.checksums[kind]
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
        _wait_state(client, jid, "running", 60, min_stage="perceive")
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
            "outputs_intact": job["state"] == "succeeded" and _outputs_intact(client, job, stack.values["cache_dir"]),
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
        queued_before = _queue_len(stack)
        stack.stop_api()
        if broker == "redis":
            stack.stop_redis()
            stack.start_redis()  # same port and folder: the append-only file comes back
        stack.start_api()
        queued_after = _queue_len(stack)
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


def _queue_len(stack: Stack) -> int:
    from avagent.service.settings import Settings

    s = Settings(**stack.values)
    if stack.values.get("broker_url", "").startswith("redis"):
        import redis

        return int(redis.Redis.from_url(stack.values["broker_url"]).llen(s.cpu_queue))
    folder = Path(stack.values["cache_dir"]) / "broker" / "queue"
    return sum(1 for p in folder.glob("*.msg")) if folder.exists() else 0


# -- 3. bad input --------------------------------------------------------------------------------
def _bad_files(folder: Path, video: Path) -> dict[str, Path]:
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

        for case, path in _bad_files(root / "bad", video).items():
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


# -- 4. schemathesis -------------------------------------------------------------------------------
def _seed_real_ids(stack: Stack, key: str, video: Path) -> dict[str, list[str]]:
    """Finished jobs and a batch of the fuzz key, so the operations on an id also run on ids that
    exist (schemathesis' generated uploads are not media, so it creates none itself)."""
    A = {"Authorization": f"Bearer {key}"}
    w = stack.start_worker("worker1")
    client = httpx.Client(base_url=stack.url, timeout=60)
    jobs = [submit(client, video, headers=A, max_rounds=1).json()["id"],
            submit(client, video, headers=A, name="audio-only.mp4", max_rounds=1,
                   outputs="wav,report").json()["id"]]
    src = Path(stack.values["cache_dir"]) / "storage" / "fuzz-in"
    src.mkdir(parents=True, exist_ok=True)
    (src / "a.mp4").write_bytes(video.read_bytes())
    batch = client.post("/v1/batches", headers=A, json={
        "source": str(src), "dest": str(Path(stack.values["cache_dir"]) / "storage" / "fuzz-out"),
        "pattern": "*.mp4", "max_rounds": 1}).json()["id"]
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if client.get(f"/v1/batches/{batch}", headers=A).json()["state"] not in ("expanding", "running"):
            break
        time.sleep(0.5)
    jobs += [j["id"] for j in client.get("/v1/jobs", headers=A, params={"batch_id": batch}).json()["items"]]
    done = wait_jobs(client, jobs, 180, headers=A)
    # And one that stays queued: no worker from here on.
    stack.stop_worker(w)
    jobs.append(submit(client, video, headers=A, name="queued.mp4", max_rounds=1).json()["id"])
    client.close()
    return {"jobs": jobs, "batches": [batch],
            "states": [done.get(j, {}).get("state", "queued") for j in jobs]}


def fuzz_scenario(root: Path, max_examples: int, max_time_s: int, video: Path) -> dict[str, Any]:
    from avagent.service.auth import create_key
    from avagent.service.jobs import JobStore
    from avagent.service.settings import Settings

    exe = Path(sys.executable).with_name("schemathesis")
    if not exe.exists():
        return {"skipped": "schemathesis is not installed (pip install schemathesis)"}
    with Stack(root, {"rate_limit_per_minute": 100000, "max_concurrent_jobs": 1000,
                      "max_upload_mb": 5}) as stack:
        key, _ = create_key(JobStore.from_settings(Settings(**stack.values)), "fuzz")
        stack.start_api()
        seeded = _seed_real_ids(stack, key, video)
        config = root / "schemathesis.toml"
        # Path ids come from these real ones 70 % of the time, generated ones otherwise.
        config.write_text(
            f"[dictionaries.jobs]\nvalues = {json.dumps(seeded['jobs'])}\n"
            f"[dictionaries.batches]\nvalues = {json.dumps(seeded['batches'])}\n"
            "[parameters]\n"
            '"path.job_id" = { dictionary = "jobs", probability = 0.7 }\n'
            '"path.batch_id" = { dictionary = "batches", probability = 0.7 }\n')
        report = root / "fuzz.json"
        cmd = [str(exe), "--config-file", str(config), "run", stack.url + "/openapi.json",
               "--checks", "not_a_server_error",
               "--max-examples", str(max_examples), "--max-time", str(max_time_s), "--workers", "1",
               "--seed", "1", "-H", f"Authorization: Bearer {key}", "--request-timeout", "30",
               "--report", "ndjson", "--report-ndjson-path", str(report), "--no-color",
               "--suppress-health-check", "all"]
        t0 = time.monotonic()
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=max_time_s + 120,
                              cwd=REPO)
        out = proc.stdout + proc.stderr
        (root / "fuzz.log").write_text(out)
        summary = out[out.rfind("SUMMARY"):] if "SUMMARY" in out else out[-3000:]
        # schemathesis 4 summary: "Tested: 17" and, under "Test cases:", "12521 generated,
        # 12521 passed" or "11182 generated, 3 found 3 unique failures", then "N errored",
        # "N skipped" when there are any.
        n_ops = re.search(r"Tested: (\d+)", out)
        cases = out[out.rfind("Test cases:"):].split("\n\n", 1)[0] if "Test cases:" in out else ""

        def count(pattern: str) -> int | None:
            m = re.search(pattern, cases)
            return int(m.group(1)) if m else (0 if cases else None)

        failed = re.search(r"(\d+) found (\d+) unique failure", cases)
        none_failed = 0 if cases else None
        # "_____ GET /v1/jobs _____" headers under FAILURES, each followed by its curl line.
        failing = re.findall(r"_{3,} ((?:GET|POST|DELETE|PUT|PATCH) \S+|Stateful tests) _{3,}"
                             r".*?Reproduce with:\s+(curl [^\n]+)", out, flags=re.S)
        api_errors = re.findall(r"^(\w[\w.]*(?:Error|Exception)): (.{0,90})", api_log_text(stack),
                                flags=re.M)
        api_log = api_log_text(stack)
        return {
            "exit_code": proc.returncode, "seconds": round(time.monotonic() - t0, 1),
            "operations": int(n_ops.group(1)) if n_ops else None,
            "cases_generated": count(r"(\d+) generated"),
            "cases_failed": int(failed.group(1)) if failed else none_failed,
            "unique_failures": int(failed.group(2)) if failed else none_failed,
            "cases_errored": count(r"(\d+) errored"),
            "cases_skipped": count(r"(\d+) skipped"),
            "server_errors": len(failing),
            "failing": [{"operation": op, "reproduce": re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:8000", c)}
                        for op, c in failing],
            "api_exceptions": sorted({f"{e}: {m}" for e, m in api_errors})[:10],
            "api_5xx_logged": len(FIVE_XX.findall(api_log)),
            "seeded": seeded,
            "answers_on_real_ids": _answers_on(api_log, seeded["jobs"] + seeded["batches"]),
            "created_by_fuzz": {k: len(re.findall(rf'"POST /v1/{k}(?:\?[^ ]*)? HTTP/1.1" 202 ', api_log))
                                for k in ("jobs", "batches")},
            "summary": summary.strip()[-1500:],
        }


def _answers_on(api_log: str, ids: list[str]) -> dict[str, int]:
    """Status codes of the logged requests whose path holds one of ``ids``."""
    pat = re.compile(r'"[A-Z]+ /v1/(?:jobs|batches)/(' + "|".join(map(re.escape, ids)) +
                     r')[/?" ][^"]*" (\d{3}) ')
    counts: dict[str, int] = {}
    for _, status in pat.findall(api_log) if ids else []:
        counts[status] = counts.get(status, 0) + 1
    return dict(sorted(counts.items()))


# -- report --------------------------------------------------------------------------------------
def markdown(results: dict[str, Any], argv: list[str]) -> str:
    out = [f"Measured with `python -m avagent.bench.service_reliability {' '.join(argv)}`".rstrip() +
           f" on {os.cpu_count()} CPU cores, {time.strftime('%Y-%m-%d')}.", ""]
    if "kill" in results:
        out += ["**Worker killed with SIGKILL mid-job** (a 5.6 s real video, `max_rounds=3`, killed once "
                "the job is past decoding; `job_stale_s=4`; with Redis a 12 s task hard limit, so its "
                "visibility timeout is 84 s). *Done after the kill* is the time from SIGKILL until the "
                "API reports the job finished:", "",
                "| broker | killed | final state | attempts | done after the kill | runs started | succeeded | outputs intact | path |",
                "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for r in results["kill"]:
            path = []
            if r.get("lost_reported"):
                path.append("parent saw the child die (WorkerLostError, message rejected)")
            if r.get("reaper_requeued"):
                path.append("heartbeat reaper requeued")
            else:
                path.append("broker redelivered once the heartbeat was stale")
            if r.get("redundant_deliveries_skipped"):
                path.append(f"{r['redundant_deliveries_skipped']} redundant delivery skipped by the claim")
            if r.get("unacked_after_kill") is not None:
                path.append(f"Redis kept it unacked ({r['unacked_after_kill']}); redelivered after "
                            f"{r['visibility_timeout_s']} s as a no-op: {r['broker_redelivered_noop']}")
            out.append(f"| {r['broker']} | {r['killed']} | {r['state']} | {r['attempts']} | "
                       f"{r['recovered_s']} s | {r['runs']} | {r['succeeded_lines']} | "
                       f"{r['outputs_intact']} | {'; '.join(path)} |")
        out.append("")
    if "restart" in results:
        out += ["**API and broker restarted while jobs were queued** (short speech clips, no worker until after the restart):", "",
                "| broker | jobs | in queue before / after restart | broker restarts while running | succeeded | lost | ran twice | redundant deliveries (no-ops) |",
                "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for r in results["restart"]:
            out.append(f"| {r['broker']} | {r['jobs']} | {r['queued_before_restart']} / {r['queued_after_restart']} | "
                       f"{r['broker_restarts_while_running']} | {r['succeeded']} | {r['lost']} | {r['ran_twice']} | "
                       f"{r['redundant_deliveries_skipped']} |")
        out.append("")
    if "bad" in results:
        out += ["**Bad input** (a live API and worker; `AVAGENT_MAX_UPLOAD_MB=2`):", "",
                "| case | answer | expected | detail |", "| --- | --- | --- | --- |"]
        for r in results["bad"]:
            detail = str(r["detail"]).replace("|", "\\|").replace("\n", " ")[:180]
            status = "-" if r["status"] == 0 else r["status"]
            out.append(f"| {r['case']} | {status} | {r['expected']} | {detail} |")
        out.append("")
    if "fuzz" in results:
        f = results["fuzz"]
        if "skipped" in f:
            out += [f"**Fuzzing**: skipped ({f['skipped']}).", ""]
        else:
            out += [f"**Fuzzing the OpenAPI with schemathesis** (`--checks not_a_server_error "
                    f"--max-examples {results['fuzz_args'][0]} --max-time {results['fuzz_args'][1]}`, "
                    f"seed 1, one key): {f['operations']} operations tested, {f['cases_generated']} "
                    f"cases generated, {f['cases_failed']} failing cases, {f['server_errors']} "
                    f"distinct failures, {f['cases_errored']} errored (schemathesis could not check them), "
                    f"{f['api_5xx_logged']} answers 5xx in the API log ({f['seconds']} s, "
                    f"schemathesis exit code {f['exit_code']}).", ""]
            if f.get("seeded"):
                sd = f["seeded"]
                states = ", ".join(f"{sd['states'].count(x)} {x}" for x in dict.fromkeys(sd["states"]))
                answers = ", ".join(f"{n}x {code}" for code, n in f.get("answers_on_real_ids", {}).items())
                made = f.get("created_by_fuzz", {})
                out += [f"Before fuzzing, the fuzz key got {len(sd['jobs'])} real jobs ({states}) and "
                        f"{len(sd['batches'])} finished batch, and path ids were drawn from them 70 % of "
                        f"the time; schemathesis itself created {made.get('jobs', 0)} jobs and "
                        f"{made.get('batches', 0)} batches (from sources it copied out of responses: its "
                        f"generated uploads are not media). Answers on the seeded ids: "
                        f"{answers or 'none'}.", ""]
            warnings = re.findall(r"⚠️ (.+)", f.get("summary", ""))
            if warnings:
                out += ["schemathesis warned: " + "; ".join(w.strip() for w in warnings) + ".", ""]
            if f.get("failing"):
                out += ["| operation | reproduce |", "| --- | --- |"]
                out += [f"| {x['operation']} | `{x['reproduce'].replace('|', '%7C')[:220]}` |"
                        for x in f["failing"]]
                out += ["", "Exceptions behind them (API log): " +
                        "; ".join(f"`{e}`" for e in f.get("api_exceptions", [])), ""]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(PARTS), help=f"comma-separated parts: {', '.join(PARTS)}")
    parser.add_argument("--brokers", default="embedded,redis", help="embedded, redis or both")
    parser.add_argument("--jobs", type=int, default=12, help="jobs queued across the restart")
    parser.add_argument("--max-examples", type=int, default=20, help="schemathesis examples per operation")
    parser.add_argument("--fuzz-time-s", type=int, default=240, help="schemathesis time box")
    parser.add_argument("--doc", type=Path, default=REPO / "docs" / "service.md")
    parser.add_argument("--json", type=Path, default=None, help="also write the raw results here")
    parser.add_argument("--workdir", type=Path, default=None, help="keep logs here (default: temp)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    parts = [p.strip() for p in args.only.split(",") if p.strip()]
    brokers = [b.strip() for b in args.brokers.split(",") if b.strip()]
    video = bench_media.path("videos", "mp4.mp4")
    clips = [bench_media.path("speech", n) for n in ("Front_Center.wav", "Front_Left.wav", "Rear_Right.wav")]
    work = args.workdir or Path(tempfile.mkdtemp(prefix="avagent-reliability-"))
    results: dict[str, Any] = {}
    if "kill" in parts:
        results["kill"] = []
        for broker in brokers:
            for target in ("child", "worker"):
                logger.info("kill: %s broker, SIGKILL the %s", broker, target)
                r = kill_scenario(work / f"kill-{broker}-{target}", video, broker, target)
                logger.info("  %s", r)
                results["kill"].append(r)
    if "restart" in parts:
        results["restart"] = []
        for broker in brokers:
            logger.info("restart: %s broker", broker)
            r = restart_scenario(work / f"restart-{broker}", clips, broker, args.jobs)
            logger.info("  %s", r)
            results["restart"].append(r)
    if "bad" in parts:
        logger.info("bad input")
        results["bad"] = bad_input_scenario(work / "bad", video)
        for r in results["bad"]:
            logger.info("  %s", r)
    if "fuzz" in parts:
        logger.info("fuzz: schemathesis")
        results["fuzz"] = fuzz_scenario(work / "fuzz", args.max_examples, args.fuzz_time_s, video)
        results["fuzz_args"] = [args.max_examples, args.fuzz_time_s]
        logger.info("  %s", {k: v for k, v in results["fuzz"].items() if k != "summary"})
    cmdline = argv if argv is not None else sys.argv[1:]
    text = markdown(results, cmdline)
    print(text)
    for part in parts:  # one section per part, so parts can be re-measured alone
        sub = {k: v for k, v in results.items() if k == part or k == f"{part}_args"}
        replace_section(args.doc, f"reliability-{part}", markdown(sub, cmdline))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    logger.info("logs in %s", work)
    failures = []
    for r in results.get("kill", []):
        if r["state"] != "succeeded" or r["succeeded_lines"] != 1 or not r["outputs_intact"]:
            failures.append(f"kill {r}")
    for r in results.get("restart", []):
        if r["lost"] or r["ran_twice"]:
            failures.append(f"restart {r}")
    for r in results.get("bad", []):
        if r["status"] >= 500:
            failures.append(f"bad {r}")
    if results.get("fuzz", {}).get("server_errors"):
        failures.append("fuzz found server errors")
    for f in failures:
        logger.error("FAILED: %s", f)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
