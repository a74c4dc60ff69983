"""Reports: who may read which figures, and every read and export in the access log.

A region's coordinator reads their own team's figures; a national coordinator (team
`national`) every team's and the whole country's (`team=all`). Counsellors and privacy
officers read none. The access record is written in the same transaction as the counts
are read: no record, no report.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

from gateway.config.live import LiveConfig
from gateway.config.models import NATIONAL, Config
from gateway.domain.identity import Identity
from gateway.domain.messages import Rejected
from gateway.domain.reports import Period, ReportOptions, build_report
from gateway.domain.schedules import AMSTERDAM
from gateway.store import reports as contacts
from gateway.store.database import Store
from gateway.store.identity import AuditEvent, AuditLog

EVERY_TEAM = "all"
Use = Literal["report_read", "report_export"]


def report_options(config: Config) -> ReportOptions:
    wrap_up = config.desk.wrap_up
    codes = {name: [o.code for o in field.options] for name, field in wrap_up.fields().items()}
    codes["channel_kind"] = sorted({channel.kind for channel in config.channels.values()})
    codes["team"] = list(config.team_codes)
    return ReportOptions(
        threshold=config.desk.reports.min_count,
        converted_outcomes=frozenset(o.code for o in wrap_up.outcome.options if o.converted),
        not_serious_outcomes=frozenset(o.code for o in wrap_up.outcome.options if not o.serious),
        codes=codes,
    )


class Reports:
    def __init__(
        self, store: Store, live: LiveConfig, audit: AuditLog, clock: Callable[[], datetime] | None = None
    ) -> None:
        self._store = store
        self._live = live
        self._audit = audit
        self._clock = clock or (lambda: datetime.now(UTC))

    def today(self) -> Any:
        return self._clock().astimezone(AMSTERDAM).date()

    def scope_for(self, actor: Identity, team: str | None) -> str:
        """The scope `actor` asks for (their own team when none is given; the country for a
        national coordinator), or 403/422."""
        if actor.role != "coordinator":
            raise Rejected(403, "not_permitted", "reports are for coordinators")
        national = actor.team == NATIONAL
        wanted = team or (EVERY_TEAM if national else actor.team)
        config = self._live.current
        if wanted != EVERY_TEAM and wanted not in config.team_codes:
            raise Rejected(422, "unknown_team", "team is a region code, national, or all")
        if not national and wanted != actor.team:
            raise Rejected(403, "not_permitted", "a region's coordinator reads their own team's figures")
        return wanted

    async def report(self, actor: Identity, team: str | None, period: Period, use: Use) -> dict[str, Any]:
        scope = self.scope_for(actor, team)
        event = AuditEvent.by(actor, use, reason=f"{scope} {period.label}"[:40])
        return await self._read(scope, period, event)

    async def report_for_operator(self, scope: str, period: Period) -> dict[str, Any]:
        """`gateway report` on the server: recorded as the operator's export."""
        config = self._live.current
        if scope != EVERY_TEAM and scope not in config.team_codes:
            raise Rejected(422, "unknown_team", "team is a region code, national, or all")
        event = AuditEvent("operator", "cli", "report_export", "ok", reason=f"{scope} {period.label}"[:40])
        return await self._read(scope, period, event)

    async def _read(self, scope: str, period: Period, event: AuditEvent) -> dict[str, Any]:
        config = self._live.current
        team = None if scope == EVERY_TEAM else scope
        earlier = period.previous()
        options = report_options(config)
        if team is not None:
            codes = {name: listed for name, listed in options.codes.items() if name != "team"}
            options = dataclasses.replace(options, codes=codes)
        async with self._store.transaction() as connection:
            counted = await contacts.count(connection, contacts.Scope(team), period.start, period.end)
            before = await contacts.count(connection, contacts.Scope(team), earlier.start, earlier.end)
            # Made before its record is written: a report that fails leaves no "ok" behind.
            report = build_report(scope, period, counted, before, options)
            await self._audit.append(connection, event)
        return report
