"""The console's figures ("Cijfers") in Chromium against a real `gateway run` (desk role) and
PostgreSQL: a region's coordinator and a national coordinator see exactly the figures the
API gives, "<5" and "verborgen" where the report hides a count, and charts made by the
gateway (SVG, same origin; no request leaves it), axe-clean and readable at 1280 and 360 px.
A counsellor has no "Cijfers" and gets 403 from the charts.

The contacts are inserted into `report_contacts` directly, in the shape
gateway/store/reports.py writes them: the page only reads the figures, and pushing
contacts through ingest, router and desk is what tests/integration/test_reports.py does
(here it would only make the test slow, and fix the days to the fake clock while the
page's default period follows the real one)."""

from __future__ import annotations

import asyncio
import json
import shutil
import uuid
from collections.abc import AsyncIterator
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import asyncpg
import pytest
import yaml
from playwright.async_api import Browser, Locator, Page, expect

from gateway.domain.reports import parse_period
from gateway.service import load_config
from tests.browser.conftest import browser_config, hash_password, screenshot, serious_accessibility_violations
from tests.browser.test_desk_console import PASSWORD, sign_in
from tests.conftest import ServiceProcess, clean_state

pytestmark = pytest.mark.broker

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
MINUS = "\N{MINUS SIGN}"  # the console's, as in print
ZOB, RR = "zuidoost-brabant", "rotterdam-rijnmond"
# The page's default: the last complete inventory period by the real clock (Reports has no fake one).
PERIOD = parse_period(None, None, None, datetime.now(AMSTERDAM).date())
BEFORE = PERIOD.previous()


def contact(team: str, kind: str, day: date, **fields: Any) -> dict[str, Any]:
    at = datetime.combine(day, time(10, 0), AMSTERDAM)
    row = {
        "contact_id": str(uuid.uuid4()), "conversation_id": None, "team": team, "final_team": team,
        "channel_kind": kind, "opened_at": at, "opened_on": day, "urgent": False, "acute": False,
        "after_hours": False, "claimed": False, "transferred": False, "first_reply_at": None,
        "wait_seconds": None, "left_before_reply": False, "closed_at": at + timedelta(minutes=30),
        "registered": False, "contact_role": None, "age_group": None, "topics": None, "outcome": None,
        "serious": None,
    }  # fmt: skip
    row.update(fields)
    return row


def seeded() -> list[dict[str, Any]]:
    """Zuidoost-Brabant: 30 contacts in the period (3 by Masker 19: "<5", and so the web
    chat's 7 "hidden"), 22 before; Rotterdam-Rijnmond: 12 by WhatsApp."""
    first, second = PERIOD.start, PERIOD.start + timedelta(days=7)
    kinds = ["sms"] * 20 + ["webchat"] * 7 + ["masker19"] * 3
    roles = ["slachtoffer"] * 15 + ["omstander"] * 8 + ["professional"] * 5
    ages = ["12-17"] * 3 + ["18-plus"] * 19 + ["onbekend"] * 6
    outcomes = ["advies-gegeven"] * 16 + ["omgezet-in-melding"] * 6 + ["geen-serieus-gesprek"] * 6
    topics = [["partnergeweld", "kindermishandeling"]] * 10 + [["partnergeweld"]] * 10
    topics += [["ouderenmishandeling"]] * 2 + [["anders"]] * 6
    rows = []
    for n, kind in enumerate(kinds):
        day = first if n < 14 else second
        fields: dict[str, Any] = {"urgent": n % 6 == 0, "after_hours": n < 6}
        if n < 20:  # answered: waits of 37 s to 10 min (median 322 s, 90th percentile 550 s)
            waited = 30 * (n + 1) + 7
            at = datetime.combine(day, time(10, 0), AMSTERDAM) + timedelta(seconds=waited)
            fields.update(claimed=True, first_reply_at=at, wait_seconds=waited)
        if n < 28:
            serious = outcomes[n] != "geen-serieus-gesprek"
            fields.update(registered=True, contact_role=roles[n], age_group=ages[n], outcome=outcomes[n],
                          topics=json.dumps(topics[n]), serious=serious)  # fmt: skip
        else:
            fields.update(closed_at=None)
        if n in (26, 27):
            fields["left_before_reply"] = True
        rows.append(contact(ZOB, kind, day, **fields))
    rows += [contact(ZOB, "sms", BEFORE.start + timedelta(days=n % 14)) for n in range(22)]
    registered = {"registered": True, "contact_role": "slachtoffer", "age_group": "18-plus",
                  "outcome": "advies-gegeven", "topics": '["partnergeweld"]', "serious": True}  # fmt: skip
    rows += [contact(RR, "whatsapp", second, **registered) for _ in range(12)]
    return rows


