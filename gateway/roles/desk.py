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
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import orjson
import sqlalchemy as sa
import structlog
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.broker.base import Broker, Delivery, Message
from gateway.config.live import LiveConfig
from gateway.config.models import NATIONAL
from gateway.domain.envelope import OUTBOUND_SCHEMA_VERSION, ChannelRef, Envelope, OutboundMessage, Urgency
from gateway.domain.identity import Identity
from gateway.domain.messages import MediaSource, PublishError, Rejected
from gateway.domain.schedules import resolve, state_at
from gateway.domain.topology import DESK_EXCHANGE, OUTBOUND_EXCHANGE, region_queue
from gateway.domain.wrapup import registration_from
from gateway.roles.attachments import AttachmentBody, Attachments
from gateway.roles.router import transfer_publish
from gateway.store import reports as contacts
from gateway.store.database import Store, insert_for
from gateway.store.identity import AuditEvent, AuditLog
from gateway.store.tables import (
    auto_replies,
    conversation_regions,
    desk_conversations,
    desk_handovers,
    desk_messages,
    desk_registrations,
    reply_deliveries,
    sent_replies,
    sessions,
)
from gateway.support.batching import GroupCommit
from gateway.support.clock import as_utc
from gateway.support.fieldcrypt import FieldCipher, FieldKeyError
from gateway.support.metrics import Metrics

log = structlog.get_logger("gateway.desk")

WAITING, CLAIMED, CLOSED = "waiting", "claimed", "closed"
# A channel kind's own retention, run in the desk's retention transaction with its cutoff.
RetentionHook = Callable[[AsyncConnection, datetime], Awaitable[None]]
RETENTION_EVERY_SECONDS = 300.0
GAUGES_EVERY_SECONDS = 15.0
RETURNS_EVERY_SECONDS = 10.0


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
    returned: bool = False  # went back to the queue after a claim without a reply
    acute: bool = False  # acute danger, apart from merely urgent
    preview: str = ""  # the start of the person's last message, for the team's queue


@dataclass(frozen=True)
class Entry:
    message_id: str
    direction: str  # "in" from the person, "out" to the person, "note" (internal, never sent)
    author: str | None
    text: str
    attachments: list[dict[str, object]]
    at: datetime
    delivery: dict[str, str | None] | None = None  # a reply's: status (queued ... read, failed), reason


@dataclass(frozen=True)
class TeamBoard:
    """A coordinator's wall board, one team: the queue and who is working it."""

    team: str
    waiting_urgent: int
    waiting_normal: int
    longest_wait_seconds: int
    claimed: int
    held_after_hours: int
    returned: int
    open: bool
    counsellors: list[tuple[str, str, int]]  # account, name, conversations claimed now


@dataclass(frozen=True)
class Handover:
    from_team: str
    to_team: str
    author: str
    note: str
    at: datetime


@dataclass(frozen=True)
class Conversation:
    """What a counsellor opens: the messages with the person, apart from the team's
    internal notes, and the handover notes of its transfers (newest first)."""

    summary: Summary
    transcript: list[Entry]
    notes: list[Entry]
    handovers: list[Handover]
    earlier: Earlier
    person_left: bool = False  # the person left the chat: no reply reaches them


@dataclass(frozen=True)
class Earlier:
    """A returning contact, without identity: how many earlier contacts (closed and
    registered) the same sender pseudonym had within retention, in any team, when the
    last was closed and its registered outcome. Never an address, never a way to
    another transcript."""

    count: int
    last_at: datetime | None
    last_outcome: str | None


