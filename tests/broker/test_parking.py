"""What is parked in gw.dead and gw.unroutable holds whole messages (a reply to a person
who has left among them), so it expires by the broker policy the definitions carry, no
later than the desk's retention: tested on the real RabbitMQ with a short TTL."""

from __future__ import annotations

import asyncio
import json

import aio_pika
import pytest

from gateway.broker.amqp import declare_topology
from gateway.broker.permissions import definitions
from gateway.domain.topology import DEAD_EXCHANGE, DEAD_QUEUE, UNROUTABLE_QUEUE, parking_policy
from gateway.service import topology_for
from tests.conftest import make_vhost, rabbitmqctl

pytestmark = pytest.mark.broker


def test_the_definitions_let_parked_messages_expire_with_the_desks_retention(config) -> None:
    (policy,) = definitions(config, "veilig-thuis", {})["policies"]
    assert policy["definition"]["message-ttl"] == int(config.service.desk.retention_hours * 3_600_000)
    assert policy["apply-to"] == "queues" and policy["vhost"] == "veilig-thuis"


async def test_a_dead_lettered_message_expires_by_the_policy(amqp_base_url, config) -> None:
    name, url = make_vhost(amqp_base_url)  # a vhost of its own: the policy would empty others' gw.dead
    try:
        connection = await aio_pika.connect(url)
        async with connection:
            await declare_topology(connection, topology_for(config))
            policy = parking_policy(name, retention_hours=1.5 / 3600)  # 1.5 s
            rabbitmqctl(
                "set_policy", "-p", name, "--apply-to", policy["apply-to"],
                "--priority", str(policy["priority"]),
                policy["name"], policy["pattern"], json.dumps(policy["definition"]),
            )  # fmt: skip
            channel = await connection.channel()
            exchange = await channel.get_exchange(DEAD_EXCHANGE)
            parked = aio_pika.Message(b'{"text": "een antwoord dat niemand bereikte"}', delivery_mode=2)
            await exchange.publish(parked, "webchat.x")
            dead = await channel.declare_queue(DEAD_QUEUE, passive=True)
            assert dead.declaration_result.message_count == 1
            for _ in range(100):
                await asyncio.sleep(0.1)
                dead = await channel.declare_queue(DEAD_QUEUE, passive=True)
                if dead.declaration_result.message_count == 0:
                    break
            assert dead.declaration_result.message_count == 0, "the parked message did not expire"
            unroutable = await channel.declare_queue(UNROUTABLE_QUEUE, passive=True)
            assert unroutable.declaration_result.message_count == 0
            assert "unroutable" in rabbitmqctl("list_policies", "-p", name)  # the same policy covers it
    finally:
        rabbitmqctl("delete_vhost", name)
