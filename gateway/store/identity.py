"""What the store keeps about people who sign in: sessions (only the hash of each
secret token), credentials an account changed itself, and the access log.

A session lives in the database, so ending it (sign-out, a password change, a
disabled account) ends it on every process at once: each request looks it up.
The access log is appended inside the transaction of the action it records; its
head row is locked for the append, so records get consecutive numbers and each
links to the one before, across processes.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.domain.identity import GENESIS, ChainBreak, Identity, Method, Session, first_break, record_digest
from gateway.store.database import Store, insert_for
from gateway.store.tables import account_credentials, audit_head, audit_log, sessions
from gateway.support.clock import as_utc

# Writing last_seen_at on every request would make every read a write; a minute's
# precision is plenty for an idle timeout counted in minutes.
TOUCH_AFTER = timedelta(seconds=30)
Clock = Callable[[], datetime]


async def _execute(store: Store, statement: sa.Executable, connection: AsyncConnection | None) -> int:
    """In the caller's transaction when it passes one, else in one of its own; the row count."""
    if connection is not None:
        return int((await connection.execute(statement)).rowcount)
    async with store.transaction() as own:
        return int((await own.execute(statement)).rowcount)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _session(row: sa.Row[Any]) -> Session:
    identity = Identity(row.realm, row.account, row.name, row.team, row.role, cast(Method, row.method))
    return Session(
        public_id=row.public_id,
        identity=identity,
        stage=row.stage,
        created_at=as_utc(row.created_at),
        last_seen_at=as_utc(row.last_seen_at),
        expires_at=as_utc(row.expires_at),
    )


class Sessions:
    def __init__(self, store: Store, clock: Clock = lambda: datetime.now(UTC)) -> None:
        self._store = store
        self._clock = clock

    async def start(
        self,
        identity: Identity,
        *,
        lifetime: timedelta,
        stamp: str,
        stage: str = "full",
        connection: AsyncConnection | None = None,
    ) -> tuple[str, Session]:
        """A new session: its secret token (256 random bits, shown once) and what is kept."""
        token = secrets.token_urlsafe(32)
        now = self._clock()
        row = {
            "token_hash": _token_hash(token),
            "public_id": secrets.token_hex(12),
            "realm": identity.realm,
            "account": identity.account,
            "name": identity.name,
            "team": identity.team,
            "role": identity.role,
            "method": identity.method,
            "stage": stage,
            "credential_stamp": stamp,
            "created_at": now,
            "last_seen_at": now,
            "expires_at": now + lifetime,
        }
        await _execute(self._store, sa.insert(sessions).values(**row), connection)
        session = Session(row["public_id"], identity, stage, now, now, now + lifetime)  # type: ignore[arg-type]
        return token, session

    async def find(
        self, token: str, realm: str, idle: timedelta, *, touch: bool = True
    ) -> tuple[Session, str] | None:
        """The live session of this token in this realm and its credential stamp; None when
        there is none, or it has passed its idle or absolute end (and is then deleted)."""
        if not token or len(token) > 200:
            return None
        key = _token_hash(token)
        async with self._store.reading() as connection:
            row = (
                await connection.execute(
                    sa.select(sessions).where(sessions.c.token_hash == key, sessions.c.realm == realm)
                )
            ).first()
        if row is None:
            return None
        now = self._clock()
        if now >= as_utc(row.expires_at) or now >= as_utc(row.last_seen_at) + idle:
            await self._delete(sessions.c.token_hash == key)
            return None
        if touch and now - as_utc(row.last_seen_at) >= TOUCH_AFTER:
            async with self._store.transaction() as connection:
                await connection.execute(
                    sa.update(sessions).where(sessions.c.token_hash == key).values(last_seen_at=now)
                )
        return _session(row), row.credential_stamp

    async def end(self, token: str, connection: AsyncConnection | None = None) -> None:
        statement = sa.delete(sessions).where(sessions.c.token_hash == _token_hash(token))
        await _execute(self._store, statement, connection)

    async def end_one(self, realm: str, account: str, public_id: str) -> bool:
        """End one of an account's own sessions, named by its public id."""
        return (
            await self._delete(
                sessions.c.realm == realm, sessions.c.account == account, sessions.c.public_id == public_id
            )
            > 0
        )

    async def end_all(self, realm: str, account: str, connection: AsyncConnection | None = None) -> int:
        condition = sa.and_(sessions.c.realm == realm, sessions.c.account == account)
        return await _execute(self._store, sa.delete(sessions).where(condition), connection)

    async def of(self, realm: str, account: str, idle: timedelta) -> list[Session]:
        now = self._clock()
        async with self._store.reading() as connection:
            rows = (
                await connection.execute(
                    sa.select(sessions)
                    .where(
                        sessions.c.realm == realm,
                        sessions.c.account == account,
                        sessions.c.expires_at > now,
                        sessions.c.last_seen_at > now - idle,
                    )
                    .order_by(sessions.c.created_at)
                )
            ).all()
        return [_session(row) for row in rows]

    async def forget_ended(self, idle: timedelta) -> int:
        """Delete sessions past their end (those never used again would otherwise stay);
        returns how many live ones remain."""
        now = self._clock()
        await self._delete(sa.or_(sessions.c.expires_at <= now, sessions.c.last_seen_at <= now - idle))
        async with self._store.reading() as connection:
            return int(
                (await connection.execute(sa.select(sa.func.count()).select_from(sessions))).scalar_one()
            )

    async def _delete(self, *conditions: sa.ColumnElement[bool]) -> int:
        return await _execute(self._store, sa.delete(sessions).where(*conditions), None)


