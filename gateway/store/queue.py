"""A waiting person's place in their team's queue, in the order the desk's "volgende"
(`Desk.claim_next`) takes conversations: urgent first, then the longest waiting.

The place of a waiting conversation is 1 + the number of waiting conversations of the
same team that "volgende" takes before it. `claim_next` orders by `urgent` and
`waiting_since` only; two conversations that started waiting at the very same
microsecond are told apart here by their id, so two people never read the same place.
Keep this order the same as `claim_next`'s.
"""

from __future__ import annotations

from collections.abc import Collection

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.store.tables import desk_conversations

WAITING = "waiting"  # the desk's status of a conversation no counsellor has
CHUNK = 1000  # conversations per query: well inside a driver's limit of bound parameters


async def queue_places(connection: AsyncConnection, conversation_ids: Collection[str]) -> dict[str, int]:
    """The place (1 = next) of each of `conversation_ids` that is waiting, one query per
    thousand ids; a conversation that is claimed, closed or not (yet) stored is absent."""
    wanted = list(conversation_ids)
    places: dict[str, int] = {}
    for start in range(0, len(wanted), CHUNK):
        places |= await _places(connection, wanted[start : start + CHUNK])
    return places


async def _places(connection: AsyncConnection, conversation_ids: list[str]) -> dict[str, int]:
    me = desk_conversations.alias("me")
    ahead = desk_conversations.alias("ahead")
    taken_first = sa.or_(
        sa.and_(ahead.c.urgent, sa.not_(me.c.urgent)),
        sa.and_(
            ahead.c.urgent == me.c.urgent,
            sa.or_(
                ahead.c.waiting_since < me.c.waiting_since,
                sa.and_(
                    ahead.c.waiting_since == me.c.waiting_since,
                    ahead.c.conversation_id < me.c.conversation_id,
                ),
            ),
        ),
    )
    query = (
        sa.select(me.c.conversation_id, sa.func.count(ahead.c.conversation_id))
        .select_from(
            me.outerjoin(ahead, sa.and_(ahead.c.team == me.c.team, ahead.c.status == WAITING, taken_first))
        )
        .where(me.c.conversation_id.in_(conversation_ids), me.c.status == WAITING)
        .group_by(me.c.conversation_id)
    )
    rows = (await connection.execute(query)).all()
    return {conversation_id: int(before) + 1 for conversation_id, before in rows}
