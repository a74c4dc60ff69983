"""The cluster harness starts and stops a cluster of its own and leaves the system broker
(the one on 5672) exactly as it was: same process, same cluster of one, same cookie, its
queues and messages intact."""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path

import aio_pika
import pytest

from scripts.rabbitmq_cluster import Cluster
from tests.cluster.conftest import TEST_CLUSTER_PORT
from tests.conftest import rabbitmqctl

pytestmark = [pytest.mark.broker, pytest.mark.cluster]

SYSTEM_COOKIE = Path("/var/lib/rabbitmq/.erlang.cookie")


def system_broker() -> dict[str, object]:
    status = json.loads(rabbitmqctl("status", "--formatter", "json"))
    members = json.loads(rabbitmqctl("cluster_status", "--formatter", "json"))
    return {
        "pid": status["pid"],
        "listeners": sorted((item["port"], item["protocol"]) for item in status["listeners"]),
        "running_nodes": members["running_nodes"],
        "cookie": hashlib.sha256(SYSTEM_COOKIE.read_bytes()).hexdigest() if SYSTEM_COOKIE.exists() else None,
    }


async def messages_in(url: str, queue: str) -> int:
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, durable=True, passive=True)
        return declared.declaration_result.message_count or 0
    finally:
        await connection.close()


async def test_the_harness_leaves_the_system_broker_untouched(vhost, tmp_path) -> None:
    before = system_broker()
    marker_queue = f"harness.marker.{uuid.uuid4().hex[:8]}"  # this run's own: the test may be repeated
    connection = await aio_pika.connect(vhost[1])
    try:
        channel = await connection.channel(publisher_confirms=True)
        queue = await channel.declare_queue(marker_queue, durable=True)
        await channel.default_exchange.publish(aio_pika.Message(b"still here", delivery_mode=2), queue.name)
    finally:
        await connection.close()

    # A second cluster beside the tests' session cluster: other ports, names and folder.
    prefix = f"gwharness-{TEST_CLUSTER_PORT}-"
    own = Cluster(tmp_path / "own", base_port=TEST_CLUSTER_PORT + 10, prefix=prefix)
    try:
        own.start()
        names = sorted(node.name for node in own.nodes)
        assert own.members(own.nodes[0]) == names, "the three nodes form one cluster"
        assert all(str(before["running_nodes"][0]) not in own.members(n) for n in own.nodes)  # type: ignore[index]
        assert system_broker() == before, "starting the harness changed the system broker"
        for url in own.urls():
            connection = await aio_pika.connect(url)
            await connection.close()
    finally:
        own.stop(wipe=True)

    assert not any(own.running(node) for node in own.nodes)
    assert not (tmp_path / "own").exists()
    assert system_broker() == before, "stopping the harness changed the system broker"
    assert await messages_in(vhost[1], marker_queue) == 1
