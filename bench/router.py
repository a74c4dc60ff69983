"""Router drain rate: fill the inbound shard queues with N envelopes, start
`gateway run --role router`, and time until all N are in region queues. For scale,
the same run times a bare aio-pika mover (consume, publish with confirm, ack, one
message at a time) on the same messages.

    .venv/bin/python bench/router.py [--messages 20000]

Last line: one JSON object with router_msgs_per_s, bare_msgs_per_s and ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import aio_pika

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script

from gateway.broker.amqp import AmqpBroker
from gateway.broker.base import Message
from gateway.domain.envelope import SCHEMA_VERSION, ChannelRef, Envelope
from gateway.domain.topology import inbound_shard
from gateway.service import load_config, topology_for
from tests.helpers.harness import PYTHON, ROOT, Process, Vhost, free_port, purge, python_env

SECRET = "bench-secret-key-0123456789abcdef0123456789"
OPEN_MONDAY_MORNING = "2025-11-24T10:00:00+01:00"


def envelopes(count: int) -> list[Envelope]:
    now = datetime.now(UTC)
    return [
        Envelope(id=f"r-{n}", conversation_id=f"c_{n % 997}",
                 channel=ChannelRef(kind="http-json", instance="http-json-zuidoost-brabant"),
                 received_at=now, text="Ik wil graag iemand spreken.", sender="p", reply_handle="h")
        for n in range(count)
    ]  # fmt: skip


async def fill(url: str, config, items: list[Envelope]) -> None:
    broker = AmqpBroker([url], publish_timeout=30)
    await broker.start(topology_for(config))
    assert await broker.wait_ready(30)
    shards = config.service.broker.inbound_shards
    try:
        for start in range(0, len(items), 500):
            await asyncio.gather(*(
                broker.publish("gw.inbound", str(inbound_shard(e.conversation_id, shards)),
                               Message(e.to_json(), e.id, e.conversation_id, SCHEMA_VERSION, e.received_at))
                for e in items[start : start + 500]
            ))  # fmt: skip
    finally:
        await broker.close()


async def depth(url: str, queues: list[str]) -> int:
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        total = 0
        for name in queues:
            declared = await channel.declare_queue(name, passive=True)
            total += declared.declaration_result.message_count or 0
        return total
    finally:
        await connection.close()


async def wait_for(url: str, queues: list[str], count: int, started: float, limit: float = 600) -> float:
    """Poll the broker (it has no event to wait on) until `count` messages are in `queues`."""
    deadline = started + limit
    while time.perf_counter() < deadline:
        if await depth(url, queues) >= count:
            return time.perf_counter() - started
        await asyncio.sleep(0.05)
    raise TimeoutError(f"fewer than {count} messages arrived within {limit} s")


async def bare_mover(url: str, sources: list[str], target: str, count: int) -> float:
    """Consume each source queue and republish to the target with confirm, then ack."""
    connection = await aio_pika.connect(url)
    moved = 0
    done = asyncio.Event()
    try:
        channel = await connection.channel(publisher_confirms=True)
        await channel.set_qos(prefetch_count=64)
        exchange = await channel.get_exchange("gw.region")

        async def move(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            nonlocal moved
            await exchange.publish(aio_pika.Message(message.body, delivery_mode=2), target)
            await message.ack()
            moved += 1
            if moved >= count:
                done.set()

        started = time.perf_counter()
        for name in sources:
            await (await channel.get_queue(name, ensure=False)).consume(move)
        await done.wait()
        return time.perf_counter() - started
    finally:
        await connection.close()


async def run(args: argparse.Namespace) -> dict[str, float]:
    os.environ.setdefault("GW_HTTP_JSON_ZUIDOOST_BRABANT_TOKEN", "bench")
    config = load_config(ROOT / "config")
    inbound = [q.name for q in topology_for(config).queues if q.name.startswith("gw.inbound.")]
    region = ["gw.region.zuidoost-brabant.normal", "gw.region.zuidoost-brabant.urgent"]
    items = envelopes(args.messages)
    with Vhost(args.amqp_url) as vhost:
        await fill(vhost.url, config, items)
        port = free_port()
        router = Process(
            [PYTHON, "-m", "gateway.cli", "run", "--port", str(port), "--role", "router"],
            python_env(GATEWAY_AMQP_URL=vhost.url, GATEWAY_SECRET_KEY=SECRET, GATEWAY_LOG_LEVEL="WARNING",
                       GATEWAY_CONFIG=str(ROOT / "config"), GATEWAY_FAKE_TIME=OPEN_MONDAY_MORNING,
                       GW_HTTP_JSON_ZUIDOOST_BRABANT_TOKEN="bench"),
            port,
            log_path=Path(args.log_dir) / "router.log",
        )  # fmt: skip
        started = time.perf_counter()
        with router:
            router_seconds = await wait_for(vhost.url, region, len(items), started)
        await purge(vhost.url, region)
        await fill(vhost.url, config, items)
        bare_seconds = await bare_mover(vhost.url, inbound, "zuidoost-brabant.normal", len(items))
    result = {
        "messages": len(items),
        "router_msgs_per_s": round(len(items) / router_seconds, 1),
        "bare_msgs_per_s": round(len(items) / bare_seconds, 1),
    }
    result["ratio"] = round(result["router_msgs_per_s"] / result["bare_msgs_per_s"], 3)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument(
        "--amqp-url", default=os.environ.get("GATEWAY_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    )
    parser.add_argument("--log-dir", default=str(ROOT / "bench" / "results"))
    args = parser.parse_args()
    Path(args.log_dir).mkdir(parents=True, exist_ok=True)
    result = asyncio.run(run(args))
    print(
        f"router: {result['router_msgs_per_s']} msg/s (start-up included), "
        f"bare mover: {result['bare_msgs_per_s']} msg/s"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