@pytest.fixture
async def world(vhost, database_url, tmp_path: Path, example_env, pharmacy_hash) -> AsyncIterator[dict]:
    root = browser_config(tmp_path / "config", pharmacy_hash, exit_url="https://www.google.com/")
    shared = hash_password(PASSWORD)
    accounts = [
        {"id": "anna-zob", "name": "Anna", "team": ZOB, "password_hash": shared},
        {"id": "cora-zob", "name": "Cora", "team": ZOB, "role": "coordinator", "password_hash": shared},
        {"id": "nina-landelijk", "name": "Nina", "team": "national", "role": "coordinator",
         "password_hash": shared},
    ]  # fmt: skip
    (root / "counsellors.yaml").write_text(yaml.safe_dump({"counsellors": accounts}))
    await clean_state(vhost[1], database_url, load_config(root))
    desk = ServiceProcess(vhost[1], tmp_path / "desk.log", roles=("desk",), config_dir=root,
                          GATEWAY_DATABASE_URL=database_url)  # fmt: skip
    try:
        await desk.wait_ready(40)
        connection = await asyncpg.connect(database_url)
        try:
            rows = seeded()
            columns = list(rows[0])
            await connection.copy_records_to_table(
                "report_contacts", records=[tuple(r[c] for c in columns) for r in rows], columns=columns
            )
        finally:
            await connection.close()
        yield {"front": desk, "phones": {}, "database_url": database_url}
    finally:
        desk.stop()


# What the console shows for a value of the report (desk.js: count, change, percent, waitMinutes).
def count(value: object) -> str:
    if value is None:
        return "—"
    if value == "hidden":
        return "verborgen"
    return f"{value:,}".replace(",", ".") if isinstance(value, int) else str(value)


def change(value: object) -> str:
    if not isinstance(value, int):
        return "—"
    return ("+" if value > 0 else MINUS if value < 0 else "") + count(abs(value))


def one_decimal(value: float) -> str:
    """As JavaScript's toFixed(1): the exact value of the double, a tie rounded up."""
    return str(Decimal(value).quantize(Decimal("0.1"), ROUND_HALF_UP)).replace(".", ",")


def percent(value: object) -> str:
    return "—" if not isinstance(value, float | int) else one_decimal(value * 100) + "%"


def wait(value: object) -> str:
    return "—" if not isinstance(value, float | int) else one_decimal(value / 60) + " min"


def at(tree: Any, path: str) -> Any:
    for key in path.split("."):
        tree = tree.get(key) if isinstance(tree, dict) else None
    return tree


def counted(tree: Any, path: str) -> Any:
    node = at(tree, path)
    return node["count"] if isinstance(node, dict) else node


async def report_of(page: Page, query: str = "") -> dict:
    """The API's answer to the page's own session (the same cookie)."""
    return await page.evaluate("async q => (await fetch('/api/v1/reports' + q)).json()", query)


async def shows_the_reports_figures(page: Page, report: dict) -> int:
    """Every figure row of the page against the report: this period, the previous one, the
    change and the share, as the console writes them. The number of rows checked."""
    await expect(page.locator("#reports-result")).to_be_visible()
    await expect(page.locator("#reports-period")).to_contain_text(report["period"]["label"])
    rows = await page.locator("#reports-tables tr[data-figure]").evaluate_all(
        "rows => rows.map(r => [r.dataset.figure, ...['now', 'previous', 'change', 'share'].map("
        "c => r.querySelector(`[data-column=${c}]`).textContent)])"
    )
    for path, now, before, difference, share in rows:
        waits = path.endswith("_seconds")
        shown = wait if waits else count
        expected = (
            shown(counted(report["figures"], path)),
            shown(counted(report["previous"], path)),
            "" if waits else change(counted(report["change"], path)),
        )
        assert (now, before, difference) == expected, path
        node = at(report["figures"], path)
        if isinstance(node, dict) and share != "":
            assert share == percent(node["share"]), path
    figures = report["figures"]
    paths = {row[0] for row in rows}
    tables = ["by_channel", "by_week", "contact_role", "age_group", "outcome", "topics"]
    tables += ["by_team"] if "by_team" in figures else []
    expected_paths = {f"{name}.{code}" for name in tables for code in figures[name]}
    assert expected_paths <= paths
    assert {"contacts", "serious", "registered", "converted_to_report", "masker19_intakes",
            "after_hours.contacts", "after_hours.where.held_for_region", "left_before_reply",
            "waiting_time.median_seconds", "waiting_time.p90_seconds"} <= paths  # fmt: skip
    return len(rows)


def cell(page: Page, figure: str, column: str = "now") -> Locator:
    return page.locator(f'#reports-tables tr[data-figure="{figure}"] [data-column="{column}"]')


