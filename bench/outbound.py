"""Outbound send rate and latency against a local fake Twilio API.

Two measurements, each for `gateway run --role outbound` and, in the same run, a
bare mover process (aio-pika consume, one aiohttp POST of the same form to the
same fake, ack; no twilio client, no unsealing, no sent-replies store):

1. drain: N replies are queued in gw.outbound first, then the consumer starts;
   the send rate is N over the time from its first to its last provider call;
2. steady: replies are published at a fixed rate while the consumer runs; the
   latency of each is the time from its publish to the fake receiving the call.

    .venv/bin/python bench/outbound.py [--replies 5000] [--rate 200] [--duration 10]

Last line: one JSON object with send_rate, bare_send_rate, ratio, p50_ms, p99_ms,
bare_p50_ms, bare_p99_ms (the gateway's sent-replies store is the embedded
SQLite one unless --database-url is given).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import aio_pika
import yaml
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script

from gateway.domain.envelope import ChannelRef, OutboundMessage
from gateway.service import load_config
from gateway.support.keys import Keyring
from tests.helpers.harness import (
    PYTHON,
    ROOT,
    Process,
    Vhost,
    common_arguments,
    free_port,
    percentile,
    purge,
    python_env,
    run_and_print,
)

SECRET = "bench-secret-key-0123456789abcdef0123456789"
CHANNEL = "sms-zuidoost-brabant"
ACCOUNT_SID, AUTH_TOKEN = "AC" + "0" * 32, "bench-auth-token-0123456789abcdef"
QUEUE = "gw.outbound"


class FakeTwilio:
    """Answers every Messages.json POST with 201 and notes when each reply's call arrived."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        self.port = free_port()

    async def start(self) -> web.AppRunner:
        async def create(request: web.Request) -> web.Response:
            form = await request.post()
            self.arrived[str(form["Body"])] = time.perf_counter()
            return web.json_response({"sid": "SM" + uuid.uuid4().hex, "status": "queued"}, status=201)

        app = web.Application()
        app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", create)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()
        return runner

    async def wait_for(self, bodies: set[str], limit: float = 300) -> None:
        deadline = time.perf_counter() + limit
        while not bodies <= self.arrived.keys():
            if time.perf_counter() > deadline:
                raise RuntimeError(
                    f"only {len(bodies & self.arrived.keys())} of {len(bodies)} replies arrived"
                )
            await asyncio.sleep(0.05)


def reply(keyring: Keyring, handle: str, body: str) -> aio_pika.Message:
    message = OutboundMessage(
        id=str(uuid.uuid4()),
        conversation_id=f"c_{body}",
        channel=ChannelRef(kind="sms", instance=CHANNEL),
        reply_handle=handle,
        text=body,
        origin="counsellor",
        created_at=datetime.now(UTC),
    )
    return aio_pika.Message(
        message.to_json(), message_id=message.id, delivery_mode=aio_pika.DeliveryMode.PERSISTENT
    )


async def publish(
    url: str, messages: list[aio_pika.Message], rate: float | None, sent: dict[str, float]
) -> None:
    """Publish with confirms, as fast as possible or at `rate` per second."""
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange("gw.outbound", ensure=False)
        started = time.perf_counter()
        for n, message in enumerate(messages):
            if rate is not None:
                delay = started + n / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            sent[OutboundMessage.from_json(message.body).text] = time.perf_counter()
            await exchange.publish(message, f"sms.{CHANNEL}")
    finally:
        await connection.close()


async def bare_mover(url: str, target: str) -> None:
    """The baseline: consume, POST the same form to the fake, ack. Runs until killed."""
    import aiohttp

    keyring = Keyring(SECRET)
    connection = await aio_pika.connect(url)
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=32)
    queue = await channel.get_queue(QUEUE, ensure=False)
    session = aiohttp.ClientSession(auth=aiohttp.BasicAuth(ACCOUNT_SID, AUTH_TOKEN))

    async def move(incoming: aio_pika.abc.AbstractIncomingMessage) -> None:
        data = json.loads(incoming.body)
        form = {
            "To": keyring.unseal(data["reply_handle"])["address"],
            "From": "+3197010580001",
            "Body": data["text"],
        }
        async with session.post(f"{target}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json", data=form) as r:
            await r.read()
        await incoming.ack()

    await queue.consume(move)
    print("ready", flush=True)
    await asyncio.Event().wait()


async def measure(
    consumer: Process, url: str, fake: FakeTwilio, args: argparse.Namespace
) -> dict[str, float]:
    keyring = Keyring(SECRET)
    handle = keyring.seal({"channel": CHANNEL, "kind": "sms", "address": "+31612345678", "at": "x"})
    # 1. drain
    tag = uuid.uuid4().hex[:6]
    queued = [reply(keyring, handle, f"drain-{tag}-{n}") for n in range(args.replies)]
    await publish(url, queued, None, {})
    with consumer:
        await consumer.wait_ready()
        await fake.wait_for({f"drain-{tag}-{n}" for n in range(args.replies)})
        times = [fake.arrived[f"drain-{tag}-{n}"] for n in range(args.replies)]
        send_rate = args.replies / (max(times) - min(times))
        # 2. steady rate
        count = int(args.rate * args.duration)
        sent: dict[str, float] = {}
        steady = [reply(keyring, handle, f"steady-{tag}-{n}") for n in range(count)]
        await publish(url, steady, args.rate, sent)
        await fake.wait_for(set(sent))
        latencies = sorted((fake.arrived[body] - at) * 1000 for body, at in sent.items())
    return {"send_rate": send_rate, "p50_ms": percentile(latencies, 50), "p99_ms": percentile(latencies, 99)}


