"""The figures' record (`report_contacts`), written by the desk as a contact goes, and
counted for a report.

A contact is a conversation from its first message (or its reopening after a close) to
its close. Its row holds the conversation's id only while it is open: the close, and the
retention that deletes a conversation never closed, empty it. Nothing in it identifies a
person, and it outlives the transcripts.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.config.models import NATIONAL
from gateway.domain.reports import MASKER19, Counts, percentile
from gateway.domain.schedules import AMSTERDAM
from gateway.domain.wrapup import Registration
from gateway.store.database import insert_for
from gateway.store.tables import report_contacts

table = report_contacts
_open = table.c.conversation_id


def _is(conversation_id: str) -> sa.ColumnElement[bool]:
    return _open == conversation_id


async def opened(
    connection: AsyncConnection,
    conversation_id: str,
    *,
    team: str,
    channel_kind: str,
    at: datetime,
    urgent: bool,
    acute: bool,
    after_hours: bool,
) -> None:
    """A message came: a new contact unless one is open for the conversation (then only
    its urgency can rise)."""
    insert = insert_for(connection.dialect.name)(table)
    statement = insert.values(
        contact_id=str(uuid.uuid4()),
        conversation_id=conversation_id,
        team=team,
        final_team=team,
        channel_kind=channel_kind,
        opened_at=at,
        opened_on=at.astimezone(AMSTERDAM).date(),
        urgent=urgent,
        acute=acute,
        after_hours=after_hours,
    )
    await connection.execute(
        statement.on_conflict_do_update(
            index_elements=[_open],
            index_where=_open.is_not(None),
            set_={
                "urgent": table.c.urgent | statement.excluded.urgent,
                "acute": table.c.acute | statement.excluded.acute,
            },
        )
    )


async def claimed(connection: AsyncConnection, conversation_id: str) -> None:
    await connection.execute(sa.update(table).where(_is(conversation_id)).values(claimed=True))


async def replied(connection: AsyncConnection, conversation_id: str, at: datetime) -> None:
    """A counsellor's reply: the first one gives the contact its waiting time."""
    row = (
        await connection.execute(
            sa.select(table.c.contact_id, table.c.opened_at).where(
                _is(conversation_id), table.c.first_reply_at.is_(None)
            )
        )
    ).first()
    if row is None:
        return
    opened_at = row.opened_at if row.opened_at.tzinfo else row.opened_at.replace(tzinfo=at.tzinfo)
    wait = max(0, round((at - opened_at).total_seconds()))
    await connection.execute(
        sa.update(table)
        .where(table.c.contact_id == row.contact_id)
        .values(first_reply_at=at, wait_seconds=wait, claimed=True)
    )


async def transferred(connection: AsyncConnection, conversation_id: str, to_team: str) -> None:
    await connection.execute(
        sa.update(table).where(_is(conversation_id)).values(transferred=True, final_team=to_team)
    )


async def closed(
    connection: AsyncConnection,
    conversation_id: str,
    at: datetime,
    registration: Registration,
    person_left: bool,
) -> None:
    """Closed with its registration: the codes go in, the link to the conversation goes."""
    await connection.execute(
        sa.update(table)
        .where(_is(conversation_id))
        .values(
            conversation_id=None,
            closed_at=at,
            registered=True,
            contact_role=registration.contact_role,
            age_group=registration.age_group,
            topics=orjson.dumps(list(registration.topics)).decode(),
            outcome=registration.outcome,
            serious=registration.serious,
            left_before_reply=sa.and_(table.c.first_reply_at.is_(None), sa.literal(person_left)),
        )
    )


async def forgotten(connection: AsyncConnection, conversation_ids: Collection[str]) -> None:
    """Retention deleted these conversations: their open contacts keep what they were, with
    no link to anything."""
    if conversation_ids:
        await connection.execute(
            sa.update(table).where(_open.in_(list(conversation_ids))).values(conversation_id=None)
        )


# counting


@dataclass(frozen=True)
class Scope:
    """A team's figures (the contacts that came to it) or the whole country's (None)."""

    team: str | None

    @property
    def label(self) -> str:
        return self.team or "all"


