"""The fault tests' report of a missing message finds it where it sits, and leaves it there."""

from __future__ import annotations

import aio_pika
import pytest

from tests.cluster.diagnosis import classify, locate
from tests.helpers.traffic import MixedTraffic

pytestmark = pytest.mark.broker


async def test_a_missing_message_in_a_queue_is_a_stall_and_one_nowhere_is_a_loss(vhost) -> None:
    traffic = MixedTraffic(4)
    queue = f"diagnosis.{traffic.run}"
    connection = await aio_pika.connect(vhost[1])
    try:
        channel = await connection.channel(publisher_confirms=True)
        await channel.declare_queue(queue, durable=True, arguments={"x-queue-type": "quorum"})
        for seq in (3, 4):  # as a stalled envelope would carry them, marker inside its text
            body = f'{{"text": "{traffic.text(1, seq)}"}}'.encode()
            await channel.default_exchange.publish(aio_pika.Message(body), queue)
        await channel.default_exchange.publish(aio_pika.Message(b'{"text": "[ffffffff c1 n5]"}'), queue)

        where = await locate([vhost[1]], [queue, "diagnosis.no-such-queue"], traffic.run)
        assert where == {(1, 3): [queue], (1, 4): [queue]}  # another run's marker is not ours
        stalled, lost = classify([(1, 3), (1, 4), (2, 0)], where)
        assert stalled == {"c1 n3": [queue], "c1 n4": [queue]} and lost == ["c2 n0"]
        declared = await channel.declare_queue(queue, durable=True, passive=True)
        assert declared.declaration_result.message_count == 3, "reading them took them away"
        await channel.queue_delete(queue)
    finally:
        await connection.close()
