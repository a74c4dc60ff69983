"""The desk role: the region queues in, conversations and transcripts in the store.

Each team's `.urgent` and `.normal` queues are consumed; a message is stored (its
conversation created or brought up to date) in one database transaction and
acked only after that commit. The envelope id is the message's primary key, so
a redelivered message (a desk killed between commit and ack, a webhook retried
through another process) is stored once. Counsellors then list, claim, reply to,
transfer and close conversations through `Desk`, which the JSON API and the
console share; every action is checked against the counsellor's team.

A conversation belongs to the team it was first routed to until a counsellor
transfers it; the router learns of the transfer in order with the
conversation's messages (`transfer_publish`), so later messages follow it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson
import sqlalchemy as sa
import structlog
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.batching import GroupCommit
from gateway.broker import Broker, Delivery, Message, PublishError
from gateway.config import NATIONAL, LiveConfig
from gateway.envelope import OUTBOUND_SCHEMA_VERSION, Envelope, OutboundMessage, Urgency
from gateway.metrics import Metrics
from gateway.router import transfer_publish
from gateway.store import (
    Store,
    auto_replies,
    conversation_regions,
    desk_conversations,
    desk_messages,
    insert_for,
    sent_replies,
    webchat_replies,
    webchat_sessions,
)
from gateway.topology import DESK_EXCHANGE, OUTBOUND_EXCHANGE, region_queue

log = structlog.get_logger("gateway.desk")

WAITING, CLAIMED, CLOSED = "waiting", "claimed", "closed"
RETENTION_EVERY_SECONDS = 300.0
GAUGES_EVERY_SECONDS = 15.0


@dataclass(frozen=True)
class Summary:
    conversation_id: str
    team: str
    channel_kind: str
    status: str
    urgent: bool
    after_hours: bool
    claimed_by: str | None
    waiting_since: datetime
    last_activity_at: datetime


@dataclass(frozen=True)
class Entry:
    message_id: str
    direction: str  # "in" from the person, "out" to the person, "note" (a transfer)
    author: str | None
    text: str
    attachments: list[dict[str, object]]
    at: datetime


class Refused(Exception):
    """A desk action refused; `reason` is a short code, `status` the HTTP status it means."""

    def __init__(self, status: int, reason: str, detail: str, **extra: object) -> None:
        super().__init__(reason)
        self.status, self.reason, self.detail, self.extra = status, reason, detail, extra


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class Desk:
    def __init__(
        self,
        live: LiveConfig,
        broker: Broker,
        store: Store,
        metrics: Metrics,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        teams: tuple[str, ...] = (),
    ) -> None:
        self._teams = teams  # the teams whose queues this process consumes; () for all
        self._live = live
        self._broker = broker
        self._store = store
        self._metrics = metrics
        self._clock = clock
        self._listeners: set[Callable[[str, str], Awaitable[None] | None]] = set()
        self._retention: asyncio.Task[None] | None = None
        self._gauges: asyncio.Task[None] | None = None
        # Messages arriving together share one transaction (and one commit).
        self._store_together = GroupCommit(self.store_envelopes)

    # the role

    async def start(self) -> None:
        await self._broker.subscribe(DESK_EXCHANGE, self._notified)
        for team in self._teams or self._live.current.team_codes:
            for priority in ("urgent", "normal"):  # urgent first: attached first, larger prefetch
                await self._broker.consume(
                    region_queue(team, priority), self.handle, prefetch=64 if priority == "urgent" else 32
                )
        self._retention = asyncio.create_task(self._retention_loop())
        self._gauges = asyncio.create_task(self._gauges_loop())

    async def close(self) -> None:
        for task in (self._retention, self._gauges):
            if task is not None:
                task.cancel()

    def listen(self, callback: Callable[[str, str], Awaitable[None] | None]) -> Callable[[], None]:
        """`callback(team, conversation_id)` after any change in this process; returns an unsubscribe."""
        self._listeners.add(callback)
        return lambda: self._listeners.discard(callback)

    async def _changed(self, team: str, conversation_id: str) -> None:
        """Tell every desk process (consoles on any of them update live)."""
        body = orjson.dumps({"team": team, "conversation": conversation_id})
        wake = Message(body, str(uuid.uuid4()), conversation_id, "gateway.desk.changed.v1", self._clock())
        try:
            await self._broker.publish(DESK_EXCHANGE, "", wake)
        except PublishError:
            await self._notified(body)  # no broker to carry it: at least this process's consoles

    async def _notified(self, body: bytes) -> None:
        try:
            data = orjson.loads(body)
            team, conversation_id = str(data["team"]), str(data["conversation"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return
        for callback in list(self._listeners):
            result = callback(team, conversation_id)
            if asyncio.iscoroutine(result):
                await result

    async def handle(self, delivery: Delivery) -> None:
        try:
            envelope = Envelope.from_json(delivery.message.body)
        except ValidationError:
            log.error("unreadable_message", message_id=delivery.message.message_id)
            self._metrics.unreadable.inc()
            await delivery.reject(requeue=False)
            return
        team = envelope.route.queue.split(".")[2] if envelope.route else (envelope.region or NATIONAL)
        stored = await self._store_together((envelope, team))
        await delivery.ack()  # after the commit: a crash before this redelivers, and the key drops it
        if stored:
            await self._changed(team, envelope.conversation_id)

    async def store_envelope(self, envelope: Envelope, team: str) -> bool:
        """Store one message and its conversation; False when the message was stored before."""
        return (await self.store_envelopes([(envelope, team)]))[0]

    async def store_envelopes(self, items: list[tuple[Envelope, str]]) -> list[bool]:
        """Store messages and their conversations in one transaction; per message, whether
        it was new."""
        async with self._store.transaction() as connection:
            return [await self._store_one(connection, envelope, team) for envelope, team in items]

    async def _store_one(self, connection: AsyncConnection, envelope: Envelope, team: str) -> bool:
        at = envelope.received_at
        attachments = orjson.dumps([a.model_dump() for a in envelope.attachments]).decode()
        insert = insert_for(self._store.engine.dialect.name)
        new = await connection.execute(
            insert(desk_messages)
            .values(
                message_id=envelope.id,
                conversation_id=envelope.conversation_id,
                direction="in",
                text=envelope.text,
                attachments=attachments,
                at=at,
            )
            .on_conflict_do_nothing()
        )
        if new.rowcount != 1:
            return False
        urgent = envelope.urgency in (Urgency.HIGH, Urgency.ACUTE)
        after_hours = bool(envelope.route and envelope.route.after_hours)
        table = desk_conversations
        statement = insert(table).values(
            conversation_id=envelope.conversation_id,
            team=team,
            channel_kind=envelope.channel.kind,
            channel_instance=envelope.channel.instance,
            status=WAITING,
            urgent=urgent,
            after_hours=after_hours,
            reply_handle=envelope.reply_handle,
            waiting_since=at,
            last_activity_at=at,
        )
        reopened = sa.case((table.c.status == CLOSED, WAITING), else_=table.c.status)
        await connection.execute(
            statement.on_conflict_do_update(
                index_elements=[table.c.conversation_id],
                set_={
                    # the newest handle: WhatsApp's 24 hours count from the last message
                    "reply_handle": statement.excluded.reply_handle,
                    "last_activity_at": statement.excluded.last_activity_at,
                    "urgent": table.c.urgent | statement.excluded.urgent,
                    "after_hours": statement.excluded.after_hours,
                    "waiting_since": sa.case(
                        (table.c.status == CLOSED, statement.excluded.waiting_since),
                        else_=table.c.waiting_since,
                    ),
                    "claimed_by": sa.case((table.c.status == CLOSED, None), else_=table.c.claimed_by),
                    "status": reopened,
                },
            )
        )
        return True

    # what counsellors do

    async def conversations(self, team: str, *, include_closed: bool = False) -> list[Summary]:
        """The team's conversations across all channels: urgent first, then the longest waiting."""
        table = desk_conversations
        query = sa.select(table).where(table.c.team == team)
        if not include_closed:
            query = query.where(table.c.status != CLOSED)
        query = query.order_by(table.c.urgent.desc(), table.c.waiting_since.asc())
        async with self._store.reading() as connection:
            rows = (await connection.execute(query)).all()
        return [_summary(row) for row in rows]

    async def _own(self, conversation_id: str, team: str) -> sa.Row:
        async with self._store.reading() as connection:
            row = (
                await connection.execute(
                    sa.select(desk_conversations).where(
                        desk_conversations.c.conversation_id == conversation_id
                    )
                )
            ).first()
        if row is None:
            raise Refused(404, "unknown_conversation", "no conversation with this id")
        if row.team != team:
            raise Refused(403, "other_team", "this conversation belongs to another team")
        return row

    async def conversation(self, conversation_id: str, team: str) -> tuple[Summary, list[Entry]]:
        row = await self._own(conversation_id, team)
        async with self._store.reading() as connection:
            entries = (
                await connection.execute(
                    sa.select(desk_messages)
                    .where(desk_messages.c.conversation_id == conversation_id)
                    .order_by(desk_messages.c.at, desk_messages.c.message_id)
                )
            ).all()
        return _summary(row), [
            Entry(e.message_id, e.direction, e.author, e.text, orjson.loads(e.attachments), _utc(e.at))
            for e in entries
        ]

    async def claim(self, conversation_id: str, counsellor: str, team: str) -> Summary:
        await self._own(conversation_id, team)
        table = desk_conversations
        async with self._store.transaction() as connection:
            won = await connection.execute(
                sa.update(table)
                .where(
                    table.c.conversation_id == conversation_id,
                    table.c.team == team,
                    table.c.status == WAITING,
                )
                .values(status=CLAIMED, claimed_by=counsellor)
            )
        row = await self._own(conversation_id, team)
        if won.rowcount != 1 and row.claimed_by != counsellor:
            raise _taken(row.claimed_by)
        await self._changed(team, conversation_id)
        return _summary(row)

    async def reply(self, conversation_id: str, counsellor: str, team: str, text: str) -> str:
        row = await self._own(conversation_id, team)
        if row.status != CLAIMED or row.claimed_by != counsellor:
            raise Refused(409, "not_claimed", "claim the conversation before replying")
        now = self._clock()
        reply = OutboundMessage(
            id=str(uuid.uuid4()),
            conversation_id=conversation_id,
            channel={"kind": row.channel_kind, "instance": row.channel_instance},  # type: ignore[arg-type]
            reply_handle=row.reply_handle,
            text=text,
            origin="counsellor",
            created_at=now,
        )
        message = Message(
            body=reply.to_json(),
            message_id=reply.id,
            correlation_id=conversation_id,
            type=OUTBOUND_SCHEMA_VERSION,
            timestamp=now,
        )
        await self._broker.publish(OUTBOUND_EXCHANGE, f"{row.channel_kind}.{row.channel_instance}", message)
        async with self._store.transaction() as connection:
            await connection.execute(
                sa.insert(desk_messages).values(
                    message_id=reply.id,
                    conversation_id=conversation_id,
                    direction="out",
                    author=counsellor,
                    text=text,
                    attachments="[]",
                    at=now,
                )
            )
            await connection.execute(
                sa.update(desk_conversations)
                .where(desk_conversations.c.conversation_id == conversation_id)
                .values(last_activity_at=now)
            )
        await self._changed(team, conversation_id)
        return reply.id

    async def transfer(
        self, conversation_id: str, counsellor: str, team: str, to_team: str, reason: str
    ) -> None:
        config = self._live.current
        if to_team not in config.team_codes:
            raise Refused(422, "unknown_team", "transfer to a region code or national")
        if to_team == team:
            raise Refused(422, "same_team", "the conversation is already with this team")
        await self._own(conversation_id, team)
        # The router first, in order with the conversation's messages; then the desk's own view.
        shards = config.service.broker.inbound_shards
        control = transfer_publish(conversation_id, to_team, shards)
        await self._broker.publish(control.exchange, control.routing_key, control.message)
        table = desk_conversations
        async with self._store.transaction() as connection:
            await connection.execute(
                sa.update(table)
                .where(table.c.conversation_id == conversation_id, table.c.team == team)
                .values(team=to_team, status=WAITING, claimed_by=None, waiting_since=self._clock())
            )
            await connection.execute(
                sa.insert(desk_messages).values(
                    message_id=str(uuid.uuid4()),
                    conversation_id=conversation_id,
                    direction="note",
                    author=counsellor,
                    text=f"Overgedragen van {team} naar {to_team}: {reason}",
                    attachments="[]",
                    at=self._clock(),
                )
            )
        log.info("conversation_transferred", from_team=team, to_team=to_team)
        await self._changed(team, conversation_id)
        await self._changed(to_team, conversation_id)

    async def close_conversation(self, conversation_id: str, counsellor: str, team: str) -> None:
        row = await self._own(conversation_id, team)
        if row.status == CLAIMED and row.claimed_by != counsellor:
            raise _taken(row.claimed_by)
        async with self._store.transaction() as connection:
            await connection.execute(
                sa.update(desk_conversations)
                .where(desk_conversations.c.conversation_id == conversation_id)
                .values(status=CLOSED, claimed_by=None)
            )
        await self._changed(team, conversation_id)

    # privacy by default

    async def forget_before(self, cutoff: datetime) -> int:
        """Delete conversations (and transcripts) quiet since before `cutoff`, with the rest
        of what the gateway kept about them; returns how many conversations went."""
        table = desk_conversations
        sessions = webchat_sessions
        async with self._store.transaction() as connection:
            expired = sa.delete(table).where(table.c.last_activity_at < cutoff)
            gone = (await connection.execute(expired.returning(table.c.conversation_id))).scalars().all()
            if gone:
                messages = desk_messages
                await connection.execute(sa.delete(messages).where(messages.c.conversation_id.in_(gone)))
            for other, column in (
                (conversation_regions, conversation_regions.c.updated_at),
                (auto_replies, auto_replies.c.created_at),
                (sent_replies, sent_replies.c.sent_at),
            ):
                await connection.execute(sa.delete(other).where(column < cutoff))
            stale = sa.select(sessions.c.session_id).where(sessions.c.last_seen_at < cutoff)
            await connection.execute(
                sa.delete(webchat_replies).where(webchat_replies.c.session_id.in_(stale))
            )
            await connection.execute(sa.delete(sessions).where(sessions.c.last_seen_at < cutoff))
        if gone:
            log.info("retention_deleted", conversations=len(gone))
        return len(gone)

    async def sample_waiting(self) -> None:
        """Per team this process serves: unclaimed conversations and the longest wait."""
        table = desk_conversations
        teams = self._teams or self._live.current.team_codes
        query = (
            sa.select(table.c.team, sa.func.count(), sa.func.min(table.c.waiting_since))
            .where(table.c.status == WAITING, table.c.team.in_(teams))
            .group_by(table.c.team)
        )
        async with self._store.transaction() as connection:
            rows = {row[0]: (row[1], row[2]) for row in (await connection.execute(query)).all()}
        now = self._clock()
        for team in teams:
            count, since = rows.get(team, (0, None))
            self._metrics.desk_waiting.labels(team).set(count)
            waited = (now - _utc(since)).total_seconds() if since is not None else 0.0
            self._metrics.desk_oldest_waiting.labels(team).set(max(waited, 0.0))

    async def _gauges_loop(self) -> None:
        while True:
            try:
                await self.sample_waiting()
            except Exception as exc:
                log.warning("waiting_gauges_failed", error=type(exc).__name__)
            await asyncio.sleep(GAUGES_EVERY_SECONDS)

    async def _retention_loop(self) -> None:
        while True:
            hours = self._live.current.service.desk.retention_hours
            try:
                await self.forget_before(self._clock() - timedelta(hours=hours))
            except Exception as exc:
                log.warning("retention_failed", error=type(exc).__name__)
            await asyncio.sleep(RETENTION_EVERY_SECONDS)


def _taken(claimed_by: str | None) -> Refused:
    return Refused(409, "already_claimed", "another counsellor has this conversation", claimed_by=claimed_by)


def _summary(row: sa.Row) -> Summary:
    return Summary(
        conversation_id=row.conversation_id,
        team=row.team,
        channel_kind=row.channel_kind,
        status=row.status,
        urgent=row.urgent,
        after_hours=row.after_hours,
        claimed_by=row.claimed_by,
        waiting_since=_utc(row.waiting_since),
        last_activity_at=_utc(row.last_activity_at),
    )