class Desk:
    def __init__(
        self,
        live: LiveConfig,
        broker: Broker,
        store: Store,
        metrics: Metrics,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        teams: tuple[str, ...] = (),
        retention_hooks: tuple[RetentionHook, ...] = (),
        audit: AuditLog | None = None,
        unseal: Callable[[str], dict[str, str]] | None = None,
        replying_kinds: frozenset[str] | None = None,
        person_gone: Callable[[str, str, str], Awaitable[bool]] | None = None,
        schedule_clock: Callable[[], datetime] | None = None,
        media_source: Callable[[str, str, str], Awaitable[MediaSource]] | None = None,
        fields: FieldCipher | None = None,
    ) -> None:
        # What people wrote is stored encrypted (GATEWAY_DATA_KEYS); without a keyring a
        # key for this process only, so nothing is ever written in clear.
        self._fields = fields or FieldCipher.ephemeral()
        self._media_source = media_source  # (kind, channel instance, attachment url)
        self._schedule_clock = schedule_clock or clock  # the schedules' clock (faked in trials)
        self._person_gone = person_gone  # (kind, channel instance, reply handle)
        self._audit = audit or AuditLog(store, clock)
        self._unseal = unseal
        self._replying_kinds = replying_kinds  # None: every kind can carry a reply
        self._retention_hooks = retention_hooks
        self._teams = teams  # the teams whose queues this process consumes; () for all
        self._live = live
        self._broker = broker
        self._store = store
        self._metrics = metrics
        self._clock = clock
        self._listeners: set[Callable[[str, str], Awaitable[None] | None]] = set()
        self._retention: asyncio.Task[None] | None = None
        self._gauges: asyncio.Task[None] | None = None
        self._returns: asyncio.Task[None] | None = None
        # Messages arriving together share one transaction (and one commit).
        self._store_together = GroupCommit(self.store_envelopes)
        self.attachments = Attachments(live, store, metrics, clock, media_source, self._changed, self._fields)

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
        self._returns = asyncio.create_task(self._returns_loop())
        await self.attachments.start()

    async def close(self) -> None:
        for task in (self._retention, self._gauges, self._returns):
            if task is not None:
                task.cancel()
        await self.attachments.close()

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

    async def store_envelopes(self, items: list[tuple[Envelope, str]]) -> list[bool]:
        """Store messages and their conversations in one transaction; per message, whether
        it was new."""
        async with self._store.transaction() as connection:
            return [await self._store_one(connection, envelope, team) for envelope, team in items]

    async def _store_one(self, connection: AsyncConnection, envelope: Envelope, team: str) -> bool:
        at = envelope.received_at
        # What the console shows of an attachment; where the provider keeps it stays in
        # desk_attachments until fetched, and is never shown.
        attachments = orjson.dumps([{"content_type": a.content_type} for a in envelope.attachments]).decode()
        insert = insert_for(self._store.engine.dialect.name)
        new = await connection.execute(
            insert(desk_messages)
            .values(
                message_id=envelope.id,
                conversation_id=envelope.conversation_id,
                direction="in",
                **self._sealed(envelope.id, envelope.text),
                attachments=attachments,
                at=at,
            )
            .on_conflict_do_nothing()
        )
        if new.rowcount != 1:
            return False
        await self.attachments.record(connection, envelope)
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
            sender=envelope.sender,
            acute=envelope.urgency is Urgency.ACUTE,
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
                    "acute": table.c.acute | statement.excluded.acute,
                    "after_hours": statement.excluded.after_hours,
                    "waiting_since": sa.case(
                        (table.c.status == CLOSED, statement.excluded.waiting_since),
                        else_=table.c.waiting_since,
                    ),
                    "claimed_by": sa.case((table.c.status == CLOSED, None), else_=table.c.claimed_by),
                    "wait_notice_sent": sa.case(
                        (table.c.status == CLOSED, sa.false()), else_=table.c.wait_notice_sent
                    ),
                    "status": reopened,
                },
            )
        )
        await contacts.opened(
            connection, envelope.conversation_id, team=team, channel_kind=envelope.channel.kind,
            at=at + self._schedule_offset(),
            urgent=urgent, acute=envelope.urgency is Urgency.ACUTE, after_hours=after_hours,
        )  # fmt: skip
        return True

    # what counsellors do

    # Every action below writes its access-log record as the last statement of its own
    # transaction: if the record cannot be written, the action is not carried out.

    def _schedule_offset(self) -> timedelta:
        """The figures date a contact by the schedules' clock, as its after-hours flag was
        decided by it: none in production; GATEWAY_FAKE_TIME's shift in trials and tests."""
        return self._schedule_clock() - self._clock()

    async def conversations(self, actor: Identity, *, include_closed: bool = False) -> list[Summary]:
        """The team's conversations across all channels: urgent first, then the longest waiting."""
        table = desk_conversations
        latest = desk_messages.alias("latest")
        last_message = (
            sa.select(latest.c.message_id)
            .where(latest.c.conversation_id == table.c.conversation_id)
            .where(latest.c.direction == "in")
            .order_by(latest.c.at.desc())
            .limit(1)
            .correlate(table)
            .scalar_subquery()
        )
        messages = desk_messages
        query = (
            sa.select(table, messages.c.message_id.label("preview_id"), messages.c.text.label("preview"),
                      messages.c.key_id.label("preview_key"))
            .select_from(table.outerjoin(messages, messages.c.message_id == last_message))
            .where(table.c.team == actor.team)
        )  # fmt: skip
        if not include_closed:
            query = query.where(table.c.status != CLOSED)
        query = query.order_by(table.c.acute.desc(), table.c.urgent.desc(), table.c.waiting_since.asc())
        async with self._store.transaction() as connection:
            rows = (await connection.execute(query)).all()
            await self._audit.append(connection, AuditEvent.by(actor, "list"))
        return [_summary(row, preview=self._preview(row)) for row in rows]

    def _sealed(self, message_id: str, text: str) -> dict[str, str]:
        """A transcript line's text as stored: encrypted, bound to its row."""
        key_id, stored = self._fields.encrypt_text(text, f"desk_messages:{message_id}")
        return {"text": stored, "key_id": key_id}

    def _opened(self, message_id: str, key_id: str | None, stored: str) -> str:
        try:
            return self._fields.decrypt_text(key_id, stored, f"desk_messages:{message_id}")
        except FieldKeyError:
            self._metrics.unreadable_fields.inc()
            log.error("field_unreadable", table="desk_messages")
            return UNREADABLE

    def _opened_note(self, handover: sa.Row[Any]) -> str:
        try:
            context = f"desk_handovers:{handover.handover_id}"
            return self._fields.decrypt_text(handover.key_id, handover.note, context)
        except FieldKeyError:
            self._metrics.unreadable_fields.inc()
            log.error("field_unreadable", table="desk_handovers")
            return UNREADABLE

    def _preview(self, row: sa.Row[Any]) -> str:
        if row.preview_id is None:
            return ""
        return self._opened(row.preview_id, row.preview_key, row.preview)

    async def _own(self, conversation_id: str, team: str, *, any_team: bool = False) -> sa.Row[Any]:
        """The conversation, if it is `team`'s (`any_team`: a national coordinator's view)."""
        async with self._store.reading() as connection:
            row = (
                await connection.execute(
                    sa.select(desk_conversations).where(
                        desk_conversations.c.conversation_id == conversation_id
                    )
                )
            ).first()
        if row is None:
            raise Rejected(404, "unknown_conversation", "no conversation with this id")
        if row.team != team and not any_team:
            raise Rejected(403, "other_team", "this conversation belongs to another team")
        return row

    async def conversation(self, conversation_id: str, actor: Identity, action: str = "read") -> Conversation:
        row = await self._own(conversation_id, actor.team)
        async with self._store.transaction() as connection:
            entries = (
                await connection.execute(
                    sa.select(desk_messages)
                    .where(desk_messages.c.conversation_id == conversation_id)
                    .order_by(desk_messages.c.at, desk_messages.c.message_id)
                )
            ).all()
            # The summary as of after the messages were read: a message stored in between
            # then never shows beside the state before it (after_hours, last activity).
            table = desk_conversations
            row = (
                await connection.execute(sa.select(table).where(table.c.conversation_id == conversation_id))
            ).first() or row
            handovers = (
                await connection.execute(
                    sa.select(desk_handovers)
                    .where(desk_handovers.c.conversation_id == conversation_id)
                    .order_by(desk_handovers.c.at.desc())
                )
            ).all()
            earlier = await self._earlier(connection, conversation_id, row.sender)
            attached: dict[str, list[dict[str, Any]]] = {}
            for view in await self.attachments.of(connection, conversation_id):
                attached.setdefault(view.message_id, []).append(view.as_json(conversation_id))
            sent_ids = [e.message_id for e in entries if e.direction == "out"]
            deliveries = {
                d.message_id: {"status": d.status, "reason": d.reason}
                for d in (
                    await connection.execute(
                        sa.select(reply_deliveries).where(reply_deliveries.c.message_id.in_(sent_ids))
                    )
                ).all()
            } if sent_ids else {}  # fmt: skip
            await self._audit.append(connection, AuditEvent.by(actor, action, "ok", conversation_id))
        listed = [
            Entry(
                e.message_id,
                e.direction,
                e.author,
                self._opened(e.message_id, e.key_id, e.text),
                attached.get(e.message_id) or orjson.loads(e.attachments),
                as_utc(e.at),
                deliveries.get(e.message_id),
            )
            for e in entries
        ]
        return Conversation(
            summary=_summary(row),
            transcript=[e for e in listed if e.direction != "note"],
            notes=[e for e in listed if e.direction == "note"],
            handovers=[
                Handover(h.from_team, h.to_team, h.author, self._opened_note(h), as_utc(h.at))
                for h in handovers
            ],
            earlier=earlier,
            person_left=await self._left(row),
        )

    async def _earlier(
        self, connection: AsyncConnection, conversation_id: str, sender: str | None
    ) -> Earlier:
        """Earlier contacts are closed ones: the registrations of this conversation's
        earlier episodes (a closed conversation reopens when the person writes again) and
        of other conversations of the same sender pseudonym."""
        table, registrations = desk_conversations, desk_registrations
        ids = [conversation_id]
        if sender:
            same = sa.select(table.c.conversation_id).where(table.c.sender == sender)
            ids += [c for c in (await connection.execute(same)).scalars() if c != conversation_id]
        rows = (
            await connection.execute(
                sa.select(registrations.c.closed_at, registrations.c.outcome)
                .where(registrations.c.conversation_id.in_(ids))
                .order_by(registrations.c.closed_at.desc())
            )
        ).all()
        if not rows:
            return Earlier(0, None, None)
        return Earlier(len(rows), as_utc(rows[0].closed_at), rows[0].outcome)

    async def attachment(self, conversation_id: str, attachment_id: str, actor: Identity) -> AttachmentBody:
        """One stored attachment's bytes, for a counsellor of the conversation's team."""
        await self._own(conversation_id, actor.team)
        body = await self.attachments.body(conversation_id, attachment_id)
        if body is None:
            raise Rejected(404, "unknown_attachment", "no stored attachment with this id here")
        async with self._store.transaction() as connection:
            await self._audit.append(connection, AuditEvent.by(actor, "read", "ok", conversation_id))
        return body

    async def export(self, conversation_id: str, actor: Identity) -> Conversation:
        """For the region's case system when a chat becomes a report: only by the counsellor
        who has it, and recorded as `export`."""
        row = await self._own(conversation_id, actor.team)
        if row.status != CLAIMED or row.claimed_by != actor.account:
            raise Rejected(409, "not_claimed", "claim the conversation before exporting it")
        return await self.conversation(conversation_id, actor, action="export")

    async def add_note(self, conversation_id: str, actor: Identity, text: str) -> str:
        """An internal note for the team (and a team it is transferred to); never sent."""
        await self._own(conversation_id, actor.team)
        note_id = str(uuid.uuid4())
        async with self._store.transaction() as connection:
            await connection.execute(
                sa.insert(desk_messages).values(
                    message_id=note_id, conversation_id=conversation_id, direction="note",
                    author=actor.account, **self._sealed(note_id, text), attachments="[]", at=self._clock(),
                )
            )  # fmt: skip
            await self._audit.append(connection, AuditEvent.by(actor, "note", "ok", conversation_id))
        await self._changed(actor.team, conversation_id)
        return note_id

    async def reveal(self, conversation_id: str, actor: Identity, reason: str) -> dict[str, str]:
        """The contact behind a conversation whose channel cannot carry a reply (a Masker 19
        intake: the safe number, or the pharmacy), for the counsellor who has it to call
        back; each reveal is recorded with its reason."""
        row = await self._own(conversation_id, actor.team)
        if self.can_reply(row.channel_kind) or self._unseal is None:
            raise Rejected(409, "nothing_to_reveal", "reply in the conversation: its channel carries replies")
        if row.status != CLAIMED or row.claimed_by != actor.account:
            raise Rejected(409, "not_claimed", "claim the conversation before revealing its contact")
        address = self._unseal(row.reply_handle).get("address", "")
        async with self._store.transaction() as connection:
            record = AuditEvent.by(actor, "reveal", "ok", conversation_id, reason)
            await self._audit.append(connection, record)
        return contact_of(address, row.channel_instance)

    async def _left(self, row: sa.Row[Any]) -> bool:
        if self._person_gone is None:
            return False
        return await self._person_gone(row.channel_kind, row.channel_instance, row.reply_handle)

    def can_reply(self, channel_kind: str) -> bool:
        return self._replying_kinds is None or channel_kind in self._replying_kinds

    async def claim(self, conversation_id: str, actor: Identity) -> Summary:
        counsellor, team = actor.account, actor.team
        await self._own(conversation_id, team)
        table = desk_conversations
        async with self._store.transaction() as connection:
            await self._within_capacity(connection, actor, conversation_id)
            won = await connection.execute(
                sa.update(table)
                .where(
                    table.c.conversation_id == conversation_id,
                    table.c.team == team,
                    table.c.status == WAITING,
                )
                .values(status=CLAIMED, claimed_by=counsellor, claimed_at=self._clock(), returned=False)
            )
            row = (
                await connection.execute(sa.select(table).where(table.c.conversation_id == conversation_id))
            ).one()
            if won.rowcount != 1 and row.claimed_by != counsellor:
                raise _taken(row.claimed_by)
            await contacts.claimed(connection, conversation_id)
            await self._audit.append(connection, AuditEvent.by(actor, "claim", "ok", conversation_id))
        await self._changed(team, conversation_id)
        return _summary(row)

    async def claim_next(self, actor: Identity) -> Summary:
        """"Volgende": the team's next waiting conversation (urgent first, then the longest
        waiting), claimed; two counsellors asking at once get two different ones, and no
        one goes over their limit."""
        table = desk_conversations
        async with self._store.transaction() as connection:
            await self._within_capacity(connection, actor, None)
            query = (
                sa.select(table.c.conversation_id)
                .where(table.c.team == actor.team, table.c.status == WAITING)
                .order_by(table.c.urgent.desc(), table.c.waiting_since.asc())
                .limit(1)
                .with_for_update(skip_locked=True)
            )
            conversation_id = (await connection.execute(query)).scalar()
            if conversation_id is None:
                raise Rejected(404, "queue_empty", "no one is waiting for this team")
            await connection.execute(
                sa.update(table)
                .where(table.c.conversation_id == conversation_id)
                .values(status=CLAIMED, claimed_by=actor.account, claimed_at=self._clock(), returned=False)
            )
            chosen = sa.select(table).where(table.c.conversation_id == conversation_id)
            row = (await connection.execute(chosen)).one()
            await contacts.claimed(connection, conversation_id)
            await self._audit.append(connection, AuditEvent.by(actor, "claim", "ok", conversation_id))
        await self._changed(actor.team, conversation_id)
        return _summary(row)

    async def _within_capacity(
        self, connection: AsyncConnection, actor: Identity, claiming: str | None
    ) -> None:
        """Refuse a claim past the counsellor's limit. The counsellor's claims take turns
        (an advisory lock on PostgreSQL; the embedded store has one connection), so two
        processes cannot both take the last place."""
        if self._store.dialect == "postgresql":
            key = {"key": f"desk-claims|{actor.account}"}
            await connection.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:key))"), key)
        table = desk_conversations
        held = sa.select(sa.func.count()).where(
            table.c.claimed_by == actor.account, table.c.status == CLAIMED
        )
        if claiming is not None:
            held = held.where(table.c.conversation_id != claiming)
        limit = self._live.current.desk.capacity.limit(actor.team)
        if int((await connection.execute(held)).scalar_one()) >= limit:
            detail = f"you have {limit} conversations already: close one first"
            raise Rejected(409, "at_capacity", detail, limit=limit)

    async def board(self, actor: Identity) -> list[TeamBoard]:
        """The coordinator's own team, or every team for the national coordinator."""
        config = self._live.current
        teams = config.team_codes if actor.team == NATIONAL else [actor.team]
        table = desk_conversations
        now = self._clock()
        idle = timedelta(minutes=config.service.desk.idle_minutes)
        counts = sa.select(
            table.c.team,
            sa.func.count().filter(sa.and_(table.c.status == WAITING, table.c.urgent)),
            sa.func.count().filter(sa.and_(table.c.status == WAITING, sa.not_(table.c.urgent))),
            sa.func.min(table.c.waiting_since).filter(table.c.status == WAITING),
            sa.func.count().filter(table.c.status == CLAIMED),
            sa.func.count().filter(sa.and_(table.c.status == WAITING, table.c.after_hours)),
            sa.func.count().filter(sa.and_(table.c.status == WAITING, table.c.returned)),
        ).where(table.c.team.in_(teams)).group_by(table.c.team)
        online = sa.select(sessions.c.team, sessions.c.account, sa.func.max(sessions.c.name)).where(
            sessions.c.realm == "desk", sessions.c.team.in_(teams), sessions.c.stage == "full",
            sessions.c.role.in_(("counsellor", "coordinator")), sessions.c.expires_at > now,
            sessions.c.last_seen_at > now - idle,
        ).group_by(sessions.c.team, sessions.c.account)  # fmt: skip
        load = sa.select(table.c.claimed_by, sa.func.count()).where(table.c.status == CLAIMED).group_by(
            table.c.claimed_by
        )
        async with self._store.transaction() as connection:
            rows = {row[0]: row[1:] for row in (await connection.execute(counts)).all()}
            present = (await connection.execute(online)).all()
            claims = {row[0]: int(row[1]) for row in (await connection.execute(load)).all()}
            await self._audit.append(connection, AuditEvent.by(actor, "board"))
        boards = []
        for team in teams:
            urgent, normal, since, claimed, held, returned = rows.get(team, (0, 0, None, 0, 0, 0))
            waited = int((now - as_utc(since)).total_seconds()) if since is not None else 0
            people = sorted((a, n, claims.get(a, 0)) for t, a, n in present if t == team)
            boards.append(
                TeamBoard(
                    team, urgent, normal, max(waited, 0), claimed, held, returned, self._open(team), people
                )
            )
        return boards

    def next_open(self, team: str) -> datetime | None:
        """When the team next opens: after its coming close when it is open now (None for a
        team that never closes)."""
        config = self._live.current
        name = config.national.schedule if team == NATIONAL else config.regions[team].schedule
        schedule, now = resolve(name, config.schedules), self._schedule_clock()
        state = state_at(schedule, now)
        if not state.open or state.next_change is None:
            return state.next_change
        return state_at(schedule, state.next_change + timedelta(seconds=1)).next_change

    def _open(self, team: str) -> bool:
        config = self._live.current
        name = config.national.schedule if team == NATIONAL else config.regions[team].schedule
        return state_at(resolve(name, config.schedules), self._schedule_clock()).open

    async def move(self, conversation_id: str, actor: Identity, to_team: str, reason: str) -> None:
        """A coordinator moves a waiting conversation to another open team (an overflow):
        a transfer with its handover note, recorded as `move`."""
        config = self._live.current
        row = await self._own(conversation_id, actor.team, any_team=actor.team == NATIONAL)
        if row.status != WAITING:
            raise Rejected(409, "not_waiting", "only a conversation nobody has claimed can be moved")
        if to_team not in config.team_codes or to_team == row.team:
            raise Rejected(422, "unknown_team", "move to another region code or national")
        if not self._open(to_team):
            raise Rejected(409, "team_closed", "that team is closed now: move to an open team")
        mover = Identity(actor.realm, actor.account, actor.name, row.team, actor.role, actor.method)
        await self.transfer(conversation_id, mover, to_team, reason, action="move")

    async def return_unanswered(self) -> int:
        """Claims without a counsellor's reply for `unanswered_claim_minutes` go back to the
        queue, marked `returned`, so no one waits behind a counsellor who was called away."""
        minutes = self._live.current.desk.capacity.unanswered_claim_minutes
        cutoff = self._clock() - timedelta(minutes=minutes)
        table = desk_conversations
        async with self._store.transaction() as connection:
            returned = (
                await connection.execute(
                    sa.update(table)
                    .where(
                        table.c.status == CLAIMED,
                        table.c.claimed_at < cutoff,
                        sa.or_(table.c.answered_at.is_(None), table.c.answered_at < table.c.claimed_at),
                    )
                    .values(status=WAITING, claimed_by=None, claimed_at=None, returned=True)
                    .returning(table.c.conversation_id, table.c.team)
                )
            ).all()
        for conversation_id, team in returned:
            await self._changed(team, conversation_id)
        if returned:
            log.info("unanswered_claims_returned", conversations=len(returned))
        return len(returned)

    async def reply(self, conversation_id: str, actor: Identity, text: str) -> str:
        counsellor, team = actor.account, actor.team
        row = await self._own(conversation_id, team)
        if not self.can_reply(row.channel_kind):
            detail = "this channel carries no replies: reveal the contact (POST .../reveal) and call back"
            raise Rejected(409, "cannot_reply", detail)
        if row.status != CLAIMED or row.claimed_by != counsellor:
            raise Rejected(409, "not_claimed", "claim the conversation before replying")
        if await self._left(row):
            detail = "the person has left the chat (quick exit, or gone quiet): no reply reaches them"
            raise Rejected(409, "person_left", detail)
        now = self._clock()
        reply = self._outbound(row, text, "counsellor", now)
        async with self._store.transaction() as connection:
            await connection.execute(
                sa.insert(desk_messages).values(
                    message_id=reply.id,
                    conversation_id=conversation_id,
                    direction="out",
                    author=counsellor,
                    **self._sealed(reply.id, text),
                    attachments="[]",
                    at=now,
                )
            )
            await connection.execute(
                sa.update(desk_conversations)
                .where(desk_conversations.c.conversation_id == conversation_id)
                .values(last_activity_at=now, answered_at=now)
            )
            await connection.execute(
                sa.insert(reply_deliveries).values(message_id=reply.id, status="queued", updated_at=now)
            )
            await contacts.replied(connection, conversation_id, now + self._schedule_offset())
            await self._audit.append(connection, AuditEvent.by(actor, "reply", "ok", conversation_id))
            # Sent only once its record is written; a broker that does not take it rolls
            # back the transcript line and the record with it.
            await self._publish_outbound(row, reply)
        await self._changed(team, conversation_id)
        return reply.id

    @staticmethod
    def _outbound(
        row: sa.Row[Any], text: str, origin: Literal["counsellor", "wait_notice"], now: datetime
    ) -> OutboundMessage:
        return OutboundMessage(
            id=str(uuid.uuid4()),
            conversation_id=row.conversation_id,
            channel=ChannelRef(kind=row.channel_kind, instance=row.channel_instance),
            reply_handle=row.reply_handle,
            text=text,
            origin=origin,
            created_at=now,
        )

    async def _publish_outbound(self, row: sa.Row[Any], reply: OutboundMessage) -> None:
        message = Message(
            body=reply.to_json(),
            message_id=reply.id,
            correlation_id=reply.conversation_id,
            type=OUTBOUND_SCHEMA_VERSION,
            timestamp=reply.created_at,
        )
        await self._broker.publish(OUTBOUND_EXCHANGE, f"{row.channel_kind}.{row.channel_instance}", message)

    async def transfer(
        self, conversation_id: str, actor: Identity, to_team: str, reason: str, action: str = "transfer"
    ) -> None:
        counsellor, team = actor.account, actor.team
        config = self._live.current
        if to_team not in config.team_codes:
            raise Rejected(422, "unknown_team", "transfer to a region code or national")
        if to_team == team:
            raise Rejected(422, "same_team", "the conversation is already with this team")
        await self._own(conversation_id, team)
        # The router learns of it through the inbound shard, in order with the conversation's
        # messages: published once the desk's own view and the record are written, before
        # they commit, so a transfer the broker did not take leaves no trace.
        shards = config.service.broker.inbound_shards
        control = transfer_publish(conversation_id, to_team, shards)
        table = desk_conversations
        async with self._store.transaction() as connection:
            await connection.execute(
                sa.update(table)
                .where(table.c.conversation_id == conversation_id, table.c.team == team)
                .values(team=to_team, status=WAITING, claimed_by=None, waiting_since=self._clock())
            )
            handover_id = str(uuid.uuid4())
            key_id, note = self._fields.encrypt_text(reason, f"desk_handovers:{handover_id}")
            await connection.execute(
                sa.insert(desk_handovers).values(
                    handover_id=handover_id, conversation_id=conversation_id, from_team=team,
                    to_team=to_team, author=counsellor, note=note, key_id=key_id, at=self._clock(),
                )
            )  # fmt: skip
            await contacts.transferred(connection, conversation_id, to_team)
            await self._audit.append(connection, AuditEvent.by(actor, action, "ok", conversation_id))
            await self._broker.publish(control.exchange, control.routing_key, control.message)
        log.info("conversation_transferred", from_team=team, to_team=to_team)
        await self._changed(team, conversation_id)
        await self._changed(to_team, conversation_id)

    async def close_conversation(
        self, conversation_id: str, actor: Identity, form: Mapping[str, object]
    ) -> None:
        """Closed with its registration (`form`, checked against desk.yaml: the figures'
        source); the registration's note stays with the conversation as an internal note."""
        counsellor, team = actor.account, actor.team
        row = await self._own(conversation_id, team)
        if row.status == CLAIMED and row.claimed_by != counsellor:
            raise _taken(row.claimed_by)
        registration, problems = registration_from(form, self._live.current.desk.wrap_up)
        if registration is None:
            detail = "register the conversation to close it"
            raise Rejected(422, "registration_incomplete", detail, tuple(problems))
        now = self._clock()
        # Whether the person left before any reply: only a channel that knows says so.
        person_left = row.answered_at is None and await self._left(row)
        async with self._store.transaction() as connection:
            await connection.execute(
                sa.update(desk_conversations)
                .where(desk_conversations.c.conversation_id == conversation_id)
                .values(status=CLOSED, claimed_by=None)
            )
            await contacts.closed(
                connection, conversation_id, now + self._schedule_offset(), registration, person_left
            )
            await connection.execute(
                sa.insert(desk_registrations).values(
                    registration_id=str(uuid.uuid4()), conversation_id=conversation_id, team=team,
                    channel_kind=row.channel_kind, urgent=row.urgent, after_hours=row.after_hours,
                    closed_at=now, contact_role=registration.contact_role, age_group=registration.age_group,
                    topics=orjson.dumps(list(registration.topics)).decode(), outcome=registration.outcome,
                    serious=registration.serious,
                )
            )  # fmt: skip
            if registration.note:
                note_id = str(uuid.uuid4())
                await connection.execute(
                    sa.insert(desk_messages).values(
                        message_id=note_id, conversation_id=conversation_id, direction="note",
                        author=counsellor, **self._sealed(note_id, registration.note), attachments="[]",
                        at=now,
                    )
                )  # fmt: skip
            await self._audit.append(connection, AuditEvent.by(actor, "close", "ok", conversation_id))
        await self._changed(team, conversation_id)

    # privacy by default

    async def forget_before(self, cutoff: datetime) -> int:
        """Delete conversations (and transcripts) quiet since before `cutoff`, with the rest
        of what the gateway kept about them; returns how many conversations went."""
        table = desk_conversations
        async with self._store.transaction() as connection:
            expired = sa.delete(table).where(table.c.last_activity_at < cutoff)
            gone = (await connection.execute(expired.returning(table.c.conversation_id))).scalars().all()
            if gone:
                messages = desk_messages
                replies = sa.select(messages.c.message_id).where(messages.c.conversation_id.in_(gone))
                await connection.execute(
                    sa.delete(reply_deliveries).where(reply_deliveries.c.message_id.in_(replies))
                )
                await connection.execute(sa.delete(messages).where(messages.c.conversation_id.in_(gone)))
                await self.attachments.forget(connection, gone)
                handovers = desk_handovers
                await connection.execute(sa.delete(handovers).where(handovers.c.conversation_id.in_(gone)))
                # The registrations and the figures' record stay, but no longer point at anything.
                await contacts.forgotten(connection, gone)
                await connection.execute(
                    sa.update(desk_registrations)
                    .where(desk_registrations.c.conversation_id.in_(gone))
                    .values(conversation_id=None)
                )
            for other, column in (
                (conversation_regions, conversation_regions.c.updated_at),
                (auto_replies, auto_replies.c.created_at),
                (sent_replies, sent_replies.c.sent_at),
            ):
                await connection.execute(sa.delete(other).where(column < cutoff))
            for forget in self._retention_hooks:  # what channel kinds keep of their own
                await forget(connection, cutoff)
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
            waited = (now - as_utc(since)).total_seconds() if since is not None else 0.0
            self._metrics.desk_oldest_waiting.labels(team).set(max(waited, 0.0))

    async def _gauges_loop(self) -> None:
        while True:
            try:
                await self.sample_waiting()
            except Exception as exc:
                log.warning("waiting_gauges_failed", error=type(exc).__name__)
            await asyncio.sleep(GAUGES_EVERY_SECONDS)

    async def _returns_loop(self) -> None:
        while True:
            for step in (self.return_unanswered, self.send_wait_notices):
                try:
                    await step()
                except Exception as exc:
                    log.warning("queue_upkeep_failed", step=step.__name__, error=type(exc).__name__)
            await asyncio.sleep(RETURNS_EVERY_SECONDS)

    async def send_wait_notices(self) -> int:
        """One message to each person who has waited `wait_notice.after_minutes` in this
        process's teams, once per wait; marked sent in the transaction that publishes it."""
        config = self._live.current
        notice = config.desk.wait_notice
        if notice.after_minutes <= 0:
            return 0
        table = desk_conversations
        now = self._clock()
        due = (
            sa.select(table)
            .where(
                table.c.status == WAITING,
                sa.not_(table.c.wait_notice_sent),
                table.c.waiting_since < now - timedelta(minutes=notice.after_minutes),
                table.c.team.in_(self._teams or config.team_codes),
            )
            .limit(100)
        )
        async with self._store.reading() as connection:
            rows = (await connection.execute(due)).all()
        sent = 0
        for row in rows:
            channel = config.channels.get(row.channel_instance)
            if channel is None or not channel.auto_reply or not self.can_reply(row.channel_kind):
                continue
            async with self._store.transaction() as connection:
                claimed = await connection.execute(
                    sa.update(table)
                    .where(table.c.conversation_id == row.conversation_id, sa.not_(table.c.wait_notice_sent))
                    .values(wait_notice_sent=True)
                )
                if claimed.rowcount != 1:
                    continue  # another desk process sent it
                text = notice.text.get("en" if channel.language == "en" else "nl") or notice.text["nl"]
                message = self._outbound(row, text, "wait_notice", now)
                await connection.execute(  # the counsellor sees what the person was told
                    sa.insert(desk_messages).values(
                        message_id=message.id, conversation_id=row.conversation_id, direction="out",
                        author=None, **self._sealed(message.id, text), attachments="[]", at=now,
                    )
                )  # fmt: skip
                await self._publish_outbound(row, message)
            sent += 1
        return sent

    async def _retention_loop(self) -> None:
        while True:
            hours = self._live.current.service.desk.retention_hours
            try:
                await self.forget_before(self._clock() - timedelta(hours=hours))
            except Exception as exc:
                log.warning("retention_failed", error=type(exc).__name__)
            await asyncio.sleep(RETENTION_EVERY_SECONDS)


