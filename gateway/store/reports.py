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
from gateway.domain.reports import MASKER19, Counts
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
    """The figures of `scope` for the days `start` to `end`, in four statements, each one
    pass over the period's rows (docs/benchmarks.md: a year of the country's is a few
    hundred thousand rows): the mix of channel kinds and registration codes with every
    flag counted in it, the days and teams, the topics, and the waits."""
    if connection.dialect.name == "postgresql":
        # Each statement planned for its period: a prepared statement's generic plan (chosen
        # after five runs, not knowing how many days the period holds) reads a year's rows
        # through the index one by one, three times slower than the scan.
        await connection.execute(sa.text("SET LOCAL plan_cache_mode = force_custom_plan"))
    where = [table.c.opened_on >= start, table.c.opened_on <= end]
    if scope.team is not None:
        where.append(table.c.team == scope.team)
    c = table.c
    after = c.after_hours.is_(True)
    answered_ = c.first_reply_at.is_not(None)
    left_ = c.left_before_reply.is_(True)
    flags = {
        "serious": c.serious.is_(True),
        "urgent": c.urgent.is_(True),
        "acute": c.acute.is_(True),
        "transferred": c.transferred.is_(True),
        "after_hours": after,
        "after_hours_held": sa.and_(after, c.team != NATIONAL),
        "after_hours_national": sa.and_(after, c.team == NATIONAL),
        "after_hours_answered": sa.and_(after, answered_),
        "after_hours_left": sa.and_(after, left_),
        "answered": answered_,
        "left_before_reply": left_,
    }
    # 1. Per channel kind and registration's codes (a few hundred groups), each flag's count.
    keys = (c.channel_kind, c.registered, c.contact_role, c.age_group, c.outcome)
    mix = (
        sa.select(
            *keys,
            sa.func.count().label("n"),
            *(sa.func.count().filter(condition).label(name) for name, condition in flags.items()),
        )
        .where(*where)
        .group_by(*keys)
    )
    totals = dict.fromkeys(flags, 0)
    contacts = registered = 0
    by_channel: dict[str, int] = {}
    codes: dict[str, dict[str, int]] = {"contact_role": {}, "age_group": {}, "outcome": {}}
    for row in (await connection.execute(mix)).mappings():
        n = int(row["n"])
        contacts += n
        by_channel[row["channel_kind"]] = by_channel.get(row["channel_kind"], 0) + n
        for name in flags:
            totals[name] += int(row[name])
        if row["registered"]:
            registered += n
            for name, counted in codes.items():
                if row[name] is not None:
                    counted[str(row[name])] = counted.get(str(row[name]), 0) + n
    # 2. Per day and team: the weeks and the teams.
    by_week: dict[str, int] = {}
    by_team: dict[str, int] = {}
    days = sa.select(c.opened_on, c.team, sa.func.count()).where(*where).group_by(c.opened_on, c.team)
    for day, team, n in (await connection.execute(days)).all():
        iso = (day if isinstance(day, date) else date.fromisoformat(str(day))).isocalendar()
        label = f"{iso.year}-W{iso.week:02d}"
        by_week[label] = by_week.get(label, 0) + n
        by_team[team] = by_team.get(team, 0) + n
    # 3. The topics of the registered: a contact may have several.
    topics: dict[str, int] = {}
    listed_topics = (
        sa.select(c.topics, sa.func.count()).where(*where, c.registered.is_(True)).group_by(c.topics)
    )
    for listed, n in (await connection.execute(listed_topics)).all():
        for code in orjson.loads(listed or "[]"):
            topics[code] = topics.get(code, 0) + n
    median, p90 = await _waits(connection, where)
    return Counts(
        contacts=contacts,
        by_channel=by_channel,
        by_week=by_week,
        by_team=by_team if scope.team is None else {},
        registered=registered,
        serious=totals["serious"],
        contact_role=codes["contact_role"],
        age_group=codes["age_group"],
        outcome=codes["outcome"],
        topics=topics,
        masker19=by_channel.get(MASKER19, 0),
        urgent=totals["urgent"],
        acute=totals["acute"],
        transferred=totals["transferred"],
        after_hours=totals["after_hours"],
        after_hours_held=totals["after_hours_held"],
        after_hours_national=totals["after_hours_national"],
        after_hours_answered=totals["after_hours_answered"],
        after_hours_left=totals["after_hours_left"],
        answered=totals["answered"],
        left_before_reply=totals["left_before_reply"],
        wait_median_seconds=median,
        wait_p90_seconds=p90,
    )


async def _waits(connection: AsyncConnection, where: list[Any]) -> tuple[float | None, float | None]:
    """The median and 90th percentile of the waits for a first reply, interpolated as
    PostgreSQL's percentile_cont does, from how many waited each whole second (a few
    thousand groups: cheaper than sorting every wait, and the same on the embedded store)."""
    waits = table.c.wait_seconds
    statement = sa.select(waits, sa.func.count()).where(*where, waits.is_not(None)).group_by(waits)
    counted = sorted((int(wait), int(n)) for wait, n in (await connection.execute(statement)).all())
    return (_percentile(counted, 0.5), _percentile(counted, 0.9))


def _percentile(counted: list[tuple[int, int]], fraction: float) -> float | None:
    """`percentile` of the sorted values that `counted` (value, how many, by value) holds."""
    total = sum(n for _, n in counted)
    if total == 0:
        return None
    position = fraction * (total - 1)
    below = int(position)
    above = min(below + 1, total - 1)
    low = high = None
    seen = 0
    for value, n in counted:
        seen += n
        if low is None and below < seen:
            low = value
        if above < seen:
            high = value
            break
    assert low is not None and high is not None
    return float(low + (high - low) * (position - below))
