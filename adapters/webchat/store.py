"""The web chat's own tables (migrations in migrations/): sessions with the sequence
numbers of both directions, and the replies waiting for a session's socket, their text
encrypted at rest under the channel data keys (`REPLY_TEXT`, bound to the reply's id)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.base import Database
from gateway.support.clock import as_utc
from gateway.support.fieldcrypt import EncryptedColumn, FieldCipher

metadata = sa.MetaData()
webchat_sessions = sa.Table(
    "webchat_sessions",
    metadata,
    sa.Column("session_id", sa.String(64), primary_key=True),
    sa.Column("channel_id", sa.String(80), nullable=False),
    sa.Column("client_seq", sa.Integer, nullable=False, server_default="0"),
    sa.Column("server_seq", sa.Integer, nullable=False, server_default="0"),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
)
webchat_replies = sa.Table(
    "webchat_replies",
    metadata,
    sa.Column("session_id", sa.String(64), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("message_id", sa.String(100), nullable=False),
    sa.Column("origin", sa.String(20), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("key_id", sa.String(16), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)
REPLY_TEXT = EncryptedColumn("webchat_replies", "message_id", "text")


@dataclass(frozen=True)
class ChatSession:
    session_id: str
    channel_id: str
    client_seq: int
    server_seq: int
    last_seen_at: datetime
    ended: bool


@dataclass(frozen=True)
class ChatReply:
    seq: int
    message_id: str
    origin: str
    text: str




class ChatStore:
    def __init__(self, database: Database, fields: FieldCipher) -> None:
        self._database = database
        self._fields = fields

    async def start_session(self, session_id: str, channel_id: str) -> None:
        now = datetime.now(UTC)
        async with self._database.transaction() as connection:
            await connection.execute(
                sa.insert(webchat_sessions).values(
                    session_id=session_id, channel_id=channel_id, created_at=now, last_seen_at=now
                )
            )

    async def chat_session(self, session_id: str) -> ChatSession | None:
        table = webchat_sessions
        async with self._database.reading() as connection:
            row = (await connection.execute(sa.select(table).where(table.c.session_id == session_id))).first()
        if row is None:
            return None
        last_seen = as_utc(row.last_seen_at)
        return ChatSession(
            row.session_id,
            row.channel_id,
            row.client_seq,
            row.server_seq,
            last_seen,
            row.ended_at is not None,
        )

    async def touch_session(self, session_id: str, client_seq: int | None = None) -> None:
        """Note activity, and the person's newest stored message number when given."""
        values: dict[str, object] = {"last_seen_at": datetime.now(UTC)}
        if client_seq is not None:
            values["client_seq"] = sa.func.max(webchat_sessions.c.client_seq, client_seq)
            if self._database.dialect == "postgresql":
                values["client_seq"] = sa.func.greatest(webchat_sessions.c.client_seq, client_seq)
        async with self._database.transaction() as connection:
            await connection.execute(
                sa.update(webchat_sessions).where(webchat_sessions.c.session_id == session_id).values(values)
            )

    async def add_chat_reply(self, session_id: str, message_id: str, origin: str, text: str) -> int | None:
        """Store a reply for the session under its next number; None if the session is gone."""
        table = webchat_sessions
        async with self._database.transaction() as connection:
            seq = (
                await connection.execute(
                    sa.update(table)
                    .where(table.c.session_id == session_id, table.c.ended_at.is_(None))
                    .values(server_seq=table.c.server_seq + 1, last_seen_at=datetime.now(UTC))
                    .returning(table.c.server_seq)
                )
            ).scalar()
            if seq is None:
                return None
            key_id, sealed = self._fields.encrypt_text(text, REPLY_TEXT.context(message_id))
            await connection.execute(
                sa.insert(webchat_replies).values(
                    session_id=session_id,
                    seq=seq,
                    message_id=message_id,
                    origin=origin,
                    text=sealed,
                    key_id=key_id,
                    created_at=datetime.now(UTC),
                )
            )
            return int(seq)

    async def chat_replies_after(self, session_id: str, seq: int) -> list[ChatReply]:
        """The replies after `seq`, opened; raises FieldKeyError for one whose key this
        process does not hold (its keyring lost a key still in use: see `gateway data rotate`)."""
        table = webchat_replies
        async with self._database.reading() as connection:
            rows = (
                await connection.execute(
                    sa.select(table.c.seq, table.c.message_id, table.c.origin, table.c.text, table.c.key_id)
                    .where(table.c.session_id == session_id, table.c.seq > seq)
                    .order_by(table.c.seq)
                )
            ).all()
        def text_of(row: Any) -> str:
            return self._fields.decrypt_text(row.key_id, row.text, REPLY_TEXT.context(row.message_id))

        return [ChatReply(r.seq, r.message_id, r.origin, text_of(r)) for r in rows]

    async def end_session(self, session_id: str) -> None:
        """The session is over (quick exit, expiry): its replies are deleted at once."""
        async with self._database.transaction() as connection:
            await connection.execute(
                sa.delete(webchat_replies).where(webchat_replies.c.session_id == session_id)
            )
            await connection.execute(
                sa.update(webchat_sessions)
                .where(webchat_sessions.c.session_id == session_id)
                .values(ended_at=datetime.now(UTC))
            )


async def forget_before(connection: AsyncConnection, cutoff: datetime) -> None:
    """Retention: sessions quiet since before `cutoff`, and their replies."""
    stale = sa.select(webchat_sessions.c.session_id).where(webchat_sessions.c.last_seen_at < cutoff)
    await connection.execute(sa.delete(webchat_replies).where(webchat_replies.c.session_id.in_(stale)))
    await connection.execute(sa.delete(webchat_sessions).where(webchat_sessions.c.last_seen_at < cutoff))
