"""The `gateway` console command. With `service`, the only place that knows the channel
kinds: it passes them to the configuration loader and lets each add its subcommands."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
from typing import Any

import orjson

from gateway.config.loader import ConfigError, summary
from gateway.config.models import Config
from gateway.domain.topology import Topology
from gateway.service import kinds, load_config
from gateway.support.logs import configure_logging
from gateway.support.settings import Settings


def _run(args: argparse.Namespace, settings: Settings) -> int:
    import uvloop

    from gateway.service import ROLES, build_service, serve

    if args.config:
        settings = dataclasses.replace(settings, config_dir=args.config)
    registered = kinds().values()
    configure_logging(
        settings.log_level,
        sensitive_keys=[key for kind in registered for key in kind.sensitive_log_keys],
        quiet_loggers=[name for kind in registered for name in kind.quiet_loggers],
    )
    roles = frozenset(args.role or ROLES)
    try:
        service = build_service(settings, roles=roles)
    except ConfigError as exc:
        print(f"invalid configuration in {settings.config_dir}:\n{exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 2
    port = args.port if args.port is not None else settings.http_port
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve(service, args.host or settings.http_host, port))
    return 0


def _load(directory: str) -> Config | None:
    """The configuration, or None after printing every problem (file and field)."""
    try:
        return load_config(directory)  # against the registered kinds
    except ConfigError as exc:
        print(f"invalid configuration in {directory}:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return None


def _check_config(args: argparse.Namespace, settings: Settings) -> int:
    config = _load(args.directory or settings.config_dir)
    if config is None:
        return 1
    print(summary(config))
    return 0


def _topology(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.service import topology_for

    config = _load(args.config or settings.config_dir)
    if config is None:
        return 1
    topology = topology_for(config)
    described = {
        "exchanges": [{"name": e.name, "type": e.type} for e in topology.exchanges],
        "queues": [{"name": q.name, "arguments": q.arguments} for q in topology.queues],
        "bindings": [b.__dict__ for b in topology.bindings],
    }
    if args.dry_run:
        print(orjson.dumps(described, option=orjson.OPT_INDENT_2).decode())
        return 0
    if not settings.amqp_url:
        print(
            "GATEWAY_AMQP_URL is not set: nothing to declare (use --dry-run to print)",
            file=sys.stderr,
        )
        return 2
    return asyncio.run(_declare(settings.amqp_url, topology, described))


async def _declare(url: str, topology: Topology, described: dict[str, Any]) -> int:
    import aio_pika

    from gateway.broker.amqp import declare_topology, parse_urls, redact_url

    urls = parse_urls(url)
    last_error = ""
    for candidate in urls:
        try:
            connection = await aio_pika.connect(candidate, timeout=10)
        except Exception as exc:
            last_error = f"{redact_url(candidate)}: {type(exc).__name__}"
            continue
        try:
            await declare_topology(connection, topology)
        except Exception as exc:
            print(f"declaring the topology failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
        finally:
            await connection.close()
        print(
            orjson.dumps(
                {
                    "declared": True,
                    "node": redact_url(candidate),
                    "exchanges": len(topology.exchanges),
                    "queues": len(topology.queues),
                    "bindings": len(topology.bindings),
                }
            ).decode()
        )
        return 0
    print(f"no broker answered ({last_error})", file=sys.stderr)
    return 1


def _schedule(args: argparse.Namespace, settings: Settings) -> int:
    from datetime import datetime

    from gateway.config.models import NATIONAL
    from gateway.domain.schedules import AMSTERDAM, resolve, state_at
    from gateway.support.clock import make_clock

    config = _load(args.config or settings.config_dir)
    if config is None:
        return 1
    if args.region == NATIONAL:
        schedule_name = config.national.schedule
    elif args.region in config.regions:
        schedule_name = config.regions[args.region].schedule
    else:
        print(f"unknown region {args.region!r}; known: {', '.join(config.team_codes)}", file=sys.stderr)
        return 2
    if args.at:
        try:
            at = datetime.fromisoformat(args.at)
        except ValueError:
            print("--at takes an ISO 8601 time, e.g. 2025-11-21T16:59:59+01:00", file=sys.stderr)
            return 2
        at = at.replace(tzinfo=AMSTERDAM) if at.tzinfo is None else at
        shifted = False
    else:  # the service's own clock: GATEWAY_FAKE_TIME shifts it here as it does there
        at = make_clock(settings.fake_time)()
        shifted = settings.fake_time is not None
    state = state_at(resolve(schedule_name, config.schedules), at)
    next_change = state.next_change.astimezone(AMSTERDAM).isoformat() if state.next_change else None
    result = {
        "region": args.region,
        "schedule": schedule_name,
        "at": at.astimezone(AMSTERDAM).isoformat(),
        "open": state.open,
        "reason": state.reason,
        "next_change": next_change,
        "fake_time": shifted,
    }
    if args.json:
        print(orjson.dumps(result).decode())
    else:
        word = "OPEN" if state.open else "CLOSED"
        print(f"{args.region} ({schedule_name}) at {result['at']}: {word} ({state.reason})")
        print(f"next change: {next_change or 'never'}")
        if shifted:
            print("note: GATEWAY_FAKE_TIME is set: this is the shifted clock the service uses, not real time")
    return 0


def _hash_password(args: argparse.Namespace, settings: Settings) -> int:
    """Read a password on standard input (one line) and print its hash for the configuration."""
    from gateway.support.passwords import hash_password

    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        print("no password on standard input", file=sys.stderr)
        return 2
    if len(password) < 12:
        print("a password needs at least 12 characters", file=sys.stderr)
        return 2
    print(hash_password(password))
    return 0


def _rabbitmq_definitions(args: argparse.Namespace, settings: Settings) -> int:
    """Print RabbitMQ definitions: a user per role (and a desk user per team) with only the
    permissions that role needs, for `rabbitmqctl import_definitions`."""
    from gateway.broker.permissions import definitions

    config = _load(args.config or settings.config_dir)
    if config is None:
        return 1
    passwords: dict[str, str] = {}
    if args.passwords:
        try:
            passwords = orjson.loads(open(args.passwords, "rb").read())  # noqa: SIM115
        except (OSError, orjson.JSONDecodeError) as exc:
            print(f"cannot read {args.passwords}: {type(exc).__name__}", file=sys.stderr)
            return 2
    fanouts = tuple(name for kind in kinds().values() for name in kind.fanout_exchanges)
    described = definitions(config, args.vhost, passwords, fanouts)
    print(orjson.dumps(described, option=orjson.OPT_INDENT_2).decode())
    return 0


def _audit_verify(args: argparse.Namespace, settings: Settings) -> int:
    """Walk the access log's chain: exit 0 when it holds, 1 naming the first broken record."""
    if settings.database_url is None:
        print("gateway: set GATEWAY_DATABASE_URL to the database that holds the access log", file=sys.stderr)
        return 2
    from gateway.service import make_store
    from gateway.store.identity import AuditLog

    async def verify() -> tuple[int, Any]:
        store = make_store(settings.database_url)
        try:
            await store.start()  # the schema is migrated, as a starting process would
            return await AuditLog(store).verify()
        finally:
            await store.close()

    count, broken = asyncio.run(verify())
    if args.json:
        print(orjson.dumps({
            "records": count, "intact": broken is None,
            "broken_at": broken.seq if broken else None, "problem": broken.problem if broken else None,
        }).decode())  # fmt: skip
    elif broken is None:
        print(f"access log intact: {count} records, each linked to the one before")
    else:
        print(f"access log BROKEN at record {broken.seq}: {broken.problem}", file=sys.stderr)
    return 0 if broken is None else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway", description="The Veilig Thuis messaging gateway")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the service")
    run.add_argument("--port", type=int, help="HTTP port (overrides GATEWAY_HTTP_PORT)")
    run.add_argument("--host", help="address to listen on (default GATEWAY_HTTP_HOST or 127.0.0.1)")
    run.add_argument("--config", help="configuration directory (overrides GATEWAY_CONFIG)")
    run.add_argument(
        "--role",
        action="append",
        choices=["ingest", "router", "outbound", "desk"],
        help="run only this role (repeatable); default: every role in one process",
    )
    run.set_defaults(func=_run)

    check = commands.add_parser("check-config", help="validate a configuration directory")
    check.add_argument("directory", nargs="?", help="default: GATEWAY_CONFIG or config/")
    check.set_defaults(func=_check_config)

    topology = commands.add_parser("topology", help="declare the broker topology (idempotent)")
    topology.add_argument("--config", help="configuration directory")
    topology.add_argument("--dry-run", action="store_true", help="print it, declare nothing")
    topology.set_defaults(func=_topology)

    schedule = commands.add_parser("schedule", help="show a region's schedule state and next change")
    schedule.add_argument("region", help="a region code from the configuration, or 'national'")
    schedule.add_argument("--at", help="ISO 8601 time (local Amsterdam time if no offset); default now")
    schedule.add_argument("--json", action="store_true", help="print one JSON object")
    schedule.add_argument("--config", help="configuration directory")
    schedule.set_defaults(func=_schedule)

    hashing = commands.add_parser(
        "hash-password", help="read a password on standard input, print the hash the configuration takes"
    )
    hashing.set_defaults(func=_hash_password)

    rabbit = commands.add_parser(
        "rabbitmq-definitions", help="print RabbitMQ definitions with a user per role and least privileges"
    )
    rabbit.add_argument("--vhost", default="/", help="the vhost the gateway uses")
    rabbit.add_argument("--passwords", help="a JSON file {user: password}; users without one cannot sign in")
    rabbit.add_argument("--config", help="configuration directory")
    rabbit.set_defaults(func=_rabbitmq_definitions)

    data = commands.add_parser(
        "data", help="what people wrote, encrypted at rest (GATEWAY_DATA_KEYS, GATEWAY_CHANNEL_DATA_KEYS)"
    )
    data_commands = data.add_subparsers(dest="data_command", required=True)
    rotate = data_commands.add_parser(
        "rotate", help="re-encrypt stored values under each keyring's newest key, in batches, service running"
    )
    rotate.add_argument("--batch", type=int, default=500, help="rows per transaction (default 500)")
    rotate.add_argument("--pause", type=float, default=0.05, help="seconds between batches (default 0.05)")
    rotate.add_argument("--json", action="store_true", help="print the counts as JSON")
    rotate.set_defaults(func=_data_rotate)
    new_key = data_commands.add_parser("new-key", help="print a new entry (id:key) for a data keyring")
    new_key.add_argument("id", help="the key's id: 1-16 of a-z, 0-9 and - (for example 2026-12)")
    new_key.set_defaults(func=_data_new_key)
    db = commands.add_parser("db", help="the database schema")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    migrate = db_commands.add_parser(
        "migrate", help="migrate GATEWAY_DATABASE_URL to the newest schema (as the owner; then roles.sql)"
    )
    migrate.set_defaults(func=_db_migrate)
    keys = commands.add_parser("keys", help="the gateway's keys, one per purpose and role")
    keys_commands = keys.add_subparsers(dest="keys_command", required=True)
    generate = keys_commands.add_parser(
        "generate", help="print a complete set of fresh keys as an env file (each line names its roles)"
    )
    generate.add_argument("--json", action="store_true", help="print one JSON object instead")
    generate.add_argument(
        "--from-secret",
        action="store_true",
        help="moving from GATEWAY_SECRET_KEY alone: keep its pseudonyms and its data key (read from "
        "the environment) beside the new keys",
    )
    generate.add_argument("--data-key-id", default="k1", help="the new data key's id (default k1)")
    generate.set_defaults(func=_keys_generate)
    audit = commands.add_parser("audit", help="the access log (NEN 7513)")
    audit_commands = audit.add_subparsers(dest="audit_command", required=True)
    verify = audit_commands.add_parser(
        "verify", help="check that no record was edited, inserted or removed (exit 1 names the first)"
    )
    verify.add_argument("--json", action="store_true", help="print one JSON object")
    verify.set_defaults(func=_audit_verify)

    report = commands.add_parser(
        "report", help="the figures of a team or the country for a period (docs/reports.md); recorded"
    )
    report.add_argument("--team", default="all", help="a region code, national, or all (the default)")
    report.add_argument("--period", help="ISO week 2026-W48, inventory period 2026-P24, month 2026-11")
    report.add_argument("--from", dest="start", help="the first day, YYYY-MM-DD (with --to)")
    report.add_argument("--to", dest="end", help="the last day, YYYY-MM-DD, included")
    report.add_argument("--format", choices=["json", "csv"], default="json", help="default json")
    report.add_argument("--config", help="configuration directory (overrides GATEWAY_CONFIG)")
    report.set_defaults(func=_report)

    for kind in kinds().values():  # a kind's own subcommands (`gateway telegram set-webhook`)
        kind.add_commands(commands)
    return parser


