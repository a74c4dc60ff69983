"""Shared state in PostgreSQL (GATEWAY_DATABASE_URL), or an in-memory SQLite
database when no URL is set; one code path through SQLAlchemy's asyncio layer.
The schema is managed by Alembic migrations, applied at start."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from gateway.store.tables import auto_replies, conversation_regions, reply_deliveries, sent_replies

# A reply's delivery only moves forward: a late "sent" after "delivered" changes nothing.
DELIVERY_RANK = {"queued": 0, "sent": 1, "delivered": 2, "read": 3, "failed": 4}

EMBEDDED_URL = "sqlite+aiosqlite:///:memory:"
MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def database_url(url: str | None) -> str:
    """Accept the usual postgres:// spellings and pick the asyncio driver."""
    if url is None:
        return EMBEDDED_URL
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    return url


def insert_for(dialect: str) -> Callable[[sa.Table], Any]:
    """INSERT with ON CONFLICT for the store's dialect."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as postgresql_insert

        return postgresql_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert


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
    """`migrations`: further Alembic version folders (a channel kind's own tables), applied
    beside the core's at start."""

    def __init__(self, url: str | None, migrations: Sequence[Path] = ()) -> None:
        self.url = database_url(url)
        self.embedded = url is None
        self._migrations = tuple(migrations)
        options: dict[str, Any] = {"pool_pre_ping": True}
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

    @property
    def dialect(self) -> str:
        """"postgresql" or "sqlite": for the few statements the two spell differently."""
        return self.engine.dialect.name

    async def start(self) -> None:
        async with self.engine.begin() as connection:
            await connection.run_sync(self._upgrade)
        self.ready = True

    def _upgrade(self, sync_connection: sa.Connection) -> None:
        if sync_connection.dialect.name == "postgresql":
            # Processes starting together take turns: one migrates, the others find it done.
            sync_connection.execute(sa.text("SELECT pg_advisory_xact_lock(7326141902)"))
        config = AlembicConfig()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.set_main_option("path_separator", "os")
        folders = [MIGRATIONS / "versions", *self._migrations]
        config.set_main_option("version_locations", os.pathsep.join(str(f) for f in folders))
        config.attributes["connection"] = sync_connection
        command.upgrade(config, "heads")

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

    async def set_deliveries(
        self,
        message_ids: list[str],
        status: str,
        reason: str | None = None,
        connection: AsyncConnection | None = None,
    ) -> None:
        """Move these replies' delivery forward to `status` (known replies only: an
        auto-reply has no row and gets none)."""
        table = reply_deliveries
        earlier = [s for s, rank in DELIVERY_RANK.items() if rank < DELIVERY_RANK[status]]
        statement = (
            sa.update(table)
            .where(table.c.message_id.in_(message_ids), table.c.status.in_(earlier))
            .values(status=status, reason=reason, updated_at=datetime.now(UTC))
        )
        if connection is not None:
            await connection.execute(statement)
            return
        async with self._turns, self.engine.begin() as own:
            await own.execute(statement)

    async def delivery_reported(self, provider_message_id: str, status: str, reason: str | None) -> None:
        """A provider's status callback, for the reply it sent under that id."""
        async with self._turns, self.engine.connect() as connection:
            found = await connection.execute(
                sa.select(sent_replies.c.message_id).where(
                    sent_replies.c.provider_message_id == provider_message_id[:100]
                )
            )
            message_ids = [row.message_id for row in found]
        if message_ids:
            await self.set_deliveries(message_ids, status, reason)

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
