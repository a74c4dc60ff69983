"""Desk benchmark: how fast the desk role stores a filled region queue in
PostgreSQL, against a bare insert loop in the same run, how long a message
takes from the region queue to an open console (its server-sent event), and how
long the console's two loads take with a month of traffic in the store.

    .venv/bin/python bench/desk.py [--messages 5000] [--rate 50] [--duration 10]
    .venv/bin/python bench/desk.py --only console-load [--conversations 10000] [--loads 20]

1. drain: N envelopes are queued in gw.region.zuidoost-brabant.normal, then
   `gateway run --role desk` starts; the rate is N over the time until all N are
   in the database. The bare baseline inserts the same N rows, one transaction
   each, with asyncpg.
2. console: with the desk running and a counsellor's /api/v1/events stream open,
   envelopes are published at a steady rate; the latency of each is the time from
   its publish to its `changed` event.
3. console-load (a database of its own): --conversations conversations (default
   10,000) are written straight into the desk's tables as the desk writes them
   (spread over the teams, most closed or waiting, some claimed, the channel
   kinds mixed; sealed reply handles, registrations, deliveries, fetched
   attachments, a chained access log), with one conversation of --transcript
   messages (500) claimed by the bench counsellor in Zuidoost-Brabant. With
   `gateway run --role desk` on that store, the counsellor's session times the
   console's two loads, sequentially: the queue list (GET /api/v1/conversations,
   what the console asks when it opens) and that conversation
   (GET /api/v1/conversations/{id}, when it opens one), --loads times each after
   --warmup; interleaved with them, the bare baseline makes the same SELECTs over
   one asyncpg connection. Aim: both medians under 200 ms. --explain prints
   EXPLAIN ANALYZE of the list's and the transcript's query.

`--only drain` runs parts 1 and 2 (they share a desk), `--only console-load` part 3.
Needs GATEWAY_TEST_DATABASE_URL or --database-url (PostgreSQL). Last line: JSON
with desk_msgs_per_s, bare_msgs_per_s, ratio, console_p50_ms, console_p99_ms and
queue_list_median_ms, queue_list_p90_ms, bare_queue_list_median_ms,
queue_list_ratio, conversation_500_median_ms, conversation_500_p90_ms,
bare_conversation_500_median_ms, conversation_500_ratio, console_load_pass (each
part's fields when it ran).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import os
import random
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp
import asyncpg
import orjson
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script

from adapters.webchat.store import webchat_sessions
from gateway.config.models import NATIONAL, Config
from gateway.domain.envelope import ChannelRef, Envelope, Route, envelope_id
from gateway.domain.identity import record_digest
from gateway.domain.schedules import resolve, state_at
from gateway.roles.attachments import attachment_id
from gateway.service import load_config
from gateway.store.tables import (
    desk_attachments,
    desk_conversations,
    desk_handovers,
    desk_messages,
    desk_registrations,
    reply_deliveries,
)
from gateway.support.fieldcrypt import FieldCipher, generate_key
from gateway.support.keys import Keyring
from gateway.support.media import shown_inline
from gateway.support.passwords import hash_password
from tests.helpers import harness
from tests.helpers.desk import Counsellors
from tests.helpers.harness import (
    PYTHON,
    Process,
    Vhost,
    common_arguments,
    database_argument,
    free_port,
    median,
    percentile,
    python_env,
    run_and_print,
    scratch_database,
)

# The repository. The harness's ROOT has been tests/ since it moved to tests/helpers: the
# service started there imports tests/adapters instead of the channel kinds, and logs
# would go to tests/bench/results. Until it is fixed there, this benchmark sets it.
REPO = Path(__file__).resolve().parent.parent
harness.ROOT = REPO
PASSWORD = "bench-counsellor-password"
SECRET_KEY = "bench-secret-key-0123456789abcdef0123456789"
TEAM = "zuidoost-brabant"


def envelope(n: int, tag: str, conversations: int = 500) -> Envelope:
    return Envelope(
        id=str(uuid.uuid4()),
        conversation_id=f"c_{tag}_{n % conversations}",
        channel=ChannelRef(kind="http-json", instance="http-json-zuidoost-brabant"),
        region=TEAM,
        received_at=datetime.now(UTC),
        text="Ik wil graag iemand spreken over wat er thuis gebeurt.",
        sender="p_bench",
        reply_handle="g1.bench",
        route=Route(queue=f"gw.region.{TEAM}.normal", reason="bench"),
    )


async def publish(
    url: str, items: list[Envelope], rate: float | None = None, sent: dict[str, float] | None = None
) -> None:
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange("gw.region", ensure=False)
        started = time.perf_counter()
        for n, item in enumerate(items):
            if rate:
                delay = started + n / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            if sent is not None:
                sent[item.conversation_id] = time.perf_counter()
            await exchange.publish(
                aio_pika.Message(item.to_json(), message_id=item.id, delivery_mode=2), f"{TEAM}.normal"
            )
    finally:
        await connection.close()


async def stored(database_url: str) -> int:
    connection = await asyncpg.connect(database_url)
    try:
        return int(await connection.fetchval("SELECT count(*) FROM desk_messages"))
    finally:
        await connection.close()


async def bare_inserts(database_url: str, items: list[Envelope]) -> float:
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute(
            "CREATE TEMP TABLE bare (id text primary key, conversation text, body text, at timestamptz)"
        )
        started = time.perf_counter()
        for item in items:
            async with connection.transaction():
                await connection.execute(
                    "INSERT INTO bare VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                    item.id,
                    item.conversation_id,
                    item.text,
                    item.received_at,
                )
        return len(items) / (time.perf_counter() - started)
    finally:
        await connection.close()


async def run(args: argparse.Namespace) -> dict[str, object]:
    result: dict[str, object] = {"machine_load_1m_start": round(os.getloadavg()[0], 2)}
    if args.only in (None, "drain"):
        async with scratch_database(args.database_url, "gw_bench") as bench_db:
            result.update(await run_in(args, bench_db))
    if args.only in (None, "console-load"):  # a database of its own: only its own rows in it
        async with scratch_database(args.database_url, "gw_bench_load") as bench_db:
            result.update(await console_load(args, bench_db))
    result["machine_load_1m_end"] = round(os.getloadavg()[0], 2)
    return result


async def run_in(args: argparse.Namespace, bench_db: str) -> dict[str, object]:
    config_dir = Path(tempfile.mkdtemp(prefix="bench-desk-"))
    try:
        shutil.rmtree(config_dir)
        shutil.copytree(REPO / "config", config_dir)
        account = {"id": "bench", "name": "Bench", "team": TEAM, "password_hash": hash_password(PASSWORD)}
        (config_dir / "counsellors.yaml").write_text(yaml.safe_dump({"counsellors": [account]}))
        with Vhost(args.amqp_url) as vhost:
            env = python_env(
                GATEWAY_AMQP_URL=vhost.url,
                GATEWAY_DATABASE_URL=bench_db,
                GATEWAY_CONFIG=str(config_dir),
                GATEWAY_SECRET_KEY=SECRET_KEY,
                GATEWAY_LOG_LEVEL="WARNING",
            )
            port = free_port()
            command = [PYTHON, "-m", "gateway.cli", "run", "--port", str(port), "--role", "desk"]
            with Process(command, env, port, log_path=Path(args.log_dir) / "desk.log") as migrating:
                await migrating.wait_ready()  # declares the topology and migrates, then stops
            tag = uuid.uuid4().hex[:6]
            items = [envelope(n, tag) for n in range(args.messages)]
            await publish(vhost.url, items)
            with Process(command, env, port, log_path=Path(args.log_dir) / "desk.log") as desk:
                await desk.wait_ready()
                first = await stored(bench_db)
                while first == 0:  # timed from the first stored message: start-up is not the desk's rate
                    await asyncio.sleep(0.01)
                    first = await stored(bench_db)
                started = time.perf_counter()
                while await stored(bench_db) < args.messages:  # noqa: ASYNC110 - polling the database
                    await asyncio.sleep(0.05)
                desk_rate = (args.messages - first) / (time.perf_counter() - started)
                bare_rate = await bare_inserts(bench_db, items)
                latencies = await console_latency(vhost.url, port, args)
        return {
            "messages": args.messages,
            "desk_msgs_per_s": round(desk_rate, 1),
            "bare_msgs_per_s": round(bare_rate, 1),
            "ratio": round(desk_rate / bare_rate, 3),
            "console_events": len(latencies),
            "console_p50_ms": round(percentile(latencies, 50), 2),
            "console_p99_ms": round(percentile(latencies, 99), 2),
            "note": "desk: from its first stored message to the last; bare: one transaction per row",
        }
    finally:
        shutil.rmtree(config_dir, ignore_errors=True)


async def console_latency(amqp_url: str, port: int, args: argparse.Namespace) -> list[float]:
    base = f"http://127.0.0.1:{port}"
    sent: dict[str, float] = {}
    latencies: list[float] = []
    async with aiohttp.ClientSession() as session:
        token = (await Counsellors(PASSWORD).sign_in(session, base, "bench"))["token"]
        tag = uuid.uuid4().hex[:6]
        count = int(args.rate * args.duration)
        items = [envelope(n, tag, conversations=count) for n in range(count)]  # each event names one message
        async with session.get(
            f"{base}/api/v1/events", headers={"Authorization": f"Bearer {token}"}
        ) as stream:
            publisher = asyncio.create_task(publish(amqp_url, items, args.rate, sent))

            async def read() -> None:
                async for line in stream.content:
                    text = line.decode().strip()
                    if text.startswith("data: "):
                        at = sent.pop(text[6:], None)
                        if at is not None:
                            latencies.append((time.perf_counter() - at) * 1000)
                    if len(latencies) >= len(items):
                        return

            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(read(), args.duration + 30)
            await publisher
    return sorted(latencies)


# 3. console-load: the console's two loads with a month of traffic in the store ----------

LIMIT_MS = 200.0
LONG_CHANNEL = "whatsapp-zuidoost-brabant"  # added to the bench's configuration: a ZOB number
# A month of traffic (retention is 30 days): the channel kinds' shares, the states, and
# the national team's share (the regions share the rest by size, in municipalities).
KIND_MIX = {"whatsapp": 34, "webchat": 30, "sms": 14, "http-json": 12, "telegram": 6, "masker19": 4}
STATUS_MIX = {"closed": 70, "waiting": 24, "claimed": 6}
NATIONAL_SHARE = 0.10
PER_COUNSELLOR = 3  # config/desk.yaml capacity.per_counsellor
# What people send besides text (WhatsApp, Telegram): photos, voice notes, documents; the
# desk has fetched them (a few were refused), and keeps their bytes in desk_attachments.
ATTACHMENT_MIX = {"image/jpeg": 70, "audio/ogg": 20, "application/pdf": 10}
ATTACHMENT_SIGNATURES = {
    "image/jpeg": b"\xff\xd8\xff\xe0",
    "audio/ogg": b"OggS",
    "application/pdf": b"%PDF-1.7",
}
ATTACHMENT_BYTES = os.urandom(400_000)  # the bodies are slices of it
PERSON_LINES = (
    "Ik wil graag iemand spreken over wat er thuis gebeurt.",
    "Mijn vriend wordt heel boos als ik later thuiskom dan hij wil.",
    "Ik hoor bij de buren bijna elke avond geschreeuw en een kind dat huilt.",
    "Kan ik dit anoniem vertellen?",
    "Hij heeft mijn telefoon afgepakt en ik mag niet meer alleen weg.",
    "Ik denk dat mijn moeder door haar verzorger slecht behandeld wordt.",
    "Ik weet niet of dit erg genoeg is om te melden.",
    "Vannacht was het weer heel erg. Ik ben nu bij een vriendin.",
    "Ja.",
    "Dat weet ik niet zeker.",
    "Mijn zus zegt dat ik moet bellen maar dat durf ik niet.",
    "Hij slaat niet, maar hij bepaalt alles: geld, wie ik zie, wat ik draag.",
    "Ik ben 15 en ik wil niet meer naar huis.",
    "Oké, dank je. Ik moet nu stoppen, hij komt eraan.",
)
COUNSELLOR_LINES = (
    "Goed dat je ons schrijft. Je kunt hier anoniem je verhaal doen.",
    "Ben je nu veilig?",
    "Dat klinkt heel zwaar. Wil je vertellen wat er gisteren gebeurde?",
    "Wat je beschrijft is niet normaal, en het is niet jouw schuld.",
    "We kunnen samen kijken wat een volgende stap kan zijn.",
    "Is er iemand bij wie je vannacht kunt slapen?",
    "Bij direct gevaar bel je 112.",
    "Je kunt ons ook gratis en anoniem bellen op 0800-2000, dag en nacht.",
)
NOTE_LINES = (
    "Persoon noemt een kind van 4 in huis; bij volgend contact vragen naar school.",
    "Terugbelafspraak voorgesteld, persoon wil eerst nadenken.",
    "Overleg met collega: advies gegeven, geen melding nu.",
)
HANDOVER_NOTE = "Persoon woont in deze regio; graag daar verder oppakken."


def _pick(rng: random.Random, weights: Mapping[str, float]) -> str:
    return rng.choices(list(weights), list(weights.values()))[0]


def _text(rng: random.Random, lines: tuple[str, ...]) -> str:
    return " ".join(rng.sample(lines, rng.choice((1, 1, 1, 2, 2, 3))))


@dataclass
class _Conversation:
    """One conversation being written: its channel and what it has so far."""

    conversation_id: str
    team: str
    kind: str
    instance: str
    address: str
    notices: bool  # the channel gets the long-wait notice (it carries replies, auto_reply on)
    replies: bool  # the channel carries counsellors' replies
    last_in: datetime
    last_activity: datetime
    answered_at: datetime | None = None
    claimed_at: datetime | None = None
    ins: int = 0
    outs: int = 0


@dataclass
class Filled:
    """The rows a store holds after a month of traffic, in the desk's own columns and
    formats: pseudonymous ids and senders, sealed reply handles, every episode of a
    conversation (a closed one reopens when the person writes again), replies with their
    delivery, wait notices, a registration at every close, notes, handovers, web chat
    sessions, and the access log's chained records of the counsellors' actions."""

    config: Config
    keyring: Keyring
    fields: FieldCipher  # what people wrote is stored encrypted, as the desk stores it
    now: datetime
    rng: random.Random
    # Rows by column name: a column not named keeps its server default.
    conversations: list[dict[str, Any]] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    registrations: list[dict[str, Any]] = field(default_factory=list)
    handovers: list[dict[str, Any]] = field(default_factory=list)
    chats: list[dict[str, Any]] = field(default_factory=list)
    attachments: list[dict[str, Any]] = field(default_factory=list)
    audit: list[tuple[datetime, str, str, str, str | None]] = field(default_factory=list)
    claims: dict[str, int] = field(default_factory=dict)  # per team, to keep within capacity
    schedules: dict[str, Any] = field(default_factory=dict)  # per team, resolved

    def counsellor(self, team: str, *, claiming: bool = False) -> str:
        """One of the team's counsellors; a claim goes to the first with room."""
        if not claiming:
            return f"{team}-hv{self.rng.randint(1, 6):02d}"
        number = self.claims.get(team, 0)
        self.claims[team] = number + 1
        return f"{team}-hv{number // PER_COUNSELLOR + 1:02d}"

    def accounts(self) -> list[tuple[str, str]]:
        """Every counsellor the rows name, (id, team), for counsellors.yaml."""
        found = {(f"{t}-hv{n:02d}", t) for t in self.config.team_codes for n in range(1, 7)}
        found |= {
            (f"{t}-hv{n // PER_COUNSELLOR + 1:02d}", t) for t, c in self.claims.items() for n in range(c)
        }
        return sorted(found)

    def _address(self, kind: str, instance: str) -> str:
        rng = self.rng
        number = f"+316{rng.randrange(10**8):08d}"
        if kind == "whatsapp":
            return "whatsapp:" + number
        if kind == "telegram":
            return str(rng.randrange(10**9, 10**10))
        if kind == "webchat":  # the session id: a new one per visit
            return hashlib.sha256(uuid.uuid4().bytes).hexdigest()
        if kind == "http-json":
            return f"{instance}:client-{rng.randrange(10**6)}"
        if kind == "masker19":
            return number if rng.random() < 0.6 else f"apotheek:apotheek-{rng.randrange(500)}"
        return number

    def _after_hours(self, team: str, at: datetime) -> bool:
        if team == NATIONAL:
            return False
        if team not in self.schedules:
            self.schedules[team] = resolve(self.config.regions[team].schedule, self.config.schedules)
        return not state_at(self.schedules[team], at).open

    def _message(self, c: _Conversation, direction: str, author: str | None, text: str, at: datetime) -> None:
        rng = self.rng
        attachments = "[]"
        if direction == "in":
            message_id = envelope_id(c.instance, f"bench-{uuid.uuid4().hex}")
            c.last_in = c.last_activity = max(c.last_activity, at)
            c.ins += 1
            if c.kind in ("whatsapp", "telegram") and rng.random() < 0.03:
                attachments = self._attachment(c, message_id, at)
        else:
            message_id = str(uuid.uuid4())
            if direction == "out":
                c.outs += 1
            if direction == "out" and author is not None:  # a counsellor's reply (not a wait notice)
                c.last_activity, c.answered_at = max(c.last_activity, at), at
                if c.kind in ("webchat", "telegram"):
                    delivery = "sent"
                else:
                    delivery = _pick(rng, {"delivered": 70, "read": 20 if c.kind == "whatsapp" else 0,
                                           "sent": 8, "failed": 2})  # fmt: skip
                reason = "twilio-30008" if delivery == "failed" else None
                self.deliveries.append(
                    {"message_id": message_id, "status": delivery, "reason": reason,
                     "updated_at": at + timedelta(seconds=3)}
                )  # fmt: skip
                self.audit.append((at, author, c.team, "reply", c.conversation_id))
            elif direction == "note":
                self.audit.append((at, author or "", c.team, "note", c.conversation_id))
        key_id, sealed = self.fields.encrypt_text(text, f"desk_messages:{message_id}")
        self.messages.append(
            {"message_id": message_id, "conversation_id": c.conversation_id, "direction": direction,
             "author": author, "text": sealed, "key_id": key_id, "attachments": attachments, "at": at}
        )  # fmt: skip

    def _attachment(self, c: _Conversation, message_id: str, at: datetime) -> str:
        """desk_attachments' row, fetched a few seconds after the message came (a video over
        attachments.max_bytes refused); returns what the message itself keeps of it."""
        rng = self.rng
        fetched = at + timedelta(seconds=rng.uniform(2, 20))
        row_id = attachment_id(message_id, 0)
        row: dict[str, Any] = {
            "attachment_id": row_id, "message_id": message_id, "conversation_id": c.conversation_id,
            "position": 0, "channel_kind": c.kind, "channel_instance": c.instance, "source": None,
            "attempts": 1, "next_attempt_at": fetched, "created_at": at,
        }  # fmt: skip
        if rng.random() < 0.05:
            kind = "video/mp4"
            row |= {"declared_type": kind, "status": "refused", "reason": "too_large",
                    "size": rng.randint(11, 60) * 2**20,
                    "content_type": None, "data": None, "key_id": None, "inline": False}  # fmt: skip
        else:
            kind = _pick(rng, ATTACHMENT_MIX)
            size = rng.randint(20_000, 300_000 if kind == "image/jpeg" else 120_000)
            data = ATTACHMENT_SIGNATURES[kind] + ATTACHMENT_BYTES[: size - len(ATTACHMENT_SIGNATURES[kind])]
            key_id, sealed = self.fields.encrypt(data, f"desk_attachments:{row_id}")
            row |= {"declared_type": kind, "status": "stored", "reason": None, "content_type": kind,
                    "size": len(data), "data": sealed, "key_id": key_id,
                    "inline": shown_inline(kind, data)}  # fmt: skip
        self.attachments.append(row)
        return orjson.dumps([{"content_type": kind}]).decode()

    def _person(self, c: _Conversation, at: datetime) -> None:
        self._message(c, "in", None, _text(self.rng, PERSON_LINES), at)

    def _reply(self, c: _Conversation, who: str, at: datetime) -> None:
        self._message(c, "out", who, _text(self.rng, COUNSELLOR_LINES), at)

    def _taken(self, c: _Conversation, begin: datetime, taken: datetime, who: str) -> None:
        """The long-wait notice if it came before the claim, and the claim's records."""
        if c.notices and taken - begin > timedelta(minutes=10):
            notice = begin + timedelta(minutes=10, seconds=self.rng.uniform(0, 10))
            self._message(c, "out", None, self.config.desk.wait_notice.text["nl"], notice)
        c.claimed_at = taken
        self.audit.append((taken, who, c.team, "read", c.conversation_id))
        self.audit.append((taken, who, c.team, "claim", c.conversation_id))

    def _closed(self, c: _Conversation, begin: datetime, urgent: bool, turns: int, step: float) -> datetime:
        """An episode claimed, answered `turns` times and closed with its registration."""
        rng = self.rng
        self._person(c, begin)
        taken = begin + timedelta(minutes=min(rng.expovariate(1 / 8), 120))
        who = self.counsellor(c.team)
        self._taken(c, begin, taken, who)
        at = taken
        if not c.replies:  # a call back instead: the intake, perhaps one more message
            turns = min(turns, 1)
        for turn in range(turns):
            at += timedelta(seconds=rng.uniform(0.5, 1.5) * step)
            if c.replies:
                self._reply(c, who, at)
            if turn < turns - 1 or rng.random() < 0.5:
                at += timedelta(seconds=rng.uniform(0.5, 1.5) * step)
                self._person(c, at)
        at += timedelta(minutes=rng.uniform(1, 5))
        wrap_up = self.config.desk.wrap_up
        outcome = rng.choice(wrap_up.outcome.options)
        topics = rng.sample([o.code for o in wrap_up.topics.options], rng.choice((1, 1, 2)))
        self.registrations.append(
            {"registration_id": str(uuid.uuid4()), "conversation_id": c.conversation_id, "team": c.team,
             "channel_kind": c.kind, "urgent": urgent, "after_hours": self._after_hours(c.team, begin),
             "closed_at": at, "contact_role": rng.choice(wrap_up.contact_role.options).code,
             "age_group": rng.choice(wrap_up.age_group.options).code, "topics": orjson.dumps(topics).decode(),
             "outcome": outcome.code, "serious": outcome.serious}
        )  # fmt: skip
        self.audit.append((at, who, c.team, "close", c.conversation_id))
        if rng.random() < 0.2:  # the registration's note stays as an internal note
            self._message(c, "note", who, rng.choice(NOTE_LINES), at)
        return at

    def add(
        self,
        team: str,
        kind: str,
        status: str,
        *,
        episodes: int = 1,
        transcript: int | None = None,
        claimed_by: str | None = None,
        instance: str | None = None,
    ) -> str:
        """One conversation; `transcript`: exactly that many messages with the person (a
        long conversation: `episodes - 1` earlier ones, the rest in the current claim)."""
        rng, now = self.rng, self.now
        acute = (kind == "masker19" and rng.random() < 0.1) or rng.random() < 0.005
        urgent = acute or rng.random() < 0.1
        if acute and kind in self.config.routing.acute_always_national:
            team = NATIONAL
        instance = instance or ("masker19" if kind == "masker19" else f"{kind}-{team}")
        address = self._address(kind, instance)
        key = f"intake:{uuid.uuid4()}" if kind == "masker19" else address
        channel = self.config.channels.get(instance)
        c = _Conversation(
            conversation_id=self.keyring.pseudonym(f"{instance}\x1f{key}", prefix="c_"),
            team=team, kind=kind, instance=instance, address=address,
            notices=kind in ("whatsapp", "webchat", "telegram") and (channel is None or channel.auto_reply),
            replies=kind not in ("http-json", "masker19"), last_in=now,
            last_activity=now - timedelta(days=60),
        )  # fmt: skip
        if status == "closed":
            start = now - timedelta(hours=rng.uniform(8, 29 * 24))
        elif status == "waiting":
            start = now - timedelta(seconds=max(30.0, 16 * 3600 * rng.random() ** 2))
        else:
            # A claim without a counsellor's reply goes back to the queue after 5 minutes
            # (capacity.unanswered_claim_minutes): one on a channel without replies is young.
            ago = (
                175.0
                if transcript is not None
                else rng.uniform(2, 90)
                if c.replies
                else rng.uniform(0.3, 4.5)
            )
            claimed_at = now - timedelta(minutes=ago)
            start = claimed_at - timedelta(minutes=rng.uniform(0.5, 3))
        earlier = sorted(start - timedelta(days=rng.uniform(2, 20) * (n + 1)) for n in range(episodes - 1))
        for begin in earlier:  # reopened: each earlier episode closed with its registration
            turns, step = (
                (max(1, transcript // 10), 40.0)
                if transcript
                else (max(1, min(20, int(rng.expovariate(1 / 4)))), 180.0)
            )
            self._closed(c, begin, urgent, turns, step)

        claimed_by_now: str | None = None
        returned = notice_sent = False
        end = start
        if status == "closed":
            end = self._closed(c, start, urgent, max(1, min(20, int(rng.expovariate(1 / 4)))), 180.0)
        elif status == "waiting":
            at = start
            self._person(c, at)
            for _ in range(rng.choice((0, 0, 1, 1, 2, 3))):
                at += timedelta(minutes=rng.uniform(0.5, 5))
                if at < now:
                    self._person(c, at)
            if c.notices and now - start > timedelta(minutes=10, seconds=10):  # the desk looks every 10 s
                notice = start + timedelta(minutes=10, seconds=rng.uniform(0, 10))
                self._message(c, "out", None, self.config.desk.wait_notice.text["nl"], notice)
                notice_sent = True
            returned = rng.random() < 0.03  # claimed, left unanswered, given back to the queue
        else:
            claimed_by_now = claimed_by or self.counsellor(team, claiming=True)
            self._person(c, start)
            self._taken(c, start, claimed_at, claimed_by_now)
            if not c.replies:
                turns = rng.choice((0, 1))
            elif transcript is None:
                turns = rng.randint(0, 8) if claimed_at > now - timedelta(minutes=5) else rng.randint(1, 8)
            else:
                turns = (transcript - c.ins - c.outs) // 2
            at, gap = claimed_at, (now - claimed_at) * 0.9 / (2 * max(turns, 1))
            for _ in range(turns):
                if c.replies:
                    at += gap
                    self._reply(c, claimed_by_now, at)
                at += gap
                self._person(c, at)
            while transcript is not None and c.ins + c.outs < transcript:
                self._person(c, at)
            end = at
        if transcript is not None or rng.random() < 0.05:
            for _ in range(3 if transcript is not None else 1):
                self._message(c, "note", self.counsellor(team), rng.choice(NOTE_LINES), end)
        waiting_since = start
        if status != "closed" and (transcript is not None or rng.random() < 0.03):  # transferred here
            other = rng.choice([t for t in self.config.team_codes if t != team])
            author = self.counsellor(other)
            waiting_since = start + timedelta(seconds=30)
            handover_id = str(uuid.uuid4())
            key_id, note = self.fields.encrypt_text(HANDOVER_NOTE, f"desk_handovers:{handover_id}")
            self.handovers.append(
                {"handover_id": handover_id, "conversation_id": c.conversation_id, "from_team": other,
                 "to_team": team, "author": author, "note": note, "key_id": key_id, "at": waiting_since}
            )  # fmt: skip
            self.audit.append((waiting_since, author, other, "transfer", c.conversation_id))
        if kind == "webchat":
            ended = end + timedelta(minutes=1) if status == "closed" else None
            self.chats.append(
                {"session_id": address, "channel_id": instance, "client_seq": c.ins, "server_seq": c.outs,
                 "created_at": start, "last_seen_at": c.last_activity, "ended_at": ended}
            )  # fmt: skip
        handle = self.keyring.seal({"channel": instance, "kind": kind, "address": address,
                                    "at": c.last_in.isoformat()})  # fmt: skip
        self.conversations.append(
            {"conversation_id": c.conversation_id, "team": team, "channel_kind": kind,
             "channel_instance": instance, "status": status, "urgent": urgent,
             "after_hours": self._after_hours(team, c.last_in), "claimed_by": claimed_by_now,
             "reply_handle": handle, "waiting_since": waiting_since, "last_activity_at": c.last_activity,
             "claimed_at": None if returned else c.claimed_at, "answered_at": c.answered_at,
             "returned": returned, "sender": self.keyring.pseudonym(address), "acute": acute,
             "wait_notice_sent": notice_sent}
        )  # fmt: skip
        return c.conversation_id


def fill(
    config: Config, keyring: Keyring, fields: FieldCipher, count: int, transcript: int, now: datetime
) -> tuple[Filled, str]:
    """`count` conversations over the teams (the first: the long one, the bench
    counsellor's claim); returns the rows and the long conversation's id."""
    rng = random.Random(2026)  # the same store every run
    filled = Filled(config, keyring, fields, now, rng)
    episodes = 4 if transcript >= 200 else 1
    long_id = filled.add(TEAM, "whatsapp", "claimed", episodes=episodes, transcript=transcript,
                         claimed_by="bench", instance=LONG_CHANNEL)  # fmt: skip
    sizes = {code: len(region.municipalities) for code, region in config.regions.items()}
    weights = {code: (1 - NATIONAL_SHARE) * n / sum(sizes.values()) for code, n in sizes.items()}
    weights[NATIONAL] = NATIONAL_SHARE
    for _ in range(count - 1):
        kind = _pick(rng, KIND_MIX)
        # a web chat visitor is new each visit; others may have written (and been closed) before
        reopened = kind != "webchat" and rng.random() < 0.15
        filled.add(
            _pick(rng, weights), kind, _pick(rng, STATUS_MIX), episodes=rng.randint(2, 3) if reopened else 1
        )
    return filled, long_id


async def load_store(database_url: str, filled: Filled) -> dict[str, int]:
    """COPY the rows in, chain the access log's records on from its head, then VACUUM
    ANALYZE as autovacuum would have done in a month; per table, how many rows."""
    connection = await asyncpg.connect(database_url)
    tables = (
        (desk_conversations, filled.conversations),
        (desk_messages, filled.messages),
        (reply_deliveries, filled.deliveries),
        (desk_registrations, filled.registrations),
        (desk_handovers, filled.handovers),
        (webchat_sessions, filled.chats),
        (desk_attachments, filled.attachments),
    )
    try:
        async with connection.transaction():
            for table, rows in tables:  # every row of a table names the same columns
                names = sorted({name for row in rows for name in row})
                records = [tuple(row.get(name) for name in names) for row in rows]
                await connection.copy_records_to_table(table.name, records=records, columns=names)
            head = await connection.fetchrow("SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE")
            seq, previous = int(head["seq"]), str(head["hash"])
            records = []  # the access log's
            for at, account, team, action, conversation_id in sorted(filled.audit, key=lambda r: r[0]):
                seq += 1
                record: dict[str, Any] = {
                    "seq": seq, "at": at.astimezone(UTC), "account": account, "method": "password+totp",
                    "on_behalf_of": None, "team": team, "action": action, "conversation_id": conversation_id,
                    "result": "ok", "reason": None, "prev_hash": previous,
                }  # fmt: skip
                record["hash"] = previous = record_digest(previous, record)
                records.append(tuple(record.values()))
            await connection.copy_records_to_table("audit_log", records=records, columns=list(record))
            await connection.execute("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1", seq, previous)
        await connection.execute("VACUUM ANALYZE")
    finally:
        await connection.close()
    counts = {table.name: len(rows) for table, rows in tables}
    counts["audit_log"] = len(filled.audit)
    return counts


# The SELECTs the desk makes for the two loads (gateway/roles/desk.py), as plain SQL; the
# rows as they come, still encrypted (the desk opens each text).
LIST_SQL = """
SELECT c.*, m.message_id AS preview_id, m.text AS preview, m.key_id AS preview_key
FROM desk_conversations c
LEFT OUTER JOIN desk_messages m ON m.message_id = (
    SELECT latest.message_id FROM desk_messages latest
    WHERE latest.conversation_id = c.conversation_id AND latest.direction = 'in'
    ORDER BY latest.at DESC LIMIT 1)
WHERE c.team = $1 AND c.status != 'closed'
ORDER BY c.acute DESC, c.urgent DESC, c.waiting_since ASC
"""
CONVERSATION_SQL = (
    ("row", "SELECT * FROM desk_conversations WHERE conversation_id = $1"),
    ("messages", "SELECT * FROM desk_messages WHERE conversation_id = $1 ORDER BY at, message_id"),
    ("handovers", "SELECT * FROM desk_handovers WHERE conversation_id = $1 ORDER BY at DESC"),
    ("same_sender", "SELECT conversation_id FROM desk_conversations WHERE sender = $1"),
    ("registrations", "SELECT closed_at, outcome FROM desk_registrations WHERE conversation_id = ANY($1) "
                      "ORDER BY closed_at DESC"),
    ("attachments", "SELECT attachment_id, message_id, declared_type, content_type, status, reason, size, "
                    "inline FROM desk_attachments WHERE conversation_id = $1 ORDER BY message_id, position"),
    ("deliveries", "SELECT * FROM reply_deliveries WHERE message_id = ANY($1)"),
)  # fmt: skip


async def bare_conversation(connection: asyncpg.Connection, conversation_id: str) -> int:
    """The rows the desk reads to open a conversation; returns the transcript's length."""
    sql = dict(CONVERSATION_SQL)
    row = await connection.fetchrow(sql["row"], conversation_id)
    messages = await connection.fetch(sql["messages"], conversation_id)
    await connection.fetch(sql["handovers"], conversation_id)
    same = await connection.fetch(sql["same_sender"], row["sender"])
    ids = [conversation_id, *(r[0] for r in same if r[0] != conversation_id)]
    await connection.fetch(sql["registrations"], ids)
    await connection.fetch(sql["attachments"], conversation_id)
    sent = [m["message_id"] for m in messages if m["direction"] == "out"]
    if sent:
        await connection.fetch(sql["deliveries"], sent)
    return sum(1 for m in messages if m["direction"] != "note")


async def explain(connection: asyncpg.Connection, conversation_id: str) -> None:
    """EXPLAIN ANALYZE of the list's query and the transcript's, for --explain."""
    for name, sql, argument in (
        ("queue list", LIST_SQL, TEAM),
        ("transcript", dict(CONVERSATION_SQL)["messages"], conversation_id),
    ):
        plan = await connection.fetch("EXPLAIN (ANALYZE, BUFFERS) " + sql, argument)
        print(f"-- {name}\n" + "\n".join(r[0] for r in plan), flush=True)


async def timed(session: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> tuple[float, bytes]:
    """One load as the console makes it: request sent to the whole body read."""
    began = time.perf_counter()
    async with session.get(url, headers=headers) as response:
        body = await response.read()
        if response.status != 200:
            raise RuntimeError(f"GET {url}: {response.status} {body[:200]!r}")
    return (time.perf_counter() - began) * 1000, body


def _bench_config(counsellors: list[dict[str, str]]) -> Path:
    """The example configuration with the bench's counsellors, and a WhatsApp number for
    Zuidoost-Brabant (the long conversation's channel)."""
    config_dir = Path(tempfile.mkdtemp(prefix="bench-desk-"))
    shutil.rmtree(config_dir)
    shutil.copytree(REPO / "config", config_dir)
    (config_dir / "counsellors.yaml").write_text(yaml.safe_dump({"counsellors": counsellors}))
    whatsapp = yaml.safe_load((config_dir / "channels" / "whatsapp-rotterdam-rijnmond.yaml").read_text())
    whatsapp.update(id=LONG_CHANNEL, region=TEAM, description="Zuidoost-Brabant's WhatsApp number")
    whatsapp["settings"].update(
        account_sid="${GW_WHATSAPP_ZUIDOOST_BRABANT_ACCOUNT_SID}", number="+3197010580003",
        auth_token="${GW_WHATSAPP_ZUIDOOST_BRABANT_AUTH_TOKEN}",
        public_url=f"https://gateway.veiligthuis.example/channels/{LONG_CHANNEL}/webhook",
    )  # fmt: skip
    (config_dir / "channels" / f"{LONG_CHANNEL}.yaml").write_text(
        yaml.safe_dump(whatsapp, allow_unicode=True)
    )
    return config_dir


def _figures(name: str, gateway: list[float], bare: list[float]) -> dict[str, float]:
    gateway, bare = sorted(gateway), sorted(bare)
    return {
        f"{name}_median_ms": round(median(gateway), 1),
        f"{name}_p90_ms": round(percentile(gateway, 90), 1),
        f"bare_{name}_median_ms": round(median(bare), 2),
        f"bare_{name}_p90_ms": round(percentile(bare, 90), 2),
        f"{name}_ratio": round(median(gateway) / median(bare), 1),
    }


async def console_load(args: argparse.Namespace, bench_db: str) -> dict[str, object]:
    """Part 3: a store with `--conversations` conversations, then the console's two loads
    through a running desk, against the same SELECTs done directly."""
    password_hash = hash_password(PASSWORD)
    bench = {"id": "bench", "name": "Bench", "team": TEAM, "password_hash": password_hash}
    config_dir = _bench_config([bench])
    try:
        keyring = Keyring(SECRET_KEY)
        data_keys = generate_key("bench")  # GATEWAY_DATA_KEYS, as production has its own
        fields = FieldCipher.from_env(data_keys)
        began = time.perf_counter()
        config = load_config(config_dir)
        filled, long_id = fill(
            config, keyring, fields, args.conversations, args.transcript, datetime.now(UTC)
        )
        made = time.perf_counter() - began
        accounts = [bench] + [
            {"id": account, "name": f"Hulpverlener {account}", "team": team, "password_hash": password_hash}
            for account, team in filled.accounts()
        ]
        (config_dir / "counsellors.yaml").write_text(yaml.safe_dump({"counsellors": accounts}))
        with Vhost(args.amqp_url) as vhost:
            env = python_env(
                GATEWAY_AMQP_URL=vhost.url,
                GATEWAY_DATABASE_URL=bench_db,
                GATEWAY_CONFIG=str(config_dir),
                GATEWAY_SECRET_KEY=SECRET_KEY,
                GATEWAY_DATA_KEYS=data_keys,
                GATEWAY_LOG_LEVEL="WARNING",
            )
            port = free_port()
            command = [PYTHON, "-m", "gateway.cli", "run", "--port", str(port), "--role", "desk"]
            log_path = Path(args.log_dir) / "desk-console-load.log"
            with Process(command, env, port, log_path=log_path) as first:
                await first.wait_ready()  # declares the topology and migrates, then stops
            began = time.perf_counter()
            counts = await load_store(bench_db, filled)
            loaded = time.perf_counter() - began
            print(
                f"store: {counts}; rows made in {made:.1f} s, copied and analysed in {loaded:.1f} s",
                flush=True,
            )
            with Process(command, env, port, log_path=log_path) as desk:
                await desk.wait_ready()
                figures = await console_loads(args, bench_db, port, long_id)
        passed = (
            figures["queue_list_median_ms"] < LIMIT_MS and figures["conversation_500_median_ms"] < LIMIT_MS
        )
        verdict = "PASS" if passed else "FAIL"
        print(
            f"console load, {args.conversations} conversations in the store, medians of {args.loads}:\n"
            f"  queue list ({figures['queue_list_rows']} rows, {figures['queue_list_bytes']} bytes): "
            f"{figures['queue_list_median_ms']} ms (p90 {figures['queue_list_p90_ms']}); "
            f"bare {figures['bare_queue_list_median_ms']} ms (p90 {figures['bare_queue_list_p90_ms']}); "
            f"ratio {figures['queue_list_ratio']}\n"
            f"  conversation ({figures['conversation_500_messages']} messages, "
            f"{figures['conversation_500_bytes']} bytes): {figures['conversation_500_median_ms']} ms "
            f"(p90 {figures['conversation_500_p90_ms']}); "
            f"bare {figures['bare_conversation_500_median_ms']} ms "
            f"(p90 {figures['bare_conversation_500_p90_ms']}); ratio {figures['conversation_500_ratio']}\n"
            f"  {verdict}: both medians under {LIMIT_MS:.0f} ms",
            flush=True,
        )
        return {
            "conversations_in_store": args.conversations,
            "messages_in_store": counts["desk_messages"],
            **figures,
            "console_load_limit_ms": LIMIT_MS,
            "console_load_pass": passed,
            "console_load_note": "sequential GETs with a counsellor's bearer session, request to body read; "
            "bare: the same SELECTs over one asyncpg connection, no JSON",
        }
    finally:
        shutil.rmtree(config_dir, ignore_errors=True)


async def console_loads(args: argparse.Namespace, bench_db: str, port: int, long_id: str) -> dict[str, Any]:
    base = f"http://127.0.0.1:{port}"
    loads: dict[str, list[float]] = {"list": [], "conversation": [], "bare_list": [], "bare_conversation": []}
    connection = await asyncpg.connect(bench_db)
    try:
        async with aiohttp.ClientSession() as session:
            token = (await Counsellors(PASSWORD).sign_in(session, base, "bench"))["token"]
            headers = {"Authorization": f"Bearer {token}"}
            list_url, conversation_url = (
                f"{base}/api/v1/conversations",
                f"{base}/api/v1/conversations/{long_id}",
            )
            for n in range(args.warmup + args.loads):  # interleaved: the machine's noise falls on all four
                at = time.perf_counter()
                rows = await connection.fetch(LIST_SQL, TEAM)
                bare_list = (time.perf_counter() - at) * 1000
                at = time.perf_counter()
                messages = await bare_conversation(connection, long_id)
                bare_read = (time.perf_counter() - at) * 1000
                listed, list_body = await timed(session, list_url, headers)
                read, conversation_body = await timed(session, conversation_url, headers)
                if n >= args.warmup:
                    for name, value in zip(loads, (listed, read, bare_list, bare_read), strict=True):
                        loads[name].append(value)
            if args.explain:
                await explain(connection, long_id)
    finally:
        await connection.close()
    answered = orjson.loads(list_body)["conversations"]
    transcript = orjson.loads(conversation_body)["transcript"]
    texts = [c["preview"] for c in answered] + [e["text"] for e in transcript]
    if any(text.startswith("[niet te lezen") for text in texts):  # the desk's UNREADABLE
        raise RuntimeError("the desk could not open texts the bench encrypted: their rows do not match")
    if len(answered) != len(rows) or len(transcript) != messages:
        raise RuntimeError(f"the API answered {len(answered)} rows, {len(transcript)} messages; "
                           f"the store has {len(rows)}, {messages}")  # fmt: skip
    return {
        "queue_list_rows": len(answered),
        "queue_list_bytes": len(list_body),
        **_figures("queue_list", loads["list"], loads["bare_list"]),
        "conversation_500_messages": len(transcript),
        "conversation_500_attachments": sum(len(e["attachments"]) for e in transcript),
        "conversation_500_bytes": len(conversation_body),
        **_figures("conversation_500", loads["conversation"], loads["bare_conversation"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--rate", type=float, default=50.0, help="messages per second in the console phase")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--only", choices=("drain", "console-load"), help="one part (drain: parts 1 and 2)")
    parser.add_argument("--conversations", type=int, default=10000, help="in the store, for console-load")
    parser.add_argument("--transcript", type=int, default=500, help="messages in the conversation opened")
    parser.add_argument("--loads", type=int, default=20, help="timed loads of each, after the warm-up")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--explain", action="store_true", help="print EXPLAIN ANALYZE of the two queries")
    database_argument(parser)
    common_arguments(parser)
    run_and_print(parser, run)


if __name__ == "__main__":
    main()
