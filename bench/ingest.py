"""Ingest benchmark: N concurrent clients POST to the http-json channel of a
running gateway on the real RabbitMQ, and, in the same run, to a bare baseline
(a minimal aiohttp handler that only publishes the same body with confirm).
Rounds alternate gateway and baseline; the figures are medians over rounds.

    .venv/bin/python bench/ingest.py [--connections 50] [--duration 10] [--rounds 3]
    .venv/bin/python bench/ingest.py --end-to-end
    .venv/bin/python bench/ingest.py --channel sms

With --channel sms the load is Twilio SMS webhooks (form bodies signed with the
twilio library's RequestValidator, so the gateway validates each signature); the
baseline receives the same bodies.

Without --end-to-end the gateway runs the ingest role only (webhook to inbound
queue: one confirmed publish, like the baseline). With --end-to-end it runs
every role, and the benchmark also consumes the region queues: e2e_p50_ms and
e2e_p99_ms are the times from sending a webhook to the routed message's arrival
in its region queue. The gateway's clock is then set to a Monday morning
(GATEWAY_FAKE_TIME), so regions are open as at a working day's peak.

The last line printed is one JSON object with throughput, p50_ms, p99_ms,
baseline_throughput, baseline_p99_ms, ratio and service_peak_rss_mb (and
e2e_p50_ms, e2e_p99_ms with --end-to-end).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlencode

import aio_pika
from twilio.request_validator import RequestValidator

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script

from bench._harness import (
    PYTHON,
    ROOT,
    LoadResult,
    Process,
    Vhost,
    free_port,
    median,
    metric_total,
    percentile,
    post_load,
    purge,
    python_env,
)
from gateway.config import load_config
from gateway.envelope import envelope_id
from gateway.service import topology_for

TOKEN = "bench-token-0123456789abcdef"
SECRET = "bench-secret-key-0123456789abcdef0123456789"
CHANNELS = {"http-json": "http-json-zuidoost-brabant", "sms": "sms-zuidoost-brabant"}
TWILIO_SID, TWILIO_TOKEN = "AC" + "0" * 32, "bench-auth-token-0123456789abcdef"
SECRETS = {
    "GW_HTTP_JSON_ZUIDOOST_BRABANT_TOKEN": TOKEN,
    "GW_SMS_ZUIDOOST_BRABANT_ACCOUNT_SID": TWILIO_SID,
    "GW_SMS_ZUIDOOST_BRABANT_AUTH_TOKEN": TWILIO_TOKEN,
}
SMS_PUBLIC_URL = "https://gateway.veiligthuis.example/channels/sms-zuidoost-brabant/webhook"
OPEN_MONDAY_MORNING = "2025-11-24T10:00:00+01:00"


class Requests:
    """Makes the webhook bodies; in end-to-end mode remembers when each was sent."""

    def __init__(self, kind: str = "http-json") -> None:
        self.kind = kind
        self.channel = CHANNELS[kind]
        self.track = False
        self.sent: dict[str, float] = {}
        # Unique per phase: a provider id seen before is a retried webhook, which the gateway
        # answers without publishing, and would flatter it.
        self.prefix = f"bench-{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self._validator = RequestValidator(TWILIO_TOKEN)

    def __call__(self, n: int) -> tuple[bytes, dict[str, str]]:
        text = "Ik wil graag iemand spreken over wat er thuis gebeurt."
        if self.kind == "sms":
            provider_id = f"SM{uuid.uuid4().hex}"
            fields = {
                "MessageSid": provider_id,
                "AccountSid": TWILIO_SID,
                "From": f"+3161{n % 997:07d}",
                "To": "+3197010580001",
                "Body": text,
                "NumMedia": "0",
                "ApiVersion": "2010-04-01",
            }
            signature = self._validator.compute_signature(SMS_PUBLIC_URL, fields)
            body = urlencode(fields).encode()
            headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature}
        else:
            provider_id = f"{self.prefix}-{n}"
            body = json.dumps(
                {"message_id": provider_id, "sender": f"person-{n % 997}", "text": text}
            ).encode()
            headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        if self.track:
            self.sent[envelope_id(self.channel, provider_id)] = time.perf_counter()
        return body, headers


async def watch_arrivals(
    url: str,
    queues: list[str],
    requests: Requests,
    arrived: list[tuple[float, float]],
    stop: asyncio.Event,
) -> None:
    """Consume the region queues; record, per message, when it arrived and how long after its
    webhook was sent."""
    loop = asyncio.get_running_loop()
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=1000)

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            sent = requests.sent.pop(message.message_id or "", None)
            if sent is not None:
                arrived.append((loop.time(), (time.perf_counter() - sent) * 1000))

        for name in queues:  # auto-ack: the watcher must cost the load generator little
            await (await channel.get_queue(name, ensure=False)).consume(on_message, no_ack=True)
        await stop.wait()
    finally:
        await connection.close()


async def measure(
    process: Process, url: str, amqp_url: str, watch: list[str] | None, args: argparse.Namespace
) -> tuple[LoadResult, list[float], float]:
    """One phase of load; with `watch`, also each message's webhook-to-region-queue time and
    the rate at which messages reached the region queue during the measured window."""
    requests = Requests(args.channel)
    arrived: list[tuple[float, float]] = []
    stop_watching = asyncio.Event()
    watcher = None
    if watch is not None:
        requests.track = True
        watcher = asyncio.create_task(watch_arrivals(amqp_url, watch, requests, arrived, stop_watching))
        await asyncio.sleep(0.5)  # consuming before the first message is sent
    cpu_before = process.cpu_seconds()
    window_start = asyncio.get_running_loop().time() + args.warmup
    window_end = window_start + args.duration
    result = await post_load(url, requests, args.connections, args.duration, args.warmup)
    # CPU over warm-up and measurement, per request served in both
    served = result.completed * (1 + args.warmup / args.duration)
    result.cpu_us_per_request = (process.cpu_seconds() - cpu_before) / served * 1e6
    if watcher is not None:
        requests.track = False
        for _ in range(100):  # let the last routed messages arrive
            if not requests.sent:
                break
            await asyncio.sleep(0.1)
        stop_watching.set()
        await watcher
    in_window = sum(1 for at, _ in arrived if window_start <= at < window_end)
    return result, sorted(latency for _, latency in arrived), in_window / args.duration


async def run(args: argparse.Namespace) -> dict[str, object]:
    os.environ.update(SECRETS)
    channel = CHANNELS[args.channel]
    config = load_config(ROOT / "config")
    topology = topology_for(config)
    inbound_arguments = next(q.arguments for q in topology.queues if q.name == "gw.inbound.0")
    region_queues = [f"gw.region.zuidoost-brabant.{p}" for p in ("urgent", "normal")]
    queues = [q.name for q in topology.queues if q.name.startswith("gw.inbound.")]
    queues += ["bench.baseline", *region_queues, "gw.outbound"]
    results: dict[str, list[LoadResult]] = {"gateway": [], "baseline": []}
    e2e: list[list[float]] = []
    e2e_rates: list[float] = []
    peak_rss: list[float] = []
    with Vhost(args.amqp_url) as vhost:
        gateway_port, baseline_port = free_port(), free_port()
        gateway_env = python_env(
            GATEWAY_AMQP_URL=vhost.url,
            GATEWAY_SECRET_KEY=SECRET,
            GATEWAY_CONFIG=os.environ.get("BENCH_CONFIG", str(ROOT / "config")),
            GATEWAY_LOG_LEVEL="INFO",
            **SECRETS,
        )
        if args.end_to_end:
            gateway_env["GATEWAY_FAKE_TIME"] = OPEN_MONDAY_MORNING
        roles = ["--role", "ingest"] if not args.end_to_end or args.split_roles else []
        gateway = Process(
            [PYTHON, "-m", "gateway.cli", "run", "--port", str(gateway_port), *roles],
            gateway_env,
            gateway_port,
            log_path=Path(args.log_dir) / "gateway.log",
        )
        baseline_args = [
            PYTHON, str(ROOT / "bench" / "baseline.py"), "--port", str(baseline_port),
            "--amqp-url", vhost.url, "--arguments", json.dumps(inbound_arguments),
        ]  # fmt: skip
        if args.baseline_uvloop:
            baseline_args.append("--uvloop")
        baseline = Process(
            baseline_args, python_env(), baseline_port, log_path=Path(args.log_dir) / "baseline.log"
        )
        router_process = Process(
            [PYTHON, "-m", "gateway.cli", "run", "--port", str(free_port()), "--role", "router"],
            gateway_env,
            0,
            log_path=Path(args.log_dir) / "router.log",
        )
        router_process.port = int(router_process.args[5])
        splitting = args.end_to_end and args.split_roles
        with gateway, baseline, router_process if splitting else contextlib.nullcontext():
            if splitting:
                await router_process.wait_ready()
            await gateway.wait_ready()
            await baseline.wait_ready()
            for process in (baseline, gateway):  # unmeasured: steady state, not start-up, is compared
                url = f"http://127.0.0.1:{process.port}/channels/{channel}/webhook"
                await post_load(url, Requests(args.channel), args.connections, args.warmup_phase, 0)
            await asyncio.sleep(2 if args.end_to_end else 0)
            await purge(vhost.url, queues)
            for round_ in range(args.rounds):
                for name, process in (("baseline", baseline), ("gateway", gateway)):
                    url = f"http://127.0.0.1:{process.port}/channels/{channel}/webhook"
                    watch = region_queues if args.end_to_end and name == "gateway" else None
                    result, arrivals, e2e_rate = await measure(process, url, vhost.url, watch, args)
                    results[name].append(result)
                    line = (
                        f"round {round_ + 1} {name:<8} {result.throughput:8.0f} req/s  "
                        f"p50 {result.percentile(50):6.1f} ms  p99 {result.percentile(99):6.1f} ms  "
                        f"cpu/request {result.cpu_us_per_request:5.0f} us  errors {result.errors}"
                    )
                    if watch is not None:
                        e2e.append(arrivals)
                        e2e_rates.append(e2e_rate)
                        line += (
                            f"  routed {e2e_rate:6.0f}/s  e2e p50 {percentile(arrivals, 50):6.1f} ms "
                            f"p99 {percentile(arrivals, 99):6.1f} ms ({len(arrivals)} routed)"
                        )
                    print(line, flush=True)
                    await purge(vhost.url, queues)
            peak_rss.append(gateway.peak_rss_mb())
            # Every request carried a new provider id, so this must be 0: a suppressed retry
            # costs the gateway almost nothing and would flatter the figures.
            duplicates = await metric_total(gateway.port, "gateway_duplicates_suppressed")
            if splitting:
                peak_rss.append(router_process.peak_rss_mb())
    g, b = results["gateway"], results["baseline"]
    summary: dict[str, object] = {
        "mode": (
            "ingest: webhook to inbound queue, gateway run --role ingest"
            if not args.end_to_end
            else "end-to-end: webhook to region queue, "
            + ("ingest and router in two processes" if args.split_roles else "every role in one process")
        ),
        "channel": channel,
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
        "duplicates_suppressed": int(duplicates),
        "cpu_us_per_request": round(median([r.cpu_us_per_request for r in g])),
        "baseline_cpu_us_per_request": round(median([r.cpu_us_per_request for r in b])),
    }
    summary["ratio"] = round(summary["throughput"] / summary["baseline_throughput"], 3)  # type: ignore[operator]
    summary["p99_ratio"] = round(summary["p99_ms"] / summary["baseline_p99_ms"], 3)  # type: ignore[operator]
    if args.end_to_end:
        summary["e2e_p50_ms"] = round(median([percentile(r, 50) for r in e2e]), 2)
        summary["e2e_p99_ms"] = round(median([percentile(r, 99) for r in e2e]), 2)
        summary["e2e_routed"] = sum(len(r) for r in e2e)
        # The webhook rate alone flatters a router that falls behind: this is the rate at which
        # messages reached their region queue during the measured windows.
        summary["e2e_throughput"] = round(median(e2e_rates), 1)
        summary["e2e_ratio"] = round(summary["e2e_throughput"] / summary["baseline_throughput"], 3)  # type: ignore[operator]
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per phase")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds not measured per phase")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--warmup-phase", type=float, default=5.0, help="seconds of unmeasured load before the rounds"
    )
    parser.add_argument("--channel", choices=sorted(CHANNELS), default="http-json", help="webhook kind")
    parser.add_argument("--end-to-end", action="store_true", help="every role; time webhook to region queue")
    parser.add_argument(
        "--split-roles", action="store_true", help="with --end-to-end: ingest and router as two processes"
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
    print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