@dataclass(frozen=True)
class StoredCredentials:
    password_hash: str | None
    replaces_hash: str | None
    totp_sealed: str | None
    totp_pending_sealed: str | None
    totp_last_step: int | None
    recovery_hashes: tuple[str, ...]


NO_CREDENTIALS = StoredCredentials(None, None, None, None, None, ())


class Credentials:
    """What an account changed itself, keyed by realm and account."""

    def __init__(self, store: Store, clock: Clock = lambda: datetime.now(UTC)) -> None:
        self._store = store
        self._clock = clock

    async def of(self, realm: str, account: str) -> StoredCredentials:
        table = account_credentials
        async with self._store.reading() as connection:
            row = (
                await connection.execute(
                    sa.select(table).where(table.c.realm == realm, table.c.account == account)
                )
            ).first()
        if row is None:
            return NO_CREDENTIALS
        return StoredCredentials(
            row.password_hash,
            row.replaces_hash,
            row.totp_sealed,
            row.totp_pending_sealed,
            row.totp_last_step,
            tuple(orjson.loads(row.recovery_hashes)),
        )

    async def update(
        self, realm: str, account: str, connection: AsyncConnection | None = None, **values: Any
    ) -> None:
        if "recovery_hashes" in values:
            values["recovery_hashes"] = orjson.dumps(list(values["recovery_hashes"])).decode()
        values["updated_at"] = self._clock()
        insert = insert_for(self._store.dialect)
        statement = insert(account_credentials).values(realm=realm, account=account, **values)
        statement = statement.on_conflict_do_update(
            index_elements=[account_credentials.c.realm, account_credentials.c.account], set_=values
        )
        await _execute(self._store, statement, connection)

    async def use_step(self, realm: str, account: str, step: int, connection: AsyncConnection) -> bool:
        """Mark a TOTP time step used; False when it (or a later one) already was: a code
        works once."""
        table = account_credentials
        result = await connection.execute(
            sa.update(table)
            .where(
                table.c.realm == realm,
                table.c.account == account,
                sa.or_(table.c.totp_last_step.is_(None), table.c.totp_last_step < step),
            )
            .values(totp_last_step=step, updated_at=self._clock())
        )
        return result.rowcount == 1

    async def use_recovery(
        self, realm: str, account: str, code_hash: str, connection: AsyncConnection
    ) -> bool:
        """Strike one recovery code; False when it is unknown or already used."""
        table = account_credentials
        row = (
            await connection.execute(
                sa.select(table.c.recovery_hashes)
                .where(table.c.realm == realm, table.c.account == account)
                .with_for_update()
            )
        ).first()
        left = list(orjson.loads(row.recovery_hashes)) if row is not None else []
        if code_hash not in left:
            return False
        left.remove(code_hash)
        await connection.execute(
            sa.update(table)
            .where(table.c.realm == realm, table.c.account == account)
            .values(recovery_hashes=orjson.dumps(left).decode(), updated_at=self._clock())
        )
        return True


@dataclass(frozen=True)
class AuditEvent:
    """One access-log record, before it has a number and a hash. Never message text."""

    account: str
    method: str
    action: str
    result: str
    team: str | None = None
    conversation_id: str | None = None
    on_behalf_of: str | None = None
    reason: str | None = None

    @classmethod
    def by(
        cls,
        identity: Identity,
        action: str,
        result: str = "ok",
        conversation_id: str | None = None,
        reason: str | None = None,
    ) -> AuditEvent:
        """What `identity` did (or tried)."""
        return cls(
            identity.account,
            identity.method,
            action,
            result,
            team=identity.team or None,
            conversation_id=conversation_id,
            reason=reason,
        )


