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

The scenarios are in :mod:`avagent.bench.service_scenarios` and :mod:`avagent.bench.service_fuzz`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from avagent.bench import media as bench_media
from avagent.bench.service_fuzz import fuzz_scenario
from avagent.bench.service_scenarios import (
    bad_input_scenario,
    kill_scenario,
    restart_scenario,
)
from avagent.bench.service_stack import (
    REPO,
    replace_section,
)

logger = logging.getLogger("avagent.bench.service_reliability")


PARTS = ("kill", "restart", "bad", "fuzz")


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
