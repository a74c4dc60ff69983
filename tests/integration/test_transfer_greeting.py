"""Issue 17, item 4: a counsellor's transfer brings the person no second greeting or
auto-reply, against the real RabbitMQ and PostgreSQL (two desk processes, the first
also ingest and router; no outbound role, so everything meant for the person stays in
`gw.outbound` to be counted).

The person writes in Zuidoost-Brabant's web chat (a channel with auto-replies). The
schedules' clock stands on a Monday at 10:00; the configuration copy gives a region a
schedule closed on Mondays where a case needs it, so the two teams' closed periods end
at different times (Tuesday and Wednesday 09:00): the auto-reply's claim is per
conversation and closed period, and the receiving team's period is another one.

- open team to open team (and on to the national team): nothing, at the transfer or at
  the person's next message;
- closed team to closed team with another closed period, and to the national team: the
  one auto-reply from the first team, nothing more;
- open team to a closed team: nothing; the person already talks with the helpline, and
  an automatic "we are closed" would come only because of the transfer.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import yaml
from aiohttp import ClientSession, ClientWebSocketResponse

from gateway.domain.envelope import OutboundMessage
from tests.conftest import drain
from tests.integration.conftest import call, running_desks

pytestmark = pytest.mark.broker

CHAT = "webchat-zuidoost-brabant"
ZOB, RR, NATIONAL = "zuidoost-brabant", "rotterdam-rijnmond", "national"
COUNSELLOR = {ZOB: "anna-zob", RR: "carla-rr", NATIONAL: "dirk-landelijk"}
WORKDAYS = ("mon", "tue", "wed", "thu", "fri")
# Closed on the test's Monday, each until another morning: two different closed periods.
CLOSED_UNTIL = {"tuesday": WORKDAYS[1:], "wednesday": WORKDAYS[2:]}
TUESDAY, WEDNESDAY = "dinsdag 25 november om 09:00", "woensdag 26 november om 09:00"


def closed_on_monday(**regions: str) -> Callable[[Path], None]:
    """A configuration edit: these regions closed on Mondays until the given day."""

    def edit(root: Path) -> None:
        path = root / "schedules.yaml"
        data = yaml.safe_load(path.read_text())
        for day, days in CLOSED_UNTIL.items():
            data["schedules"][f"closed-until-{day}"] = {
                "description": f"closed on Mondays until {day} 09:00",
                "weekly": {d: ["09:00-17:00"] for d in days},
            }
        path.write_text(yaml.safe_dump(data, allow_unicode=True))
        path = root / "regions.yaml"
        data = yaml.safe_load(path.read_text())
        for region in data["regions"]:
            if region["code"] in regions:
                region["schedule"] = f"closed-until-{regions[region['code']]}"
        path.write_text(yaml.safe_dump(data, allow_unicode=True))

    return edit


@asynccontextmanager
async def world(vhost, database_url, tmp_path, password_hash, **closed: str) -> AsyncIterator[dict]:
    edit = closed_on_monday(**{code.replace("_", "-"): day for code, day in closed.items()})
    async with running_desks(vhost, database_url, tmp_path, password_hash, edit=edit) as desks:
        yield desks


class Person:
    """Someone in the web chat: one session, so one conversation. Frames other than the
    ack (the place in the queue, ...) are kept in `frames`."""

    def __init__(self, socket: ClientWebSocketResponse) -> None:
        self.socket = socket
        self.seq = 0
        self.conversation: str | None = None
        self.frames: list[dict] = []

    async def write(self, text: str) -> None:
        self.seq += 1
        await self.socket.send_json({"type": "message", "seq": self.seq, "text": text})
        while (frame := await self.socket.receive_json(timeout=10)) != {"type": "ack", "seq": self.seq}:
            assert frame.get("type") not in ("ack", "error"), frame
            self.frames.append(frame)


@asynccontextmanager
async def chat(desks: dict) -> AsyncIterator[Person]:
    base = desks["a"].base
    async with (
        ClientSession() as session,
        session.ws_connect(f"{base}/channels/{CHAT}/socket", headers={"Origin": base}) as socket,
    ):
        await socket.send_json({"type": "start"})
        assert (await socket.receive_json(timeout=10))["type"] == "started"
        yield Person(socket)


async def sent_to_people(desks: dict) -> list[OutboundMessage]:
    """Everything published for people since the last look (auto-replies, replies,
    notices), once nothing more has come for a second."""
    return [OutboundMessage.from_json(m.body) for m in await drain(desks["url"], ["gw.outbound"], idle=1.0)]


async def seen_by(desks: dict, team: str, person: Person, messages: int) -> dict:
    """The team's counsellor has the conversation with this many of the person's
    messages: the router has routed them (and published what it had to with them)."""
    token, path = desks["tokens"][COUNSELLOR[team]], "/api/v1/conversations"
    for _ in range(150):
        if person.conversation is None:
            status, listing = await call(desks["b"].base, "GET", path, token)
            assert status == 200
            chats = [c for c in listing["conversations"] if c["channel_kind"] == "webchat"]
            if chats:
                (found,) = chats
                person.conversation = found["conversation_id"]
        if person.conversation is not None:
            status, seen = await call(desks["b"].base, "GET", f"{path}/{person.conversation}", token)
            if status == 200 and sum(e["direction"] == "in" for e in seen["transcript"]) >= messages:
                # The desk reads a conversation's summary before its transcript, in two
                # reads: the summary of the answer that first shows the message may be
                # older than it. Read once more, now that the message is committed.
                status, seen = await call(desks["b"].base, "GET", f"{path}/{person.conversation}", token)
                assert status == 200 and seen["team"] == team
                return seen
        await asyncio.sleep(0.1)
    raise AssertionError(f"{COUNSELLOR[team]} never saw {messages} message(s) of the conversation")


async def transfer(desks: dict, person: Person, source: str, target: str) -> None:
    assert person.conversation is not None
    token, c = desks["tokens"][COUNSELLOR[source]], f"/api/v1/conversations/{person.conversation}"
    status, answer = await call(desks["a"].base, "POST", c + "/claim", token)
    assert status == 200, answer
    status, answer = await call(
        desks["a"].base, "POST", c + "/transfer", token, {"team": target, "reason": "Woont daar, verder daar"}
    )
    assert status == 200, answer


def auto_replies(sent: list[OutboundMessage]) -> list[tuple[str, str]]:
    return [(m.origin, m.conversation_id) for m in sent]


async def test_open_team_to_open_team_and_on_to_national_sends_the_person_nothing(
    vhost, database_url, tmp_path, example_env, password_hash
) -> None:
    async with world(vhost, database_url, tmp_path, password_hash) as desks, chat(desks) as person:
        await sent_to_people(desks)
        await person.write("Ik wil iets vragen")
        await seen_by(desks, ZOB, person, 1)
        assert await sent_to_people(desks) == [], "an auto-reply while open"
        await transfer(desks, person, ZOB, RR)
        assert await sent_to_people(desks) == [], "something sent because of the transfer"
        await person.write("Ben je er nog?")
        seen = await seen_by(desks, RR, person, 2)
        assert seen["handovers"][0]["note"] == "Woont daar, verder daar"
        assert await sent_to_people(desks) == [], "something sent at the next message"
        await transfer(desks, person, RR, NATIONAL)
        await person.write("Hallo?")
        await seen_by(desks, NATIONAL, person, 3)
        assert await sent_to_people(desks) == [], "something sent after a second transfer"


async def test_closed_team_to_a_team_closed_longer_brings_no_second_auto_reply(
    vhost, database_url, tmp_path, example_env, password_hash
) -> None:
    closed = {"zuidoost_brabant": "tuesday", "rotterdam_rijnmond": "wednesday"}
    async with world(vhost, database_url, tmp_path, password_hash, **closed) as desks, chat(desks) as person:
        await sent_to_people(desks)
        await person.write("Is er iemand?")
        await seen_by(desks, ZOB, person, 1)
        (first,) = await sent_to_people(desks)
        assert (first.origin, first.conversation_id) == ("auto_reply", person.conversation)
        assert TUESDAY in first.text, "the first team's own closed period"
        await transfer(desks, person, ZOB, RR)
        assert await sent_to_people(desks) == [], "an auto-reply at the transfer"
        await person.write("Hallo?")
        await seen_by(desks, RR, person, 2)
        sent = await sent_to_people(desks)
        assert sent == [], f"a second auto-reply after the transfer: {auto_replies(sent)}"
        await person.write("Nog iemand?")
        await seen_by(desks, RR, person, 3)
        assert await sent_to_people(desks) == [], "an auto-reply later in the same closed period"


async def test_closed_team_to_the_national_team_brings_no_second_auto_reply(
    vhost, database_url, tmp_path, example_env, password_hash
) -> None:
    closed = {"zuidoost_brabant": "tuesday"}
    async with world(vhost, database_url, tmp_path, password_hash, **closed) as desks, chat(desks) as person:
        await sent_to_people(desks)
        await person.write("Is er iemand?")
        await seen_by(desks, ZOB, person, 1)
        assert auto_replies(await sent_to_people(desks)) == [("auto_reply", person.conversation)]
        await transfer(desks, person, ZOB, NATIONAL)
        assert await sent_to_people(desks) == [], "an auto-reply at the transfer"
        await person.write("Hallo?")
        await seen_by(desks, NATIONAL, person, 2)
        assert await sent_to_people(desks) == [], "a second auto-reply after the transfer"


async def test_open_team_to_a_closed_team_brings_no_we_are_closed_message(
    vhost, database_url, tmp_path, example_env, password_hash
) -> None:
    closed = {"rotterdam_rijnmond": "wednesday"}
    async with world(vhost, database_url, tmp_path, password_hash, **closed) as desks, chat(desks) as person:
        await sent_to_people(desks)
        await person.write("Ik wil iets vragen")
        await seen_by(desks, ZOB, person, 1)
        assert await sent_to_people(desks) == [], "an auto-reply while open"
        await transfer(desks, person, ZOB, RR)
        assert await sent_to_people(desks) == [], "an auto-reply at the transfer"
        await person.write("Hallo?")
        seen = await seen_by(desks, RR, person, 2)
        assert seen["after_hours"] is True, "held for the closed team, after hours"
        sent = await sent_to_people(desks)
        assert sent == [], f"a 'we are closed' message because of the transfer: {auto_replies(sent)}"


async def test_a_conversation_not_transferred_still_gets_its_one_auto_reply(
    vhost, database_url, tmp_path, example_env, password_hash
) -> None:
    """The guarantee kept beside the fix: closed, one auto-reply per conversation and
    period, whoever else was transferred."""
    closed = {"zuidoost_brabant": "tuesday"}
    async with world(vhost, database_url, tmp_path, password_hash, **closed) as desks:
        await sent_to_people(desks)
        async with chat(desks) as person:
            await person.write("Eerste")
            await seen_by(desks, ZOB, person, 1)
            await person.write("Tweede")
            await seen_by(desks, ZOB, person, 2)
        assert auto_replies(await sent_to_people(desks)) == [("auto_reply", person.conversation)]
