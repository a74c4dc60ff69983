"""Reports benchmark: how long a year's report takes, for the whole country and for one
region, with --contacts contacts (default 500,000) in `report_contacts`, through a running
desk against the same SQL straight over asyncpg in the same run.

    .venv/bin/python bench/reports.py [--contacts 500000] [--loads 10] [--warmup 2] [--explain]
                                      [--previous-contacts 0]

1. fill (a database of its own, created and dropped here): `gateway run --role desk`
   migrates it, then --contacts rows are COPYed into `report_contacts` as the desk writes
   them, over the 365 Europe/Amsterdam days ending yesterday: every team of the example
   configuration (the big regions more, the national team a tenth and what the router
   sends it: overflow after hours, acute danger), the channel kinds mixed, the hours of
   the day as people write (evenings more), after hours by each region's own schedule and
   closed policy, some urgent, acute, transferred; most answered with a wait, most closed
   with a registration of the codes in config/desk.yaml, the last days' still open. Then
   VACUUM ANALYZE, as autovacuum would have done. The rows go in in the order of time, as
   the desk appends them. --previous-contacts fills the 365 days before as well: the
   report's previous period, empty by default (the store's first year).
2. loads: with `gateway run --role desk` on that store and a national coordinator signed
   in (password and TOTP enrolment, as bench/desk.py's counsellor), the report for the
   whole year is asked --loads times after --warmup, sequentially, for the country
   (GET /api/v1/reports?team=all&from=...&to=...) and for one region (zuidoost-brabant);
   interleaved with them, the bare baseline runs over one asyncpg connection the very
   statements `gateway/store/reports.py:count` runs for the period and the previous one
   (captured from SQLAlchemy as it executes them once, then replayed with their
   parameters). A gateway load is one request, sent to its whole body read, timed with
   aiohttp: this is the latency of 10 sequential requests, not a throughput test, so it
   does not need `wrk`. Aim: the country's median under 1 s. --explain prints EXPLAIN
   ANALYZE of the heaviest of the statements.

Needs GATEWAY_TEST_DATABASE_URL or --database-url (PostgreSQL) and the local RabbitMQ (the
desk role consumes its queues). Last line: JSON with national_report_median_ms,
national_report_p90_ms, bare_national_median_ms, bare_national_p90_ms, national_ratio,
the same for region_, and pass.
"""

from __future__ import annotations

import argparse
import bisect
import os
import random
import shutil
import sys
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script

from bench.desk import PASSWORD, SECRET_KEY, _bench_config, _pick, timed  # sets harness.ROOT
from gateway.config.models import NATIONAL, Config
from gateway.domain.routing import closed_policy
from gateway.domain.schedules import AMSTERDAM, resolve, state_at
from gateway.service import load_config
from gateway.store import reports
from gateway.store.tables import report_contacts
from gateway.support.passwords import hash_password
from tests.helpers.desk import Counsellors
from tests.helpers.harness import (
    PYTHON,
    Process,
    Vhost,
    common_arguments,
    database_argument,
    free_port,
    median,
    percentile,
    python_env,
    run_and_print,
    scratch_database,
)

LIMIT_MS = 1000.0
REGION = "zuidoost-brabant"
COORDINATOR = "bench-landelijk"
# Where contacts come from: the national team's own share (its number, the web chat at
# night), the rest over the regions, the big cities' more (the network reports about 100
# chats a month in Amsterdam and Rotterdam, 50 to 60 elsewhere).
NATIONAL_SHARE = 0.10
BIG_REGIONS = {"amsterdam-amstelland": 2.0, "rotterdam-rijnmond": 2.0, "haaglanden": 1.6, "utrecht": 1.6}
KIND_MIX = {"whatsapp": 34, "webchat": 30, "sms": 14, "http-json": 12, "telegram": 6, "masker19": 4}
# The hour of the day a contact begins (Europe/Amsterdam): little at night, most in the
# evening; a weekend day a little less than a weekday.
HOUR_MIX = [3, 2, 1, 1, 1, 1, 2, 3, 5, 6, 6, 6, 6, 6, 6, 6, 7, 7, 8, 9, 10, 10, 8, 5]
WEEKDAY_MIX = [10, 10, 10, 10, 9, 8, 8]
CONTACT_ROLE_MIX = {"slachtoffer": 45, "omstander": 30, "professional": 10, "pleger": 5, "onbekend": 10}
AGE_GROUP_MIX = {"onder-12": 2, "12-17": 7, "18-plus": 78, "onbekend": 13}
OUTCOME_MIX = {"advies-gegeven": 45, "melding-geadviseerd": 15, "omgezet-in-melding": 5, "doorverwezen": 12,
               "acuut-112": 2, "geen-serieus-gesprek": 21}  # fmt: skip
