"""The broker side of access: `gateway rabbitmq-definitions` (deploy/rabbitmq/)
loaded into the real RabbitMQ, each role's user exercised: what it needs works,
the rest is refused; a desk user of one region cannot consume another's queue,
and a real desk process runs on its user alone."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import aio_pika
import aiormq
import pytest
from yarl import URL

from gateway.broker.amqp import declare_topology
from gateway.service import topology_for
from tests.conftest import EXAMPLE_CONFIG, ROOT, ServiceProcess, make_vhost, rabbitmqctl

pytestmark = pytest.mark.broker

USERS = [
    "gw-ingest", "gw-router", "gw-outbound", "gw-desk-zuidoost-brabant", "gw-desk-rotterdam-rijnmond",
    "gw-desk", "gw-operator",
]  # fmt: skip


@pytest.fixture
def role_users(amqp_base_url: str, tmp_path: Path, config) -> Iterator[dict[str, str]]:
    name, admin_url = make_vhost(amqp_base_url)
    passwords = {user: f"pw-{uuid.uuid4().hex}" for user in USERS}
    (tmp_path / "passwords.json").write_text(json.dumps(passwords))
    made = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "rabbitmq-definitions", "--vhost", name,
         "--passwords", str(tmp_path / "passwords.json"), "--config", str(EXAMPLE_CONFIG)],
        capture_output=True, text=True, check=True, cwd=ROOT,
    )  # fmt: skip
    definitions = json.loads(made.stdout)
    wanted = set(USERS)
    definitions["users"] = [u for u in definitions["users"] if u["name"] in wanted]
    definitions["permissions"] = [p for p in definitions["permissions"] if p["user"] in wanted]
    # On standard input: the broker node, not this process, would read a path.
    subprocess.run(
        ["rabbitmqctl", "import_definitions"], input=json.dumps(definitions), text=True, check=True,
        capture_output=True, timeout=60,
    )  # fmt: skip
    urls = {user: str(URL(admin_url).with_user(user).with_password(pw)) for user, pw in passwords.items()}
    urls["admin"] = admin_url
    try:
        yield urls
    finally:
        for user in USERS:
            rabbitmqctl("delete_user", user)
        rabbitmqctl("delete_vhost", name)


async def allowed(url: str, action) -> bool:  # type: ignore[no-untyped-def]
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        try:
            await action(channel)
        except (aiormq.exceptions.ChannelAccessRefused, aio_pika.exceptions.ChannelClosed):
            return False
        return True
    finally:
        await connection.close()


def consume(queue: str):  # type: ignore[no-untyped-def]
    async def action(channel: aio_pika.abc.AbstractChannel) -> None:
        declared = await channel.get_queue(queue, ensure=False)
        tag = await declared.consume(lambda message: message.ack())
        await declared.cancel(tag)

    return action


def publish(exchange: str, key: str):  # type: ignore[no-untyped-def]
    async def action(channel: aio_pika.abc.AbstractChannel) -> None:
        target = await channel.get_exchange(exchange, ensure=False)
        await target.publish(aio_pika.Message(b"{}"), key)
        await channel.get_exchange(
            exchange, ensure=True
        )  # a round trip: a refused publish closes the channel

    return action


def declare(queue: str):  # type: ignore[no-untyped-def]
    async def action(channel: aio_pika.abc.AbstractChannel) -> None:
        await channel.declare_queue(queue, durable=True)

    return action


CASES = [
    ("gw-desk-zuidoost-brabant", consume("gw.region.zuidoost-brabant.normal"), True),
    ("gw-desk-zuidoost-brabant", consume("gw.region.zuidoost-brabant.urgent"), True),
    ("gw-desk-zuidoost-brabant", consume("gw.region.rotterdam-rijnmond.normal"), False),
    ("gw-desk-zuidoost-brabant", consume("gw.region.national.urgent"), False),
    ("gw-desk-zuidoost-brabant", consume("gw.inbound.0"), False),
    ("gw-desk-zuidoost-brabant", publish("gw.outbound", "sms.sms-zuidoost-brabant"), True),
    ("gw-desk-zuidoost-brabant", declare("gw.stolen"), False),
    ("gw-desk-rotterdam-rijnmond", consume("gw.region.rotterdam-rijnmond.normal"), True),
    ("gw-desk-rotterdam-rijnmond", consume("gw.region.zuidoost-brabant.normal"), False),
    ("gw-desk", consume("gw.region.zuidoost-brabant.normal"), True),
    ("gw-desk", consume("gw.region.national.urgent"), True),
    ("gw-desk", consume("gw.inbound.0"), False),
    ("gw-desk", consume("gw.outbound"), False),
    ("gw-desk", declare("gw.stolen"), False),
    ("gw-operator", declare("gw.region.extra.normal"), True),
    ("gw-operator", declare("amq.gen-stolen"), False),
    ("gw-ingest", publish("gw.inbound", "0"), True),
    ("gw-ingest", publish("gw.region", "zuidoost-brabant.normal"), False),
    ("gw-ingest", consume("gw.region.zuidoost-brabant.normal"), False),
    ("gw-router", consume("gw.inbound.0"), True),
    ("gw-router", publish("gw.region", "zuidoost-brabant.normal"), True),
    ("gw-router", consume("gw.outbound"), False),
    ("gw-outbound", consume("gw.outbound"), True),
    ("gw-outbound", publish("gw.dead", "outbound.sms"), True),
    ("gw-outbound", consume("gw.inbound.0"), False),
]


async def test_each_role_user_can_do_what_it_needs_and_nothing_else(role_users, config) -> None:
    admin = await aio_pika.connect(role_users["admin"])
    await declare_topology(admin, topology_for(config))  # an operator's job, not the roles'
    await admin.close()
    results = [(user, await allowed(role_users[user], action)) for user, action, _ in CASES]
    expected = [(user, ok) for user, _, ok in CASES]
    assert results == expected


async def test_a_desk_process_runs_on_its_own_user(role_users, config, tmp_path) -> None:
    admin = await aio_pika.connect(role_users["admin"])
    await declare_topology(admin, topology_for(config))
    await admin.close()
    desk = ServiceProcess(
        role_users["gw-desk-zuidoost-brabant"],
        tmp_path / "desk.log",
        roles=("desk",),
        GATEWAY_DECLARE_TOPOLOGY="0",
        GATEWAY_DESK_TEAMS="zuidoost-brabant",
    )
    try:
        await desk.wait_ready(40)
    finally:
        desk.stop()
    assert "ACCESS_REFUSED" not in desk.logs()
