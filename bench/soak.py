"""Soak benchmark: mixed traffic at a steady rate for a long time against the gateway on the
real RabbitMQ and PostgreSQL, to see what drifts.

    .venv/bin/python bench/soak.py                       # 30 minutes at 40 webhooks/s
    .venv/bin/python bench/soak.py --duration 300 --rate 60 --window 30

The gateway runs as one process per role (ingest, router, desk) in a vhost and a database
of the benchmark's own, its clock on a Monday morning so every region is open. The load is
tests/helpers/traffic.py's: HTTP-JSON, Twilio SMS and WhatsApp (signed), and Telegram webhooks, one
sender per conversation, each message sent when the previous one was answered.

Every --window seconds it prints one line: throughput, p50/p99 webhook answer time, and the
RSS and open file descriptors of each process. At the end it waits for the desk to store
everything and counts, from the desk's own store, the acknowledged messages that never
arrived (lost), arrived twice, or out of order. Memory and descriptors are compared between
the end of the first window (warm) and the end: the bound is RSS growth of at most
--rss-growth-mb per process and --fd-growth descriptors.

Last line: one JSON object (throughput, p50_ms, p99_ms, p99_drift_ratio: the last window's
p99 over the first's, per-process memory and descriptors at start and end, lost, duplicated,
out_of_order, within_bounds).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script

from tests.helpers.harness import (
    PYTHON,
    ROOT,
    Process,
    Vhost,
    common_arguments,
    database_argument,
    free_port,
    percentile,
    python_env,
    run_and_print,
    scratch_database,
)
from tests.helpers.traffic import SECRETS, Load, MixedTraffic, desk_rows, drive, parse_arrivals, tally

SECRET_KEY = "bench-secret-key-0123456789abcdef0123456789"  # the processes' try-out key

ROLES = ("desk", "router", "ingest")
OPEN_MONDAY_MORNING = "2025-11-24T10:00:00+01:00"


def resources(process: Process) -> dict[str, float]:
    assert process.process is not None
    pid = process.process.pid
    rss_kb = next(
        int(line.split()[1])
        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if line.startswith("VmRSS:")
    )
    return {"rss_mb": round(rss_kb / 1024, 1), "fds": len(os.listdir(f"/proc/{pid}/fd"))}


async def soak(
    args: argparse.Namespace, vhost: Vhost, database_url: str, config_dir: Path
) -> dict[str, object]:
    env = python_env(
        GATEWAY_AMQP_URL=vhost.url,
        GATEWAY_DATABASE_URL=database_url,
        GATEWAY_CONFIG=str(config_dir),
        GATEWAY_SECRET_KEY=SECRET_KEY,
        GATEWAY_LOG_LEVEL="WARNING",
        GATEWAY_FAKE_TIME=OPEN_MONDAY_MORNING,
        **SECRETS,
    )
    processes: dict[str, Process] = {}
    for role in ROLES:
        port = free_port()
        command = [PYTHON, "-m", "gateway.cli", "run", "--port", str(port), "--role", role]
        processes[role] = Process(
            command, env, port, log_path=Path(args.log_dir) / f"soak-{role}.log"
        ).__enter__()
    try:
        for process in processes.values():
            await process.wait_ready()
        traffic, load, stop = MixedTraffic(args.conversations), Load(), asyncio.Event()
        base = f"http://127.0.0.1:{processes['ingest'].port}"
        loop = asyncio.get_running_loop()
        started = loop.time()
        driver = asyncio.create_task(drive(base, traffic, rate=args.rate, stop=stop, load=load))
        windows: list[dict[str, object]] = []
        usage_start: dict[str, dict[str, float]] = {}
        seen = 0
        while loop.time() - started < args.duration:
            await asyncio.sleep(min(args.window, args.duration - (loop.time() - started)))
            outcomes = load.outcomes[seen:]
            seen += len(outcomes)
            latencies = sorted((o.answered_at - o.sent_at) * 1000 for o in outcomes if o.acknowledged)
            usage = {role: resources(process) for role, process in processes.items()}
            usage_start = usage_start or usage
            window = {
                "t_s": round(loop.time() - started),
                "throughput": round(len(latencies) / args.window, 1),
                "p50_ms": round(percentile(latencies, 50), 1),
                "p99_ms": round(percentile(latencies, 99), 1),
                "failed": sum(1 for o in outcomes if not o.acknowledged),
                **{f"{role}_rss_mb": value["rss_mb"] for role, value in usage.items()},
                **{f"{role}_fds": value["fds"] for role, value in usage.items()},
            }
            windows.append(window)
            print(window, flush=True)
        stop.set()
        await driver
        usage_end = {role: resources(process) for role, process in processes.items()}
        acknowledged = sum(len(seqs) for seqs in load.acknowledged().values())
        deadline = loop.time() + 120
        rows = await desk_rows(database_url, SECRET_KEY)
        result = tally(traffic, load, parse_arrivals(traffic.run, rows))
        while result.delivered < acknowledged and loop.time() < deadline:
            await asyncio.sleep(1)
            rows = await desk_rows(database_url, SECRET_KEY)
            result = tally(traffic, load, parse_arrivals(traffic.run, rows))
    finally:
        for process in processes.values():
            process.__exit__()
    all_latencies = sorted((o.answered_at - o.sent_at) * 1000 for o in load.outcomes if o.acknowledged)
    within = all(
        usage_end[role]["rss_mb"] - usage_start[role]["rss_mb"] <= args.rss_growth_mb
        and usage_end[role]["fds"] - usage_start[role]["fds"] <= args.fd_growth
        for role in ROLES
    )
    first_p99, last_p99 = windows[0]["p99_ms"], windows[-1]["p99_ms"]
    return {
        "duration_s": args.duration,
        "rate_asked": args.rate,
        "throughput": round(len(all_latencies) / args.duration, 1),
        "p50_ms": round(percentile(all_latencies, 50), 1),
        "p99_ms": round(percentile(all_latencies, 99), 1),
        "p99_drift_ratio": round(float(last_p99) / float(first_p99), 2),  # type: ignore[arg-type]
        "resources_start": usage_start,
        "resources_end": usage_end,
        "bound": f"rss +{args.rss_growth_mb} MB, fds +{args.fd_growth} per process",
        "within_bounds": within,
        **result.summary(),
    }


async def run(args: argparse.Namespace) -> dict[str, object]:
    config_dir = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    try:
        shutil.rmtree(config_dir)
        shutil.copytree(ROOT / "config", config_dir)
        async with scratch_database(args.database_url, "gw_soak") as database_url:
            with Vhost(args.amqp_url) as vhost:
                return await soak(args, vhost, database_url, config_dir)
    finally:
        shutil.rmtree(config_dir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=1800, help="seconds of load (default 30 min)")
    parser.add_argument("--rate", type=float, default=40, help="webhooks per second, all channels together")
    parser.add_argument("--conversations", type=int, default=24)
    parser.add_argument("--window", type=float, default=60, help="seconds per printed line")
    parser.add_argument("--rss-growth-mb", type=float, default=32)
    parser.add_argument("--fd-growth", type=int, default=16)
    database_argument(parser)
    common_arguments(parser)
    run_and_print(parser, run)


if __name__ == "__main__":
    main()
