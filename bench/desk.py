"""Desk benchmark: how fast the desk role stores a filled region queue in
PostgreSQL, against a bare insert loop in the same run, and how long a message
takes from the region queue to an open console (its server-sent event).

    .venv/bin/python bench/desk.py [--messages 5000] [--rate 50] [--duration 10]

1. drain: N envelopes are queued in gw.region.zuidoost-brabant.normal, then
   `gateway run --role desk` starts; the rate is N over the time until all N are
   in the database. The bare baseline inserts the same N rows, one transaction
   each, with asyncpg.
2. console: with the desk running and a counsellor's /api/v1/events stream open,
   envelopes are published at a steady rate; the latency of each is the time from
   its publish to its `changed` event.

Needs GATEWAY_TEST_DATABASE_URL or --database-url (PostgreSQL). Last line: JSON
with desk_msgs_per_s, bare_msgs_per_s, ratio, console_p50_ms, console_p99_ms.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import aio_pika
import aiohttp
import asyncpg
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script

from gateway.domain.envelope import ChannelRef, Envelope, Route
from gateway.support.passwords import hash_password
from tests.helpers.desk import Counsellors
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

PASSWORD = "bench-counsellor-password"
TEAM = "zuidoost-brabant"


def envelope(n: int, tag: str, conversations: int = 500) -> Envelope:
    return Envelope(
        id=str(uuid.uuid4()),
        conversation_id=f"c_{tag}_{n % conversations}",
        channel=ChannelRef(kind="http-json", instance="http-json-zuidoost-brabant"),
        region=TEAM,
        received_at=datetime.now(UTC),
        text="Ik wil graag iemand spreken over wat er thuis gebeurt.",
        sender="p_bench",
        reply_handle="g1.bench",
        route=Route(queue=f"gw.region.{TEAM}.normal", reason="bench"),
    )


async def publish(
    url: str, items: list[Envelope], rate: float | None = None, sent: dict[str, float] | None = None
) -> None:
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange("gw.region", ensure=False)
        started = time.perf_counter()
        for n, item in enumerate(items):
            if rate:
                delay = started + n / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            if sent is not None:
                sent[item.conversation_id] = time.perf_counter()
            await exchange.publish(
                aio_pika.Message(item.to_json(), message_id=item.id, delivery_mode=2), f"{TEAM}.normal"
            )
    finally:
        await connection.close()


async def stored(database_url: str) -> int:
    connection = await asyncpg.connect(database_url)
    try:
        return int(await connection.fetchval("SELECT count(*) FROM desk_messages"))
    finally:
        await connection.close()


async def bare_inserts(database_url: str, items: list[Envelope]) -> float:
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute(
            "CREATE TEMP TABLE bare (id text primary key, conversation text, body text, at timestamptz)"
        )
        started = time.perf_counter()
        for item in items:
            async with connection.transaction():
                await connection.execute(
                    "INSERT INTO bare VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                    item.id,
                    item.conversation_id,
                    item.text,
                    item.received_at,
                )
        return len(items) / (time.perf_counter() - started)
    finally:
        await connection.close()


async def run(args: argparse.Namespace) -> dict[str, object]:
    async with scratch_database(args.database_url, "gw_bench") as bench_db:
        return await run_in(args, bench_db)


async def run_in(args: argparse.Namespace, bench_db: str) -> dict[str, object]:
    config_dir = Path(tempfile.mkdtemp(prefix="bench-desk-"))
    try:
        shutil.rmtree(config_dir)
        shutil.copytree(ROOT / "config", config_dir)
        account = {"id": "bench", "name": "Bench", "team": TEAM, "password_hash": hash_password(PASSWORD)}
        (config_dir / "counsellors.yaml").write_text(yaml.safe_dump({"counsellors": [account]}))
        with Vhost(args.amqp_url) as vhost:
            env = python_env(
                GATEWAY_AMQP_URL=vhost.url,
                GATEWAY_DATABASE_URL=bench_db,
                GATEWAY_CONFIG=str(config_dir),
                GATEWAY_SECRET_KEY="bench-secret-key-0123456789abcdef0123456789",
                GATEWAY_LOG_LEVEL="WARNING",
            )
            port = free_port()
            command = [PYTHON, "-m", "gateway.cli", "run", "--port", str(port), "--role", "desk"]
            with Process(command, env, port, log_path=Path(args.log_dir) / "desk.log") as first:
                await first.wait_ready()  # declares the topology and migrates, then stops
            tag = uuid.uuid4().hex[:6]
            items = [envelope(n, tag) for n in range(args.messages)]
            await publish(vhost.url, items)
            with Process(command, env, port, log_path=Path(args.log_dir) / "desk.log") as desk:
                await desk.wait_ready()
                first = await stored(bench_db)
                while first == 0:  # timed from the first stored message: start-up is not the desk's rate
                    await asyncio.sleep(0.01)
                    first = await stored(bench_db)
                started = time.perf_counter()
                while await stored(bench_db) < args.messages:  # noqa: ASYNC110 - polling the database
                    await asyncio.sleep(0.05)
                desk_rate = (args.messages - first) / (time.perf_counter() - started)
                bare_rate = await bare_inserts(bench_db, items)
                latencies = await console_latency(vhost.url, port, args)
        return {
            "messages": args.messages,
            "desk_msgs_per_s": round(desk_rate, 1),
            "bare_msgs_per_s": round(bare_rate, 1),
            "ratio": round(desk_rate / bare_rate, 3),
            "console_events": len(latencies),
            "console_p50_ms": round(percentile(latencies, 50), 2),
            "console_p99_ms": round(percentile(latencies, 99), 2),
            "note": "desk: from its first stored message to the last; bare: one transaction per row",
        }
    finally:
        shutil.rmtree(config_dir, ignore_errors=True)


async def console_latency(amqp_url: str, port: int, args: argparse.Namespace) -> list[float]:
    base = f"http://127.0.0.1:{port}"
    sent: dict[str, float] = {}
    latencies: list[float] = []
    async with aiohttp.ClientSession() as session:
        token = (await Counsellors(PASSWORD).sign_in(session, base, "bench"))["token"]
        tag = uuid.uuid4().hex[:6]
        count = int(args.rate * args.duration)
        items = [envelope(n, tag, conversations=count) for n in range(count)]  # each event names one message
        async with session.get(
            f"{base}/api/v1/events", headers={"Authorization": f"Bearer {token}"}
        ) as stream:
            publisher = asyncio.create_task(publish(amqp_url, items, args.rate, sent))

            async def read() -> None:
                async for line in stream.content:
                    text = line.decode().strip()
                    if text.startswith("data: "):
                        at = sent.pop(text[6:], None)
                        if at is not None:
                            latencies.append((time.perf_counter() - at) * 1000)
                    if len(latencies) >= len(items):
                        return

            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(read(), args.duration + 30)
            await publisher
    return sorted(latencies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--rate", type=float, default=50.0, help="messages per second in the console phase")
    parser.add_argument("--duration", type=float, default=10.0)
    database_argument(parser)
    common_arguments(parser)
    run_and_print(parser, run)


if __name__ == "__main__":
    main()
