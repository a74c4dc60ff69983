"""The figures the regions report, from a seeded simulation of four weeks pushed through
the real service (ingest, router, desk; RabbitMQ and PostgreSQL): each week's contacts
are sent at that week's time (GATEWAY_FAKE_TIME), counsellors answer and close them with
known registrations through the API, and the reports give back exactly the proportions
and counts that were sent; they are unchanged after retention deleted every conversation.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
import yaml
from aiohttp import ClientSession, ClientTimeout

from gateway.service import load_config
from tests.conftest import EXAMPLE_SECRETS, ROOT, TEST_SECRET, ServiceProcess, clean_state
from tests.helpers.desk import Counsellors, person_texts
from tests.integration.conftest import PASSWORD, call, desk_config

pytestmark = pytest.mark.broker

ZOB, RR = "zuidoost-brabant", "rotterdam-rijnmond"
RR_TOKEN = "rr-intake-token-" + "y" * 24
WEEKS = ["2025-11-24", "2025-12-01", "2025-12-08", "2025-12-15"]  # Mondays: ISO weeks 48 to 51
OPEN = "T10:00:00+01:00"
CLOSED = "T22:00:00+01:00"  # Zuidoost-Brabant is closed: held for the region


@dataclass(frozen=True)
class Contact:
    team: str
    channel: str  # sms | http-json
    registration: dict | None  # None: left open


def registration(role: str, age: str, outcome: str, topics: tuple[str, ...] = ("partnergeweld",)) -> dict:
    return {"contact_role": role, "age_group": age, "topics": list(topics), "outcome": outcome}


def zob_week() -> list[Contact]:
    """Ten contacts: 6 by SMS, 4 from the region's intake system."""
    roles = ["slachtoffer"] * 5 + ["omstander"] * 3 + ["professional"] * 2
    ages = ["12-17"] * 2 + ["18-plus"] * 8
    outcomes = ["omgezet-in-melding"] * 2 + ["advies-gegeven"] * 6 + ["geen-serieus-gesprek"] * 2
    topics = [("partnergeweld", "kindermishandeling")] * 3 + [("partnergeweld",)] * 7
    channels = ["sms"] * 6 + ["http-json"] * 4
    rows = zip(channels, roles, ages, outcomes, topics, strict=True)
    return [Contact(ZOB, c, registration(r, a, o, t)) for c, r, a, o, t in rows]


def rr_week(last: bool) -> list[Contact]:
    roles = ["slachtoffer"] * 4 + ["omstander"]
    contacts = [Contact(RR, "http-json", registration(role, "18-plus", "advies-gegeven")) for role in roles]
    if last:  # one contact nobody closed: retention empties its link later
        contacts[0] = Contact(RR, "http-json", None)
    return contacts


AFTER_HOURS = [Contact(ZOB, "sms", registration("slachtoffer", "18-plus", "advies-gegeven"))] * 5


def config_with_two_regions(root: Path, password_hash: str) -> Path:
    desk_config(root, password_hash)
    channel = {"id": "http-json-rotterdam-rijnmond", "kind": "http-json", "region": RR,
               "settings": {"token": "${GW_HTTP_JSON_RR_TOKEN}"}}  # fmt: skip
    (root / "channels" / "http-json-rotterdam-rijnmond.yaml").write_text(yaml.safe_dump(channel))
    return root


async def intake_posts(base: str, channel: str, token: str, sender: str) -> None:
    body = {"message_id": str(uuid.uuid4()), "sender": sender, "text": "Ik maak me zorgen over mijn buren."}
    async with (
        ClientSession(timeout=ClientTimeout(total=30)) as session,
        session.post(f"{base}/channels/{channel}/webhook", json=body,
                     headers={"Authorization": f"Bearer {token}"}) as response,  # fmt: skip
    ):
        assert response.status == 202, await response.text()


