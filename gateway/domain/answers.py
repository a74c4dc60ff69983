"""Standard answers a counsellor picks in the reply box: the team's own and the national
ones, in the counsellor's language (Dutch when there is no English), with
{next_open}, {phone} and {team} filled in. Pure: the caller gives the time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from gateway.config.models import NATIONAL, Config
from gateway.domain.schedules import AMSTERDAM
from gateway.domain.texts import format_local


@dataclass(frozen=True)
class Answer:
    id: str
    team: str
    title: str
    text: str


def team_name(config: Config, team: str) -> str:
    if team == NATIONAL:
        return config.national.name
    region = config.regions.get(team)
    return region.name if region is not None else team


def answers_for(config: Config, team: str, language: str, next_open: datetime | None) -> list[Answer]:
    """The team's answers first, then the national ones."""
    national = config.responses.get(NATIONAL)
    own = config.responses.get(team) if team != NATIONAL else None
    values = {**(national.values if national else {}), **(own.values if own else {})}
    when = format_local(next_open.astimezone(AMSTERDAM), language) if next_open is not None else "—"
    filled = {"next_open": when, "team": team_name(config, team), "phone": values.get("phone", "0800-2000")}
    found = []
    for source in (own, national):
        if source is None:
            continue
        for answer in source.answers:
            title = answer.title.get(language) or answer.title["nl"]
            text = answer.text.get(language) or answer.text["nl"]
            found.append(Answer(answer.id, source.team, title, text.format(**filled)))
    return found
