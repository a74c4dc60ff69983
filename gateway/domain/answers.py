"""Standard answers a counsellor picks in the reply box: the team's own and the national
ones, in the counsellor's language (Dutch when there is no English), with
{next_open}, {phone} and {team} filled in. Pure: the caller gives the time and the
answers changed in the console.

A team's answers are its file's (config/responses/<team>.yaml) and those its
coordinator made or changed in the console (`Edit`, kept in the database): a console
answer with a file answer's id takes its place, a removal hides it, and any other
console answer comes after the file's, by title."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from gateway.config.models import NATIONAL, Config, ResponsesFile, StandardAnswer
from gateway.domain.schedules import AMSTERDAM
from gateway.domain.texts import format_local

Source = Literal["file", "console"]


@dataclass(frozen=True)
class Answer:
    id: str
    team: str
    title: str
    text: str


@dataclass(frozen=True)
class Edit:
    """A team's answer as its coordinator left it in the console; `answer` None: the file
    answer with this id is removed (hidden from the reply box)."""

    team: str
    id: str
    answer: StandardAnswer | None
    changed_by: str
    changed_at: datetime


@dataclass(frozen=True)
class TeamAnswer:
    """One of a team's answers as its coordinator manages it. `answer` is the version in
    force (for a removed one: the file's, hidden); `source` where it comes from; `in_file`:
    the team's file has an answer with this id (the console can go back to it)."""

    answer: StandardAnswer
    source: Source
    in_file: bool
    removed: bool = False
    changed_by: str | None = None
    changed_at: datetime | None = None


def team_name(config: Config, team: str) -> str:
    if team == NATIONAL:
        return config.national.name
    region = config.regions.get(team)
    return region.name if region is not None else team


def teams(config: Config) -> list[tuple[str, str]]:
    """Every team a conversation can go to, (code, name): the national team first, then the
    regions by name."""
    regions = sorted(config.regions.items(), key=lambda item: item[1].name.casefold())
    return [(NATIONAL, config.national.name), *((code, region.name) for code, region in regions)]


def team_answers(file: ResponsesFile | None, edits: Iterable[Edit]) -> list[TeamAnswer]:
    """A team's answers, its file's merged with its console edits: the file's in the file's
    order (edited or removed ones in their place), then those added in the console, by title.
    A removal of an id the file no longer has hides nothing and is left out."""
    pending = {edit.id: edit for edit in edits}
    merged: list[TeamAnswer] = []
    for answer in file.answers if file is not None else ():
        edit = pending.pop(answer.id, None)
        if edit is None:
            merged.append(TeamAnswer(answer, "file", in_file=True))
        elif edit.answer is None:
            merged.append(TeamAnswer(answer, "file", True, True, edit.changed_by, edit.changed_at))
        else:
            merged.append(TeamAnswer(edit.answer, "console", True, False, edit.changed_by, edit.changed_at))
    added = [
        TeamAnswer(edit.answer, "console", False, False, edit.changed_by, edit.changed_at)
        for edit in pending.values()
        if edit.answer is not None
    ]
    added.sort(key=lambda entry: (entry.answer.title["nl"].casefold(), entry.answer.id))
    return merged + added


def placeholder_values(
    config: Config, team: str, language: str, next_open: datetime | None
) -> dict[str, str]:
    """What {next_open}, {phone} and {team} say for this team now (a team's file's `values`
    before the national file's)."""
    national = config.responses.get(NATIONAL)
    own = config.responses.get(team) if team != NATIONAL else None
    values = {**(national.values if national else {}), **(own.values if own else {})}
    when = format_local(next_open.astimezone(AMSTERDAM), language) if next_open is not None else "—"
    return {"next_open": when, "phone": values.get("phone", "0800-2000"), "team": team_name(config, team)}


def answers_for(
    config: Config, team: str, language: str, next_open: datetime | None, edits: Iterable[Edit] = ()
) -> list[Answer]:
    """The team's answers first, then the national ones; `edits`: the console's, of this
    team and of national."""
    national = config.responses.get(NATIONAL)
    own = config.responses.get(team) if team != NATIONAL else None
    filled = placeholder_values(config, team, language, next_open)
    changed = list(edits)
    sources = [(NATIONAL, national)] if team == NATIONAL else [(team, own), (NATIONAL, national)]
    found = []
    for source_team, source in sources:
        for entry in team_answers(source, (e for e in changed if e.team == source_team)):
            if entry.removed:
                continue
            answer = entry.answer
            title = answer.title.get(language) or answer.title["nl"]
            text = answer.text.get(language) or answer.text["nl"]
            found.append(Answer(answer.id, source_team, title.format(**filled), text.format(**filled)))
    return found
