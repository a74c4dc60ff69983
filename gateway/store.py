"""Shared state in PostgreSQL (GATEWAY_DATABASE_URL), or an in-memory SQLite
database when no URL is set; one code path through SQLAlchemy's asyncio layer.
The schema is managed by Alembic migrations, applied at start."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

EMBEDDED_URL = "sqlite+aiosqlite:///:memory:"
MIGRATIONS = Path(__file__).resolve().parent / "migrations"

metadata = sa.MetaData()
conversation_regions = sa.Table(
    "conversation_regions",
    metadata,
    sa.Column("conversation_id", sa.String(100), primary_key=True),
    sa.Column("region", sa.String(80), nullable=False),
    sa.Column("transferred", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)
auto_replies = sa.Table(
    "auto_replies",
    metadata,
    sa.Column("conversation_id", sa.String(100), primary_key=True),
    sa.Column("period_end", sa.DateTime(timezone=True), primary_key=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

sent_replies = sa.Table(
    "sent_replies",
    metadata,
    sa.Column("message_id", sa.String(100), primary_key=True),
    sa.Column("channel_kind", sa.String(40), nullable=False),
    sa.Column("provider_message_id", sa.String(100), nullable=False),
    sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
)

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
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

desk_conversations = sa.Table(
    "desk_conversations",
    metadata,
    sa.Column("conversation_id", sa.String(100), primary_key=True),
    sa.Column("team", sa.String(80), nullable=False),
    sa.Column("channel_kind", sa.String(40), nullable=False),
    sa.Column("channel_instance", sa.String(80), nullable=False),
    sa.Column("status", sa.String(10), nullable=False),
    sa.Column("urgent", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("after_hours", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("claimed_by", sa.String(80), nullable=True),
    sa.Column("reply_handle", sa.Text, nullable=False),
    sa.Column("waiting_since", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_activity_at", sa.DateTime(timezone=True), nullable=False),
)
desk_messages = sa.Table(
    "desk_messages",
    metadata,
    sa.Column("message_id", sa.String(100), primary_key=True),
    sa.Column("conversation_id", sa.String(100), nullable=False),
    sa.Column("direction", sa.String(8), nullable=False),
    sa.Column("author", sa.String(80), nullable=True),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("attachments", sa.Text, nullable=False, server_default="[]"),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
)


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


def database_url(url: str | None) -> str:
    """Accept the usual postgres:// spellings and pick the asyncio driver."""
    if url is None:
        return EMBEDDED_URL
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    return url