REGISTERED = 0.92  # closed with a registration; the rest forgotten by retention, or still open
ANSWERED = 0.90  # of the contacts on a channel that carries replies
TRANSFERRED = 0.03
COLUMNS = [c.name for c in report_contacts.columns]


class Schedules:
    """Whether a region was open at an instant, by its own schedule: each answer of
    `state_at` holds until its `next_change`, so a schedule is asked about once or twice
    per open or closed stretch, not once per contact."""

    def __init__(self, config: Config) -> None:
        self._config = config
        self._resolved: dict[str, Any] = {}
        self._known: dict[str, list[tuple[datetime, datetime, bool]]] = {}  # (from, until, open), sorted

    def open(self, team: str, at: datetime) -> bool:
        name = self._config.regions[team].schedule
        known = self._known.setdefault(name, [])
        n = bisect.bisect_right(known, at, key=lambda k: k[0])
        if n and at < known[n - 1][1]:
            return known[n - 1][2]
        if name not in self._resolved:
            self._resolved[name] = resolve(name, self._config.schedules)
        state = state_at(self._resolved[name], at)
        until = state.next_change or datetime.max.replace(tzinfo=UTC)
        if n < len(known) and known[n][1] == until:  # the same stretch, known from later on
            known[n] = (at, until, state.open)
        else:
            known.insert(n, (at, until, state.open))
        return state.open


