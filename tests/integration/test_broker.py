"""The broker promises, against the real RabbitMQ."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime

import aio_pika
import pytest

from adapters.http_json.cases import HTTP_JSON_CHANNEL
from gateway.broker.amqp import AmqpBroker
from gateway.broker.base import (
    BatchOutcome,
    BrokerUnavailable,
    ConsumerState,
    Delivery,
    Message,
    Unroutable,
    consumers_ready,
)
from gateway.roles.queue_monitor import sample_queue_depths
from gateway.service import build_service, topology_for
from gateway.support.metrics import Metrics
from tests.conftest import (
    EXAMPLE_CONFIG,
    auth,
    drain,
    inbound_queues,
    make_vhost,
    purge_all,
    rabbitmqctl,
    settings_for,
    with_broker_settings,
)

pytestmark = pytest.mark.broker


def message(n: int) -> Message:
    return Message(
        body=json.dumps({"n": n}).encode(),
        message_id=f"id-{n}",
        correlation_id="conv-1",
        type="gateway.envelope.v1",
        timestamp=datetime(2026, 5, 4, 3, 2, 1, tzinfo=UTC),
        headers={"channel-kind": "http-json"},
    )


async def started_broker(url: str, config, **kwargs) -> AmqpBroker:
    broker = AmqpBroker([url], metrics=kwargs.pop("metrics", None), **kwargs)
    await broker.start(topology_for(config))
    assert await broker.wait_ready(20)
    return broker


async def test_publish_then_consume_round_trip_with_all_properties(vhost, config) -> None:
    url = vhost[1]
    await purge_all(url, config)
    broker = await started_broker(url, config)
    received: asyncio.Queue[Delivery] = asyncio.Queue()

    async def handler(delivery: Delivery) -> None:
        await received.put(delivery)
        await delivery.ack()

    try:
        await broker.consume("gw.region.utrecht.urgent", handler)
        await broker.publish("gw.region", "utrecht.urgent", message(1))
        delivery = await asyncio.wait_for(received.get(), 10)
    finally:
        await broker.close()
    got = delivery.message
    assert got.body == b'{"n": 1}'
    assert got.message_id == "id-1" and got.correlation_id == "conv-1"
    assert got.type == "gateway.envelope.v1" and got.content_type == "application/json"
    assert got.timestamp == datetime(2026, 5, 4, 3, 2, 1, tzinfo=UTC).replace(tzinfo=None) or (
        got.timestamp.replace(tzinfo=UTC) == datetime(2026, 5, 4, 3, 2, 1, tzinfo=UTC)
    )
    assert got.headers["channel-kind"] == "http-json"  # headers pass through untouched
    assert not delivery.redelivered


async def test_messages_are_persistent(vhost, config) -> None:
    url = vhost[1]
    await purge_all(url, config)
    broker = await started_broker(url, config)
    try:
        await broker.publish("gw.region", "utrecht.normal", message(2))
    finally:
        await broker.close()
    [got] = await drain(url, ["gw.region.utrecht.normal"])
    assert got.delivery_mode == aio_pika.DeliveryMode.PERSISTENT


async def test_unroutable_publish_is_raised_not_lost_and_the_link_survives(vhost, config) -> None:
    url = vhost[1]
    await purge_all(url, config)
    metrics = Metrics()
    broker = await started_broker(url, config, metrics=metrics)
    try:
        with pytest.raises(Unroutable):
            await broker.publish("gw.inbound", "99", message(3))
        await broker.publish("gw.region", "utrecht.urgent", message(4))
        await broker.publish("gw.region", "atlantis.urgent", message(5))  # the alternate exchange
        assert broker.ready
    finally:
        await broker.close()
    assert metrics.publish_failures.labels("gw.inbound", "unroutable")._value.get() == 1
    assert [m.message_id for m in await drain(url, ["gw.region.utrecht.urgent"])] == ["id-4"]
    assert [m.message_id for m in await drain(url, ["gw.unroutable"])] == ["id-5"]


async def test_poison_message_is_dead_lettered_after_the_delivery_limit(vhost, config) -> None:
    url = vhost[1]
    await purge_all(url, config)
    broker = await started_broker(url, config)
    attempts: list[int] = []

    async def poisoned(delivery: Delivery) -> None:
        attempts.append(delivery.delivery_count)
        raise ValueError("cannot handle this message")

    try:
        await broker.consume("gw.inbound.0", poisoned, prefetch=1)
        await broker.publish("gw.inbound", "0", message(5))
        dead: list[aio_pika.abc.AbstractIncomingMessage] = []
        for _ in range(50):
            dead = await drain(url, ["gw.dead"], idle=0.3)
            if dead:
                break
    finally:
        await broker.close()
    assert [m.message_id for m in dead] == ["id-5"]
    assert dead[0].headers["x-first-death-reason"] == "delivery_limit"
    assert dead[0].headers["x-first-death-queue"] == "gw.inbound.0"
    assert len(attempts) == config.service.broker.delivery_limit + 1


async def test_unreachable_broker_means_503_and_not_ready(config) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    fast = with_broker_settings(config, publish_timeout_seconds=1.0)
    service = build_service(settings_for("amqp://guest:guest@127.0.0.1:1/"), fast)
    async with TestClient(TestServer(service.app)) as client:
        ready = await client.get("/readyz")
        assert ready.status == 503
        assert (await ready.json())["checks"]["broker"] is False
        started = time.monotonic()
        body = {"message_id": "down-1", "sender": "s", "text": "hallo"}
        response = await client.post(f"/channels/{HTTP_JSON_CHANNEL}/webhook", json=body, headers=auth())
        assert response.status == 503
        assert response.headers["Retry-After"]
        assert (await response.json())["error"] == "broker_unavailable"
        assert time.monotonic() - started < 5
        assert (await client.get("/healthz")).status == 200


async def test_a_retry_with_the_same_message_id_is_one_message(rabbit_service, vhost) -> None:
    service, client = rabbit_service
    body = {"message_id": "retry-1", "sender": "s", "text": "hallo"}
    url = f"/channels/{HTTP_JSON_CHANNEL}/webhook"
    first = await client.post(url, json=body, headers=auth())
    again = await client.post(url, json=body, headers=auth())
    burst = await asyncio.gather(
        *(client.post(url, json={**body, "message_id": "retry-2"}, headers=auth()) for _ in range(10))
    )
    assert first.status == again.status == 202
    assert [r.status for r in burst] == [202] * 10
    assert (await first.json())["ids"] == (await again.json())["ids"]
    messages = await drain(vhost[1], inbound_queues(service.config))
    assert sorted(m.message_id for m in messages) == sorted(
        {(await first.json())["ids"][0], (await burst[0].json())["ids"][0]}
    )
    assert service.metrics.duplicates.labels("http-json")._value.get() == 10


def test_topology_command_is_idempotent(amqp_base_url) -> None:
    name, url = make_vhost(amqp_base_url)
    env = {**os.environ, "GATEWAY_AMQP_URL": url, "GATEWAY_CONFIG": str(EXAMPLE_CONFIG)}
    try:
        for _ in range(2):
            result = subprocess.run(
                [sys.executable, "-m", "gateway.cli", "topology"],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert result.returncode == 0, result.stderr
            assert json.loads(result.stdout.strip().splitlines()[-1])["declared"] is True
        listed = rabbitmqctl("list_queues", "-p", name, "name", "type", "--no-table-headers", "-q")
        assert "gw.region.rotterdam-rijnmond.urgent\tquorum" in listed
        assert "gw.inbound.0\tquorum" in listed
        assert "amqp://guest:guest" not in result.stdout, "the password was printed"
    finally:
        rabbitmqctl("delete_vhost", name)


async def test_connections_closed_mid_run_lose_nothing(rabbit_service, vhost) -> None:
    """Clients keep posting while the broker closes every connection of the vhost."""
    service, client = rabbit_service
    vhost_name, url = vhost
    accepted: dict[str, str] = {}
    statuses: list[int] = []
    readiness: list[tuple[float, int]] = []
    stop = asyncio.Event()
    counter = iter(range(1_000_000))

    async def poster() -> None:
        while not stop.is_set():
            n = next(counter)
            body = {"message_id": f"load-{n}", "sender": f"person-{n % 17}", "text": f"bericht {n}"}
            response = await client.post(f"/channels/{HTTP_JSON_CHANNEL}/webhook", json=body, headers=auth())
            statuses.append(response.status)
            if response.status == 202:
                accepted[f"load-{n}"] = (await response.json())["ids"][0]
            else:
                await response.read()

    async def watch_readiness() -> None:
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            response = await client.get("/readyz")
            readiness.append((loop.time(), response.status))
            await asyncio.sleep(0.01)

    tasks = [asyncio.create_task(poster()) for _ in range(20)]
    tasks.append(asyncio.create_task(watch_readiness()))
    await asyncio.sleep(1.5)
    before = len(accepted)
    await asyncio.to_thread(rabbitmqctl, "close_all_connections", "--vhost", vhost_name, "test")
    await asyncio.sleep(3.0)
    stop.set()
    await asyncio.gather(*tasks)

    assert before > 0 and len(accepted) > before, "load did not continue after the reconnect"
    assert set(statuses) <= {202, 503}, set(statuses)
    states = [status for _, status in readiness]
    assert 503 in states, "/readyz never reported the lost link"
    assert states[-1] == 200, "the service did not recover"
    assert states[0] == 200
    messages = await drain(url, inbound_queues(service.config))
    delivered = [m.message_id for m in messages]
    missing = set(accepted.values()) - set(delivered)
    duplicates = len(delivered) - len(set(delivered))
    print(
        f"\naccepted={len(accepted)} delivered={len(delivered)} unique={len(set(delivered))} "
        f"duplicates={duplicates} 503s={statuses.count(503)}"
    )
    assert not missing, f"{len(missing)} messages answered 202 are not in the queue"
    assert service.metrics.broker_reconnects._value.get() >= 2


async def test_consumers_are_reattached_after_the_broker_closes_the_link(vhost, config) -> None:
    vhost_name, url = vhost
    await purge_all(url, config)
    broker = await started_broker(url, config)
    received: asyncio.Queue[str] = asyncio.Queue()

    async def handler(delivery: Delivery) -> None:
        await delivery.ack()
        await received.put(delivery.message.message_id)

    try:
        await broker.consume("gw.region.zeeland.normal", handler)
        await broker.publish("gw.region", "zeeland.normal", message(10))
        assert await asyncio.wait_for(received.get(), 10) == "id-10"
        await asyncio.to_thread(rabbitmqctl, "close_all_connections", "--vhost", vhost_name, "test")
        await broker.publish("gw.region", "zeeland.normal", message(11))  # waits for the new link
        assert await asyncio.wait_for(received.get(), 10) == "id-11"
        assert broker.ready
    finally:
        await broker.close()


@pytest.mark.parametrize("kind", ["one by one", "in batches"])
async def test_a_consumer_the_broker_cancels_is_not_ready_and_is_reattached(vhost, config, kind) -> None:
    """The broker may cancel a consumer on an open channel (basic.cancel: its queue deleted,
    a quorum queue's member gone). Nothing closes then, so without a watch the role would
    stay idle on that queue and still say ready."""
    _, url = vhost
    await purge_all(url, config)
    broker = await started_broker(url, config)
    received: asyncio.Queue[str] = asyncio.Queue()
    queue = "gw.region.zeeland.normal" if kind == "one by one" else "gw.inbound.0"

    async def handler(delivery: Delivery) -> None:
        await delivery.ack()
        await received.put(delivery.message.message_id)

    async def batch_handler(deliveries: list[Delivery]) -> BatchOutcome:
        for delivery in deliveries:
            await received.put(delivery.message.message_id)
        return BatchOutcome()

    def state() -> ConsumerState:
        return next(s for s in broker.consumers() if s.queue == queue)

    try:
        if kind == "one by one":
            await broker.consume(queue, handler)
        else:
            await broker.consume_batches(queue, batch_handler)
        assert state().consuming and state().attached == 1
        connection = await aio_pika.connect(url)
        try:
            channel = await connection.channel()
            await channel.queue_delete(queue)  # the broker cancels our consumer; our channel stays open
        finally:
            await connection.close()
        for _ in range(100):
            if state().attached == 2 and state().consuming:
                break
            await asyncio.sleep(0.1)
        assert state().attached == 2 and state().consuming, "the cancelled consumer was never re-attached"
        assert consumers_ready(broker.consumers())
        # The queue was declared again with the topology on the new link, and is consumed.
        routing = ("gw.region", "zeeland.normal") if kind == "one by one" else ("gw.inbound", "0")
        await broker.publish(*routing, message(12))
        assert await asyncio.wait_for(received.get(), 10) == "id-12"
    finally:
        await broker.close()
    assert not consumers_ready(broker.consumers())  # closed: no longer consuming anything


async def test_queue_depths_are_sampled_into_the_metric(vhost, config) -> None:
    url = vhost[1]
    await purge_all(url, config)
    metrics = Metrics()
    broker = await started_broker(url, config, metrics=metrics)
    try:
        for n in range(3):
            await broker.publish("gw.dead", "gw.inbound.0", message(100 + n))
        await broker.publish("gw.region", "utrecht.normal", message(200))
        queues = ["gw.dead", "gw.region.utrecht.normal", "gw.region.utrecht.urgent", "no.such.queue"]
        await sample_queue_depths(broker, queues, metrics)
        depth = metrics.registry.get_sample_value
        assert depth("gateway_queue_messages", {"queue": "gw.dead"}) == 3
        assert depth("gateway_queue_messages", {"queue": "gw.region.utrecht.normal"}) == 1
        assert depth("gateway_queue_messages", {"queue": "gw.region.utrecht.urgent"}) == 0
        assert depth("gateway_queue_messages", {"queue": "no.such.queue"}) is None
        assert broker.ready, "a queue that does not exist must not take the link down"
    finally:
        await broker.close()
        await purge_all(url, config)


async def test_a_confirm_overdue_means_not_ready_and_a_reconnect(vhost, config) -> None:
    """A broker that takes the message but never confirms (a paused node keeps its socket):
    the publish answers BrokerUnavailable within the timeout and readiness drops at once."""
    url = vhost[1]
    await purge_all(url, config)
    metrics = Metrics()
    broker = await started_broker(url, config, metrics=metrics, publish_timeout=0.5)
    try:
        underlay = broker._underlay
        assert underlay is not None
        never_confirmed = asyncio.get_running_loop().create_future()

        async def hangs(*args: object, **kwargs: object) -> object:
            return await never_confirmed

        underlay.basic_publish = hangs  # type: ignore[method-assign]
        with pytest.raises(BrokerUnavailable):
            await broker.publish("gw.region", "utrecht.normal", message(300))
        assert not broker.ready, "/readyz must not say ready while confirms are overdue"
        assert await broker.wait_ready(20), "it reconnects by itself"
        assert metrics.broker_reconnects._value.get() >= 2
        await broker.publish("gw.region", "utrecht.normal", message(301))
    finally:
        await broker.close()
    assert [m.message_id for m in await drain(url, ["gw.region.utrecht.normal"])] == ["id-301"]
