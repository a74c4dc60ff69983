"""A waiting person's place in the team's queue (gateway/store/queue.py), on PostgreSQL
and on the embedded store: urgent before normal, then the longest waiting, only the
team's waiting conversations counted, and the same order as the desk's "volgende"
(`Desk.claim_next`), checked by claiming one after the other."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from adapters.http_json.cases import HTTP_JSON_CHANNEL
from gateway.broker.embedded import EmbeddedBroker
from gateway.config.live import LiveConfig
from gateway.domain.envelope import ChannelRef, Envelope, Urgency
from gateway.domain.identity import Identity
from gateway.domain.messages import InboundMessage
from gateway.roles.desk import Desk
from gateway.roles.ingest import build_envelope
from gateway.service import KindHost, conversation_id_for, kinds, make_store, topology_for
from gateway.store.database import Store
from gateway.store.queue import queue_places
from gateway.store.tables import desk_conversations
from gateway.support.fieldcrypt import FieldCipher
from gateway.support.keys import Keyring
from gateway.support.metrics import Metrics
from gateway.support.ratelimit import LocalLimiter
from tests.conftest import TEST_SECRET

ZOB, RR = "zuidoost-brabant", "rotterdam-rijnmond"
START = datetime(2025, 11, 24, 9, 0, tzinfo=UTC)


@pytest.fixture(params=["postgresql", "sqlite"])
def store_url(request: pytest.FixtureRequest) -> str | None:
    return request.getfixturevalue("database_url") if request.param == "postgresql" else None


@pytest.fixture
async def store(store_url: str | None) -> AsyncIterator[Store]:
    store = make_store(store_url)
    await store.start()
    async with store.transaction() as connection:
        await connection.execute(sa.delete(desk_conversations))
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
async def desk(store: Store, config: Any) -> AsyncIterator[Desk]:
    broker = EmbeddedBroker()
    await broker.start(topology_for(config))
    yield Desk(LiveConfig(config, kinds()), broker, store, Metrics())
    await broker.close()


async def waiting(desk: Desk, name: str, team: str, seconds: float, *, urgent: bool = False) -> str:
    """A conversation that started waiting `seconds` after START."""
    envelope = Envelope(
        id=str(uuid.uuid4()), conversation_id=f"c_{name}_{uuid.uuid4().hex[:8]}",
        channel=ChannelRef(kind="http-json", instance=HTTP_JSON_CHANNEL), region=team,
        received_at=START + timedelta(seconds=seconds), text=name, sender=f"p_{name}", reply_handle="g1.x",
        urgency=Urgency.HIGH if urgent else Urgency.NORMAL,
    )  # fmt: skip
    assert (await desk.store_envelopes([(envelope, team)]))[0]
    return envelope.conversation_id


async def places(store: Store, ids: dict[str, str]) -> dict[str, int]:
    async with store.reading() as connection:
        found = await queue_places(connection, ids.values())
    return {name: found[cid] for name, cid in ids.items() if cid in found}


async def set_status(store: Store, conversation_id: str, status: str) -> None:
    async with store.transaction() as connection:
        await connection.execute(
            sa.update(desk_conversations)
            .where(desk_conversations.c.conversation_id == conversation_id)
            .values(status=status)
        )


async def test_urgent_first_then_the_longest_waiting_in_the_team_only(store: Store, desk: Desk) -> None:
    ids = {
        "first": await waiting(desk, "first", ZOB, 10),
        "second": await waiting(desk, "second", ZOB, 20),
        "urgent-late": await waiting(desk, "urgent-late", ZOB, 30, urgent=True),
        "third": await waiting(desk, "third", ZOB, 40),
        "claimed-early": await waiting(desk, "claimed-early", ZOB, 1),
        "closed-early": await waiting(desk, "closed-early", ZOB, 2),
        "other-team-early": await waiting(desk, "other-team-early", RR, 0),
    }
    await set_status(store, ids["claimed-early"], "claimed")
    await set_status(store, ids["closed-early"], "closed")
    assert await places(store, ids) == {
        "urgent-late": 1,
        "first": 2,
        "second": 3,
        "third": 4,
        "other-team-early": 1,
    }, "claimed and closed conversations have no place, and count for no one; other teams count apart"
    async with store.reading() as connection:
        assert await queue_places(connection, ["c_unknown", *list(ids.values())[:1]]) == {ids["first"]: 2}
        assert await queue_places(connection, []) == {}


async def test_the_same_order_as_volgende(store: Store, desk: Desk) -> None:
    ids = {
        name: await waiting(desk, name, ZOB, seconds, urgent=urgent)
        for name, seconds, urgent in [
            ("a", 5, False), ("b", 1, False), ("c", 9, True),
            ("d", 3, False), ("e", 7, True), ("f", 2, False),
        ]
    }  # fmt: skip
    await waiting(desk, "elsewhere", RR, 0, urgent=True)
    by_id = {cid: name for name, cid in ids.items()}
    taken = []
    for turn in range(len(ids)):
        before = await places(store, ids)
        assert sorted(before.values()) == list(range(1, len(ids) - turn + 1)), "places are 1..n, none twice"
        counsellor = Identity("desk", f"counsellor-{turn}", "C", ZOB, "counsellor", "password+totp")
        summary = await desk.claim_next(counsellor)
        name = by_id[summary.conversation_id]
        assert before[name] == 1, f"volgende took {name}, at place {before[name]}"
        after = await places(store, ids)
        assert name not in after and after == {n: p - 1 for n, p in before.items() if n != name}
        taken.append(name)
    assert taken == ["e", "c", "b", "f", "d", "a"]


async def test_the_host_finds_a_person_by_the_key_ingest_names_their_conversation_by(
    store: Store, desk: Desk, config: Any
) -> None:
    keyring = Keyring(TEST_SECRET)
    channel = config.channels["webchat-zuidoost-brabant"]
    session = "5e55" * 16  # a web chat's address: its session's hash
    envelope = build_envelope(channel, InboundMessage(provider_message_id="s:1", address=session), keyring)
    assert envelope.conversation_id == conversation_id_for(keyring, channel.id, session)
    keyed = InboundMessage(provider_message_id="x", address="user-7", conversation_key="case-9")
    assert build_envelope(channel, keyed, keyring).conversation_id == conversation_id_for(
        keyring, channel.id, "case-9"
    )

    ahead = await waiting(desk, "ahead", ZOB, 0)
    assert (await desk.store_envelopes([(envelope.model_copy(update={"region": ZOB}), ZOB)]))[0]
    host = KindHost(
        None, store, None, None, keyring, Metrics(), None, None, True, None,  # type: ignore[arg-type]
        FieldCipher.ephemeral(), LocalLimiter(),
    )  # fmt: skip
    assert await host.queue_places(channel.id, {session, "f00d" * 16}) == {session: 2}
    await set_status(store, ahead, "claimed")
    assert await host.queue_places(channel.id, [session]) == {session: 1}
    await set_status(store, envelope.conversation_id, "claimed")
    assert await host.queue_places(channel.id, [session]) == {}
