"""Standard answers a coordinator adds, edits and removes in the console, for their own
team (the national coordinator: the national answers every team uses).

The configuration directory is read-only in deployment, so these live in the database
(`desk_answers`), one row per team and answer id: a console answer beside the team's
file answers, or in place of a file answer with the same id, or a row that marks a file
answer removed. Every desk process reads the rows at each request, so a change is in
force at once everywhere; the file answers still reload with the configuration. Each
change writes its access-log record (`answers_edit`) in its own transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import UTC, datetime
from typing import Any, Literal

import sqlalchemy as sa
import structlog
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.config.live import LiveConfig
from gateway.config.models import StandardAnswer
from gateway.domain.answers import Edit, TeamAnswer, team_answers
from gateway.domain.identity import Identity
from gateway.domain.messages import Rejected
from gateway.store.database import Store, insert_for
from gateway.store.identity import AuditEvent, AuditLog
from gateway.store.tables import desk_answers

log = structlog.get_logger("gateway.answers")
ACTION = "answers_edit"
Change = Literal["added", "changed"]


def _edit(row: Any) -> Edit | None:
    """A row as the domain reads it; None for a row that no longer passes the answers'
    validation (logged, never shown)."""
    if row.removed:
        return Edit(row.team, row.answer_id, None, row.changed_by, row.changed_at)
    title = {"nl": row.title_nl, **({"en": row.title_en} if row.title_en else {})}
    text = {"nl": row.text_nl, **({"en": row.text_en} if row.text_en else {})}
    try:
        answer = StandardAnswer.model_validate({"id": row.answer_id, "title": title, "text": text})
    except ValidationError:
        log.warning("console_answer_invalid", team=row.team, answer_id=row.answer_id)
        return None
    return Edit(row.team, row.answer_id, answer, row.changed_by, row.changed_at)


class ConsoleAnswers:
    def __init__(
        self, store: Store, audit: AuditLog, live: LiveConfig, clock: Callable[[], datetime] | None = None
    ) -> None:
        self._store = store
        self._audit = audit
        self._live = live
        self._clock = clock or (lambda: datetime.now(UTC))

    async def edits(self, teams: Collection[str]) -> list[Edit]:
        """The console's answers and removals of these teams."""
        table = desk_answers
        async with self._store.reading() as connection:
            rows = (await connection.execute(sa.select(table).where(table.c.team.in_(list(teams))))).all()
        return [edit for edit in map(_edit, rows) if edit is not None]

    async def of_team(self, team: str) -> list[TeamAnswer]:
        """The team's answers as its coordinator manages them, removed ones included."""
        return team_answers(self._live.current.responses.get(team), await self.edits([team]))

    def _in_file(self, team: str, answer_id: str) -> bool:
        file = self._live.current.responses.get(team)
        return file is not None and any(a.id == answer_id for a in file.answers)

    async def _row(self, connection: AsyncConnection, team: str, answer_id: str) -> Any:
        table = desk_answers
        return (
            await connection.execute(
                sa.select(table).where(table.c.team == team, table.c.answer_id == answer_id).with_for_update()
            )
        ).first()

    async def _upsert(self, connection: AsyncConnection, team: str, answer_id: str, **values: Any) -> None:
        insert = insert_for(self._store.dialect)
        statement = insert(desk_answers).values(team=team, answer_id=answer_id, **values)
        statement = statement.on_conflict_do_update(
            index_elements=[desk_answers.c.team, desk_answers.c.answer_id], set_=values
        )
        await connection.execute(statement)

    def _record(self, actor: Identity, change: str, answer_id: str) -> AuditEvent:
        # The reason names what changed and which answer (cut at 40 characters); never its text.
        return AuditEvent.by(actor, ACTION, reason=f"{change}:{answer_id}")

    async def save(self, actor: Identity, answer: StandardAnswer) -> Change:
        """Add the answer to the actor's team, or put it in place of the one with its id."""
        team = actor.team
        values = {
            "removed": False,
            "title_nl": answer.title["nl"],
            "title_en": answer.title.get("en"),
            "text_nl": answer.text["nl"],
            "text_en": answer.text.get("en"),
            "changed_by": actor.account,
            "changed_at": self._clock(),
        }
        async with self._store.transaction() as connection:
            row = await self._row(connection, team, answer.id)
            existed = self._in_file(team, answer.id) or (row is not None and not row.removed)
            change: Change = "changed" if existed else "added"
            await self._upsert(connection, team, answer.id, **values)
            await self._audit.append(connection, self._record(actor, "edit" if existed else "add", answer.id))
        log.info("console_answer_saved", team=team, answer_id=answer.id, change=change)
        return change

    async def remove(self, actor: Identity, answer_id: str) -> None:
        """Remove one of the team's answers: a console answer goes; a file answer (edited or
        not) is hidden by a row that says so, until it is restored."""
        team = actor.team
        in_file = self._in_file(team, answer_id)
        async with self._store.transaction() as connection:
            row = await self._row(connection, team, answer_id)
            if (row is not None and row.removed) or (row is None and not in_file):
                raise Rejected(404, "unknown_answer", "the team has no answer with this id")
            if in_file:
                await self._upsert(
                    connection, team, answer_id, removed=True, title_nl=None, title_en=None, text_nl=None,
                    text_en=None, changed_by=actor.account, changed_at=self._clock(),
                )  # fmt: skip
            else:
                table = desk_answers
                await connection.execute(
                    sa.delete(table).where(table.c.team == team, table.c.answer_id == answer_id)
                )
            await self._audit.append(connection, self._record(actor, "remove", answer_id))
        log.info("console_answer_removed", team=team, answer_id=answer_id)

    async def restore(self, actor: Identity, answer_id: str) -> None:
        """Back to the file's version of an answer edited or removed in the console."""
        team = actor.team
        if not self._in_file(team, answer_id):
            raise Rejected(404, "unknown_answer", "the team's file has no answer with this id")
        table = desk_answers
        async with self._store.transaction() as connection:
            deleted = await connection.execute(
                sa.delete(table).where(table.c.team == team, table.c.answer_id == answer_id)
            )
            if deleted.rowcount == 0:
                raise Rejected(409, "not_changed", "the file's version is in force already")
            await self._audit.append(connection, self._record(actor, "restore", answer_id))
        log.info("console_answer_restored", team=team, answer_id=answer_id)