async def charts_loaded(page: Page) -> None:
    images = page.locator("#reports-charts img")
    await expect(images).to_have_count(4)
    for n in range(4):
        image = images.nth(n)
        await expect(image).to_have_js_property("complete", True)
        assert await image.evaluate("i => i.naturalWidth") > 0, await image.get_attribute("src")
    src = await images.first.get_attribute("src")
    assert src and src.startswith("/api/v1/reports/chart?chart=trend")
    answer = await page.evaluate(
        "async s => { const r = await fetch(s);"
        " return [r.status, r.headers.get('content-type'), await r.text()]; }",
        src,
    )
    assert answer[0] == 200 and answer[1].startswith("image/svg+xml")
    assert 'role="img"' in answer[2] and "<title" in answer[2] and "<desc" in answer[2]


async def looked_at(page: Page, tmp_path: Path, width: int) -> None:
    """At this width: no horizontal scrolling of the page, axe finds nothing, a screenshot."""
    await page.set_viewport_size({"width": width, "height": 900})
    await charts_loaded(page)
    overflow = await page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page scrolls sideways by {overflow}px at {width}px"
    assert await serious_accessibility_violations(page) == []
    target = tmp_path / f"reports-{width}.png"
    await page.screenshot(path=str(target), full_page=True)
    shutil.copy(target, f"/tmp/reports-{width}.png")
    await screenshot(page, f"desk-reports-{width}")


async def test_a_coordinator_sees_the_reports_figures_and_charts(browser: Browser, world, tmp_path) -> None:
    base = world["front"].base
    origin = urlsplit(base)[:2]
    context = await browser.new_context(bypass_csp=True, viewport={"width": 1280, "height": 900},
                                        accept_downloads=True)  # fmt: skip  # bypass: axe-core only
    requests: list[str] = []
    context.on("request", lambda r: requests.append(r.url))
    cora = await context.new_page()
    await sign_in(cora, world, "cora-zob")
    await cora.get_by_role("button", name="Cijfers").click()
    await expect(cora.get_by_role("heading", name="Cijfers", exact=True)).to_be_visible()
    await expect(cora.get_by_label("Team", exact=True)).to_be_hidden()  # only a national coordinator chooses

    report = await report_of(cora)
    assert report["scope"] == ZOB and report["period"]["label"] == PERIOD.label
    assert report["figures"]["contacts"] == 30 and report["change"]["contacts"] == 8
    assert await shows_the_reports_figures(cora, report) > 40
    await expect(cora.locator("#reports-heading")).to_have_text("Cijfers van Veilig Thuis Zuidoost-Brabant")
    await expect(cell(cora, "contacts")).to_have_text("30")
    await expect(cell(cora, "contacts", "previous")).to_have_text("22")
    await expect(cell(cora, "contacts", "change")).to_have_text("+8")
    await expect(cell(cora, "by_channel.masker19")).to_have_text("<5")
    await expect(cell(cora, "by_channel.webchat")).to_have_text("verborgen")
    await expect(cell(cora, "masker19_intakes")).to_have_text("<5")
    await expect(cell(cora, "age_group.12-17")).to_have_text("<5")
    await expect(cell(cora, "topics.ouderenmishandeling")).to_have_text("<5")
    await expect(cell(cora, "by_channel.sms", "share")).to_have_text("66,7%")
    await expect(cell(cora, "waiting_time.median_seconds")).to_have_text("5,4 min")
    await expect(cell(cora, "waiting_time.p90_seconds")).to_have_text("9,2 min")
    # Explained once, where anyone reading the figures sees it.
    explained = cora.get_by_text("Kleine aantallen zijn verborgen, zodat niemand te herkennen is")
    await expect(explained).to_have_count(1)
    await expect(explained).to_be_visible()
    # The charts' text alternatives list their values as the report shows them.
    channels = cora.locator('#reports-charts img[data-chart="channels"]')
    alt = ("Contacten per kanaal. Eigen systeem van de regio: 0; Apotheek (Masker 19): <5; SMS: 20; "
           "Telegram: 0; Webchat: verborgen; WhatsApp: 0.")
    await expect(channels).to_have_attribute("alt", alt)

    await looked_at(cora, tmp_path, 1280)
    await looked_at(cora, tmp_path, 360)
    await cora.set_viewport_size({"width": 1280, "height": 900})

    # The CSV: a plain same-origin link, the session's cookie is enough.
    async with cora.expect_download() as download:
        await cora.get_by_role("link", name="Download als CSV").click()
    saved = await (await download.value).path()
    lines = (await asyncio.to_thread(Path(saved).read_text)).splitlines()
    assert lines[0] == f"figure,part,{PERIOD.label},{BEFORE.label},share"
    assert "contacts,,30,22," in lines and "by_channel,masker19,<5,0," in lines

    # Another period: the first week of the inventory period, chosen in the form.
    week = PERIOD.start.isocalendar()
    label = f"{week.year}-W{week.week:02d}"
    await cora.get_by_label("Periode", exact=True).select_option("week")
    await cora.get_by_label("Week", exact=True).fill(label)
    await cora.get_by_role("button", name="Tonen").click()
    await expect(cora.locator("#reports-period")).to_contain_text(label)
    weekly = await report_of(cora, f"?period={label}")
    assert weekly["figures"]["contacts"] == 14
    await shows_the_reports_figures(cora, weekly)
    await expect(cell(cora, "contacts")).to_have_text("14")
    await charts_loaded(cora)
    src = await cora.locator('#reports-charts img[data-chart="age"]').get_attribute("src")
    assert src == f"/api/v1/reports/chart?chart=age&period={label}"

    # From and to: the inventory period's own days give its figures.
    await cora.get_by_label("Periode", exact=True).select_option("range")
    await cora.get_by_label("Eerste dag").fill(PERIOD.start.isoformat())
    await cora.get_by_label("Laatste dag (telt mee)").fill(PERIOD.end.isoformat())
    await cora.get_by_role("button", name="Tonen").click()
    await expect(cora.locator("#reports-period")).to_contain_text(f"{PERIOD.start}/{PERIOD.end}")
    ranged = await report_of(cora, f"?from={PERIOD.start}&to={PERIOD.end}")
    assert ranged["figures"] == report["figures"]
    await shows_the_reports_figures(cora, ranged)
    await expect(cell(cora, "contacts")).to_have_text("30")

    # Nothing the page asked for left the gateway's origin.
    assert requests and all(urlsplit(url)[:2] == origin for url in requests), requests
    await context.close()

    connection = await asyncpg.connect(world["database_url"])
    try:
        reads = await connection.fetch(
            "SELECT reason FROM audit_log"
            " WHERE account = 'cora-zob' AND action = 'report_read' AND result = 'ok'"
        )
        exports = await connection.fetchval(
            "SELECT count(*) FROM audit_log WHERE account = 'cora-zob' AND action = 'report_export'"
        )
    finally:
        await connection.close()
    reasons = [r["reason"] for r in reads]
    assert reasons.count(f"{ZOB} {label}") >= 5  # the report and its four charts, each recorded
    assert exports == 1


