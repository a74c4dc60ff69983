"""The exact sequence behind the leader-kill loss, forced on the three-node cluster.

On RabbitMQ 3.10 a channel's first publish to a quorum queue goes to the leader named in the
queue's record. While that node is down and the record not yet updated, the broker rejects the
publish (basic.nack) and keeps rejecting that channel's publishes to the queue until the node is
back. In an AMQP transaction the rejection was silent: tx.commit-ok came, the batch's inbound acks
were applied, the messages were gone. Here the target queue has two members, so with its
leader's node killed it has no quorum and the record stays stale for as long as the node is
down: the rejection is certain, not a race. The batch consumer must hold the inbound messages
until the broker confirms their publish, however long that takes.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import aio_pika
import pytest

from gateway.broker.amqp import AmqpBroker
from gateway.broker.base import BatchOutcome, Delivery, Message, Publish
from gateway.domain.topology import Queue, Topology
from gateway.support.metrics import Metrics
from scripts.rabbitmq_cluster import Cluster
from tests.conftest import drain

pytestmark = [pytest.mark.broker, pytest.mark.cluster]

INBOUND = "leader-loss.in"
TARGET = "leader-loss.target"
MESSAGES = 20


async def published_to(url: str, queue: str, bodies: list[bytes]) -> None:
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        for body in bodies:
            await channel.default_exchange.publish(aio_pika.Message(body, delivery_mode=2), queue)
    finally:
        await connection.close()


async def test_a_publish_rejected_while_the_target_has_no_leader_is_held_not_lost(
    cluster: Cluster, cluster_vhost: tuple[str, str]
) -> None:
    urls = cluster_vhost[1].split(",")
    node1, node2, node3 = urls
    target_arguments = {"x-queue-type": "quorum", "x-quorum-initial-group-size": 2}
    connection = await aio_pika.connect(node1)  # declared on node 1: its leader is there
    try:
        channel = await connection.channel()
        await channel.declare_queue(TARGET, durable=True, arguments=target_arguments)
    finally:
        await connection.close()
    topology = Topology(
        exchanges=(),
        queues=(Queue(INBOUND, {"x-queue-type": "quorum"}), Queue(TARGET, target_arguments)),
        bindings=(),
        inbound_shards=1,
    )
    metrics = Metrics()
    broker = AmqpBroker([node2, node3], metrics=metrics, publish_timeout=3.0)

    async def forward(deliveries: list[Delivery]) -> BatchOutcome:
        return BatchOutcome(
            publishes=[
                Publish(
                    "",
                    TARGET,
                    Message(d.message.body, d.message.message_id, "c", "test", datetime.now(UTC)),
                )
                for d in deliveries
            ]
        )

    bodies = [json.dumps({"n": n}).encode() for n in range(MESSAGES)]
    try:
        await broker.start(topology)
        assert await broker.wait_ready(30)
        await broker.consume_batches(INBOUND, forward, batch_size=8)
        await asyncio.to_thread(cluster.kill, 1)
        await published_to(node3, INBOUND, bodies)
        for _ in range(100):  # the first publish to the leaderless target has been rejected
            if metrics.publish_retries.labels("")._value.get() > 0:
                break
            await asyncio.sleep(0.1)
        else:
            pytest.fail("no publish to the leaderless queue was rejected: the sequence was not forced")
        state = next(s for s in broker.consumers() if s.queue == INBOUND)
        assert state.delivered - state.settled > 0, "the rejected batch's inbound messages were acked"
        await asyncio.to_thread(cluster.restart, 1)
        arrived: set[bytes] = set()
        for _ in range(60):  # quorum again: the held batch gets through
            arrived |= {m.body for m in await drain(node2, [TARGET], idle=0.3)}
            if arrived >= set(bodies):
                break
            await asyncio.sleep(0.5)
    finally:
        await broker.close()
        if not cluster.running(cluster.node(1)):
            await asyncio.to_thread(cluster.restart, 1)
    assert arrived >= set(bodies), f"{len(set(bodies) - arrived)} of {MESSAGES} acked inbound and lost"
    assert await drain(node2, [INBOUND], idle=0.3) == [], "left behind in the inbound queue"
