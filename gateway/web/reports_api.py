"""The reports' HTTP surface: `GET /api/v1/reports` (JSON), `GET /api/v1/reports/export`
(CSV) and `GET /api/v1/reports/chart` (SVG), with the query `team`, `period` or `from` and
`to` (docs/reports.md)."""

from __future__ import annotations

import csv
import io

from aiohttp import web

from gateway.config.models import Config
from gateway.domain.answers import teams
from gateway.domain.messages import Rejected
from gateway.domain.reports import PeriodError, csv_rows, parse_period
from gateway.roles.desk import Desk
from gateway.roles.reports import Reports, Use
from gateway.web import charts
from gateway.web.app import LIVE_KEY
from gateway.web.desk_auth import Who, answer
from gateway.web.errors import NO_STORE

REPORTS_KEY = web.AppKey("reports", Reports)
QUERY = {"team", "period", "from", "to"}


async def _report_of(
    request: web.Request, who: Who, use: Use, also: frozenset[str] = frozenset()
) -> dict[str, object]:
    query = request.query
    unknown = set(query) - QUERY - also
    if unknown:
        raise Rejected(422, "invalid_request", f"unknown parameter: {sorted(unknown)[0]}")
    repeated = sorted(name for name in set(query) if len(query.getall(name)) > 1)
    if repeated:  # never a silent first-wins: which one was meant?
        raise Rejected(422, "invalid_request", f"parameter given twice: {repeated[0]}")
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


async def chart(request: web.Request, who: Who, desk: Desk) -> web.Response:
    """One chart of the report, as SVG: read (and recorded) exactly as the report is, so its
    figures and what is hidden are the report's."""
    name = request.query.get("chart")
    if name not in charts.CHARTS:
        raise Rejected(422, "invalid_request", "chart is one of " + ", ".join(charts.CHARTS))
    found = await _report_of(request, who, "report_read", also=frozenset({"chart"}))
    svg = charts.chart(found, name, chart_labels(request.app[LIVE_KEY].current))
    headers = {**NO_STORE, "X-Content-Type-Options": "nosniff", "Content-Security-Policy": CHART_POLICY}
    return web.Response(text=svg, content_type="image/svg+xml", charset="utf-8", headers=headers)


# Opened on its own, the SVG runs nothing and loads nothing.
CHART_POLICY = "default-src 'none'; sandbox"


def chart_labels(config: Config) -> charts.Labels:
    fields = config.desk.wrap_up.fields()
    codes = {name: {o.code: o.nl for o in field.options} for name, field in fields.items()}
    return charts.Labels(codes=codes, teams=dict(teams(config)))


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