def _report(args: argparse.Namespace, settings: Settings) -> int:
    """Print a report (JSON or CSV) from GATEWAY_DATABASE_URL; the export is in the access
    log as the operator's. Exit 2 for a bad period, team or configuration."""
    if settings.database_url is None:
        print("gateway: set GATEWAY_DATABASE_URL to the database the desk writes", file=sys.stderr)
        return 2
    from gateway.config.live import LiveConfig
    from gateway.domain.messages import Rejected
    from gateway.domain.reports import PeriodError, parse_period
    from gateway.roles.reports import Reports
    from gateway.service import make_store
    from gateway.store.identity import AuditLog
    from gateway.web.reports_api import csv_text

    config = _load(args.config or settings.config_dir)
    if config is None:
        return 2

    async def run() -> dict[str, Any]:
        store = make_store(settings.database_url)
        try:
            await store.start()
            reports = Reports(store, LiveConfig(config, kinds()), AuditLog(store))
            period = parse_period(args.period, args.start, args.end, reports.today())
            return await reports.report_for_operator(args.team, period)
        finally:
            await store.close()

    try:
        found = asyncio.run(run())
    except PeriodError as problem:
        print(f"gateway: {problem}", file=sys.stderr)
        return 2
    except Rejected as refusal:
        print(f"gateway: {refusal.detail}", file=sys.stderr)
        return 2
    if args.format == "csv":
        sys.stdout.write(csv_text(found))
    else:
        print(orjson.dumps(found, option=orjson.OPT_INDENT_2).decode())
    return 0