@dataclass(frozen=True)
class AuditQuery:
    account: str | None = None
    conversation_id: str | None = None
    action: str | None = None
    team: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 500


class AuditLog:
    def __init__(
        self,
        store: Store,
        clock: Clock = lambda: datetime.now(UTC),
        on_written: Callable[[AuditEvent], None] = lambda _: None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._on_written = on_written

    async def append(self, connection: AsyncConnection, event: AuditEvent) -> None:
        """Append inside the caller's transaction, as its last statement (the head row stays
        locked until that transaction ends): if the action rolls back, so does its record,
        and if the record cannot be written the action fails with it."""
        head = (
            await connection.execute(sa.select(audit_head).where(audit_head.c.id == 1).with_for_update())
        ).one()
        record = {
            "seq": head.seq + 1,
            "at": self._clock(),
            "account": event.account[:200],
            "method": event.method,
            "on_behalf_of": event.on_behalf_of,
            "team": event.team,
            "action": event.action,
            "conversation_id": event.conversation_id,
            "result": event.result,
            "reason": event.reason[:40] if event.reason else None,
            "prev_hash": head.hash,
        }
        # Digest over the time as the database will give it back (microseconds, UTC).
        record["at"] = as_utc(record["at"]).astimezone(UTC)
        record["hash"] = record_digest(head.hash, record)
        await connection.execute(sa.insert(audit_log).values(**record))
        await connection.execute(
            sa.update(audit_head).where(audit_head.c.id == 1).values(seq=record["seq"], hash=record["hash"])
        )
        self._on_written(event)

    async def record(self, event: AuditEvent) -> None:
        """A record of its own (a refusal, a sign-in): one transaction."""
        async with self._store.transaction() as connection:
            await self.append(connection, event)

    async def records(self, query: AuditQuery) -> list[dict[str, Any]]:
        table = audit_log
        statement = sa.select(table).order_by(table.c.seq.desc()).limit(query.limit)
        for column, value in (
            (table.c.account, query.account),
            (table.c.conversation_id, query.conversation_id),
            (table.c.action, query.action),
            (table.c.team, query.team),
        ):
            if value is not None:
                statement = statement.where(column == value)
        if query.since is not None:
            statement = statement.where(table.c.at >= query.since)
        if query.until is not None:
            statement = statement.where(table.c.at < query.until)
        async with self._store.reading() as connection:
            rows = (await connection.execute(statement)).all()
        return [_record(row) for row in rows]

    async def verify(self, batch: int = 5000) -> tuple[int, ChainBreak | None]:
        """How many records there are, and the first broken one (None: the chain holds).
        Reads in batches by number, so a long log is not loaded at once."""
        count, after, carry = 0, -1, None
        async with self._store.reading() as connection:
            head_row = (await connection.execute(sa.select(audit_head).where(audit_head.c.id == 1))).one()
            while True:
                rows = (
                    await connection.execute(
                        sa.select(audit_log)
                        .where(audit_log.c.seq > after)
                        .order_by(audit_log.c.seq)
                        .limit(batch)
                    )
                ).all()
                if not rows:
                    break
                chunk = [_record(row) for row in rows]
                broken = first_break([carry, *chunk] if carry else chunk, None)
                if broken is not None:
                    return count, broken
                count += len(chunk)
                carry, after = chunk[-1], int(chunk[-1]["seq"])
        tail = first_break([carry] if carry else [], (head_row.seq, head_row.hash))
        return count, tail

    async def forget_before(self, cutoff: datetime) -> int:
        """The log's own retention: records older than `cutoff` go, from the oldest on,
        so what is left is still one unbroken chain."""
        async with self._store.transaction() as connection:
            return (await connection.execute(sa.delete(audit_log).where(audit_log.c.at < cutoff))).rowcount


def _record(row: sa.Row[Any]) -> dict[str, Any]:
    data = {str(key): value for key, value in row._mapping.items()}  # plain str keys, for orjson
    data["at"] = as_utc(data["at"]).astimezone(UTC)
    return data


__all__ = ["GENESIS", "AuditEvent", "AuditLog", "AuditQuery", "Credentials", "Sessions", "StoredCredentials"]
