"""The router against the real RabbitMQ and PostgreSQL: decisions through the whole
path, order per conversation with two routers, a router killed mid-batch, and one
auto-reply per conversation and closed period."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from adapters.http_json.cases import HTTP_JSON_CHANNEL, TEST_TOKEN
from gateway.domain.envelope import Envelope, OutboundMessage
from gateway.roles.router import transfer_publish
from gateway.service import build_service, load_config
from tests.conftest import (
    EXAMPLE_CONFIG,
    ServiceProcess,
    auth,
    clean_state,
    drain,
    inbound_queues,
    queue_depths,
    rabbitmqctl,
    settings_for,
    team_queues,
)
from tests.helpers.harness import metric_total

pytestmark = pytest.mark.broker

NL = ZoneInfo("Europe/Amsterdam")
OPEN_TIME = datetime(2025, 11, 24, 10, 0, tzinfo=NL)  # a Monday morning
CLOSED_TIME = datetime(2025, 11, 22, 12, 0, tzinfo=NL)  # a Saturday
NATIONAL_CHANNEL = "http-json-landelijk"
NATIONAL_TOKEN_ENV = "GW_HTTP_JSON_LANDELIJK_TOKEN"


@pytest.fixture
def config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, example_env: None) -> Path:
    """The example configuration plus a channel without a region of its own."""
    root = tmp_path / "config"
    shutil.copytree(EXAMPLE_CONFIG, root)
    (root / "channels" / f"{NATIONAL_CHANNEL}.yaml").write_text(
        f"id: {NATIONAL_CHANNEL}\nkind: http-json\nsettings:\n  token: ${{{NATIONAL_TOKEN_ENV}}}\n"
    )
    monkeypatch.setenv(NATIONAL_TOKEN_ENV, TEST_TOKEN)
    return root


async def post(client, channel: str, **body: object) -> str:
    response = await client.post(f"/channels/{channel}/webhook", json=body, headers=auth())
    assert response.status == 202, await response.text()
    return (await response.json())["ids"][0]


async def routed(url: str, config, *, expected: int) -> dict[str, tuple[str, Envelope]]:
    queues = team_queues(*config.team_codes)
    found: dict[str, tuple[str, Envelope]] = {}
    for _ in range(40):
        for message in await drain(url, queues, idle=0.2):
            envelope = Envelope.from_json(message.body)
            assert envelope.route is not None
            found[envelope.id] = (envelope.route.queue, envelope)
        if len(found) >= expected:
            return found
    raise AssertionError(f"only {len(found)} of {expected} messages were routed")


async def in_process_service(vhost, database_url: str, config_dir: Path, now: datetime):
    config = load_config(config_dir)
    await clean_state(vhost[1], database_url, config)
    # No outbound role: the auto-replies must stay in gw.outbound to be counted.
    roles = frozenset({"ingest", "router"})
    service = build_service(settings_for(vhost[1], database_url, now), config, roles=roles)
    client = TestClient(TestServer(service.app))
    await client.start_server()
    assert await service.broker.wait_ready(20)
    return service, client


async def test_decisions_through_the_whole_path_while_open(vhost, database_url, config_dir) -> None:
    service, client = await in_process_service(vhost, database_url, config_dir, OPEN_TIME)
    try:
        ids = {
            "channel region": await post(client, HTTP_JSON_CHANNEL, message_id="a", sender="s1", text="hoi"),
            "acute": await post(
                client, HTTP_JSON_CHANNEL, message_id="b", sender="s2", text="Help, ik ben IN GEVAAR"
            ),
            "municipality": await post(
                client, NATIONAL_CHANNEL, message_id="c", sender="s3", text="hoi", municipality="Maastricht"
            ),
            "postcode": await post(
                client, NATIONAL_CHANNEL, message_id="d", sender="s4", text="hoi", postcode="3011 AB"
            ),
            "no region": await post(client, NATIONAL_CHANNEL, message_id="e", sender="s5", text="hoi"),
        }
        first = await routed(vhost[1], service.config, expected=len(ids))
        ids["learnt"] = await post(client, NATIONAL_CHANNEL, message_id="f", sender="s3", text="nog iets")
        transferred = first[ids["channel region"]][1].conversation_id
        # what the desk publishes when a counsellor transfers the conversation
        transfer = transfer_publish(transferred, "utrecht", service.config.service.broker.inbound_shards)
        await service.broker.publish(transfer.exchange, transfer.routing_key, transfer.message)
        ids["transfer"] = await post(client, HTTP_JSON_CHANNEL, message_id="g", sender="s1", text="en nu?")
        later = await routed(vhost[1], service.config, expected=2)
        everything = {**first, **later}
        expected = {
            "channel region": ("gw.region.zuidoost-brabant.normal", "channel region"),
            "acute": ("gw.region.zuidoost-brabant.urgent", "channel region"),
            "municipality": ("gw.region.zuid-limburg.normal", "municipality"),
            "postcode": ("gw.region.rotterdam-rijnmond.normal", "postcode"),
            "no region": ("gw.region.national.normal", "national team"),
            "learnt": ("gw.region.zuid-limburg.normal", "conversation region"),
            "transfer": ("gw.region.utrecht.normal", "transferred"),
        }
        for case, (queue, reason) in expected.items():
            got_queue, envelope = everything[ids[case]]
            assert got_queue == queue, case
            assert reason in envelope.route.reason, (case, envelope.route.reason)
            assert envelope.route.after_hours is False
        assert everything[ids["acute"]][1].urgency == "acute"
        assert everything[ids["municipality"]][1].region == "zuid-limburg"
        assert sum((await queue_depths(vhost[1], ["gw.outbound"])).values()) == 0, "auto-reply while open"
    finally:
        await client.close()


async def test_closed_policies_and_one_auto_reply_per_conversation(vhost, database_url, config_dir) -> None:
    service, client = await in_process_service(vhost, database_url, config_dir, CLOSED_TIME)
    try:
        ids = {
            "hold": await post(client, HTTP_JSON_CHANNEL, message_id="h1", sender="p1", text="hallo"),
            "hold again": await post(client, HTTP_JSON_CHANNEL, message_id="h2", sender="p1", text="?"),
            "acute": await post(
                client, HTTP_JSON_CHANNEL, message_id="h3", sender="p2", text="hij heeft een mes"
            ),
            "overflow": await post(
                client, NATIONAL_CHANNEL, message_id="h4", sender="p3", text="hoi", municipality="Amstelveen"
            ),
        }
        got = await routed(vhost[1], service.config, expected=len(ids))
        replies = [OutboundMessage.from_json(m.body) for m in await drain(vhost[1], ["gw.outbound"])]
    finally:
        await client.close()
    assert got[ids["hold"]][0] == "gw.region.zuidoost-brabant.normal"
    assert got[ids["hold"]][1].route.after_hours is True
    assert got[ids["acute"]][0] == "gw.region.national.urgent"
    assert got[ids["acute"]][1].region == "zuidoost-brabant"
    assert got[ids["overflow"]][0] == "gw.region.national.normal"
    assert got[ids["overflow"]][1].region == "amsterdam-amstelland"
    by_conversation = defaultdict(list)
    for reply in replies:
        by_conversation[reply.conversation_id].append(reply)
    assert len(replies) == 3, "one auto-reply per conversation, not per message"
    assert all(len(r) == 1 for r in by_conversation.values())
    hold_reply = by_conversation[got[ids["hold"]][1].conversation_id][0]
    assert hold_reply.origin == "auto_reply" and hold_reply.in_reply_to == ids["hold"]
    assert "0800-2000" in hold_reply.text and "112" in hold_reply.text
    assert "maandag 24 november om 09:00" in hold_reply.text
    assert hold_reply.reply_handle == got[ids["hold"]][1].reply_handle


ZOB_QUEUES = team_queues("zuidoost-brabant", "national")


async def wait_for_depth(url: str, queues: list[str], at_least: int, limit: float = 60.0) -> int:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    depth = 0
    while loop.time() < deadline:
        depth = sum((await queue_depths(url, queues)).values())
        if depth >= at_least:
            return depth
        await asyncio.sleep(0.2)
    raise AssertionError(f"{depth} of {at_least} messages arrived in {queues}")


async def start(processes: list[ServiceProcess]) -> None:
    await asyncio.gather(*(p.wait_ready() for p in processes))


def router(url: str, database_url: str, log: Path, **env: str) -> ServiceProcess:
    return ServiceProcess(url, log, roles=("router",), GATEWAY_DATABASE_URL=database_url, **env)


async def test_two_routers_keep_the_order_of_each_conversation(vhost, database_url, config, tmp_path) -> None:
    url = vhost[1]
    await clean_state(url, database_url, config)
    ingest = ServiceProcess(url, tmp_path / "ingest.log", roles=("ingest",))
    routers = [router(url, database_url, tmp_path / f"router-{i}.log") for i in range(2)]
    posted: dict[str, list[str]] = defaultdict(list)
    try:
        await start([ingest, *routers])
        async with aiohttp.ClientSession(base_url=ingest.base) as client:

            async def conversation(k: int) -> None:
                for i in range(25):
                    posted[f"person-{k}"].append(
                        await post(
                            client,
                            HTTP_JSON_CHANNEL,
                            message_id=f"o-{k}-{i}",
                            sender=f"person-{k}",
                            text=f"bericht {i}",
                        )
                    )

            await asyncio.gather(*(conversation(k) for k in range(12)))
        total = sum(len(ids) for ids in posted.values())
        await wait_for_depth(url, ZOB_QUEUES, total)
    finally:
        for process in (ingest, *routers):
            process.stop()
    arrived: dict[str, list[str]] = defaultdict(list)
    for message in await drain(url, ZOB_QUEUES):
        arrived[message.correlation_id].append(message.message_id)
    order_by_first_id = {ids[0]: ids for ids in arrived.values()}
    for ids in posted.values():
        assert order_by_first_id[ids[0]] == ids, "a conversation's messages changed order"
    assert sum(len(ids) for ids in arrived.values()) == total, "a message was lost or duplicated"


async def test_a_router_killed_mid_batch_loses_nothing_and_the_desk_stores_each_message_once(
    vhost, database_url, config, tmp_path
) -> None:
    """The router acks a batch only after the broker confirmed every publish, so a router
    killed between the confirms and the ack puts that batch in its region queue a second
    time, with the same message ids; the desk, the region queues' only consumer, stores each
    message once (the id is its key)."""
    url = vhost[1]
    await clean_state(url, database_url, config)
    ingest = ServiceProcess(url, tmp_path / "ingest.log", roles=("ingest",))
    first = router(url, database_url, tmp_path / "router-a.log")
    second: ServiceProcess | None = None
    desk: ServiceProcess | None = None
    accepted: list[str] = []
    stop = asyncio.Event()
    try:
        await start([ingest, first])
        second = router(url, database_url, tmp_path / "router-b.log")  # stands by: single active consumer
        await start([second])
        async with aiohttp.ClientSession(base_url=ingest.base) as client:
            counter = iter(range(10**6))

            async def poster() -> None:
                while not stop.is_set():
                    n = next(counter)
                    accepted.append(
                        await post(
                            client,
                            HTTP_JSON_CHANNEL,
                            message_id=f"k-{n}",
                            sender=f"p{n % 40}",
                            text=f"bericht {n}",
                        )
                    )

            tasks = [asyncio.create_task(poster()) for _ in range(10)]
            await asyncio.sleep(1.5)
            first.process.send_signal(signal.SIGKILL)
            await asyncio.sleep(2.5)
            stop.set()
            await asyncio.gather(*tasks)
        await wait_for_depth(url, ZOB_QUEUES, len(accepted))
        await asyncio.sleep(0.5)  # nothing more should arrive
        in_region_queues = sum((await queue_depths(url, ZOB_QUEUES)).values())
        assert sum((await queue_depths(url, inbound_queues(config))).values()) == 0
        desk = ServiceProcess(url, tmp_path / "desk.log", roles=("desk",), GATEWAY_DATABASE_URL=database_url)
        await start([desk])
        stored = await wait_for_desk(database_url, accepted)
    finally:
        for process in (ingest, first, second, desk):
            if process is not None:
                process.stop()
    assert len(accepted) > 100
    assert stored == Counter({message_id: 1 for message_id in accepted}), "lost, or stored twice"
    assert sum((await queue_depths(url, ZOB_QUEUES)).values()) == 0, "the desk left messages behind"
    # What the kill cost: at most the batches in flight, published again with the same ids.
    assert len(accepted) <= in_region_queues <= len(accepted) + 2 * 64 * 4


async def test_a_publish_the_region_queue_rejects_costs_no_inbound_message(
    vhost, database_url, config, tmp_path
) -> None:
    """The exact loss of the leader-kill fault, forced here without a cluster: a region queue
    that rejects publishes (basic.nack). On RabbitMQ 3.10 an AMQP transaction answered
    commit-ok for such a batch and its inbound acks were applied: the messages were gone.
    Now the inbound messages stay unacked until the broker confirms their publish."""
    vhost_name, url = vhost
    await clean_state(url, database_url, config)
    region = "gw.region.zuidoost-brabant.normal"
    policy = ("set_policy", "-p", vhost_name, "--apply-to", "queues", "gw-test-full", f"^{region}$")
    await asyncio.to_thread(rabbitmqctl, *policy, '{"max-length": 2}')  # with the topology's reject-publish
    ingest = ServiceProcess(url, tmp_path / "ingest.log", roles=("ingest",))
    the_router = router(url, database_url, tmp_path / "router.log", GATEWAY_FAKE_TIME=OPEN_TIME.isoformat())
    try:
        await start([ingest, the_router])
        async with aiohttp.ClientSession(base_url=ingest.base) as client:
            accepted = []
            for n in range(12):  # one at a time: the queue's limit is soft for publishes in flight
                accepted.append(
                    await post(client, HTTP_JSON_CHANNEL, message_id=f"full-{n}", sender="p1", text=f"m {n}")
                )
                await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)
        in_region = sum((await queue_depths(url, [region])).values())
        assert in_region < len(accepted), "the region queue took every message: the case was not forced"
        async with aiohttp.ClientSession() as session, session.get(the_router.base + "/readyz") as ready:
            consumers = (await ready.json())["consumers"]
        held = sum(int(state["unsettled"]) for state in consumers.values())
        rejected = await metric_total(the_router.port, "gateway_publish_retries")
        await asyncio.to_thread(rabbitmqctl, "clear_policy", "-p", vhost_name, "gw-test-full")
        arrived: list[str] = []
        for _ in range(60):  # room again: the router's retries get through, in order
            arrived += [m.message_id for m in await drain(url, [region], idle=0.3)]
            if set(accepted) <= set(arrived):
                break
    finally:
        ingest.stop()
        the_router.stop()
        with contextlib.suppress(RuntimeError):
            await asyncio.to_thread(rabbitmqctl, "clear_policy", "-p", vhost_name, "gw-test-full")
    assert set(accepted) <= set(arrived), "a message answered 202 never reached its region"
    assert rejected > 0 and held > 0, "the router neither saw the rejections nor held their messages"
    first_seen = list(dict.fromkeys(arrived))
    assert first_seen == accepted, "the conversation's order changed"
    assert sum((await queue_depths(url, inbound_queues(config))).values()) == 0


async def wait_for_desk(database_url: str, message_ids: list[str], limit: float = 30.0) -> Counter[str]:
    """How often the desk stored each of these messages, once it has them all (or at `limit`)."""
    import asyncpg

    deadline = asyncio.get_running_loop().time() + limit
    while True:
        connection = await asyncpg.connect(database_url)
        try:
            rows = await connection.fetch(
                "SELECT message_id FROM desk_messages WHERE message_id = ANY($1::text[])", message_ids
            )
        finally:
            await connection.close()
        stored = Counter(row["message_id"] for row in rows)
        if len(stored) >= len(set(message_ids)) or asyncio.get_running_loop().time() > deadline:
            return stored
        await asyncio.sleep(0.3)


@pytest.mark.parametrize("handover", ["SIGTERM", "SIGKILL"])
async def test_one_auto_reply_per_conversation_across_two_routers(
    vhost, database_url, config, tmp_path, handover: str
) -> None:
    url = vhost[1]
    await clean_state(url, database_url, config)
    closed = {"GATEWAY_FAKE_TIME": CLOSED_TIME.isoformat()}
    ingest = ServiceProcess(url, tmp_path / "ingest.log", roles=("ingest",))
    first = router(url, database_url, tmp_path / "router-a.log", **closed)
    second: ServiceProcess | None = None
    try:
        await start([ingest, first])
        async with aiohttp.ClientSession(base_url=ingest.base) as client:
            for n, person in enumerate(("x", "y", "z")):
                await post(client, HTTP_JSON_CHANNEL, message_id=f"first-{n}", sender=person, text="hallo")
            await wait_for_depth(url, ZOB_QUEUES, 3)
            first.process.send_signal(getattr(signal, handover))
            await asyncio.to_thread(first.process.wait, 30)
            second = router(url, database_url, tmp_path / "router-b.log", **closed)
            await start([second])
            for n, person in enumerate(("x", "y", "z")):
                await post(client, HTTP_JSON_CHANNEL, message_id=f"second-{n}", sender=person, text="nog")
            await wait_for_depth(url, ZOB_QUEUES, 6)
    finally:
        for process in (ingest, first, second):
            if process is not None:
                process.stop()
    replies = [OutboundMessage.from_json(m.body) for m in await drain(url, ["gw.outbound"])]
    assert len(replies) == 3, [r.conversation_id for r in replies]
    assert len({r.conversation_id for r in replies}) == 3


async def test_unreadable_messages_are_dead_lettered_and_the_rest_still_routed(
    vhost, database_url, config_dir
) -> None:
    from datetime import UTC

    from gateway.broker.base import Message

    service, client = await in_process_service(vhost, database_url, config_dir, OPEN_TIME)
    try:
        before = await post(client, HTTP_JSON_CHANNEL, message_id="p1", sender="q1", text="eerst")
        stamp = datetime.now(UTC)
        garbage = Message(b"{not an envelope", "poison-1", "c", "gateway.envelope.v1", stamp)
        bad_transfer = transfer_publish("c_x", "atlantis", service.config.service.broker.inbound_shards)
        await service.broker.publish("gw.inbound", "0", garbage)
        await service.broker.publish(bad_transfer.exchange, bad_transfer.routing_key, bad_transfer.message)
        after = await post(client, HTTP_JSON_CHANNEL, message_id="p2", sender="q1", text="daarna")
        got = await routed(vhost[1], service.config, expected=2)
        dead = []
        for _ in range(20):  # the transfer sits on another shard: it may come a moment later
            dead += await drain(vhost[1], ["gw.dead"], idle=0.3)
            if len(dead) >= 2:
                break
    finally:
        await client.close()
    assert set(got) == {before, after}
    assert sorted(m.message_id for m in dead) == sorted(["poison-1", bad_transfer.message.message_id])
    assert {m.headers["x-first-death-reason"] for m in dead} == {"rejected"}
    assert service.metrics.unreadable._value.get() == 2
