"""`gateway data rotate`: re-encrypt what is stored under older data keys (or, written
before encryption, in clear) under the newest key of GATEWAY_DATA_KEYS, while the
service runs.

Each column is walked in the order of its row ids, one bounded batch per transaction
(rows locked with SKIP LOCKED, so a row a desk is writing right now is left for the
next run rather than waited for), with a pause between batches to leave the database
to the service. A value that does not open with any key is counted and left as it is.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import sqlalchemy as sa
import structlog

from gateway.store.database import Store
from gateway.support.fieldcrypt import EncryptedColumn, FieldCipher, FieldKeyError

log = structlog.get_logger("gateway.rotation")

CORE_COLUMNS = (
    EncryptedColumn("desk_messages", "message_id", "text"),
    EncryptedColumn("desk_handovers", "handover_id", "note"),
    EncryptedColumn("desk_attachments", "attachment_id", "data", binary=True),
)


@dataclass
class Rotated:
    newest: str
    rotated: dict[str, int] = field(default_factory=dict)
    unreadable: dict[str, int] = field(default_factory=dict)
    skipped_locked: dict[str, int] = field(default_factory=dict)


async def rotate(
    store: Store,
    cipher: FieldCipher,
    columns: tuple[EncryptedColumn, ...] = CORE_COLUMNS,
    *,
    batch: int = 500,
    pause: float = 0.05,
) -> Rotated:
    result = Rotated(cipher.newest)
    for column in columns:
        rotated, unreadable, locked = await _rotate_column(store, cipher, column, batch, pause)
        result.rotated[column.table] = rotated
        result.unreadable[column.table] = unreadable
        result.skipped_locked[column.table] = locked
        log.info("data_rotated", table=column.table, rotated=rotated, unreadable=unreadable)
    return result


async def _rotate_column(
    store: Store, cipher: FieldCipher, column: EncryptedColumn, batch: int, pause: float
) -> tuple[int, int, int]:
    names = (column.id_column, column.value_column, column.key_column)
    table = sa.table(column.table, *(sa.column(name) for name in names))
    row_id, value, key = (table.c[name] for name in names)
    stale = sa.and_(sa.or_(key.is_(None), key != cipher.newest), value.is_not(None))
    after = ""
    rotated = unreadable = 0
    while True:
        async with store.transaction() as connection:
            candidates = (
                await connection.execute(
                    sa.select(row_id)
                    .where(row_id > after, stale)
                    .order_by(row_id)
                    .limit(batch)
                )
            ).scalars().all()  # fmt: skip
            if not candidates:
                break
            after = candidates[-1]
            rows = (
                await connection.execute(
                    sa.select(row_id, value, key)
                    .where(row_id.in_(candidates), stale)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            for found_id, stored, key_id in rows:
                context = column.context(found_id)
                try:
                    if column.binary:
                        if key_id is None:
                            continue  # an attachment is never stored without its key
                        plain = cipher.decrypt(key_id, bytes(stored), context)
                        new_key, sealed_bytes = cipher.encrypt(plain, context)
                        new_value: object = sealed_bytes
                    else:
                        text = cipher.decrypt_text(key_id, stored, context)
                        new_key, new_value = cipher.encrypt_text(text, context)
                except FieldKeyError:
                    unreadable += 1
                    continue
                await connection.execute(
                    sa.update(table).where(row_id == found_id).values({column.value_column: new_value,
                                                                        column.key_column: new_key})
                )  # fmt: skip
                rotated += 1
        await asyncio.sleep(pause)
    locked = await _count_stale(store, table, stale) - unreadable
    return rotated, unreadable, max(0, locked)


async def _count_stale(store: Store, table: sa.TableClause, stale: sa.ColumnElement[bool]) -> int:
    async with store.reading() as connection:
        count = sa.select(sa.func.count()).select_from(table).where(stale)
        return int((await connection.execute(count)).scalar() or 0)
