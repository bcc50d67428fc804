"""Load on the service, on real processes on 127.0.0.1: many concurrent clients submit short real
clips (2 s cuts of real recordings); we measure submit latency (p50/p95), jobs per minute with
1 and 2 workers side by side in one run, and the memory (RSS) of each worker and of the API.

    python -m avagent.bench.service_load                      # 50 clients, 2 jobs each, 1 then 2 workers
    python -m avagent.bench.service_load --clients 20 --jobs-per-client 1 --workers 1,2,4

Each worker runs one job at a time (``--concurrency 1``), so "2 workers" means two processes
that can use two cores; on a 2-core machine the API and the clients share those cores, so the
ratio can at most approach 2. Numbers go between the ``load`` markers of ``docs/service.md``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from avagent.bench import media as bench_media
from avagent.bench.service_stack import REPO, Stack, replace_section, wait_jobs

logger = logging.getLogger("avagent.bench.service_load")

SOURCES = [("lugaru", "Wind.ogg"), ("lugaru", "DesertAmbient.ogg"), ("lugaru", "Fire.ogg"),
           ("lugaru", "Music2.ogg"), ("speech", "Front_Center.wav"), ("speech", "Noise.wav")]


def make_clips(folder: Path, n: int, seconds: float = 2.0) -> list[Path]:
    """``n`` WAV clips of ``seconds`` cut from real recordings (speech is padded by repetition)."""
    import soundfile

    from avagent.service import media

    folder.mkdir(parents=True, exist_ok=True)
    clips: list[Path] = []
    for i in range(n):
        name, fname = SOURCES[i % len(SOURCES)]
        y, sr = media.load_audio(bench_media.path(name, fname))
        y = np.atleast_2d(y)
        need = int(seconds * sr)
        if y.shape[-1] < need:
            y = np.tile(y, (1, need // y.shape[-1] + 1))
        start = (i * 7919 * sr // 10) % max(1, y.shape[-1] - need)
        path = folder / f"clip{i:02d}.wav"
        soundfile.write(path, y[:, start:start + need].T, sr)
        clips.append(path)
    return clips


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q)) if xs else float("nan")


def run_config(root: Path, n_workers: int, clips: list[Path], clients: int, per_client: int,
               broker: str, timeout_s: float, threads: int | None) -> dict[str, Any]:
    values = {"rate_limit_per_minute": 100000, "max_concurrent_jobs": 100000, "job_stale_s": 60}
    with Stack(root, values) as stack:
        if broker == "redis":
            stack.start_redis()
        stack.start_api()
        workers = [stack.start_worker(f"worker{i + 1}", threads=threads) for i in range(n_workers)]
        client = httpx.Client(base_url=stack.url, timeout=120)
        # Warm-up: each worker's first job pays for imports; not counted.
        warm = [_post(client, clips[i % len(clips)])[1] for i in range(n_workers)]
        wait_jobs(client, warm, 120)

        rss: dict[str, list[float]] = {w.name: [] for w in workers}
        api_rss: list[float] = []
        stop_sampling = threading.Event()

        def sample() -> None:
            while not stop_sampling.wait(0.5):
                for w in workers:
                    rss[w.name].append(w.tree_rss_mb())
                if stack.api is not None:
                    api_rss.append(stack.api.tree_rss_mb())

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        latencies: list[float] = []
        ids: list[str] = []
        errors: list[str] = []
        lock = threading.Lock()

        def one_client(c: int) -> None:
            with httpx.Client(base_url=stack.url, timeout=120) as own:
                for j in range(per_client):
                    clip = clips[(c * per_client + j) % len(clips)]
                    try:
                        dt, jid = _post(own, clip)
                    except Exception as exc:
                        with lock:
                            errors.append(f"{type(exc).__name__}: {exc}"[:200])
                        continue
                    with lock:
                        latencies.append(dt)
                        ids.append(jid)

        t0 = time.monotonic()
        with ThreadPoolExecutor(max_workers=clients) as pool:
            list(pool.map(one_client, range(clients)))
        t_submitted = time.monotonic() - t0
        done = wait_jobs(client, ids, timeout_s)
        t_all = time.monotonic() - t0
        stop_sampling.set()
        sampler.join(timeout=2)
        states = [done.get(j, {}).get("state") for j in ids]
        finished = sorted(
            _ts(d["finished_at"]) for d in done.values() if d.get("finished_at")
        )
        proc_s = [float(d.get("timings_s", {}).get("total", 0.0)) for d in done.values()
                  if d.get("state") == "succeeded"]
        client.close()
        n_ok = states.count("succeeded")
        return {
            "workers": n_workers, "threads": threads or "default", "broker": broker, "clients": clients, "jobs": len(ids),
            "submit_errors": len(errors), "error_samples": errors[:3],
            "succeeded": n_ok, "other_states": {s: states.count(s) for s in set(states) if s != "succeeded"},
            "submit_p50_ms": round(pct(latencies, 50) * 1e3, 1),
            "submit_p95_ms": round(pct(latencies, 95) * 1e3, 1),
            "submit_max_ms": round(max(latencies) * 1e3, 1) if latencies else None,
            "all_submitted_s": round(t_submitted, 1), "all_done_s": round(t_all, 1),
            "jobs_per_min": round(n_ok / t_all * 60, 1),
            "jobs_per_min_worker_side": round((len(finished) - 1) / (finished[-1] - finished[0]) * 60, 1)
            if len(finished) > 2 and finished[-1] > finished[0] else None,
            "job_s_median": round(statistics.median(proc_s), 2) if proc_s else None,
            "worker_rss_mb_peak": {k: round(max(v), 0) for k, v in rss.items() if v},
            "worker_rss_mb_mean": {k: round(statistics.mean(v), 0) for k, v in rss.items() if v},
            "api_rss_mb_peak": round(max(api_rss), 0) if api_rss else None,
        }


def _ts(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _post(client: httpx.Client, clip: Path) -> tuple[float, str]:
    data = clip.read_bytes()
    t = time.perf_counter()
    r = client.post("/v1/jobs", files={"file": (clip.name, data, "audio/wav")},
                    data={"max_rounds": "2", "outputs": "wav,report"})
    dt = time.perf_counter() - t
    if r.status_code != 202:
        raise RuntimeError(f"{r.status_code}: {r.text[:200]}")
    return dt, r.json()["id"]


def markdown(rows: list[dict[str, Any]], argv: list[str], clip_s: float) -> str:
    out = [f"Measured with `python -m avagent.bench.service_load {' '.join(argv)}`".rstrip() +
           f" on {os.cpu_count()} CPU cores, {time.strftime('%Y-%m-%d')}: {rows[0]['clients']} "
           f"concurrent clients, {rows[0]['jobs']} jobs of {clip_s:g} s real-recording WAV cuts "
           f"(`max_rounds=2`), {rows[0]['broker']} broker, each worker `--concurrency 1`.", "",
           "| workers | math threads per worker | jobs ok | submit p50 | submit p95 | all submitted | all done | jobs/min | "
           "jobs/min (worker side) | median job time | RSS per worker (peak / mean) | API RSS peak |",
           "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        rss = ", ".join(f"{r['worker_rss_mb_peak'][k]:.0f} / {r['worker_rss_mb_mean'][k]:.0f} MB"
                        for k in r["worker_rss_mb_peak"])
        out.append(f"| {r['workers']} | {r['threads']} | {r['succeeded']}/{r['jobs']} | {r['submit_p50_ms']} ms | "
                   f"{r['submit_p95_ms']} ms | {r['all_submitted_s']} s | {r['all_done_s']} s | "
                   f"{r['jobs_per_min']} | {r['jobs_per_min_worker_side']} | {r['job_s_median']} s | "
                   f"{rss} | {r['api_rss_mb_peak']:.0f} MB |")
    for threads in dict.fromkeys(r["threads"] for r in rows):
        group = [r for r in rows if r["threads"] == threads]
        base = group[0]
        for r in group[1:]:
            out += ["", f"Throughput {r['workers']} vs {base['workers']} worker(s), {threads} math "
                        f"threads per worker: **{r['jobs_per_min'] / base['jobs_per_min']:.2f}x** end "
                        f"to end, {(r['jobs_per_min_worker_side'] or 0) / (base['jobs_per_min_worker_side'] or 1):.2f}x "
                        f"worker side (at most {r['workers'] / base['workers']:g}x; {os.cpu_count()} cores "
                        "shared with the API and the clients)."]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50, help="concurrent submitting clients")
    parser.add_argument("--jobs-per-client", type=int, default=2)
    parser.add_argument("--workers", default="1,2", help="worker counts to compare, in one run")
    parser.add_argument("--threads", default="default,1",
                        help="math-library threads per worker to compare: 'default' and/or numbers")
    parser.add_argument("--broker", choices=["redis", "embedded"], default="redis")
    parser.add_argument("--clip-s", type=float, default=2.0)
    parser.add_argument("--timeout-s", type=float, default=600, help="per configuration")
    parser.add_argument("--doc", type=Path, default=REPO / "docs" / "service.md")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="avagent-load-"))
    clips = make_clips(work / "clips", 12, args.clip_s)
    rows = []
    for t in [x.strip() for x in args.threads.split(",") if x.strip()]:
        threads = None if t == "default" else int(t)
        for n in [int(x) for x in args.workers.split(",") if x.strip()]:
            logger.info("load: %d worker(s), %s threads each", n, t)
            r = run_config(work / f"w{n}-t{t}", n, clips, args.clients, args.jobs_per_client,
                           args.broker, args.timeout_s, threads)
            logger.info("  %s", r)
            rows.append(r)
    text = markdown(rows, argv if argv is not None else sys.argv[1:], args.clip_s)
    print(text)
    replace_section(args.doc, "load", text)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0 if all(r["succeeded"] == r["jobs"] and not r["submit_errors"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
