"""The reports' HTTP surface: `GET /api/v1/reports` (JSON) and `GET /api/v1/reports/export`
(CSV), with the query `team`, `period` or `from` and `to` (docs/reports.md)."""

from __future__ import annotations

import csv
import io

from aiohttp import web

from gateway.domain.messages import Rejected
from gateway.domain.reports import PeriodError, csv_rows, parse_period
from gateway.roles.desk import Desk
from gateway.roles.reports import Reports, Use
from gateway.web.desk_auth import Who, answer
from gateway.web.errors import NO_STORE

REPORTS_KEY = web.AppKey("reports", Reports)
QUERY = {"team", "period", "from", "to"}


async def _report_of(request: web.Request, who: Who, use: Use) -> dict[str, object]:
    query = request.query
    unknown = set(query) - QUERY
    if unknown:
        raise Rejected(422, "invalid_request", f"unknown parameter: {sorted(unknown)[0]}")
    reports = request.app[REPORTS_KEY]
    try:
        period = parse_period(query.get("period"), query.get("from"), query.get("to"), reports.today())
    except PeriodError as problem:
        raise Rejected(422, "invalid_period", str(problem)) from None
    return await reports.report(who.identity, query.get("team") or None, period, use)


async def report(request: web.Request, who: Who, desk: Desk) -> web.Response:
    return answer(200, await _report_of(request, who, "report_read"))


async def export(request: web.Request, who: Who, desk: Desk) -> web.Response:
    found = await _report_of(request, who, "report_export")
    return csv_response(found)


def csv_text(report: dict[str, object]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(csv_rows(report))
    return out.getvalue()


def csv_response(report: dict[str, object]) -> web.Response:
    period = report["period"]
    label = period["label"].replace("/", "_") if isinstance(period, dict) else "report"
    name = f"veilig-thuis-{report['scope']}-{label}.csv"
    headers = {**NO_STORE, "Content-Disposition": f'attachment; filename="{name}"'}
    return web.Response(text=csv_text(report), content_type="text/csv", charset="utf-8", headers=headers)