async def count(connection: AsyncConnection, scope: Scope, start: date, end: date) -> Counts:
    where = [table.c.opened_on >= start, table.c.opened_on <= end]
    if scope.team is not None:
        where.append(table.c.team == scope.team)
    dialect = connection.dialect.name

    async def grouped(*columns: Any) -> list[Any]:
        statement = sa.select(*columns, sa.func.count()).where(*where).group_by(*columns)
        return list((await connection.execute(statement)).all())

    def flag(condition: Any) -> Any:
        return sa.func.coalesce(sa.func.sum(sa.case((condition, 1), else_=0)), 0)

    c = table.c
    after = c.after_hours.is_(True)
    totals = (
        await connection.execute(
            sa.select(
                sa.func.count(),
                flag(c.registered.is_(True)),
                flag(c.serious.is_(True)),
                flag(c.channel_kind == MASKER19),
                flag(c.urgent.is_(True)),
                flag(c.acute.is_(True)),
                flag(c.transferred.is_(True)),
                flag(after),
                flag(sa.and_(after, c.team != NATIONAL)),
                flag(sa.and_(after, c.team == NATIONAL)),
                flag(sa.and_(after, c.first_reply_at.is_not(None))),
                flag(sa.and_(after, c.left_before_reply.is_(True))),
                flag(c.first_reply_at.is_not(None)),
                flag(c.left_before_reply.is_(True)),
            ).where(*where)
        )
    ).one()
    (contacts, registered, serious, masker19, urgent, acute, moved, after_hours, held, national,
     after_answered, after_left, answered, left) = (int(v) for v in totals)  # fmt: skip
    by_channel = {kind: n for kind, n in await grouped(c.channel_kind)}
    by_day = await grouped(c.opened_on)
    by_week: dict[str, int] = {}
    for day, n in by_day:
        iso = (day if isinstance(day, date) else date.fromisoformat(str(day))).isocalendar()
        label = f"{iso.year}-W{iso.week:02d}"
        by_week[label] = by_week.get(label, 0) + n
    registered_only = [*where, c.registered.is_(True)]

    async def codes(column: Any) -> dict[str, int]:
        statement = sa.select(column, sa.func.count()).where(*registered_only).group_by(column)
        return {str(code): n for code, n in (await connection.execute(statement)).all() if code is not None}

    topics: dict[str, int] = {}
    for listed, n in (
        await connection.execute(
            sa.select(c.topics, sa.func.count()).where(*registered_only).group_by(c.topics)
        )
    ).all():
        for code in orjson.loads(listed or "[]"):
            topics[code] = topics.get(code, 0) + n
    median, p90 = await _waits(connection, dialect, where)
    by_team = {team: n for team, n in await grouped(c.team)} if scope.team is None else {}
    return Counts(
        contacts=contacts,
        by_channel=by_channel,
        by_week=by_week,
        by_team=by_team,
        registered=registered,
        serious=serious,
        contact_role=await codes(c.contact_role),
        age_group=await codes(c.age_group),
        outcome=await codes(c.outcome),
        topics=topics,
        masker19=masker19,
        urgent=urgent,
        acute=acute,
        transferred=moved,
        after_hours=after_hours,
        after_hours_held=held,
        after_hours_national=national,
        after_hours_answered=after_answered,
        after_hours_left=after_left,
        answered=answered,
        left_before_reply=left,
        wait_median_seconds=median,
        wait_p90_seconds=p90,
    )


async def _waits(
    connection: AsyncConnection, dialect: str, where: list[Any]
) -> tuple[float | None, float | None]:
    """The median and 90th percentile of the waits for a first reply (interpolated)."""
    waits = table.c.wait_seconds
    answered = [*where, waits.is_not(None)]
    if dialect == "postgresql":
        median = sa.func.percentile_cont(0.5).within_group(waits)
        p90 = sa.func.percentile_cont(0.9).within_group(waits)
        row = (await connection.execute(sa.select(median, p90).where(*answered))).one()
        return (None if row[0] is None else float(row[0]), None if row[1] is None else float(row[1]))
    values = sorted(int(v) for v in (await connection.execute(sa.select(waits).where(*answered))).scalars())
    return (percentile(values, 0.5), percentile(values, 0.9))