def fill(
    config: Config, count: int, today: date, seed: int = 2026
) -> tuple[list[tuple[Any, ...]], date, date]:
    """`count` rows of report_contacts over the 365 days before `today`, in COLUMNS' order,
    those of its last two days not registered still open; and the first and last day."""
    rng = random.Random(seed)  # the same rows every run
    days = [today - timedelta(days=n) for n in range(365, 0, -1)]
    regions = list(config.regions)
    sizes = {code: BIG_REGIONS.get(code, 1.0) * rng.uniform(0.8, 1.2) for code in regions}
    weights = {code: (1 - NATIONAL_SHARE) * size / sum(sizes.values()) for code, size in sizes.items()}
    weights[NATIONAL] = NATIONAL_SHARE
    schedules = Schedules(config)
    wrap_up = config.desk.wrap_up
    serious = {o.code: o.serious for o in wrap_up.outcome.options}
    topic_codes = [o.code for o in wrap_up.topics.options]
    for name, mix in (
        ("contact_role", CONTACT_ROLE_MIX),
        ("age_group", AGE_GROUP_MIX),
        ("outcome", OUTCOME_MIX),
    ):
        assert set(mix) == {o.code for o in wrap_up.fields()[name].options}, (
            f"{name}: config/desk.yaml changed"
        )
    national_kinds = set(config.routing.acute_always_national)
    day_weights = [WEEKDAY_MIX[d.weekday()] for d in days]
    picked_days = rng.choices(days, day_weights, k=count)
    picked_hours = rng.choices(range(24), HOUR_MIX, k=count)
    picked_teams = rng.choices(list(weights), list(weights.values()), k=count)
    picked_kinds = rng.choices(list(KIND_MIX), list(KIND_MIX.values()), k=count)
    recent = days[-2]
    rows: list[tuple[Any, ...]] = []
    for n in range(count):
        day, kind, region = picked_days[n], picked_kinds[n], picked_teams[n]
        local = datetime(day.year, day.month, day.day, picked_hours[n], rng.randrange(60), rng.randrange(60))
        opened_at = local.replace(tzinfo=AMSTERDAM).astimezone(UTC)
        acute = (kind == "masker19" and rng.random() < 0.1) or rng.random() < 0.005
        urgent = acute or rng.random() < 0.1
        team, after_hours = region, False
        if region != NATIONAL and not schedules.open(region, opened_at):
            after_hours = True
            if acute or closed_policy(config, region, kind) == "overflow":
                team = NATIONAL
        if acute and kind in national_kinds:
            team = NATIONAL
        final_team = team
        transferred = rng.random() < TRANSFERRED
        if transferred:
            final_team = rng.choice([t for t in weights if t != team])
        replies = kind not in ("http-json", "masker19")  # the others are called back
        first_reply_at = wait = None
        if replies and rng.random() < ANSWERED:
            wait = round(min(rng.expovariate(1 / 420), 7200) + rng.uniform(5, 40))
            first_reply_at = opened_at + timedelta(seconds=wait)
        claimed = first_reply_at is not None or rng.random() < 0.9
        left = kind == "webchat" and first_reply_at is None and rng.random() < 0.6
        conversation_id = closed_at = role = age = topics = outcome = is_serious = None
        registered = rng.random() < REGISTERED
        if registered:
            closed_at = (first_reply_at or opened_at) + timedelta(minutes=rng.uniform(3, 60))
            role, age, outcome = (
                _pick(rng, CONTACT_ROLE_MIX),
                _pick(rng, AGE_GROUP_MIX),
                _pick(rng, OUTCOME_MIX),
            )
            topics = orjson.dumps(rng.sample(topic_codes, rng.choice((1, 1, 1, 2, 2, 3)))).decode()
            is_serious = serious[outcome]
        elif day >= recent:  # still open: the row knows its conversation
            conversation_id = f"c_bench{seed}-{n}"
        row = {
            "contact_id": str(uuid.uuid4()), "conversation_id": conversation_id, "team": team,
            "final_team": final_team, "channel_kind": kind, "opened_at": opened_at, "opened_on": day,
            "urgent": urgent, "acute": acute, "after_hours": after_hours, "claimed": claimed,
            "transferred": transferred, "first_reply_at": first_reply_at, "wait_seconds": wait,
            "left_before_reply": left, "closed_at": closed_at, "registered": registered,
            "contact_role": role, "age_group": age, "topics": topics, "outcome": outcome,
            "serious": is_serious,
        }  # fmt: skip
        rows.append(tuple(row[name] for name in COLUMNS))
    at = COLUMNS.index("opened_at")
    rows.sort(key=lambda row: row[at])  # as the desk appends them: the table in the order of time
    return rows, days[0], days[-1]


async def load_store(database_url: str, rows: list[tuple[Any, ...]]) -> None:
    connection = await asyncpg.connect(database_url)
    try:
        await connection.copy_records_to_table(report_contacts.name, records=rows, columns=COLUMNS)
        await connection.execute("VACUUM ANALYZE report_contacts")
    finally:
        await connection.close()


Statement = tuple[str, tuple[Any, ...]]


async def statements(database_url: str, team: str | None, first: date, last: date) -> list[Statement]:
    """The SQL `gateway/store/reports.py:count` runs for the period and the previous one (as
    `gateway/roles/reports.py` asks for them), with its parameters: captured as SQLAlchemy's
    asyncpg dialect sends them."""
    engine = create_async_engine(database_url.replace("postgresql://", "postgresql+asyncpg://"))
    captured: list[Statement] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        captured.append((statement, tuple(parameters or ())))

    sa.event.listen(engine.sync_engine, "before_cursor_execute", capture)
    days = last - first
    try:
        async with engine.connect() as connection:
            scope = reports.Scope(team)
            await reports.count(connection, scope, first, last)
            await reports.count(
                connection, scope, first - days - timedelta(days=1), first - timedelta(days=1)
            )
    finally:
        await engine.dispose()
    return captured


