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
queue: one confirmed publish, like the baseline). With --end-to-end it runs the
roles on the path, ingest and router, as two processes (as deployed; with
--one-process, both roles in one), and the benchmark also consumes the region
queues: e2e_p50_ms and e2e_p99_ms are the times from sending a webhook to the
routed message's arrival in its region queue. The gateway's clock is then set to
a Monday morning (GATEWAY_FAKE_TIME), so regions are open as at a working day's
peak. Each round then also measures a bare two-hop path: the baseline's handler
in front of bench/bare_router.py, which moves the bytes to a second queue in
committed batches, as the router does, but builds, decides and checks nothing.
two_hop_ratio says what a second hop alone costs on this machine;
e2e_vs_two_hop what the gateway's own work costs on top of that.

The last line printed is one JSON object with throughput, p50_ms, p99_ms,
baseline_throughput, baseline_p99_ms, ratio and service_peak_rss_mb (and, with
--end-to-end, e2e_throughput, e2e_ratio, e2e_p50_ms, e2e_p99_ms,
two_hop_throughput, two_hop_ratio and e2e_vs_two_hop).
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

from gateway.domain.envelope import envelope_id
from gateway.service import load_config, topology_for
from tests.helpers.harness import (
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
# End to end, only the roles on the path: the desk would consume the region queues the
# benchmark watches, and store every message.
ONE_PROCESS_ROLES = ["--role", "ingest", "--role", "router"]
TWO_HOP_QUEUES = ("bench.two-hop.in", "bench.two-hop.region")
TWO_HOP_ID_HEADER = "X-Bench-Message-Id"


class Requests:
    """Makes the webhook bodies; in end-to-end mode remembers when each was sent."""

    def __init__(self, kind: str = "http-json", id_header: bool = False) -> None:
        self.kind = kind
        self.id_header = id_header  # the bare two-hop path takes the message id from a header
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
        if self.id_header or self.track:  # the load generator shares the machine: no work when unused
            message_id = envelope_id(self.channel, provider_id)
            if self.id_header:
                headers[TWO_HOP_ID_HEADER] = message_id
            if self.track:
                self.sent[message_id] = time.perf_counter()
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
    processes: list[Process],
    url: str,
    amqp_url: str,
    watch: list[str] | None,
    args: argparse.Namespace,
    id_header: bool = False,
) -> tuple[LoadResult, list[float], float]:
    """One phase of load; with `watch`, also each message's webhook-to-region-queue time and
    the rate at which messages reached the region queue during the measured window. CPU is
    that of all `processes` on the path."""
    requests = Requests(args.channel, id_header)
    arrived: list[tuple[float, float]] = []
    stop_watching = asyncio.Event()
    watcher = None
    if watch is not None:
        requests.track = True
        watcher = asyncio.create_task(watch_arrivals(amqp_url, watch, requests, arrived, stop_watching))
        await asyncio.sleep(0.5)  # consuming before the first message is sent
    cpu_before = sum(process.cpu_seconds() for process in processes)
    window_start = asyncio.get_running_loop().time() + args.warmup
    window_end = window_start + args.duration
    result = await post_load(url, requests, args.connections, args.duration, args.warmup)
    # CPU over warm-up and measurement, per request served in both
    served = result.completed * (1 + args.warmup / args.duration)
    cpu = sum(process.cpu_seconds() for process in processes) - cpu_before
    result.cpu_us_per_request = cpu / served * 1e6
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
    queues += ["bench.baseline", *region_queues, "gw.outbound", *TWO_HOP_QUEUES]
    results: dict[str, list[LoadResult]] = {"gateway": [], "baseline": [], "two_hop": []}
    arrivals_of: dict[str, list[list[float]]] = {"gateway": [], "two_hop": []}
    rates_of: dict[str, list[float]] = {"gateway": [], "two_hop": []}
    peak_rss: list[float] = []
    logs = Path(args.log_dir)
    with Vhost(args.amqp_url) as vhost, contextlib.ExitStack() as running:

        def start(args_: list[str], env: dict[str, str], log: str) -> Process:
            port = free_port()
            return running.enter_context(Process([*args_, "--port", str(port)], env, port, logs / log))

        gateway_env = python_env(
            GATEWAY_AMQP_URL=vhost.url,
            GATEWAY_SECRET_KEY=SECRET,
            GATEWAY_CONFIG=os.environ.get("BENCH_CONFIG", str(ROOT / "config")),
            GATEWAY_LOG_LEVEL="INFO",
            **SECRETS,
        )
        if args.end_to_end:
            gateway_env["GATEWAY_FAKE_TIME"] = OPEN_MONDAY_MORNING
        run_gateway = [PYTHON, "-m", "gateway.cli", "run"]
        roles = ONE_PROCESS_ROLES if args.end_to_end and args.one_process else ["--role", "ingest"]
        gateway = start([*run_gateway, *roles], gateway_env, "gateway.log")
        path = [gateway]  # the processes on the gateway's path, whose CPU is counted
        if args.end_to_end and not args.one_process:
            path.append(start([*run_gateway, "--role", "router"], gateway_env, "router.log"))
        run_baseline = [
            PYTHON, str(ROOT / "bench" / "baseline.py"),
            "--amqp-url", vhost.url, "--arguments", json.dumps(inbound_arguments),
        ]  # fmt: skip
        if args.baseline_uvloop:
            run_baseline.append("--uvloop")
        baseline = start(run_baseline, python_env(), "baseline.log")
        phases: list[tuple[str, list[Process], list[str] | None]] = [
            ("baseline", [baseline], None),
            ("gateway", path, region_queues if args.end_to_end else None),
        ]
        if args.end_to_end:
            two_hop_in, two_hop_region = TWO_HOP_QUEUES
            bare_ingest = start(
                [*run_baseline, "--queue", two_hop_in, "--message-id-header", TWO_HOP_ID_HEADER],
                python_env(),
                "two-hop-ingest.log",
            )
            run_bare_router = [
                PYTHON, str(ROOT / "bench" / "bare_router.py"), "--amqp-url", vhost.url,
                "--source", two_hop_in, "--target", two_hop_region,
                "--arguments", json.dumps(inbound_arguments),
            ]  # fmt: skip
            bare_router = start(run_bare_router, python_env(), "bare-router.log")
            phases.append(("two_hop", [bare_ingest, bare_router], [two_hop_region]))
        for _, processes, _ in phases:
            for process in processes:
                await process.wait_ready()
        for name, processes, _ in phases:  # unmeasured: steady state, not start-up, is compared
            url = f"http://127.0.0.1:{processes[0].port}/channels/{channel}/webhook"
            warm = Requests(args.channel, id_header=name == "two_hop")
            await post_load(url, warm, args.connections, args.warmup_phase, 0)
        await asyncio.sleep(2 if args.end_to_end else 0)
        await purge(vhost.url, queues)
        for round_ in range(args.rounds):
            for name, processes, watch in phases:
                url = f"http://127.0.0.1:{processes[0].port}/channels/{channel}/webhook"
                result, arrivals, rate = await measure(
                    processes, url, vhost.url, watch, args, id_header=name == "two_hop"
                )
                results[name].append(result)
                line = (
                    f"round {round_ + 1} {name:<8} {result.throughput:8.0f} req/s  "
                    f"p50 {result.percentile(50):6.1f} ms  p99 {result.percentile(99):6.1f} ms  "
                    f"cpu/request {result.cpu_us_per_request:5.0f} us  errors {result.errors}"
                )
                if watch is not None:
                    arrivals_of[name].append(arrivals)
                    rates_of[name].append(rate)
                    line += (
                        f"  arrived {rate:6.0f}/s  p50 {percentile(arrivals, 50):6.1f} ms "
                        f"p99 {percentile(arrivals, 99):6.1f} ms ({len(arrivals)} messages)"
                    )
                print(line, flush=True)
                await purge(vhost.url, queues)
        peak_rss.extend(process.peak_rss_mb() for process in path)
        # Every request carried a new provider id, so this must be 0: a suppressed retry
        # costs the gateway almost nothing and would flatter the figures.
        duplicates = await metric_total(gateway.port, "gateway_duplicates_suppressed")
    g, b = results["gateway"], results["baseline"]
    summary: dict[str, object] = {
        "mode": (
            "ingest: webhook to inbound queue, gateway run --role ingest"
            if not args.end_to_end
            else "end-to-end: webhook to region queue, "
            + ("ingest and router in one process" if args.one_process else "ingest, router: two processes")
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
        e2e = arrivals_of["gateway"]
        summary["e2e_p50_ms"] = round(median([percentile(r, 50) for r in e2e]), 2)
        summary["e2e_p99_ms"] = round(median([percentile(r, 99) for r in e2e]), 2)
        summary["e2e_routed"] = sum(len(r) for r in e2e)
        # The webhook rate alone flatters a router that falls behind: this is the rate at which
        # messages reached their region queue during the measured windows.
        summary["e2e_throughput"] = round(median(rates_of["gateway"]), 1)
        summary["e2e_ratio"] = round(summary["e2e_throughput"] / summary["baseline_throughput"], 3)  # type: ignore[operator]
        two_hop = arrivals_of["two_hop"]
        summary["two_hop_throughput"] = round(median(rates_of["two_hop"]), 1)
        summary["two_hop_p50_ms"] = round(median([percentile(r, 50) for r in two_hop]), 2)
        summary["two_hop_p99_ms"] = round(median([percentile(r, 99) for r in two_hop]), 2)
        two_hop_cpu = [r.cpu_us_per_request for r in results["two_hop"]]
        summary["two_hop_cpu_us_per_request"] = round(median(two_hop_cpu))
        summary["two_hop_ratio"] = round(summary["two_hop_throughput"] / summary["baseline_throughput"], 3)  # type: ignore[operator]
        summary["e2e_vs_two_hop"] = round(summary["e2e_throughput"] / summary["two_hop_throughput"], 3)  # type: ignore[operator]
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
    parser.add_argument(
        "--end-to-end", action="store_true", help="ingest and router; time webhook to region queue"
    )
    parser.add_argument(
        "--one-process", action="store_true", help="with --end-to-end: ingest and router in one process"
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