def insert_for(dialect: str):  # type: ignore[no-untyped-def]
    """INSERT with ON CONFLICT for the store's dialect."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


class Claims:
    """Auto-reply claims made inside one database transaction."""

    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection
        self._insert = insert_for(connection.dialect.name)

    async def claim(self, conversation_id: str, period_end: datetime) -> bool:
        """True if this conversation had no auto-reply yet for the closed period ending then.
        A concurrent claim of the same key waits for this transaction and then gets False."""
        statement = (
            self._insert(auto_replies)
            .values(conversation_id=conversation_id, period_end=period_end, created_at=datetime.now(UTC))
            .on_conflict_do_nothing()
        )
        result = await self._connection.execute(statement)
        return result.rowcount == 1


class Store:
    def __init__(self, url: str | None) -> None:
        self.url = database_url(url)
        self.embedded = url is None
        options: dict = {"pool_pre_ping": True}
        if self.url.startswith("sqlite"):
            options = {"poolclass": StaticPool, "connect_args": {"check_same_thread": False}}
        self.engine: AsyncEngine = create_async_engine(self.url, **options)
        self.ready = False
        # The embedded database is one SQLite connection: transactions must take turns on it.
        self._turns = asyncio.Lock() if self.url.startswith("sqlite") else contextlib.nullcontext()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """One committed transaction (taking turns on the embedded database)."""
        async with self._turns, self.engine.begin() as connection:
            yield connection

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncConnection]:
        async with self._turns, self.engine.connect() as connection:
            yield connection

    async def start(self) -> None:
        async with self.engine.begin() as connection:
            await connection.run_sync(self._upgrade)
        self.ready = True

    @staticmethod
    def _upgrade(sync_connection: sa.Connection) -> None:
        if sync_connection.dialect.name == "postgresql":
            # Processes starting together take turns: one migrates, the others find it done.
            sync_connection.execute(sa.text("SELECT pg_advisory_xact_lock(7326141902)"))
        config = AlembicConfig()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = sync_connection
        command.upgrade(config, "head")

    async def close(self) -> None:
        self.ready = False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.engine.dispose(), 5)

    async def conversation_regions(self, conversation_ids: list[str]) -> dict[str, tuple[str, bool]]:
        """Current region, and whether a counsellor transferred it there, per conversation."""
        if not conversation_ids:
            return {}
        table = conversation_regions
        async with self._turns, self.engine.connect() as connection:
            result = await connection.execute(
                sa.select(table.c.conversation_id, table.c.region, table.c.transferred).where(
                    table.c.conversation_id.in_(set(conversation_ids))
                )
            )
            return {row.conversation_id: (row.region, row.transferred) for row in result}

    async def set_conversation_region(
        self,
        conversation_id: str,
        region: str,
        *,
        transferred: bool,
        connection: AsyncConnection | None = None,
    ) -> None:
        insert = insert_for(self.engine.dialect.name)
        now = datetime.now(UTC)
        values = {"region": region, "transferred": transferred, "updated_at": now}
        statement = insert(conversation_regions).values(conversation_id=conversation_id, **values)
        statement = statement.on_conflict_do_update(
            index_elements=[conversation_regions.c.conversation_id], set_=values
        )
        if connection is not None:
            await connection.execute(statement)
            return
        async with self._turns, self.engine.begin() as own:
            await own.execute(statement)

    async def already_sent(self, message_ids: list[str]) -> set[str]:
        """Which of these replies a provider has already accepted."""
        async with self._turns, self.engine.connect() as connection:
            result = await connection.execute(
                sa.select(sent_replies.c.message_id).where(sent_replies.c.message_id.in_(set(message_ids)))
            )
            return {row.message_id for row in result}

    async def record_sent(self, replies: list[tuple[str, str, str]]) -> None:
        """Remember replies (message id, channel kind, provider message id) as sent."""
        now = datetime.now(UTC)
        rows = [
            {"message_id": m, "channel_kind": k, "provider_message_id": p[:100], "sent_at": now}
            for m, k, p in replies
        ]
        statement = insert_for(self.engine.dialect.name)(sent_replies).values(rows).on_conflict_do_nothing()
        async with self._turns, self.engine.begin() as connection:
            await connection.execute(statement)

    # web chat sessions

    async def start_session(self, session_id: str, channel_id: str) -> None:
        now = datetime.now(UTC)
        async with self._turns, self.engine.begin() as connection:
            await connection.execute(
                sa.insert(webchat_sessions).values(
                    session_id=session_id, channel_id=channel_id, created_at=now, last_seen_at=now
                )
            )

    async def chat_session(self, session_id: str) -> ChatSession | None:
        table = webchat_sessions
        async with self._turns, self.engine.connect() as connection:
            row = (await connection.execute(sa.select(table).where(table.c.session_id == session_id))).first()
        if row is None:
            return None
        last_seen = row.last_seen_at if row.last_seen_at.tzinfo else row.last_seen_at.replace(tzinfo=UTC)
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
            if self.engine.dialect.name == "postgresql":
                values["client_seq"] = sa.func.greatest(webchat_sessions.c.client_seq, client_seq)
        async with self._turns, self.engine.begin() as connection:
            await connection.execute(
                sa.update(webchat_sessions).where(webchat_sessions.c.session_id == session_id).values(values)
            )

    async def add_chat_reply(self, session_id: str, message_id: str, origin: str, text: str) -> int | None:
        """Store a reply for the session under its next number; None if the session is gone."""
        table = webchat_sessions
        async with self._turns, self.engine.begin() as connection:
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
            await connection.execute(
                sa.insert(webchat_replies).values(
                    session_id=session_id,
                    seq=seq,
                    message_id=message_id,
                    origin=origin,
                    text=text,
                    created_at=datetime.now(UTC),
                )
            )
            return int(seq)

    async def chat_replies_after(self, session_id: str, seq: int) -> list[ChatReply]:
        table = webchat_replies
        async with self._turns, self.engine.connect() as connection:
            rows = await connection.execute(
                sa.select(table.c.seq, table.c.message_id, table.c.origin, table.c.text)
                .where(table.c.session_id == session_id, table.c.seq > seq)
                .order_by(table.c.seq)
            )
            return [ChatReply(r.seq, r.message_id, r.origin, r.text) for r in rows]

    async def end_session(self, session_id: str) -> None:
        """The session is over (quick exit, expiry): its replies are deleted at once."""
        async with self._turns, self.engine.begin() as connection:
            await connection.execute(
                sa.delete(webchat_replies).where(webchat_replies.c.session_id == session_id)
            )
            await connection.execute(
                sa.update(webchat_sessions)
                .where(webchat_sessions.c.session_id == session_id)
                .values(ended_at=datetime.now(UTC))
            )

    @asynccontextmanager
    async def claims(self) -> AsyncIterator[tuple[Claims, AsyncConnection]]:
        """A transaction for auto-reply claims; the caller commits it (after the broker has
        confirmed the batch's publishes) or it is rolled back."""
        async with self._turns, self.engine.connect() as connection:
            await connection.begin()
            try:
                yield Claims(connection), connection
            finally:
                if connection.in_transaction():
                    await connection.rollback()