async def test_a_national_coordinator_chooses_the_country_or_a_team(browser: Browser, world) -> None:
    context = await browser.new_context(bypass_csp=True, viewport={"width": 1280, "height": 900})  # axe-core
    nina = await context.new_page()
    await sign_in(nina, world, "nina-landelijk")
    await nina.get_by_role("button", name="Cijfers").click()
    team = nina.get_by_label("Team", exact=True)
    await expect(team).to_be_visible()
    await expect(team).to_have_value("all")
    country = await report_of(nina, "?team=all")
    assert country["scope"] == "all" and country["figures"]["contacts"] == 42
    await shows_the_reports_figures(nina, country)
    await expect(nina.locator("#reports-heading")).to_have_text("Cijfers van het hele land")
    await expect(cell(nina, f"by_team.{ZOB}")).to_have_text("30")
    await expect(cell(nina, f"by_team.{RR}")).to_have_text("12")
    rr_name = "Veilig Thuis Rotterdam Rijnmond"
    await expect(nina.locator(f'tr[data-figure="by_team.{RR}"] th')).to_have_text(rr_name)
    await charts_loaded(nina)
    assert await serious_accessibility_violations(nina) == []
    await screenshot(nina, "desk-reports-national")

    await team.select_option(RR)
    await nina.get_by_role("button", name="Tonen").click()
    await expect(nina.locator("#reports-heading")).to_have_text("Cijfers van " + rr_name)
    region = await report_of(nina, f"?team={RR}")
    await shows_the_reports_figures(nina, region)
    await expect(cell(nina, "contacts")).to_have_text("12")
    await expect(nina.locator('tr[data-figure^="by_team."]')).to_have_count(0)
    await charts_loaded(nina)
    await context.close()


async def test_a_counsellor_has_no_figures(browser: Browser, world) -> None:
    anna = await (await browser.new_context()).new_page()
    await sign_in(anna, world, "anna-zob")
    await expect(anna.get_by_role("button", name="Wallboard")).to_have_count(0)
    await expect(anna.get_by_role("button", name="Cijfers")).to_have_count(0)
    for path in ("/api/v1/reports/chart?chart=trend", "/api/v1/reports"):
        status = await anna.evaluate("async p => (await fetch(p)).status", path)
        assert status == 403, path
    # The button is in the page for everyone: for her it stays hidden, and the section too.
    assert await anna.locator("#nav-reports").is_hidden() and await anna.locator("#reports").is_hidden()
