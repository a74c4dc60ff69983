"""The desk against the real RabbitMQ and PostgreSQL, with two desk processes: the
unified queue per team, claims (one winner), replies through gw.outbound,
transfers that later messages follow, access refused across teams, idempotent
storage, retention, and the OpenAPI document against the real routes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from datetime import UTC, datetime, timedelta

import aio_pika
import pytest
from aiohttp import ClientSession, CookieJar

from adapters.http_json.cases import HTTP_JSON_CHANNEL
from gateway.broker.embedded import EmbeddedBroker
from gateway.config.live import LiveConfig
from gateway.domain.envelope import Attachment, ChannelRef, Envelope, OutboundMessage, Route
from gateway.domain.identity import Identity
from gateway.roles.desk import Desk
from gateway.service import kinds, load_config, make_store, topology_for
from gateway.support.metrics import Metrics
from tests.conftest import (
    ServiceProcess,
    clean_state,
    drain,
)
from tests.integration.conftest import (
    PASSWORD,
    call,
    desk_config,
    listed,
    person_writes,
)

pytestmark = pytest.mark.broker

async def test_the_unified_queue_claims_replies_transfers_and_closes(desks) -> None:
    tokens, a, b = desks["tokens"], desks["a"], desks["b"]
    await person_writes(desks, "persoon-1", "Ik wil iets vertellen")
    (item,) = await listed(desks, "anna-zob", via="b")  # stored by one desk process, seen through the other
    conversation = item["conversation_id"]
    assert (
        item["team"] == "zuidoost-brabant"
        and item["status"] == "waiting"
        and item["channel_kind"] == "sms"
    )

    # two counsellors claim at the same moment, through two processes: one winner
    (s1, r1), (s2, r2) = await asyncio.gather(
        call(a.base, "POST", f"/api/v1/conversations/{conversation}/claim", tokens["anna-zob"]),
        call(b.base, "POST", f"/api/v1/conversations/{conversation}/claim", tokens["bram-zob"]),
    )
    assert sorted([s1, s2]) == [200, 409]
    winner = "anna-zob" if s1 == 200 else "bram-zob"
    loser_answer = r2 if s1 == 200 else r1
    assert loser_answer["error"] == "already_claimed" and loser_answer["claimed_by"] == winner
    status, seen = await call(a.base, "GET", f"/api/v1/conversations/{conversation}", tokens["bram-zob"])
    assert status == 200 and seen["claimed_by"] == winner and seen["status"] == "claimed"

    status, _ = await call(
        b.base, "POST", f"/api/v1/conversations/{conversation}/reply", tokens[winner], {"text": "Ik luister."}
    )
    assert status == 202
    (outbound,) = await drain(desks["url"], ["gw.outbound"])
    reply = OutboundMessage.from_json(outbound.body)
    assert (
        reply.text == "Ik luister." and reply.origin == "counsellor" and reply.conversation_id == conversation
    )
    status, seen = await call(a.base, "GET", f"/api/v1/conversations/{conversation}", tokens["anna-zob"])
    assert [(e["direction"], e["text"]) for e in seen["transcript"]] == [
        ("in", "Ik wil iets vertellen"),
        ("out", "Ik luister."),
    ]

    status, _ = await call(
        a.base, "POST", f"/api/v1/conversations/{conversation}/transfer", tokens[winner],
        {"team": "rotterdam-rijnmond", "reason": "De persoon woont in Rotterdam"},
    )  # fmt: skip
    assert status == 200
    assert await listed(desks, "anna-zob", count=0) == []
    (moved,) = await listed(desks, "carla-rr")
    assert moved["conversation_id"] == conversation and moved["status"] == "waiting"

    await person_writes(desks, "persoon-1", "Nog een bericht")  # follows the conversation to Rotterdam
    for _ in range(100):
        status, seen = await call(b.base, "GET", f"/api/v1/conversations/{conversation}", tokens["carla-rr"])
        if "Nog een bericht" in [e["text"] for e in seen["transcript"]]:
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("a message after the transfer did not follow the conversation")
    assert await listed(desks, "anna-zob", count=0) == []

    (handover,) = seen["handovers"]
    assert (handover["from_team"], handover["to_team"], handover["note"], handover["author"]) == (
        "zuidoost-brabant", "rotterdam-rijnmond", "De persoon woont in Rotterdam", winner,
    )  # fmt: skip
    assert all(e["direction"] in ("in", "out") for e in seen["transcript"]), "a note among the messages"

    close = f"/api/v1/conversations/{conversation}/close"
    status, answer = await call(b.base, "POST", close, tokens["carla-rr"], {"contact_role": "omstander"})
    assert (status, answer["error"]) == (422, "registration_incomplete")
    assert {f["field"] for f in answer["fields"]} == {"age_group", "topics", "outcome"}
    registration = {
        "contact_role": "omstander", "age_group": "12-17", "topics": ["kindermishandeling", "partnergeweld"],
        "outcome": "melding-geadviseerd", "note": "Belt morgen terug",
    }  # fmt: skip
    status, answer = await call(b.base, "POST", close, tokens["carla-rr"], {**registration, "outcome": "x"})
    assert (status, answer["fields"]) == (
        422, [{"field": "outcome", "problem": "not one of the configured options"}]
    )  # fmt: skip
    status, _ = await call(b.base, "POST", close, tokens["carla-rr"], registration)
    assert status == 200
    assert await listed(desks, "carla-rr", count=0) == []
    for process in (a, b):
        logs = process.logs()
        assert (
            "Ik wil iets vertellen" not in logs
            and "Ik luister" not in logs
            and "woont in Rotterdam" not in logs
        )


ACTIONS = [
    ("GET", "/api/v1/conversations/{id}", None),
    ("POST", "/api/v1/conversations/{id}/claim", None),
    ("POST", "/api/v1/conversations/{id}/reply", {"text": "hallo"}),
    ("POST", "/api/v1/conversations/{id}/transfer", {"team": "national", "reason": "x"}),
    ("POST", "/api/v1/conversations/{id}/close", {}),
    ("POST", "/api/v1/conversations/{id}/notes", {"text": "overleg"}),
    ("GET", "/api/v1/conversations/{id}/export", None),
    ("POST", "/api/v1/conversations/{id}/reveal", {"reason": "call_back"}),
]


async def test_every_cross_team_access_is_refused_and_no_session_is_401(desks) -> None:
    tokens, a = desks["tokens"], desks["a"]
    await person_writes(desks, "persoon-2", "vertrouwelijk")
    (item,) = await listed(desks, "anna-zob")
    conversation = item["conversation_id"]
    assert await listed(desks, "carla-rr", count=0) == [], "another team lists it"
    rows = [(m, p.format(id=conversation), b) for m, p, b in ACTIONS]
    for method, path, body in rows:
        status, answer = await call(a.base, method, path, tokens["carla-rr"], body)
        assert (status, answer.get("error")) == (403, "other_team"), (method, path)
        assert "vertrouwelijk" not in json.dumps(answer)
        status, answer = await call(a.base, method, path, None, body)
        assert (status, answer.get("error")) == (401, "no_session"), (method, path)
        status, _ = await call(a.base, method, path, tokens["anna-zob"][:-3] + "xyz", body)
        assert status == 401, "a forged token got in"
    status, answer = await call(a.base, "GET", "/api/v1/conversations", None)
    assert status == 401
    status, answer = await call(
        a.base, "POST", "/api/v1/session", None, {"counsellor": "anna-zob", "password": "nee"}
    )
    assert (status, answer["error"]) == (401, "wrong_credentials")
    status, seen = await call(a.base, "GET", f"/api/v1/conversations/{conversation}", tokens["anna-zob"])
    assert status == 200 and seen["status"] == "waiting", "a refused action changed the conversation"


async def test_the_console_cookie_needs_the_csrf_token_for_changes(desks) -> None:
    a = desks["a"]
    await person_writes(desks, "persoon-3", "hallo")
    (item,) = await listed(desks, "anna-zob")
    async with ClientSession(cookie_jar=CookieJar(unsafe=True)) as session:  # unsafe: an IP address host
        code = await desks["counsellors"].code("anna-zob")
        body = {"counsellor": "anna-zob", "password": PASSWORD, "code": code}
        async with session.post(f"{a.base}/api/v1/session", json=body) as r:
            csrf = (await r.json())["csrf_token"]
            cookie = r.headers["Set-Cookie"]
            assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Max-Age" not in cookie
        claim = f"{a.base}/api/v1/conversations/{item['conversation_id']}/claim"
        async with session.get(f"{a.base}/api/v1/conversations") as r:
            assert r.status == 200  # reading with the cookie alone is fine
        async with session.post(claim) as r:
            assert r.status == 403 and (await r.json())["error"] == "csrf"
        async with session.post(claim, headers={"X-CSRF-Token": csrf}) as r:
            assert r.status == 200


async def test_a_redelivered_message_is_stored_once(desks) -> None:
    """What a desk killed between its commit and its ack leads to: the same message again."""
    envelope = Envelope(
        id=str(uuid.uuid4()),
        conversation_id="c_" + uuid.uuid4().hex,
        channel=ChannelRef(kind="http-json", instance=HTTP_JSON_CHANNEL),
        region="zuidoost-brabant",
        received_at=datetime.now(UTC),
        text="twee keer bezorgd",
        sender="p_x",
        reply_handle="g1.x",
        route=Route(queue="gw.region.zuidoost-brabant.normal", reason="test"),
    )
    connection = await aio_pika.connect(desks["url"])
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange("gw.region", ensure=False)
        for _ in range(3):
            await exchange.publish(
                aio_pika.Message(envelope.to_json(), message_id=envelope.id, delivery_mode=2),
                "zuidoost-brabant.normal",
            )
    finally:
        await connection.close()
    (item,) = await listed(desks, "anna-zob")
    await asyncio.sleep(1.0)
    _, seen = await call(
        desks["a"].base,
        "GET",
        f"/api/v1/conversations/{item['conversation_id']}",
        desks["tokens"]["anna-zob"],
    )
    assert [e["text"] for e in seen["transcript"]] == ["twee keer bezorgd"]


async def test_the_openapi_document_matches_the_real_routes(desks) -> None:
    status, document = await call(desks["a"].base, "GET", "/api/v1/openapi.json", None)
    assert status == 200 and document["openapi"].startswith("3.")
    from gateway.web.desk_api import ROUTES

    documented = {(m.upper(), p) for p, ops in document["paths"].items() for m in ops}
    from gateway.web.desk_auth import AUTH_ROUTES
    from gateway.web.oidc import CALLBACK_PATH, LOGIN_PATH

    served = (
        {(m, p) for m, p, *_ in ROUTES}
        | {(m, p) for m, p, _ in AUTH_ROUTES}
        | {("GET", LOGIN_PATH), ("GET", CALLBACK_PATH)}
        | {("GET", "/api/v1/openapi.json")}
    )
    assert documented == served
    ends_session = {("DELETE", "/api/v1/session"), ("POST", "/api/v1/password")}
    for method, path in served - {("GET", "/api/v1/events")} - ends_session:  # each is served (no 405)
        concrete = path.replace("{conversation_id}", "c_unknown").replace("{session_id}", "s_unknown")
        status, _ = await call(
            desks["a"].base, method, concrete, desks["tokens"]["anna-zob"], {} if method == "POST" else None
        )
        assert status != 405, (method, path)
    headers = {"Authorization": f"Bearer {desks['tokens']['anna-zob']}"}
    async with (
        ClientSession() as session,
        session.get(desks["a"].base + "/api/v1/events", headers=headers) as r,
    ):
        assert r.status == 200 and r.content_type == "text/event-stream"


async def test_retention_deletes_quiet_conversations(
    database_url, example_env, password_hash, tmp_path
) -> None:
    root = desk_config(tmp_path / "config", password_hash)
    config = load_config(root)
    store = make_store(database_url)
    await store.start()
    broker = EmbeddedBroker()
    await broker.start(topology_for(config))
    desk = Desk(LiveConfig(config, kinds()), broker, store, Metrics())
    try:
        now = datetime.now(UTC)
        ids = {}
        for age_hours, name in ((800, "old"), (1, "recent")):
            envelope = Envelope(
                id=str(uuid.uuid4()), conversation_id=f"c_{name}_{uuid.uuid4().hex[:6]}",
                channel=ChannelRef(kind="http-json", instance=HTTP_JSON_CHANNEL), region="zuidoost-brabant",
                received_at=now - timedelta(hours=age_hours), text=name, sender="p", reply_handle="g1.x",
                attachments=[Attachment(content_type="image/png", url="https://files.example/1.png")],
            )  # fmt: skip
            assert (await desk.store_envelopes([(envelope, "zuidoost-brabant")]))[0]
            ids[name] = envelope.conversation_id
        gone = await desk.forget_before(now - timedelta(hours=config.service.desk.retention_hours))
        assert gone >= 1
        actor = Identity("desk", "anna-zob", "Anna", "zuidoost-brabant", "counsellor", "password+totp")
        remaining = {s.conversation_id for s in await desk.conversations(actor)}
        assert ids["old"] not in remaining and ids["recent"] in remaining
        async with store.reading() as connection:
            from sqlalchemy import text

            left = await connection.execute(
                text("SELECT count(*) FROM desk_messages WHERE conversation_id = :c"), {"c": ids["old"]}
            )
            assert left.scalar() == 0, "the transcript outlived its conversation"
            for name, expected in (("old", 0), ("recent", 1)):
                kept = await connection.execute(
                    text("SELECT count(*) FROM desk_attachments WHERE conversation_id = :c"), {"c": ids[name]}
                )
                assert kept.scalar() == expected, f"the attachments of the {name} conversation"
    finally:
        await store.close()


async def test_password_guessing_is_slowed_down(desks) -> None:
    statuses = []
    for _ in range(12):
        status, _ = await call(
            desks["b"].base, "POST", "/api/v1/session", None, {"counsellor": "anna-zob", "password": "raden"}
        )
        statuses.append(status)
    assert statuses[:10] == [401] * 10 and statuses[10:] == [429, 429]


async def test_a_desk_killed_mid_stream_stores_every_message_once(
    vhost, database_url, tmp_path, example_env, password_hash
) -> None:
    import asyncpg

    root = desk_config(tmp_path / "config", password_hash)
    await clean_state(vhost[1], database_url, load_config(root))
    env = {"GATEWAY_DATABASE_URL": database_url}
    first = ServiceProcess(vhost[1], tmp_path / "first.log", roles=("desk",), config_dir=root, **env)
    await first.wait_ready(40)
    first.stop()  # the topology and schema exist; now fill the queue with nobody consuming
    count = 600
    connection = await aio_pika.connect(vhost[1])
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange("gw.region", ensure=False)
        for n in range(count):
            item = Envelope(
                id=str(uuid.uuid4()), conversation_id=f"c_kill_{n % 40}",
                channel=ChannelRef(kind="http-json", instance=HTTP_JSON_CHANNEL), region="zuidoost-brabant",
                received_at=datetime.now(UTC), text=f"bericht {n}", sender="p", reply_handle="g1.x",
                route=Route(queue="gw.region.zuidoost-brabant.normal", reason="test"),
            )  # fmt: skip
            await exchange.publish(
                aio_pika.Message(item.to_json(), message_id=item.id, delivery_mode=2),
                "zuidoost-brabant.normal",
            )
    finally:
        await connection.close()

    async def stored() -> tuple[int, int]:
        db = await asyncpg.connect(database_url)
        try:
            messages = await db.fetchval("SELECT count(*) FROM desk_messages")
            conversations = await db.fetchval("SELECT count(*) FROM desk_conversations")
            return messages, conversations
        finally:
            await db.close()

    victim = ServiceProcess(vhost[1], tmp_path / "victim.log", roles=("desk",), config_dir=root, **env)
    await victim.wait_ready(40)
    for _ in range(200):  # kill it while it is busy: some committed, some not yet acked
        if (await stored())[0] > 50:
            break
        await asyncio.sleep(0.02)
    victim.process.kill()
    victim.process.wait()
    at_kill = (await stored())[0]
    assert at_kill < count, "the desk finished before it could be killed; the test proves nothing"
    survivor = ServiceProcess(vhost[1], tmp_path / "survivor.log", roles=("desk",), config_dir=root, **env)
    try:
        await survivor.wait_ready(40)
        for _ in range(300):
            if (await stored())[0] >= count:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)  # anything redelivered has arrived by now
        assert await stored() == (count, 40), "a message was lost or stored twice"
    finally:
        survivor.stop()


async def test_demo_counsellors_exist_only_when_enabled_and_are_warned(vhost, example_env, tmp_path) -> None:
    demo = {"counsellor": "demo-zob", "password": "desk-demo-2026"}
    on = ServiceProcess(vhost[1], tmp_path / "on.log", roles=("desk",), GATEWAY_DEMO_ACCOUNTS="1")
    off = ServiceProcess(vhost[1], tmp_path / "off.log", roles=("desk",))
    try:
        await on.wait_ready(40)
        await off.wait_ready(40)
        status, answer = await call(on.base, "POST", "/api/v1/session", None, demo)
        assert status == 200, answer
        assert answer["team"] == "zuidoost-brabant" and answer["second_factor"] == "enrol"
        status, _ = await call(off.base, "POST", "/api/v1/session", None, demo)
        assert status == 401
    finally:
        on.stop()
        off.stop()
    assert "GATEWAY_DEMO_ACCOUNTS is on" in on.logs() and "GATEWAY_DEMO_ACCOUNTS" not in off.logs()


async def test_waiting_gauges_show_unclaimed_conversations_per_team(
    database_url, example_env, password_hash, tmp_path
) -> None:
    root = desk_config(tmp_path / "config", password_hash)
    config = load_config(root)
    await clean_state_database(database_url)
    store = make_store(database_url)
    await store.start()
    broker = EmbeddedBroker()
    await broker.start(topology_for(config))
    metrics = Metrics()
    now = datetime.now(UTC)
    desk = Desk(LiveConfig(config, kinds()), broker, store, metrics, clock=lambda: now)
    try:
        for minutes in (12, 3):
            envelope = Envelope(
                id=str(uuid.uuid4()), conversation_id=f"c_wait_{uuid.uuid4().hex[:6]}",
                channel=ChannelRef(kind="http-json", instance=HTTP_JSON_CHANNEL), region="zuidoost-brabant",
                received_at=now - timedelta(minutes=minutes), text="t", sender="p", reply_handle="g1.x",
            )  # fmt: skip
            assert (await desk.store_envelopes([(envelope, "zuidoost-brabant")]))[0]
        await desk.sample_waiting()
        waiting = metrics.registry.get_sample_value
        assert waiting("gateway_desk_waiting_conversations", {"team": "zuidoost-brabant"}) == 2
        assert waiting("gateway_desk_oldest_waiting_seconds", {"team": "zuidoost-brabant"}) == 12 * 60
        assert waiting("gateway_desk_waiting_conversations", {"team": "rotterdam-rijnmond"}) == 0
        assert waiting("gateway_desk_oldest_waiting_seconds", {"team": "rotterdam-rijnmond"}) == 0
    finally:
        await broker.close()
        await store.close()


async def clean_state_database(database_url: str) -> None:
    import asyncpg

    db = await asyncpg.connect(database_url)
    try:
        for table in ("desk_conversations", "desk_messages"):
            with contextlib.suppress(asyncpg.UndefinedTableError):
                await db.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed names
    finally:
        await db.close()