async def waiting(base: str, token: str, count: int) -> list[dict]:
    for _ in range(200):
        status, body = await call(base, "GET", "/api/v1/conversations", token)
        assert status == 200
        found = [c for c in body["conversations"] if c["status"] == "waiting"]
        if len(found) >= count:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"{len(found)} of {count} conversations reached the desk")


async def work(base: str, tokens: dict[str, str], contacts: list[Contact]) -> None:
    """Each team's counsellor answers (SMS: a reply) and closes its waiting conversations with
    the team's registrations: which conversation gets which registration does not matter."""
    for team, counsellor in ((ZOB, "anna-zob"), (RR, "carla-rr")):
        mine = [c for c in contacts if c.team == team]
        listed = await waiting(base, tokens[counsellor], len(mine))
        by_kind = {"sms": [c for c in listed if c["channel_kind"] == "sms"],
                   "http-json": [c for c in listed if c["channel_kind"] == "http-json"]}  # fmt: skip
        for contact in mine:
            conversation = by_kind[contact.channel].pop()
            path = f"/api/v1/conversations/{conversation['conversation_id']}"
            if contact.registration is None:
                continue
            token = tokens[counsellor]
            assert (await call(base, "POST", f"{path}/claim", token))[0] == 200
            if contact.channel == "sms":
                assert (await call(base, "POST", f"{path}/reply", token, {"text": "Ik ben er."}))[0] == 202
            status, answer = await call(base, "POST", f"{path}/close", token, contact.registration)
            assert status == 200, answer


async def week(env: dict, root: Path, log: Path, moment: str, contacts: list[Contact], counsellors, tokens):
    process = ServiceProcess(env["url"], log, roles=("ingest", "router", "desk"), config_dir=root,
                             GATEWAY_FAKE_TIME=moment, **env["vars"])  # fmt: skip
    try:
        await process.wait_ready(40)
        if not tokens:
            async with ClientSession() as session:
                for account in ("anna-zob", "carla-rr", "cora-zob", "nina-landelijk"):
                    tokens[account] = (await counsellors.sign_in(session, process.base, account))["token"]
        for contact in contacts:
            sender = f"person-{uuid.uuid4().hex[:12]}"
            if contact.channel == "sms":
                await person_texts(process.base, sender, "Hallo, ik wil iets vragen.")
            elif contact.team == ZOB:
                await intake_posts(process.base, "http-json-zuidoost-brabant", EXAMPLE_SECRETS[
                    "GW_HTTP_JSON_ZUIDOOST_BRABANT_TOKEN"], sender)  # fmt: skip
            else:
                await intake_posts(process.base, "http-json-rotterdam-rijnmond", RR_TOKEN, sender)
        await work(process.base, tokens, contacts)
        return process.base
    finally:
        process.stop()


def figure(report: dict, *path: str) -> object:
    value: object = report["figures"]
    for key in path:
        assert isinstance(value, dict)
        value = value[key]
    return value