def _taken(claimed_by: str | None) -> Rejected:
    return Rejected(409, "already_claimed", "another counsellor has this conversation", claimed_by=claimed_by)


PHONE = re.compile(r"\+?[0-9]{8,15}")


def contact_of(address: str, channel_instance: str) -> dict[str, str]:
    """What a counsellor calls: a pharmacy (Masker 19 without a safe number), a phone
    number, or the region's own system's reference for the person (http-json)."""
    if address.startswith("apotheek:"):
        return {"call": "pharmacy", "pharmacy": address.removeprefix("apotheek:")}
    if PHONE.fullmatch(address):
        return {"call": "number", "number": address}
    return {"call": "reference", "reference": address.removeprefix(f"{channel_instance}:")}


PREVIEW_CHARS = 80
UNREADABLE = "[niet te lezen: de sleutel ontbreekt]"  # a value whose data key is not in the keyring


def _summary(row: sa.Row[Any], preview: str = "") -> Summary:
    return Summary(
        conversation_id=row.conversation_id,
        team=row.team,
        channel_kind=row.channel_kind,
        status=row.status,
        urgent=row.urgent,
        after_hours=row.after_hours,
        claimed_by=row.claimed_by,
        waiting_since=as_utc(row.waiting_since),
        last_activity_at=as_utc(row.last_activity_at),
        returned=bool(row.returned),
        acute=bool(row.acute),
        preview=preview[:PREVIEW_CHARS] + ("…" if len(preview) > PREVIEW_CHARS else ""),
    )
