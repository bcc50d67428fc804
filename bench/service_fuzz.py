"""Service reliability: schemathesis against the live OpenAPI (``not_a_server_error``)."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from avagent.bench.service_scenarios import FIVE_XX, api_log_text
from avagent.bench.service_stack import (
    REPO,
    Stack,
    submit,
    wait_jobs,
)

logger = logging.getLogger("avagent.bench.service_reliability")


# -- 4. schemathesis -------------------------------------------------------------------------------
def seed_real_ids(stack: Stack, key: str, video: Path) -> dict[str, list[str]]:
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
        seeded = seed_real_ids(stack, key, video)
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
            "answers_on_real_ids": answers_on(api_log, seeded["jobs"] + seeded["batches"]),
            "created_by_fuzz": {k: len(re.findall(rf'"POST /v1/{k}(?:\?[^ ]*)? HTTP/1.1" 202 ', api_log))
                                for k in ("jobs", "batches")},
            "summary": summary.strip()[-1500:],
        }


def answers_on(api_log: str, ids: list[str]) -> dict[str, int]:
    """Status codes of the logged requests whose path holds one of ``ids``."""
    pat = re.compile(r'"[A-Z]+ /v1/(?:jobs|batches)/(' + "|".join(map(re.escape, ids)) +
                     r')[/?" ][^"]*" (\d{3}) ')
    counts: dict[str, int] = {}
    for _, status in pat.findall(api_log) if ids else []:
        counts[status] = counts.get(status, 0) + 1
    return dict(sorted(counts.items()))


