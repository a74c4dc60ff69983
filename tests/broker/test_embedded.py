from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from gateway.broker.base import Delivery, Message, Unroutable
from gateway.broker.embedded import EmbeddedBroker, topic_matches
from gateway.service import topology_for


def message(n: int = 1) -> Message:
    return Message(body=b"{}", message_id=f"m{n}", correlation_id="c", type="t", timestamp=datetime.now(UTC))


@pytest.mark.parametrize(
    ("pattern", "key", "matches"),
    [
        ("#", "anything.at.all", True),
        ("#", "", True),
        ("sms.*", "sms.one", True),
        ("sms.*", "sms.one.two", False),
        ("sms.#", "sms", True),
        ("sms.#", "sms.one.two", True),
        ("*.urgent", "utrecht.urgent", True),
        ("*.urgent", "utrecht.normal", False),
        ("a.#.z", "a.z", True),
        ("a.#.z", "a.b.c.z", True),
        ("a.#.z", "a.b.c", False),
    ],
)
def test_topic_matching(pattern: str, key: str, matches: bool) -> None:
    assert topic_matches(pattern, key) is matches


async def test_routes_like_rabbitmq_and_refuses_unroutable(config) -> None:
    broker = EmbeddedBroker()
    await broker.start(topology_for(config))
    await broker.publish("gw.region", "utrecht.urgent", message())
    assert broker.depth("gw.region.utrecht.urgent") == 1
    assert broker.depth("gw.region.utrecht.normal") == 0
    with pytest.raises(Unroutable):
        await broker.publish("gw.inbound", "99", message())
    await broker.publish("gw.region", "atlantis.urgent", message(2))  # parked, not dropped
    assert [m.message_id for m in broker.drain("gw.unroutable")] == ["m2"]
    with pytest.raises(Unroutable):
        await broker.publish("gw.nowhere", "x", message())
    await broker.close()


async def test_poison_message_is_dead_lettered_after_the_delivery_limit(config) -> None:
    broker = EmbeddedBroker()
    await broker.start(topology_for(config))
    deliveries: list[int] = []

    async def always_fails(delivery: Delivery) -> None:
        deliveries.append(delivery.delivery_count)
        raise RuntimeError("poison")

    await broker.consume("gw.inbound.0", always_fails)
    await broker.publish("gw.inbound", "0", message())
    for _ in range(100):
        if broker.depth("gw.dead"):
            break
        await asyncio.sleep(0.01)
    dead = broker.drain("gw.dead")
    assert len(dead) == 1 and dead[0].message_id == "m1"
    assert dead[0].headers["x-first-death-reason"] == "delivery_limit"
    assert deliveries == [0, 1, 2, 3, 4, 5]  # delivery_limit 5: first delivery plus five more
    await broker.close()