async def bare(connection: asyncpg.Connection, sql: list[Statement]) -> float:
    began = time.perf_counter()
    async with connection.transaction():
        for statement, parameters in sql:
            await connection.fetch(statement, *parameters)
    return (time.perf_counter() - began) * 1000


async def explain(connection: asyncpg.Connection, sql: list[Statement]) -> None:
    """EXPLAIN ANALYZE of the statement that takes longest."""
    slowest: tuple[float, Statement] | None = None
    for statement in sql:
        took = await bare(connection, [statement])
        if slowest is None or took > slowest[0]:
            slowest = (took, statement)
    assert slowest is not None
    statement, parameters = slowest[1]
    plan = await connection.fetch("EXPLAIN (ANALYZE, BUFFERS) " + statement, *parameters)
    print(f"-- the heaviest of {len(sql)} statements ({slowest[0]:.1f} ms), with {parameters}:\n{statement}")
    print("\n".join(r[0] for r in plan), flush=True)


def _figures(name: str, gateway: list[float], bare_ms: list[float]) -> dict[str, float]:
    gateway, bare_ms = sorted(gateway), sorted(bare_ms)
    return {
        f"{name}_report_median_ms": round(median(gateway), 1),
        f"{name}_report_p90_ms": round(percentile(gateway, 90), 1),
        f"bare_{name}_median_ms": round(median(bare_ms), 1),
        f"bare_{name}_p90_ms": round(percentile(bare_ms, 90), 1),
        f"{name}_ratio": round(median(gateway) / median(bare_ms), 2),
    }


async def loads(
    args: argparse.Namespace, bench_db: str, port: int, first: date, last: date
) -> dict[str, Any]:
    base = f"http://127.0.0.1:{port}"
    national_sql = await statements(bench_db, None, first, last)
    region_sql = await statements(bench_db, REGION, first, last)
    timings: dict[str, list[float]] = {"national": [], "region": [], "bare_national": [], "bare_region": []}
    period = f"from={first.isoformat()}&to={last.isoformat()}"
    answers: dict[str, Any] = {}
    connection = await asyncpg.connect(bench_db)
    try:
        async with aiohttp.ClientSession() as session:
            token = (await Counsellors(PASSWORD).sign_in(session, base, COORDINATOR))["token"]
            headers = {"Authorization": f"Bearer {token}"}
            urls = {"national": f"{base}/api/v1/reports?team=all&{period}",
                    "region": f"{base}/api/v1/reports?team={REGION}&{period}"}  # fmt: skip
            for n in range(args.warmup + args.loads):  # interleaved: the machine's noise falls on all four
                took = {
                    "bare_national": await bare(connection, national_sql),
                    "bare_region": await bare(connection, region_sql),
                }
                for name, url in urls.items():
                    took[name], body = await timed(session, url, headers)
                    answers[name] = orjson.loads(body)
                if n >= args.warmup:
                    for name, value in took.items():
                        timings[name].append(value)
            if args.explain:
                await explain(connection, national_sql)
        contacts = await connection.fetchval(
            "SELECT count(*) FROM report_contacts WHERE opened_on BETWEEN $1 AND $2", first, last
        )
    finally:
        await connection.close()
    counted = answers["national"]["figures"]["contacts"]
    if counted != contacts:
        raise RuntimeError(f"the report counted {counted} contacts; the store has {contacts}")
    return {
        "national_contacts": counted,
        "region_contacts": answers["region"]["figures"]["contacts"],
        "national_bytes": len(orjson.dumps(answers["national"])),
        "statements_per_report": len(national_sql),
        **_figures("national", timings["national"], timings["bare_national"]),
        **_figures("region", timings["region"], timings["bare_region"]),
    }