def _data_rotate(args: argparse.Namespace, settings: Settings) -> int:
    """Re-encrypt under the newest key of each keyring given: the desk's tables under
    GATEWAY_DATA_KEYS, the channel kinds' under GATEWAY_CHANNEL_DATA_KEYS. Exit 0 when
    nothing is left under older keys, 1 when values did not open (their key is not in
    the keyring)."""
    if settings.database_url is None or (settings.data_keys is None and settings.channel_data_keys is None):
        print("gateway: set GATEWAY_DATABASE_URL and GATEWAY_DATA_KEYS and/or GATEWAY_CHANNEL_DATA_KEYS "
              "(newest key first)", file=sys.stderr)  # fmt: skip
        return 2
    from adapters.registry import kinds
    from gateway.service import make_store
    from gateway.store.rotation import CORE_COLUMNS, Rotated, rotate
    from gateway.support.fieldcrypt import CHANNEL_DATA_KEYS, DATA_KEYS, EncryptedColumn, FieldCipher

    kind_columns = tuple(c for kind in kinds().values() for c in kind.encrypted_columns)
    work: list[tuple[FieldCipher, tuple[EncryptedColumn, ...]]] = []
    try:
        if settings.data_keys is not None:
            work.append((FieldCipher.from_env(settings.data_keys, DATA_KEYS), CORE_COLUMNS))
        if settings.channel_data_keys is not None:
            work.append((FieldCipher.from_env(settings.channel_data_keys, CHANNEL_DATA_KEYS), kind_columns))
    except ValueError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 2

    async def run() -> list[Rotated]:
        store = make_store(settings.database_url)
        try:
            await store.start()
            return [await rotate(store, c, cols, batch=args.batch, pause=args.pause) for c, cols in work]
        finally:
            await store.close()

    results = asyncio.run(run())
    newest = {table: result.newest for result in results for table in result.rotated}
    rotated = {table: n for result in results for table, n in result.rotated.items()}
    unreadable = {table: n for result in results for table, n in result.unreadable.items()}
    locked = {table: n for result in results for table, n in result.skipped_locked.items()}
    if args.json:
        summary = {"newest": newest, "rotated": rotated, "unreadable": unreadable, "left_locked": locked}
        print(orjson.dumps(summary).decode())
    else:
        for table, count in rotated.items():
            print(f"{table}: {count} re-encrypted under {newest[table]}, {unreadable[table]} unreadable, "
                  f"{locked[table]} in use (run again)")  # fmt: skip
    return 1 if any(unreadable.values()) else 0