async def run(args: argparse.Namespace) -> dict[str, object]:
    fake = FakeTwilio()
    runner = await fake.start()
    config_dir = Path(tempfile.mkdtemp(prefix="bench-outbound-"))
    try:
        shutil.rmtree(config_dir)
        shutil.copytree(ROOT / "config", config_dir)
        path = config_dir / "channels" / f"{CHANNEL}.yaml"
        data = yaml.safe_load(path.read_text())
        data["settings"]["api_base_url"] = f"http://127.0.0.1:{fake.port}"
        path.write_text(yaml.safe_dump(data))
        secrets = {
            "GW_SMS_ZUIDOOST_BRABANT_ACCOUNT_SID": ACCOUNT_SID,
            "GW_SMS_ZUIDOOST_BRABANT_AUTH_TOKEN": AUTH_TOKEN,
        }
        os.environ.update(secrets)
        with Vhost(args.amqp_url) as vhost:
            env = python_env(
                GATEWAY_AMQP_URL=vhost.url,
                GATEWAY_SECRET_KEY=SECRET,
                GATEWAY_CONFIG=str(config_dir),
                GATEWAY_LOG_LEVEL="WARNING",
                **secrets,
            )
            if args.database_url:
                env["GATEWAY_DATABASE_URL"] = args.database_url

            def outbound_process() -> Process:
                port = free_port()
                command = [PYTHON, "-m", "gateway.cli", "run", "--port", str(port), "--role", "outbound"]
                return Process(command, env, port, log_path=Path(args.log_dir) / "outbound.log")

            with outbound_process() as gateway:  # declares the topology, then stops so the replies queue up
                await gateway.wait_ready()
            results: dict[str, list[dict[str, float]]] = {"gateway": [], "bare": []}
            for round_ in range(args.rounds):
                for name in ("bare", "gateway"):
                    await purge(vhost.url, [QUEUE])
                    if name == "gateway":
                        consumer = outbound_process()
                    else:
                        consumer = BareProcess(vhost.url, f"http://127.0.0.1:{fake.port}", args.log_dir)
                    result = await measure(consumer, vhost.url, fake, args)
                    results[name].append(result)
                    print(
                        f"round {round_ + 1} {name:<8} {result['send_rate']:7.0f} replies/s  "
                        f"steady p50 {result['p50_ms']:6.1f} ms  p99 {result['p99_ms']:6.1f} ms",
                        flush=True,
                    )
        load_config(config_dir)  # still valid: nothing above changed it
    finally:
        await runner.cleanup()
        shutil.rmtree(config_dir, ignore_errors=True)

    def med(name: str, key: str) -> float:
        values = sorted(r[key] for r in results[name])
        return round(values[len(values) // 2], 2)

    summary: dict[str, object] = {
        "mode": "outbound: gw.outbound to a fake Twilio Messages API, sms channel",
        "replies": args.replies,
        "steady_rate": args.rate,
        "rounds": args.rounds,
        "store": "postgresql" if args.database_url else "embedded sqlite",
        "send_rate": med("gateway", "send_rate"),
        "bare_send_rate": med("bare", "send_rate"),
        "p50_ms": med("gateway", "p50_ms"),
        "p99_ms": med("gateway", "p99_ms"),
        "bare_p50_ms": med("bare", "p50_ms"),
        "bare_p99_ms": med("bare", "p99_ms"),
    }
    summary["ratio"] = round(summary["send_rate"] / summary["bare_send_rate"], 3)  # type: ignore[operator]
    return summary


class BareProcess(Process):
    def __init__(self, url: str, target: str, log_dir: str) -> None:
        super().__init__(
            [PYTHON, __file__, "--bare-mover", url, target],
            python_env(),
            0,
            log_path=Path(log_dir) / "bare-mover.log",
        )

    async def wait_ready(self, limit: float = 60) -> None:
        assert self.log_path is not None
        deadline = time.perf_counter() + limit
        while "ready" not in self.log_path.read_text(errors="replace"):
            if time.perf_counter() > deadline:
                raise RuntimeError("the bare mover did not start")
            await asyncio.sleep(0.1)

    def cpu_seconds(self) -> float:
        return 0.0


def main() -> None:
    if sys.argv[1:2] == ["--bare-mover"]:
        asyncio.run(bare_mover(sys.argv[2], sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replies", type=int, default=5000, help="queued replies in the drain phase")
    parser.add_argument("--rate", type=float, default=200, help="replies per second in the steady phase")
    parser.add_argument("--duration", type=float, default=10, help="seconds of the steady phase")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database-url", default=os.environ.get("GATEWAY_DATABASE_URL"))
    common_arguments(parser)
    run_and_print(parser, run)


if __name__ == "__main__":
    main()
