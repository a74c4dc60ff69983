"""The desk's shift work against the real RabbitMQ and PostgreSQL, two desk processes:
internal notes apart from the messages and never sent, the transcript export for the
case system, the Masker 19 call-back (revealed only to the counsellor who has the
intake, with a reason, recorded) and its channel refusing replies, and the
registration at close outliving the transcript's retention."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import aio_pika
import asyncpg
import pytest

from gateway.domain.envelope import ChannelRef, Envelope, Route
from gateway.support.keys import Keyring
from tests.conftest import TEST_SECRET, drain
from tests.integration.conftest import (
    call,
    listed,
    outbound_beside,
    person_writes,
    running_desks,
    web_chat_claimed,
)

pytestmark = pytest.mark.broker

REGISTRATION = {"contact_role": "slachtoffer", "age_group": "18-plus", "topics": ["partnergeweld"],
                "outcome": "advies-gegeven"}  # fmt: skip


async def claimed_conversation(desks: dict, counsellor: str = "anna-zob", text: str = "Ik wil praten") -> str:
    await person_writes(desks, f"persoon-{uuid.uuid4().hex[:6]}", text)
    before = {c["conversation_id"] for c in await listed(desks, counsellor, count=0)}
    for item in await listed(desks, counsellor, count=len(before) + 1):
        if item["status"] == "waiting":
            conversation = item["conversation_id"]
            break
    status, _ = await call(desks["a"].base, "POST", f"/api/v1/conversations/{conversation}/claim",
                           desks["tokens"][counsellor])  # fmt: skip
    assert status == 200
    return conversation


async def audit_actions(desks: dict, conversation: str) -> list[tuple[str, str, str]]:
    db = await asyncpg.connect(desks["database_url"])
    try:
        rows = await db.fetch(
            "SELECT account, action, result FROM audit_log WHERE conversation_id = $1 ORDER BY seq",
            conversation,
        )
        return [(r["account"], r["action"], r["result"]) for r in rows]
    finally:
        await db.close()


async def test_notes_stay_with_the_team_and_follow_a_transfer_but_never_reach_the_person(desks) -> None:
    tokens, a, b = desks["tokens"], desks["a"], desks["b"]
    conversation = await claimed_conversation(desks)
    await drain(desks["url"], ["gw.outbound"])
    c = f"/api/v1/conversations/{conversation}"
    status, answer = await call(
        b.base, "POST", c + "/notes", tokens["anna-zob"], {"text": "Overleg met Bram: veilig?"}
    )
    assert status == 201 and answer["status"] == "noted"
    status, seen = await call(a.base, "GET", c, tokens["bram-zob"])
    assert [(n["author"], n["text"]) for n in seen["notes"]] == [("anna-zob", "Overleg met Bram: veilig?")]
    assert [e["direction"] for e in seen["transcript"]] == ["in"], "a note shown among the messages"
    status, _ = await call(a.base, "POST", c + "/transfer", tokens["anna-zob"],
                           {"team": "national", "reason": "Acuut, landelijk verder"})  # fmt: skip
    assert status == 200
    status, seen = await call(b.base, "GET", c, tokens["dirk-landelijk"])
    assert [n["text"] for n in seen["notes"]] == ["Overleg met Bram: veilig?"]
    assert seen["handovers"][0]["note"] == "Acuut, landelijk verder"
    sent = await drain(desks["url"], ["gw.outbound"], idle=1.0)
    assert not any(b"Overleg met Bram" in m.body or b"landelijk verder" in m.body for m in sent)
    assert ("anna-zob", "note", "ok") in await audit_actions(desks, conversation)
    status, answer = await call(a.base, "POST", c + "/notes", tokens["anna-zob"], {"text": "te laat"})
    assert (status, answer["error"]) == (403, "other_team")


async def test_the_export_is_for_the_counsellor_who_has_it_and_is_recorded(desks) -> None:
    tokens, a = desks["tokens"], desks["a"]
    conversation = await claimed_conversation(desks, text="Mijn vader slaat")
    c = f"/api/v1/conversations/{conversation}"
    await call(a.base, "POST", c + "/reply", tokens["anna-zob"], {"text": "Dank dat je het vertelt."})
    await call(a.base, "POST", c + "/notes", tokens["anna-zob"], {"text": "intern"})
    status, answer = await call(a.base, "GET", c + "/export", tokens["bram-zob"])
    assert (status, answer["error"]) == (409, "not_claimed")
    status, document = await call(a.base, "GET", c + "/export", tokens["anna-zob"])
    assert status == 200 and "notes" not in document
    assert [(e["direction"], e["text"]) for e in document["transcript"]] == [
        ("in", "Mijn vader slaat"), ("out", "Dank dat je het vertelt."),
    ]  # fmt: skip
    from aiohttp import ClientSession

    headers = {"Authorization": f"Bearer {tokens['anna-zob']}"}
    async with (
        ClientSession() as session,
        session.get(a.base + c + "/export?format=text", headers=headers) as r,
    ):
        text = await r.text()
        assert r.status == 200 and r.content_type == "text/plain"
        assert r.headers["Content-Disposition"] == f'attachment; filename="gesprek-{conversation}.txt"'
        assert r.headers["Cache-Control"] == "no-store"
    assert "Persoon: Mijn vader slaat" in text and "Hulpverlener anna-zob: Dank dat je het vertelt." in text
    assert "intern" not in text
    actions = await audit_actions(desks, conversation)
    assert actions.count(("anna-zob", "export", "ok")) == 2 and ("bram-zob", "export", "failed") in actions


async def an_intake(desks: dict, number: str) -> str:
    """A Masker 19 intake as the ingest role makes it: the number only in the sealed handle."""
    conversation = f"c_intake_{uuid.uuid4().hex[:8]}"
    handle = Keyring(TEST_SECRET).seal(
        {"channel": "masker19", "kind": "masker19", "address": number, "at": datetime.now(UTC).isoformat()}
    )
    envelope = Envelope(
        id=str(uuid.uuid4()), conversation_id=conversation, region="zuidoost-brabant",
        channel=ChannelRef(kind="masker19", instance="masker19"), received_at=datetime.now(UTC),
        text="Masker 19-melding van Apotheek De Linde (Eindhoven).", sender="p_x", reply_handle=handle,
        route=Route(queue="gw.region.zuidoost-brabant.urgent", reason="test"),
    )  # fmt: skip
    connection = await aio_pika.connect(desks["url"])
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange("gw.region", ensure=False)
        await exchange.publish(aio_pika.Message(envelope.to_json(), message_id=envelope.id, delivery_mode=2),
                               "zuidoost-brabant.urgent")  # fmt: skip
    finally:
        await connection.close()
    for _ in range(100):
        if any(i["conversation_id"] == conversation for i in await listed(desks, "anna-zob", count=0)):
            return conversation
        await asyncio.sleep(0.1)
    raise AssertionError("the intake did not reach the desk")


async def test_the_masker19_call_back_is_revealed_only_to_its_counsellor_with_a_reason(desks) -> None:
    tokens, a, b = desks["tokens"], desks["a"], desks["b"]
    conversation = await an_intake(desks, "0612345678")
    c = f"/api/v1/conversations/{conversation}"
    status, answer = await call(a.base, "POST", c + "/reveal", tokens["anna-zob"], {"reason": "call_back"})
    assert (status, answer["error"]) == (409, "not_claimed")
    assert (await call(a.base, "POST", c + "/claim", tokens["anna-zob"]))[0] == 200
    status, answer = await call(b.base, "POST", c + "/reveal", tokens["bram-zob"], {"reason": "call_back"})
    assert (status, answer["error"]) == (409, "not_claimed"), "another counsellor saw the number"
    status, answer = await call(a.base, "POST", c + "/reveal", tokens["anna-zob"], {"reason": "nieuwsgierig"})
    assert status == 422
    status, contact = await call(b.base, "POST", c + "/reveal", tokens["anna-zob"], {"reason": "call_back"})
    assert (status, contact) == (200, {"call": "number", "number": "0612345678"})
    status, answer = await call(a.base, "POST", c + "/reply", tokens["anna-zob"], {"text": "hallo"})
    assert (status, answer["error"]) == (409, "cannot_reply"), "a reply to a channel that cannot carry one"
    status, seen = await call(a.base, "GET", c, tokens["anna-zob"])
    assert "0612345678" not in str(seen), "the number shown without a reveal"
    db = await asyncpg.connect(desks["database_url"])
    try:
        reveal = await db.fetchrow(
            "SELECT account, result, reason FROM audit_log WHERE conversation_id = $1 AND action = 'reveal' "
            "AND result = 'ok'", conversation,
        )  # fmt: skip
    finally:
        await db.close()
    assert tuple(reveal) == ("anna-zob", "ok", "call_back")
    for process in (a, b):
        assert "0612345678" not in process.logs()
    by_sms = await claimed_conversation(desks)
    reveal_sms = f"/api/v1/conversations/{by_sms}/reveal"
    status, answer = await call(a.base, "POST", reveal_sms, tokens["anna-zob"], {"reason": "call_back"})
    assert (status, answer["error"]) == (409, "nothing_to_reveal"), "a replying channel's address revealed"


async def test_the_registration_outlives_the_transcripts_retention(desks) -> None:
    tokens, a = desks["tokens"], desks["a"]
    conversation = await claimed_conversation(desks)
    c = f"/api/v1/conversations/{conversation}"
    status, _ = await call(a.base, "POST", c + "/close", tokens["anna-zob"], {**REGISTRATION, "note": "kort"})
    assert status == 200
    db = await asyncpg.connect(desks["database_url"])
    try:
        row = await db.fetchrow("SELECT * FROM desk_registrations WHERE conversation_id = $1", conversation)
        assert (row["team"], row["contact_role"], row["outcome"], row["serious"]) == (
            "zuidoost-brabant", "slachtoffer", "advies-gegeven", True,
        )  # fmt: skip
        assert "kort" not in str(dict(row)), "the note is kept with the statistics"
        registration_id = row["registration_id"]
        await db.execute(
            "UPDATE desk_conversations SET last_activity_at = now() - interval '800 hours' "
            "WHERE conversation_id = $1", conversation,
        )  # fmt: skip
    finally:
        await db.close()
    from datetime import timedelta

    from gateway.broker.embedded import EmbeddedBroker
    from gateway.config.live import LiveConfig
    from gateway.roles.desk import Desk
    from gateway.service import kinds, load_config, make_store
    from gateway.support.metrics import Metrics

    store = make_store(desks["database_url"])
    await store.start()
    try:
        desk = Desk(LiveConfig(load_config(desks["root"]), kinds()), EmbeddedBroker(), store, Metrics())
        assert await desk.forget_before(datetime.now(UTC) - timedelta(hours=720)) >= 1
    finally:
        await store.close()
    db = await asyncpg.connect(desks["database_url"])
    try:
        kept = await db.fetchrow(
            "SELECT * FROM desk_registrations WHERE registration_id = $1", registration_id
        )
        notes = await db.fetchval(
            "SELECT count(*) FROM desk_messages WHERE conversation_id = $1", conversation
        )
    finally:
        await db.close()
    assert kept is not None and kept["conversation_id"] is None and kept["outcome"] == "advies-gegeven"
    assert notes == 0, "the note outlived the conversation"


# capacity and a fair queue


@pytest.fixture
async def limited_desks(vhost, database_url, tmp_path, example_env, password_hash):
    """One conversation per counsellor at once; a claim unanswered for 3 s goes back."""
    desk_file = {"capacity": {"per_counsellor": 1, "unanswered_claim_minutes": 0.05}}
    async with running_desks(vhost, database_url, tmp_path, password_hash, desk_file) as world:
        yield world


async def waiting(desks: dict, count: int) -> list[str]:
    for n in range(count):
        await person_writes(desks, f"wachtend-{uuid.uuid4().hex[:6]}-{n}", f"Bericht {n}")
    listed_now = await listed(desks, "anna-zob", count=count)
    return [c["conversation_id"] for c in listed_now]


async def test_volgende_from_two_processes_never_goes_over_the_limit(limited_desks) -> None:
    desks = limited_desks
    tokens, a, b = desks["tokens"], desks["a"], desks["b"]
    await waiting(desks, 4)
    asks = [(base, who) for who in ("anna-zob", "bram-zob") for base in (a.base, b.base, a.base)]
    answers = await asyncio.gather(
        *(call(base, "POST", "/api/v1/queue/next", tokens[who]) for base, who in asks)
    )
    by_counsellor: dict[str, list[tuple[int, dict]]] = {"anna-zob": [], "bram-zob": []}
    for (_, who), answer in zip(asks, answers, strict=True):
        by_counsellor[who].append(answer)
    taken = []
    for who, got in by_counsellor.items():
        assert sorted(status for status, _ in got) == [200, 409, 409], (who, got)
        assert {body["error"] for status, body in got if status == 409} == {"at_capacity"}
        taken += [body["conversation_id"] for status, body in got if status == 200]
    assert len(set(taken)) == 2, "two counsellors were given the same conversation"
    claimed = {c["conversation_id"]: c["claimed_by"] for c in await listed(desks, "anna-zob", count=4)}
    assert sorted(v for v in claimed.values() if v) == ["anna-zob", "bram-zob"]
    status, answer = await call(a.base, "POST", "/api/v1/queue/next", tokens["dirk-landelijk"])
    assert (status, answer["error"]) == (404, "queue_empty")  # the national queue is empty


async def test_an_unanswered_claim_goes_back_to_the_queue_marked(limited_desks) -> None:
    desks = limited_desks
    tokens, a = desks["tokens"], desks["a"]
    first, second = await waiting(desks, 2)
    for conversation in (first, second):
        status, _ = await call(a.base, "POST", f"/api/v1/conversations/{conversation}/claim",
                               tokens["anna-zob" if conversation == first else "bram-zob"])  # fmt: skip
        assert status == 200
    status, _ = await call(a.base, "POST", f"/api/v1/conversations/{second}/reply", tokens["bram-zob"],
                           {"text": "Ik ben er."})  # fmt: skip
    assert status == 202
    for _ in range(200):  # the timeout is 3 s; the desk looks every 10 s
        items = {c["conversation_id"]: c for c in await listed(desks, "anna-zob", count=2)}
        if items[first]["status"] == "waiting":
            break
        await asyncio.sleep(0.1)
    assert (items[first]["status"], items[first]["returned"], items[first]["claimed_by"]) == (
        "waiting",
        True,
        None,
    )
    assert (items[second]["status"], items[second]["claimed_by"]) == ("claimed", "bram-zob"), (
        "an answered claim"
    )
    status, answer = await call(a.base, "POST", "/api/v1/queue/next", tokens["anna-zob"])
    assert status == 200 and answer["conversation_id"] == first and answer["returned"] is False


async def test_a_returning_contact_shows_its_earlier_contacts_and_nothing_that_identifies(desks) -> None:
    tokens, a = desks["tokens"], desks["a"]
    await person_writes(desks, "terugkerend", "De eerste keer")
    (item,) = [c for c in await listed(desks, "anna-zob") if c["status"] == "waiting"]
    c = f"/api/v1/conversations/{item['conversation_id']}"
    status, seen = await call(a.base, "GET", c, tokens["anna-zob"])
    assert status == 200 and seen["earlier"] == {"count": 0, "last_at": None, "last_outcome": None}
    assert (await call(a.base, "POST", c + "/claim", tokens["anna-zob"]))[0] == 200
    outcome = {**REGISTRATION, "outcome": "melding-geadviseerd"}
    assert (await call(a.base, "POST", c + "/close", tokens["anna-zob"], outcome))[0] == 200
    await person_writes(desks, "terugkerend", "Ik ben het weer")  # the same number writes again
    for _ in range(100):
        status, seen = await call(a.base, "GET", c, tokens["bram-zob"])
        if seen["status"] == "waiting":
            break
        await asyncio.sleep(0.1)
    assert seen["earlier"]["count"] == 1 and seen["earlier"]["last_outcome"] == "melding-geadviseerd"
    assert seen["earlier"]["last_at"] is not None
    assert "sender" not in seen and "+316" not in str(seen) and "p_" not in str(seen["earlier"])


async def test_a_reply_to_a_person_who_left_the_web_chat_is_refused_with_that_reason(desks) -> None:
    from aiohttp import ClientSession

    tokens, a = desks["tokens"], desks["a"]
    channel = "webchat-zuidoost-brabant"
    async with (
        ClientSession() as session,
        session.ws_connect(f"{a.base}/channels/{channel}/socket", headers={"Origin": a.base}) as socket,
    ):
        c = await web_chat_claimed(desks, socket, "Hallo, is daar iemand?")
        status, seen = await call(a.base, "GET", c, tokens["anna-zob"])
        assert status == 200 and seen["person_left"] is False
        status, _ = await call(a.base, "POST", c + "/reply", tokens["anna-zob"], {"text": "Ja, ik ben er."})
        assert status == 202
        await socket.send_json({"type": "end"})  # quick exit
        for _ in range(50):
            status, seen = await call(a.base, "GET", c, tokens["anna-zob"])
            if seen["person_left"]:
                break
            await asyncio.sleep(0.1)
    assert seen["person_left"] is True
    status, answer = await call(a.base, "POST", c + "/reply", tokens["anna-zob"], {"text": "Ben je er nog?"})
    assert (status, answer["error"]) == (409, "person_left")


async def test_a_reply_that_reaches_the_web_chat_after_the_person_left_shows_as_not_delivered(
    desks, tmp_path
) -> None:
    """The reply was published while the person was there; the outbound role delivers it
    after their quick exit: the counsellor sees it failed, with the reason, not "queued"."""
    from aiohttp import ClientSession

    tokens, a = desks["tokens"], desks["a"]
    channel = "webchat-zuidoost-brabant"
    async with (
        ClientSession() as session,
        session.ws_connect(f"{a.base}/channels/{channel}/socket", headers={"Origin": a.base}) as socket,
    ):
        c = await web_chat_claimed(desks, socket, "Is daar iemand?")
        status, _ = await call(a.base, "POST", c + "/reply", tokens["anna-zob"], {"text": "Ik ben er."})
        assert status == 202
        await socket.send_json({"type": "end"})  # quick exit, before any outbound role took the reply
    outbound = outbound_beside(desks, tmp_path / "outbound.log")
    try:
        await outbound.wait_ready(40)
        for _ in range(150):
            status, seen = await call(a.base, "GET", c, tokens["anna-zob"])
            (reply,) = [e for e in seen["transcript"] if e["direction"] == "out" and e["author"]]
            if reply["delivery"]["status"] != "queued":
                break
            await asyncio.sleep(0.1)
    finally:
        outbound.stop()
    assert reply["delivery"] == {"status": "failed", "reason": "session_ended"}
    assert seen["person_left"] is True


# the coordinator's wall board


async def test_the_wall_board_matches_the_queue_and_a_coordinator_moves_a_waiting_conversation(desks) -> None:
    tokens, a, b = desks["tokens"], desks["a"], desks["b"]
    for n in range(3):
        await person_writes(desks, f"bord-{uuid.uuid4().hex[:6]}", f"Bericht {n}")
    queue = await listed(desks, "anna-zob", count=3)
    assert (await call(a.base, "POST", f"/api/v1/conversations/{queue[0]['conversation_id']}/claim",
                       tokens["anna-zob"]))[0] == 200  # fmt: skip
    status, board = await call(b.base, "GET", "/api/v1/board", tokens["cora-zob"])
    assert status == 200
    (zob,) = board["teams"]
    assert zob["team"] == "zuidoost-brabant" and zob["open"] is True
    assert (zob["waiting_urgent"] + zob["waiting_normal"], zob["claimed"]) == (2, 1)
    assert zob["longest_wait_seconds"] >= 0
    online = {c["counsellor"]: c["load"] for c in zob["counsellors"]}
    assert online["anna-zob"] == 1 and online["bram-zob"] == 0 and "carla-rr" not in online
    status, national = await call(a.base, "GET", "/api/v1/board", tokens["nina-landelijk"])
    assert status == 200 and len(national["teams"]) == 27  # every region and the national team
    status, answer = await call(a.base, "GET", "/api/v1/board", tokens["anna-zob"])
    assert (status, answer["error"]) == (403, "not_permitted")

    waiting = queue[1]["conversation_id"]
    move = f"/api/v1/conversations/{waiting}/move"
    status, answer = await call(
        a.base, "POST", move, tokens["anna-zob"], {"team": "national", "reason": "druk"}
    )
    assert (status, answer["error"]) == (403, "not_permitted")
    status, answer = await call(
        a.base, "POST", move, tokens["cora-zob"], {"team": "national", "reason": "Druk, overloop"}
    )
    assert status == 200, answer
    status, seen = await call(b.base, "GET", f"/api/v1/conversations/{waiting}", tokens["dirk-landelijk"])
    assert status == 200 and seen["handovers"][0]["note"] == "Druk, overloop"
    claimed = f"/api/v1/conversations/{queue[0]['conversation_id']}/move"
    status, answer = await call(
        a.base, "POST", claimed, tokens["nina-landelijk"], {"team": "twente", "reason": "x"}
    )
    assert (status, answer["error"]) == (409, "not_waiting")
    status, board = await call(b.base, "GET", "/api/v1/board", tokens["cora-zob"])
    assert board["teams"][0]["waiting_urgent"] + board["teams"][0]["waiting_normal"] == 1
    db = await asyncpg.connect(desks["database_url"])
    try:
        moved = await db.fetchval(
            "SELECT count(*) FROM audit_log WHERE action = 'move' AND result = 'ok' AND account = 'cora-zob' "
            "AND conversation_id = $1", waiting,
        )  # fmt: skip
    finally:
        await db.close()
    assert moved == 1


async def test_standard_answers_are_the_teams_and_the_national_ones_filled_in(desks) -> None:
    tokens, a = desks["tokens"], desks["a"]
    status, found = await call(a.base, "GET", "/api/v1/responses", tokens["anna-zob"])
    assert status == 200
    by_id = {x["id"]: x for x in found["answers"]}
    assert found["answers"][0]["team"] == "zuidoost-brabant", "the team's own answers come first"
    assert {"spreekuur", "welkom", "bellen", "afsluiten"} <= set(by_id)
    assert "Veilig Thuis Zuidoost-Brabant" in by_id["welkom"]["text"] and "{" not in by_id["welkom"]["text"]
    assert "0800-2000" in by_id["bellen"]["text"]
    status, english = await call(a.base, "GET", "/api/v1/responses?lang=en&q=call", tokens["carla-rr"])
    assert status == 200 and [x["id"] for x in english["answers"]] == ["acuut", "bellen"]
    assert "spreekuur" not in {x["id"] for x in english["answers"]}, "another team's answer"
    status, answer = await call(a.base, "GET", "/api/v1/responses?lang=de", tokens["anna-zob"])
    assert (status, answer["error"]) == (422, "invalid_request")


# delivery status


async def test_a_replys_delivery_status_from_the_outbound_role_and_signed_twilio_callbacks(
    vhost, database_url, tmp_path, example_env, password_hash
) -> None:
    from urllib.parse import urlencode

    import yaml
    from aiohttp import ClientSession
    from twilio.request_validator import RequestValidator

    from adapters.twilio.cases import PUBLIC, TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN
    from tests.fakes import FakeProvider
    from tests.helpers.desk import SMS_CHANNEL

    twilio = await FakeProvider("twilio").start()
    twilio.then("ok", "400")

    def to_the_fake(root) -> None:
        path = root / "channels" / f"{SMS_CHANNEL}.yaml"
        data = yaml.safe_load(path.read_text())
        data["settings"]["api_base_url"] = twilio.base_url
        path.write_text(yaml.safe_dump(data, allow_unicode=True))

    async def deliveries(desks: dict, c: str) -> list[dict]:
        status, seen = await call(desks["a"].base, "GET", c, desks["tokens"]["anna-zob"])
        assert status == 200
        return [e["delivery"] for e in seen["transcript"] if e["direction"] == "out"]

    async def eventually(desks: dict, c: str, expected: list[dict]) -> None:
        for _ in range(100):
            if await deliveries(desks, c) == expected:
                return
            await asyncio.sleep(0.1)
        assert await deliveries(desks, c) == expected

    async def callback(desks: dict, sid: str, status: str, code: str = "") -> None:
        fields = {"MessageSid": sid, "SmsSid": sid, "MessageStatus": status, "SmsStatus": status,
                  "AccountSid": TWILIO_ACCOUNT_SID, "To": "+31612345678", "From": "+3197010580001",
                  "ApiVersion": "2010-04-01", **({"ErrorCode": code} if code else {})}  # fmt: skip
        signature = RequestValidator(TWILIO_AUTH_TOKEN).compute_signature(
            PUBLIC.format(channel=SMS_CHANNEL), fields
        )
        headers = {"X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded"}
        async with (
            ClientSession() as session,
            session.post(
                f"{desks['a'].base}/channels/{SMS_CHANNEL}/webhook", data=urlencode(fields), headers=headers
            ) as r,
        ):
            assert r.status == 200

    try:
        async with running_desks(
            vhost, database_url, tmp_path, password_hash, edit=to_the_fake, other_roles=("desk", "outbound")
        ) as desks:
            tokens, a = desks["tokens"], desks["a"]
            conversation = await claimed_conversation(desks)
            c = f"/api/v1/conversations/{conversation}"
            assert (await call(a.base, "POST", c + "/reply", tokens["anna-zob"], {"text": "Ik ben er."}))[
                0
            ] == 202
            await eventually(desks, c, [{"status": "sent", "reason": None}])
            assert len(await twilio.wait_for_calls(1)) == 1
            sid = f"SM{1:032x}"  # what the fake answered
            await callback(desks, sid, "delivered")
            await eventually(desks, c, [{"status": "delivered", "reason": None}])
            await callback(desks, sid, "sent")  # late and out of order: changes nothing
            await callback(desks, sid, "read")
            await eventually(desks, c, [{"status": "read", "reason": None}])
            assert (await call(a.base, "POST", c + "/reply", tokens["anna-zob"], {"text": "Hallo?"}))[
                0
            ] == 202
            await eventually(
                desks, c, [{"status": "read", "reason": None}, {"status": "failed", "reason": "twilio-21211"}]
            )
    finally:
        await twilio.stop()


async def test_the_queue_shows_previews_channel_names_acute_first_and_display_names(desks) -> None:
    tokens, a = desks["tokens"], desks["a"]
    await person_writes(
        desks, f"rustig-{uuid.uuid4().hex[:6]}", "Ik wil graag iets vragen over mijn buurvrouw. " * 4
    )
    await listed(desks, "anna-zob", count=1)
    await person_writes(desks, f"acuut-{uuid.uuid4().hex[:6]}", "Help, ik ben in gevaar")
    first, second = await listed(desks, "anna-zob", count=2)
    assert (first["acute"], first["urgent"], first["preview"]) == (True, True, "Help, ik ben in gevaar")
    assert second["acute"] is False and second["preview"].endswith("…") and len(second["preview"]) == 81
    assert {first["channel_name"], second["channel_name"]} == {"SMS"}
    c = f"/api/v1/conversations/{second['conversation_id']}"
    status, claimed = await call(a.base, "POST", c + "/claim", tokens["anna-zob"])
    assert status == 200 and claimed["claimed_by_name"] == "Anna"
    status, other_team = await call(a.base, "GET", "/api/v1/conversations", tokens["carla-rr"])
    assert status == 200 and "buurvrouw" not in str(other_team), "another team saw a preview"


async def test_a_long_wait_brings_one_message_but_not_where_someone_else_may_read(
    vhost, database_url, tmp_path, example_env, password_hash
) -> None:
    from aiohttp import ClientSession

    from gateway.domain.envelope import OutboundMessage

    desk_file = {"wait_notice": {"after_minutes": 0.05}}  # 3 s; the desk looks every 10 s
    async with running_desks(vhost, database_url, tmp_path, password_hash, desk_file) as desks:
        a = desks["a"]
        await drain(desks["url"], ["gw.outbound"])
        # SMS has auto_reply: false in the example (someone else may read the phone): no notice.
        await person_writes(desks, f"wacht-{uuid.uuid4().hex[:6]}", "Is er iemand?")
        async with (
            ClientSession() as session,
            session.ws_connect(
                f"{a.base}/channels/webchat-zuidoost-brabant/socket", headers={"Origin": a.base}
            ) as socket,
        ):
            await socket.send_json({"type": "start"})
            assert (await socket.receive_json(timeout=10))["type"] == "started"
            await socket.send_json({"type": "message", "seq": 1, "text": "Hallo?"})
            assert (await socket.receive_json(timeout=10)) == {"type": "ack", "seq": 1}
            queue = {
                c["channel_kind"]: c["conversation_id"] for c in await listed(desks, "anna-zob", count=2)
            }
            notices: list[OutboundMessage] = []
            for _ in range(40):
                arrived = await drain(desks["url"], ["gw.outbound"], idle=0.5)
                notices += [OutboundMessage.from_json(m.body) for m in arrived]
                if notices:
                    break
            assert [(n.origin, n.conversation_id) for n in notices] == [("wait_notice", queue["webchat"])]
            assert notices[0].text.startswith("Je staat nog in de wachtrij")
            later = await drain(desks["url"], ["gw.outbound"], idle=12)  # past the next look: no second one
            assert later == [], "a second notice, or one to the SMS channel"
        status, seen = await call(
            a.base, "GET", f"/api/v1/conversations/{queue['webchat']}", desks["tokens"]["anna-zob"]
        )
        assert status == 200
        assert [(e["direction"], e["author"]) for e in seen["transcript"]] == [("in", None), ("out", None)]


async def test_a_region_systems_contact_is_revealed_as_its_reference_not_as_a_number(desks) -> None:
    from aiohttp import ClientSession

    from adapters.http_json.cases import HTTP_JSON_CHANNEL
    from tests.conftest import auth

    tokens, a = desks["tokens"], desks["a"]
    body = {"message_id": uuid.uuid4().hex, "sender": "dossier-7", "text": "Melding uit ons systeem"}
    async with (
        ClientSession() as session,
        session.post(f"{a.base}/channels/{HTTP_JSON_CHANNEL}/webhook", json=body, headers=auth()) as r,
    ):
        assert r.status == 202
    for _ in range(100):
        found = [c for c in await listed(desks, "anna-zob", count=0) if c["channel_kind"] == "http-json"]
        if found:
            break
        await asyncio.sleep(0.1)
    (item,) = found
    assert item["can_reply"] is False
    c = f"/api/v1/conversations/{item['conversation_id']}"
    assert (await call(a.base, "POST", c + "/claim", tokens["anna-zob"]))[0] == 200
    status, contact = await call(a.base, "POST", c + "/reveal", tokens["anna-zob"], {"reason": "report"})
    assert (status, contact) == (200, {"call": "reference", "reference": "dossier-7"})
