"""Ingest benchmark: N concurrent clients POST to the http-json channel of a
running gateway on the real RabbitMQ, and, in the same run, to a bare baseline
(a minimal aiohttp handler that only publishes the same body with confirm).
Rounds alternate gateway and baseline; the figures are medians over rounds.

    .venv/bin/python bench/ingest.py [--connections 50] [--duration 10] [--rounds 3]

The last line printed is one JSON object with throughput, p50_ms, p99_ms,
baseline_throughput, baseline_p99_ms, ratio and service_peak_rss_mb.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

import aio_pika

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script

from bench._harness import PYTHON, ROOT, Process, Vhost, free_port, median, post_load, python_env
from gateway.config import load_config
from gateway.service import topology_for

TOKEN = "bench-token-0123456789abcdef"
SECRET = "bench-secret-key-0123456789abcdef0123456789"
CHANNEL = "http-json-zuidoost-brabant"


def make_request(n: int) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(
        {
            "message_id": f"bench-{os.getpid()}-{n}",
            "sender": f"person-{n % 997}",
            "text": "Ik wil graag iemand spreken over wat er thuis gebeurt.",
        }
    )
    return body.encode(), {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


async def purge(url: str, queues: list[str]) -> None:
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        for name in queues:
            try:
                await (await channel.get_queue(name, ensure=True)).purge()
            except aio_pika.exceptions.ChannelNotFoundEntity:
                channel = await connection.channel()
    finally:
        await connection.close()


async def run(args: argparse.Namespace) -> dict[str, float]:
    os.environ["GW_HTTP_JSON_ZUIDOOST_BRABANT_TOKEN"] = TOKEN
    config = load_config(ROOT / "config")
    topology = topology_for(config)
    inbound_arguments = next(q.arguments for q in topology.queues if q.name == "gw.inbound.0")
    queues = [q.name for q in topology.queues if q.name.startswith("gw.inbound.")] + ["bench.baseline"]
    results: dict[str, list] = {"gateway": [], "baseline": []}
    peak_rss: list[float] = []
    with Vhost(args.amqp_url) as vhost:
        gateway_port, baseline_port = free_port(), free_port()
        gateway = Process(
            [PYTHON, "-m", "gateway.cli", "run", "--port", str(gateway_port)],
            python_env(
                GATEWAY_AMQP_URL=vhost.url,
                GATEWAY_SECRET_KEY=SECRET,
                GATEWAY_CONFIG=os.environ.get("BENCH_CONFIG", str(ROOT / "config")),
                GATEWAY_LOG_LEVEL="INFO",
                GW_HTTP_JSON_ZUIDOOST_BRABANT_TOKEN=TOKEN,
            ),
            gateway_port,
            log_path=Path(args.log_dir) / "gateway.log",
        )
        baseline_args = [
            PYTHON,
            str(ROOT / "bench" / "baseline.py"),
            "--port",
            str(baseline_port),
            "--amqp-url",
            vhost.url,
            "--arguments",
            json.dumps(inbound_arguments),
        ]
        if args.baseline_uvloop:
            baseline_args.append("--uvloop")
        baseline = Process(
            baseline_args, python_env(), baseline_port, log_path=Path(args.log_dir) / "baseline.log"
        )
        with gateway, baseline:
            await gateway.wait_ready()
            await baseline.wait_ready()
            for process in (baseline, gateway):  # unmeasured: steady state, not start-up, is compared
                url = f"http://127.0.0.1:{process.port}/channels/{CHANNEL}/webhook"
                await post_load(url, make_request, args.connections, args.warmup_phase, 0)
            await purge(vhost.url, queues)
            for round_ in range(args.rounds):
                for name, process in (("baseline", baseline), ("gateway", gateway)):
                    url = f"http://127.0.0.1:{process.port}/channels/{CHANNEL}/webhook"
                    cpu_before = process.cpu_seconds()
                    result = await post_load(url, make_request, args.connections, args.duration, args.warmup)
                    # CPU over warm-up and measurement, per request served in both
                    served = result.completed * (1 + args.warmup / args.duration)
                    result.cpu_us_per_request = (process.cpu_seconds() - cpu_before) / served * 1e6
                    results[name].append(result)
                    print(
                        f"round {round_ + 1} {name:<8} {result.throughput:8.0f} req/s  "
                        f"p50 {result.percentile(50):6.1f} ms  p99 {result.percentile(99):6.1f} ms  "
                        f"cpu/request {result.cpu_us_per_request:5.0f} us  errors {result.errors}",
                        flush=True,
                    )
                    await purge(vhost.url, queues)
            peak_rss.append(gateway.peak_rss_mb())
    g, b = results["gateway"], results["baseline"]
    summary = {
        "connections": args.connections,
        "rounds": args.rounds,
        "duration_s": args.duration,
        "throughput": round(median([r.throughput for r in g]), 1),
        "p50_ms": round(median([r.percentile(50) for r in g]), 2),
        "p99_ms": round(median([r.percentile(99) for r in g]), 2),
        "errors": sum(r.errors for r in g),
        "baseline_throughput": round(median([r.throughput for r in b]), 1),
        "baseline_p50_ms": round(median([r.percentile(50) for r in b]), 2),
        "baseline_p99_ms": round(median([r.percentile(99) for r in b]), 2),
        "baseline_errors": sum(r.errors for r in b),
        "baseline_loop": "uvloop" if args.baseline_uvloop else "asyncio",
        "service_peak_rss_mb": round(max(peak_rss), 1),
        "cpu_us_per_request": round(median([r.cpu_us_per_request for r in g])),
        "baseline_cpu_us_per_request": round(median([r.cpu_us_per_request for r in b])),
    }
    summary["ratio"] = round(summary["throughput"] / summary["baseline_throughput"], 3)
    summary["p99_ratio"] = round(summary["p99_ms"] / summary["baseline_p99_ms"], 3)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per phase")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds not measured per phase")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--warmup-phase",
        type=float,
        default=5.0,
        help="seconds of unmeasured load on each server before the rounds",
    )
    parser.add_argument(
        "--amqp-url", default=os.environ.get("GATEWAY_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    )
    parser.add_argument(
        "--log-dir", default=str(ROOT / "bench" / "results"), help="where the processes' logs go"
    )
    parser.add_argument(
        "--baseline-uvloop",
        action="store_true",
        help="run the baseline on uvloop too (default: plain asyncio, as naive code)",
    )
    args = parser.parse_args()
    Path(args.log_dir).mkdir(parents=True, exist_ok=True)
    summary = asyncio.run(run(args))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