async def test_four_weeks_of_contacts_give_back_their_counts_and_proportions(
    vhost, database_url, tmp_path, example_env, password_hash
) -> None:
    root = config_with_two_regions(tmp_path / "config", password_hash)
    await clean_state(vhost[1], database_url, load_config(root))
    env = {"url": vhost[1], "vars": {"GATEWAY_DATABASE_URL": database_url, "GW_HTTP_JSON_RR_TOKEN": RR_TOKEN}}
    counsellors, tokens = Counsellors(PASSWORD), {}
    sent: list[Contact] = []
    for n, monday in enumerate(WEEKS):
        contacts = zob_week() + rr_week(last=n == len(WEEKS) - 1)
        await week(env, root, tmp_path / f"week{n}.log", monday + OPEN, contacts, counsellors, tokens)
        sent += contacts
        if n == 1:
            await week(env, root, tmp_path / "evening.log", monday + CLOSED, AFTER_HOURS, counsellors, tokens)
            sent += AFTER_HOURS

    process = ServiceProcess(vhost[1], tmp_path / "reports.log", roles=("desk",), config_dir=root,
                             GATEWAY_FAKE_TIME=WEEKS[-1] + OPEN, **env["vars"])  # fmt: skip
    query = "from=2025-11-24&to=2025-12-21"
    try:
        await process.wait_ready(40)
        base = process.base
        status, zob = await call(base, "GET", f"/api/v1/reports?{query}", tokens["cora-zob"])
        assert status == 200, zob
        status, country = await call(base, "GET", f"/api/v1/reports?{query}", tokens["nina-landelijk"])
        assert status == 200, country

        # The region's figures: the counts that were sent, and their proportions exactly.
        zob_sent = [c for c in sent if c.team == ZOB]
        assert zob["scope"] == ZOB and figure(zob, "contacts") == len(zob_sent) == 45
        assert figure(zob, "by_channel", "sms", "count") == 29
        assert figure(zob, "by_channel", "http-json", "count") == 16
        assert figure(zob, "registered", "count") == 45
        assert figure(zob, "contact_role", "slachtoffer") == {"count": 25, "share": round(25 / 45, 4)}
        assert figure(zob, "contact_role", "omstander") == {"count": 12, "share": round(12 / 45, 4)}
        assert figure(zob, "contact_role", "professional") == {"count": 8, "share": round(8 / 45, 4)}
        assert figure(zob, "age_group", "12-17") == {"count": 8, "share": round(8 / 45, 4)}  # under 18
        assert figure(zob, "converted_to_report") == {"count": 8, "share": round(8 / 45, 4)}
        assert figure(zob, "serious") == {"count": 37, "share": round(37 / 45, 4)}
        assert figure(zob, "outcome", "advies-gegeven", "count") == 6 * 4 + 5
        assert figure(zob, "topics", "kindermishandeling", "count") == 12
        assert figure(zob, "topics", "partnergeweld", "count") == 45
        assert figure(zob, "by_week") == {
            "2025-W48": {"count": 10, "share": round(10 / 45, 4)},
            "2025-W49": {"count": 15, "share": round(15 / 45, 4)},
            "2025-W50": {"count": 10, "share": round(10 / 45, 4)},
            "2025-W51": {"count": 10, "share": round(10 / 45, 4)},
        }
        assert figure(zob, "after_hours", "contacts") == {"count": 5, "share": round(5 / 45, 4)}
        assert figure(zob, "after_hours", "where", "held_for_region", "count") == 5
        assert figure(zob, "after_hours", "answered", "count") == 5
        waits = figure(zob, "waiting_time")
        assert isinstance(waits, dict) and waits["answered"]["count"] == 29  # every SMS had a reply
        assert waits["median_seconds"] is not None and waits["p90_seconds"] >= waits["median_seconds"] >= 0
        assert figure(zob, "masker19_intakes", "count") == 0
        assert zob["previous"]["contacts"] == 0 and zob["change"]["contacts"] == 45
        assert "by_team" not in zob["figures"]

        # The country: every team, and the team the one open contact belongs to.
        assert country["scope"] == "all" and figure(country, "contacts") == 65
        assert figure(country, "by_team", ZOB, "count") == 45
        assert figure(country, "by_team", RR, "count") == 20
        assert figure(country, "registered", "count") == 64
        assert figure(country, "contact_role", "slachtoffer", "count") == 25 + 15
        assert figure(country, "contact_role", "omstander", "count") == 12 + 4

        # A counsellor, and another region's coordinator, get nothing; each refusal is logged.
        status, body = await call(base, "GET", f"/api/v1/reports?{query}", tokens["anna-zob"])
        assert (status, body["error"]) == (403, "not_permitted")
        status, body = await call(base, "GET", f"/api/v1/reports?team={RR}&{query}", tokens["cora-zob"])
        assert (status, body["error"]) == (403, "not_permitted")
        status, body = await call(base, "GET", "/api/v1/reports?period=2025-W99", tokens["cora-zob"])
        assert (status, body["error"]) == (422, "invalid_period")
        twice = "/api/v1/reports?period=2025-W48&period=2025-W49"
        status, body = await call(base, "GET", twice, tokens["cora-zob"])
        assert (status, body["error"]) == (422, "invalid_request")
        status, rr = await call(base, "GET", f"/api/v1/reports?team={RR}&{query}", tokens["nina-landelijk"])
        assert status == 200 and figure(rr, "contacts") == 20

        # The CSV export, and the same report from the command line.
        async with ClientSession() as session, session.get(f"{base}/api/v1/reports/export?{query}",
                               headers={"Authorization": f"Bearer {tokens['cora-zob']}"}) as r:  # fmt: skip
            assert r.status == 200 and r.content_type == "text/csv"
            assert "attachment" in r.headers["Content-Disposition"]
            rows = list(csv.reader(io.StringIO(await r.text())))
        assert ["contacts", "", "45", "0", ""] in rows
        assert ["contact_role", "slachtoffer", "25", "0", str(round(25 / 45, 4))] in rows
        cli = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "gateway.cli", "report", "--team", ZOB, "--from", "2025-11-24",
             "--to", "2025-12-21", "--config", str(root)],
            capture_output=True, text=True, cwd=ROOT, check=False,
            env={"PATH": "/usr/bin:/bin", **EXAMPLE_SECRETS, "GATEWAY_DATABASE_URL": database_url,
                 "GATEWAY_SECRET_KEY": TEST_SECRET, "GW_HTTP_JSON_RR_TOKEN": RR_TOKEN},
        )  # fmt: skip
        assert cli.returncode == 0, cli.stderr[-2000:]
        assert json.loads(cli.stdout[cli.stdout.index("{"):])["figures"] == zob["figures"]
    finally:
        process.stop()

    connection = await asyncpg.connect(database_url)
    try:
        records = await connection.fetch(
            "SELECT account, action, result, reason FROM audit_log WHERE action LIKE 'report_%' ORDER BY seq"
        )
        # Nothing in the figures' record points at a person or a closed conversation.
        names = "SELECT column_name FROM information_schema.columns WHERE table_name = 'report_contacts'"
        columns = {r["column_name"] for r in await connection.fetch(names)}
        assert not columns & {"sender", "text", "reply_handle", "address"}
        still_open = "SELECT count(*) FROM report_contacts WHERE conversation_id IS NOT NULL"
        linked = await connection.fetchval(still_open)
    finally:
        await connection.close()
    seen = [(r["account"], r["action"], r["result"]) for r in records]
    assert ("cora-zob", "report_read", "ok") in seen and ("nina-landelijk", "report_read", "ok") in seen
    assert ("anna-zob", "report_read", "denied") in seen and ("cora-zob", "report_read", "denied") in seen
    assert ("cora-zob", "report_export", "ok") in seen and ("operator", "report_export", "ok") in seen
    assert linked == 1  # only the contact still open

    # Retention deletes every conversation; the figures stay as they were.
    service = yaml.safe_load((root / "gateway.yaml").read_text())
    service["desk"]["retention_hours"] = 0.0001
    (root / "gateway.yaml").write_text(yaml.safe_dump(service))
    later = ServiceProcess(vhost[1], tmp_path / "retention.log", roles=("desk",), config_dir=root,
                           GATEWAY_FAKE_TIME=WEEKS[-1] + OPEN, **env["vars"])  # fmt: skip
    try:
        await later.wait_ready(40)
        connection = await asyncpg.connect(database_url)
        try:
            for _ in range(100):
                if await connection.fetchval("SELECT count(*) FROM desk_conversations") == 0:
                    break
                await asyncio.sleep(0.1)
            assert await connection.fetchval("SELECT count(*) FROM desk_conversations") == 0
            assert await connection.fetchval("SELECT count(*) FROM desk_messages") == 0
            assert await connection.fetchval(still_open) == 0
        finally:
            await connection.close()
        status, after = await call(later.base, "GET", f"/api/v1/reports?{query}", tokens["nina-landelijk"])
        assert status == 200 and after["figures"] == country["figures"]
    finally:
        later.stop()