async def run(args: argparse.Namespace) -> dict[str, object]:
    result: dict[str, object] = {"machine_load_1m_start": round(os.getloadavg()[0], 2)}
    coordinator = {"id": COORDINATOR, "name": "Landelijk coördinator", "team": NATIONAL,
                   "role": "coordinator", "password_hash": hash_password(PASSWORD)}  # fmt: skip
    config_dir = _bench_config([coordinator])
    try:
        config = load_config(config_dir)
        today = datetime.now(UTC).astimezone(AMSTERDAM).date()
        began = time.perf_counter()
        rows, first, last = fill(config, args.contacts, today)
        if args.previous_contacts:  # the year before: the previous period a report also counts
            rows = fill(config, args.previous_contacts, first, seed=2025)[0] + rows
        made = time.perf_counter() - began
        async with scratch_database(args.database_url, "gw_bench_reports") as bench_db:
            with Vhost(args.amqp_url) as vhost:
                env = python_env(
                    GATEWAY_AMQP_URL=vhost.url,
                    GATEWAY_DATABASE_URL=bench_db,
                    GATEWAY_CONFIG=str(config_dir),
                    GATEWAY_SECRET_KEY=SECRET_KEY,
                    GATEWAY_LOG_LEVEL="WARNING",
                )
                port = free_port()
                command = [PYTHON, "-m", "gateway.cli", "run", "--port", str(port), "--role", "desk"]
                log_path = Path(args.log_dir) / "desk-reports.log"
                with Process(command, env, port, log_path=log_path) as migrating:
                    await migrating.wait_ready()  # declares the topology and migrates, then stops
                began = time.perf_counter()
                await load_store(bench_db, rows)
                loaded = time.perf_counter() - began
                print(f"store: {args.contacts} contacts from {first} to {last} "
                      f"({args.previous_contacts} in the year before); made in {made:.1f} s, "
                      f"copied and analysed in {loaded:.1f} s", flush=True)  # fmt: skip
                with Process(command, env, port, log_path=log_path) as desk:
                    await desk.wait_ready()
                    figures = await loads(args, bench_db, port, first, last)
    finally:
        shutil.rmtree(config_dir, ignore_errors=True)
    passed = figures["national_report_median_ms"] < LIMIT_MS
    print(
        f"a year's report ({first} to {last}), {args.contacts} contacts in the store, "
        f"medians of {args.loads} sequential loads ({figures['statements_per_report']} statements each):\n"
        f"  the country ({figures['national_contacts']} contacts): {figures['national_report_median_ms']} ms "
        f"(p90 {figures['national_report_p90_ms']}); bare {figures['bare_national_median_ms']} ms "
        f"(p90 {figures['bare_national_p90_ms']}); ratio {figures['national_ratio']}\n"
        f"  {REGION} ({figures['region_contacts']} contacts): {figures['region_report_median_ms']} ms "
        f"(p90 {figures['region_report_p90_ms']}); bare {figures['bare_region_median_ms']} ms "
        f"(p90 {figures['bare_region_p90_ms']}); ratio {figures['region_ratio']}\n"
        f"  {'PASS' if passed else 'FAIL'}: the country's median under {LIMIT_MS:.0f} ms",
        flush=True,
    )
    result.update(
        contacts_in_store=args.contacts,
        previous_year_contacts=args.previous_contacts,
        **figures,
        limit_ms=LIMIT_MS,
        note="sequential GETs with a national coordinator's bearer session, request to body read; "
        "bare: count()'s statements for the period and the previous one over one asyncpg connection",
        machine_load_1m_end=round(os.getloadavg()[0], 2),
    )
    result["pass"] = passed
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=500_000, help="rows in report_contacts")
    parser.add_argument(
        "--previous-contacts",
        type=int,
        default=0,
        help="rows in the 365 days before the year (the report's previous period; default none)",
    )
    parser.add_argument("--loads", type=int, default=10, help="timed loads of each report, after the warm-up")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument(
        "--explain", action="store_true", help="print EXPLAIN ANALYZE of the heaviest statement"
    )
    database_argument(parser)
    common_arguments(parser)
    run_and_print(parser, run)


if __name__ == "__main__":
    main()