def _data_new_key(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.support.fieldcrypt import generate_key

    try:
        print(generate_key(args.id))
    except ValueError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 2
    return 0


def _db_migrate(args: argparse.Namespace, settings: Settings) -> int:
    """What every starting process does first, alone: for a deployment whose roles sign in
    with database roles that may not create tables (deploy/postgres/roles.sql)."""
    if settings.database_url is None:
        print("gateway: set GATEWAY_DATABASE_URL to the database, as its owner", file=sys.stderr)
        return 2
    from gateway.service import make_store

    async def run() -> None:
        store = make_store(settings.database_url)
        try:
            await store.start()
        finally:
            await store.close()

    asyncio.run(run())
    print("database migrated to the newest schema")
    return 0


KEY_ROLES = {  # what `keys generate` says each key is and who holds it (docs/operations.md, Keys)
    "GATEWAY_PSEUDONYM_KEY": "pseudonyms and conversation ids. Roles: ingest",
    "GATEWAY_SEAL_PUBLIC_KEY": "seals reply handles (cannot open them). Roles: ingest",
    "GATEWAY_SEAL_PRIVATE_KEY": "opens reply handles. Roles: outbound, desk (reveal, person left)",
    "GATEWAY_DESK_SESSION_KEY": "CSRF, OpenID sign-in, recovery codes, TOTP secrets. Roles: desk",
    "GATEWAY_PAGES_KEY": "channel pages (Masker 19's CSRF tokens). Roles: ingest",
    "GATEWAY_DATA_KEYS": "the desk's transcripts, notes, attachments at rest; newest first. Roles: desk",
    "GATEWAY_CHANNEL_DATA_KEYS": "web chat replies at rest; newest first. Roles: outbound, ingest",
}


def _keys_generate(args: argparse.Namespace, settings: Settings) -> int:
    """Print fresh keys, one variable a line under a comment naming its roles. Nothing is
    written anywhere: redirect it into the deployment's secret store or env file."""
    from gateway.support import keys
    from gateway.support.fieldcrypt import CHANNEL_DATA_KEYS, DATA_KEYS, DERIVED_KEY_ID, generate_key

    values = keys.generate()
    try:
        keyrings = {variable: generate_key(args.data_key_id) for variable in (DATA_KEYS, CHANNEL_DATA_KEYS)}
    except ValueError as exc:
        print(f"gateway: --data-key-id: {exc}", file=sys.stderr)
        return 2
    if args.from_secret:
        if settings.secret_key is None:
            print("gateway: --from-secret reads GATEWAY_SECRET_KEY from the environment; it is not set",
                  file=sys.stderr)  # fmt: skip
            return 2
        if args.data_key_id == DERIVED_KEY_ID:
            print(f"gateway: --data-key-id {DERIVED_KEY_ID} is the try-out's key's id", file=sys.stderr)
            return 2
        values[keys.PSEUDONYM] = keys.pseudonym_key_from_secret(settings.secret_key)
        for variable in keyrings:
            keyrings[variable] += "," + keys.data_key_entry_from_secret(
                settings.secret_key, DERIVED_KEY_ID, variable
            )
    values.update(keyrings)
    if args.json:
        print(orjson.dumps(values, option=orjson.OPT_INDENT_2).decode())
        return 0
    print("# The gateway's keys (gateway keys generate). Give each role only the lines naming it;")
    print("# never commit this file. docs/operations.md, Keys: what each is and how to rotate it.")
    if args.from_secret:
        print("# --from-secret: the pseudonym key and the second data key continue GATEWAY_SECRET_KEY's;")
        print("# keep GATEWAY_SECRET_KEY on outbound and desk only, until the migration window ends.")
    for name, value in values.items():
        print(f"# {KEY_ROLES[name]}")
        print(f"{name}={value}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except ValueError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 2
    kind_command = getattr(args, "kind_command", None)
    if kind_command is not None:
        config = _load(args.config or settings.config_dir)
        return 1 if config is None else int(kind_command(args, config))
    return int(args.func(args, settings))


if __name__ == "__main__":
    sys.exit(main())
