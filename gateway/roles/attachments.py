"""The desk's attachments: recorded with the message that carries them, fetched in the
background from the provider's own hosts (the channel kind says where and with which
credentials), kept like the transcript and deleted with it, and read back only for a
counsellor of the conversation's team.

Fetching is a lease on the row, not a lock held over the network: a process takes a few
pending rows (SKIP LOCKED), moves their next attempt past the longest a fetch may take,
commits, fetches, and writes the result. A process that dies mid-fetch leaves the rows
to be taken again when the lease runs out.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import sqlalchemy as sa
import structlog
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.config.live import LiveConfig
from gateway.domain.envelope import Envelope
from gateway.domain.messages import MediaSource, MediaUnavailable
from gateway.store.database import Store, insert_for
from gateway.store.tables import desk_attachments, desk_conversations
from gateway.support.fieldcrypt import FieldCipher, FieldKeyError
from gateway.support.media import MAX_REDIRECTS, MediaRefused, fetch, shown_inline
from gateway.support.metrics import Metrics

log = structlog.get_logger("gateway.desk.attachments")

PENDING, STORED, REFUSED = "pending", "stored", "refused"
BATCH = 4  # fetched at once per process
IDLE_SECONDS = 2.0  # how often pending rows are looked for when nothing wakes the loop

MediaLookup = Callable[[str, str, str], Awaitable[MediaSource]]  # (kind, instance, url)


@dataclass(frozen=True)
class AttachmentView:
    """What the console shows of one attachment (never where the provider keeps it)."""

    id: str
    message_id: str
    content_type: str
    status: str
    reason: str | None
    size: int | None
    inline: bool

    def as_json(self, conversation_id: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "content_type": self.content_type,
            "status": self.status,
            "reason": self.reason,
            "size": self.size,
            "inline": self.inline,
            "url": f"/api/v1/conversations/{conversation_id}/attachments/{self.id}"
            if self.status == STORED
            else None,
        }


@dataclass(frozen=True)
class AttachmentBody:
    content_type: str
    data: bytes
    inline: bool
    position: int


def attachment_id(message_id: str, position: int) -> str:
    """Stable, so a redelivered message records the same rows once."""
    return hashlib.sha256(f"{message_id}\x00{position}".encode()).hexdigest()[:32]


class Attachments:
    def __init__(
        self,
        live: LiveConfig,
        store: Store,
        metrics: Metrics,
        clock: Callable[[], datetime],
        lookup: MediaLookup | None,
        changed: Callable[[str, str], Awaitable[None]],
        fields: FieldCipher,
    ) -> None:
        self._fields = fields  # the bytes are stored encrypted, like the transcript
        self._live = live
        self._store = store
        self._metrics = metrics
        self._clock = clock
        self._lookup = lookup  # None: this process does not fetch (nothing says where)
        self._changed = changed
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if self._lookup is not None:
            self._task = asyncio.create_task(self._loop())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    async def record(self, connection: AsyncConnection, envelope: Envelope) -> None:
        """Inside the transaction that stores the message: one pending row per attachment."""
        if not envelope.attachments:
            return
        now = self._clock()
        rows = [
            {
                "attachment_id": attachment_id(envelope.id, n),
                "message_id": envelope.id,
                "conversation_id": envelope.conversation_id,
                "position": n,
                "channel_kind": envelope.channel.kind,
                "channel_instance": envelope.channel.instance,
                "source": a.url,
                "declared_type": a.content_type[:255],
                "status": PENDING,
                "size": a.size,
                "next_attempt_at": now,
                "created_at": now,
            }
            for n, a in enumerate(envelope.attachments)
        ]
        insert = insert_for(self._store.engine.dialect.name)
        await connection.execute(insert(desk_attachments).values(rows).on_conflict_do_nothing())
        self._wake.set()

    async def of(self, connection: AsyncConnection, conversation_id: str) -> list[AttachmentView]:
        table = desk_attachments
        rows = (
            await connection.execute(
                sa.select(
                    table.c.attachment_id, table.c.message_id, table.c.declared_type, table.c.content_type,
                    table.c.status, table.c.reason, table.c.size, table.c.inline,
                )
                .where(table.c.conversation_id == conversation_id)
                .order_by(table.c.message_id, table.c.position)
            )
        ).all()  # fmt: skip
        return [
            AttachmentView(
                r.attachment_id, r.message_id, r.content_type or r.declared_type, r.status, r.reason,
                r.size, r.status == STORED and r.inline,
            )
            for r in rows
        ]  # fmt: skip

    async def body(self, conversation_id: str, attachment_id: str) -> AttachmentBody | None:
        table = desk_attachments
        async with self._store.reading() as connection:
            row = (
                await connection.execute(
                    sa.select(
                        table.c.content_type, table.c.data, table.c.key_id, table.c.inline, table.c.position
                    ).where(
                        table.c.attachment_id == attachment_id,
                        table.c.conversation_id == conversation_id,
                        table.c.status == STORED,
                    )
                )
            ).first()
        if row is None or row.data is None or row.key_id is None:
            return None
        try:
            data = self._fields.decrypt(row.key_id, bytes(row.data), f"desk_attachments:{attachment_id}")
        except FieldKeyError:
            self._metrics.unreadable_fields.inc()
            log.error("field_unreadable", table="desk_attachments")
            return None
        return AttachmentBody(row.content_type, data, row.inline, row.position)

    async def forget(self, connection: AsyncConnection, conversation_ids: Sequence[str]) -> None:
        table = desk_attachments
        await connection.execute(sa.delete(table).where(table.c.conversation_id.in_(conversation_ids)))

    # fetching

    async def _loop(self) -> None:
        while True:
            try:
                while await self.fetch_due():
                    pass
            except Exception as exc:  # the database away: try again at the next round
                log.warning("attachment_fetch_failed", error=type(exc).__name__)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), IDLE_SECONDS)

    async def fetch_due(self) -> int:
        """Fetch the pending attachments that are due; returns how many were taken."""
        rules = self._live.current.desk.attachments
        lease = timedelta(seconds=rules.fetch_timeout_seconds * (MAX_REDIRECTS + 2))
        table = desk_attachments
        now = self._clock()
        async with self._store.transaction() as connection:
            rows = (
                await connection.execute(
                    sa.select(
                        table.c.attachment_id, table.c.conversation_id, table.c.channel_kind,
                        table.c.channel_instance, table.c.source, table.c.attempts, table.c.size,
                        table.c.declared_type,
                    )
                    .where(table.c.status == PENDING, table.c.next_attempt_at <= now)
                    .order_by(table.c.next_attempt_at)
                    .limit(BATCH)
                    .with_for_update(skip_locked=True)
                )
            ).all()  # fmt: skip
            if rows:
                await connection.execute(
                    sa.update(table)
                    .where(table.c.attachment_id.in_([r.attachment_id for r in rows]))
                    .values(attempts=table.c.attempts + 1, next_attempt_at=now + lease)
                )
        await asyncio.gather(*(self._fetch_one(row) for row in rows))
        return len(rows)

    async def _fetch_one(self, row: Any) -> None:
        rules = self._live.current.desk.attachments
        assert self._lookup is not None
        if self._session is None:
            self._session = aiohttp.ClientSession()
        values: dict[str, Any]
        try:
            source = await self._lookup(row.channel_kind, row.channel_instance, row.source or "")
            declared = source.size if source.size is not None else row.size
            if declared is not None and declared > rules.max_bytes:
                raise MediaRefused("too_large", permanent=True)
            fetched = await fetch(
                self._session,
                source.url,
                hosts=source.hosts,
                basic_auth=source.basic_auth,
                declared_type=row.declared_type,
                max_bytes=rules.max_bytes,
                content_types=frozenset(rules.content_types),
                seconds=rules.fetch_timeout_seconds,
            )
            key_id, sealed = self._fields.encrypt(fetched.data, f"desk_attachments:{row.attachment_id}")
            values = {
                "status": STORED, "content_type": fetched.content_type, "data": sealed, "key_id": key_id,
                "inline": shown_inline(fetched.content_type, fetched.data), "size": len(fetched.data),
                "source": None, "reason": None,
            }  # fmt: skip
        except (MediaRefused, MediaUnavailable) as exc:
            values = self._refusal(exc.reason, exc.permanent, row.attempts + 1, rules.attempts)
        except Exception as exc:  # a provider SDK's own error while asking where the file is
            log.warning("attachment_lookup_failed", error=type(exc).__name__, channel_kind=row.channel_kind)
            values = self._refusal("lookup_failed", False, row.attempts + 1, rules.attempts)
        table = desk_attachments
        async with self._store.transaction() as connection:
            await connection.execute(
                sa.update(table)
                .where(table.c.attachment_id == row.attachment_id, table.c.status == PENDING)
                .values(**values)
            )
            team = (
                await connection.execute(
                    sa.select(desk_conversations.c.team).where(
                        desk_conversations.c.conversation_id == row.conversation_id
                    )
                )
            ).scalar()
        result = "stored" if values["status"] == STORED else values.get("reason") or "retry"
        if values["status"] != PENDING:
            self._metrics.attachments.labels(row.channel_kind, result).inc()
            event = f"attachment_{values['status']}"
            log.info(event, channel_kind=row.channel_kind, reason=values.get("reason"))
            if team is not None:
                await self._changed(team, row.conversation_id)

    def _refusal(self, reason: str, permanent: bool, attempts: int, limit: int) -> dict[str, Any]:
        if permanent or attempts >= limit:
            return {"status": REFUSED, "reason": reason[:40], "source": None}
        backoff = timedelta(seconds=min(300.0, 5.0 * 2 ** (attempts - 1)))
        return {"status": PENDING, "reason": reason[:40], "next_attempt_at": self._clock() + backoff}
