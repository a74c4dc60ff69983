"""A key and a database user per role, with the real processes, RabbitMQ and PostgreSQL.

The ingest, given only its own keys and signing in to PostgreSQL as its own user,
accepts and publishes a webhook, seals the reply handle (g2) and signs a pharmacy in,
but holds nothing that opens the handle, serves no desk and cannot read the desk's
tables; the outbound, with the private key, opens the handle and the reply reaches the
provider. deploy/postgres/roles.sql is applied as a deployment applies it (psql, after
the owner's migrations)."""

from __future__ import annotations

import asyncio
import re
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from aiohttp import ClientSession, DummyCookieJar
from yarl import URL

from adapters.twilio.cases import SMS_CHANNEL
from gateway.domain.envelope import Envelope
from gateway.service import load_config, make_store
from gateway.support import keys
from gateway.support.fieldcrypt import generate_key
from gateway.support.keys import Keyring, MissingKey
from tests.conftest import ROOT, ServiceProcess, clean_state, drain, inbound_queues
from tests.fakes import FakeProvider
from tests.integration.test_outbound import (
    MESSAGES_PATH,
    OPEN_MONDAY,
    PERSON,
    REPLY,
    provider_config,
    publish_reply,
    twilio_inbound,
)

pytestmark = pytest.mark.broker

ROLES_SQL = ROOT / "deploy" / "postgres" / "roles.sql"
ROLES = ("ingest", "router", "outbound", "desk")
INGEST_KEYS = (
    "GATEWAY_PSEUDONYM_KEY",
    "GATEWAY_SEAL_PUBLIC_KEY",
    "GATEWAY_PAGES_KEY",
    "GATEWAY_CHANNEL_DATA_KEYS",
)


async def as_owner(url: str, *statements: str) -> None:
    connection = await asyncpg.connect(url)
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


def apply_roles(owner_url: str, prefix: str, passwords: dict[str, str]) -> None:
    variables = [arg for role in ROLES for arg in ("-v", f"{role}_password={passwords[role]}")]
    subprocess.run(
        ["psql", owner_url, "-q", "-v", "ON_ERROR_STOP=1", "-v", f"role_prefix={prefix}", *variables,
         "-f", str(ROLES_SQL)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip


@pytest.fixture
def role_urls(database_admin_url: str) -> Iterator[dict[str, str]]:
    """A fresh database migrated by its owner, then roles.sql: the URL each role signs in with."""
    name = f"gw_keys_{uuid.uuid4().hex[:10]}"
    prefix = f"gwt{uuid.uuid4().hex[:8]}"  # the test's own roles, beside anyone else's
    asyncio.run(as_owner(database_admin_url, f'CREATE DATABASE "{name}"'))
    owner = URL(database_admin_url).with_path("/" + name)

    async def migrate() -> None:
        store = make_store(str(owner))
        await store.start()
        await store.close()

    passwords = {role: uuid.uuid4().hex for role in ROLES}
    try:
        asyncio.run(migrate())
        apply_roles(str(owner), prefix, passwords)
        apply_roles(str(owner), prefix, passwords)  # rerun after an upgrade: the same grants
        urls = {
            role: str(owner.with_user(f"{prefix}_{role}").with_password(passwords[role])) for role in ROLES
        }
        yield {"owner": str(owner), **urls}
    finally:
        asyncio.run(as_owner(database_admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        asyncio.run(
            as_owner(database_admin_url, *(f'DROP ROLE IF EXISTS "{prefix}_{role}"' for role in ROLES))
        )


async def denied(url: str, statement: str) -> bool:
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(statement)
    except asyncpg.InsufficientPrivilegeError:
        return True
    finally:
        await connection.close()
    return False


SESSION_ROW = (
    "INSERT INTO sessions (token_hash, public_id, realm, account, name, team, role, method, stage, "
    "credential_stamp, created_at, last_seen_at, expires_at) VALUES ('{hash}', '{public}', '{realm}', "
    "'demo-zob', 'x', 'zuidoost-brabant', 'counsellor', 'password', 'full', 's', now(), now(), "
    "now() + interval '1 hour')"
)


def session_row(realm: str) -> str:
    return SESSION_ROW.format(hash=uuid.uuid4().hex * 2, public=uuid.uuid4().hex[:24], realm=realm)


async def test_the_desk_role_reads_its_tables_and_the_ingest_role_cannot(role_urls: dict[str, str]) -> None:
    await as_owner(
        role_urls["owner"],
        "INSERT INTO desk_conversations (conversation_id, team, channel_kind, channel_instance, status, "
        "reply_handle, waiting_since, last_activity_at) VALUES ('c_1', 'zuidoost-brabant', 'sms', "
        "'sms-zuidoost-brabant', 'waiting', 'g2.x', now(), now())",
    )
    ingest, desk = role_urls["ingest"], role_urls["desk"]
    for table in (
        "desk_messages",
        "desk_attachments",
        "desk_handovers",
        "desk_registrations",
        "desk_answers",
        "report_contacts",
    ):
        assert await denied(ingest, f"SELECT * FROM {table}"), table  # noqa: S608 - fixed names
        assert not await denied(desk, f"SELECT * FROM {table}"), table  # noqa: S608
    assert await denied(ingest, "SELECT reply_handle FROM desk_conversations")
    assert await denied(ingest, "UPDATE desk_conversations SET status = 'closed'")
    assert not await denied(
        ingest, "SELECT conversation_id, team, status, urgent, waiting_since FROM desk_conversations"
    )
    assert await denied(ingest, "UPDATE audit_log SET reason = 'x'")  # append-only
    assert await denied(desk, "UPDATE audit_log SET reason = 'x'")
    assert await denied(role_urls["router"], "SELECT * FROM sessions")
    assert await denied(role_urls["router"], "SELECT * FROM desk_messages")
    assert await denied(role_urls["outbound"], "SELECT * FROM desk_messages")
    assert await denied(role_urls["outbound"], "SELECT * FROM account_credentials")
    for url in (ingest, desk):
        assert await denied(url, "CREATE TABLE mine (id int)")
    # The ingest signs pharmacies in, and cannot mint a counsellor's session.
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
        await as_owner(ingest, session_row("desk"))
    await as_owner(ingest, session_row("masker19:masker19"))
    await as_owner(desk, session_row("desk"))
    connection = await asyncpg.connect(ingest)
    try:
        assert await connection.fetchval("SELECT count(*) FROM sessions WHERE realm = 'desk'") == 0
    finally:
        await connection.close()


@pytest.fixture
async def split(vhost, role_urls, tmp_path: Path, example_env) -> AsyncIterator[dict]:
    """An ingest process with only the ingest's keys and database user, an outbound process
    with only the private seal key and its own user; the demo pharmacy on."""
    generated = {**keys.generate(), "GATEWAY_CHANNEL_DATA_KEYS": generate_key("w1")}
    twilio = await FakeProvider("twilio").start()
    telegram = await FakeProvider("telegram").start()
    root = provider_config(tmp_path / "config", twilio, telegram)
    await clean_state(vhost[1], role_urls["owner"], load_config(root))
    common = {"GATEWAY_SECRET_KEY": "", "GATEWAY_FAKE_TIME": OPEN_MONDAY, "GATEWAY_DEMO_ACCOUNTS": "1"}
    ingest = ServiceProcess(
        vhost[1], tmp_path / "ingest.log", roles=("ingest",), config_dir=root,
        GATEWAY_DATABASE_URL=role_urls["ingest"], **common, **{k: generated[k] for k in INGEST_KEYS},
    )  # fmt: skip
    outbound = ServiceProcess(
        vhost[1], tmp_path / "outbound.log", roles=("outbound",), config_dir=root,
        GATEWAY_DATABASE_URL=role_urls["outbound"],
        GATEWAY_SEAL_PRIVATE_KEY=generated["GATEWAY_SEAL_PRIVATE_KEY"],
        GATEWAY_CHANNEL_DATA_KEYS=generated["GATEWAY_CHANNEL_DATA_KEYS"], **common,
    )  # fmt: skip
    try:
        await ingest.wait_ready(40)
        await outbound.wait_ready(40)
        yield {"ingest": ingest, "outbound": outbound, "keys": generated, "twilio": twilio, "url": vhost[1],
               "config": root}  # fmt: skip
    finally:
        ingest.stop()
        outbound.stop()
        await twilio.stop()
        await telegram.stop()


async def test_ingest_with_only_its_keys_seals_what_only_outbound_opens(split: dict) -> None:
    ingest: ServiceProcess = split["ingest"]
    body, headers = twilio_inbound(SMS_CHANNEL, "SM" + uuid.uuid4().hex)
    async with ClientSession() as session:
        async with session.post(
            f"{ingest.base}/channels/{SMS_CHANNEL}/webhook", data=body, headers=headers
        ) as response:
            assert response.status == 200, await response.text()
        for path in ("/api/v1/me", "/desk/"):  # the ingest serves no desk to sign in to
            async with session.get(ingest.base + path) as response:
                assert response.status == 404, path
    published = await drain(split["url"], inbound_queues(load_config(split["config"])), idle=1.5)
    assert len(published) == 1
    envelope = Envelope.from_json(published[0].body)
    assert envelope.reply_handle.startswith("g2.") and PERSON[3:] not in envelope.reply_handle
    ingest_keys = Keyring.from_env({name: split["keys"][name] for name in INGEST_KEYS})
    assert envelope.sender == ingest_keys.pseudonym(PERSON)
    with pytest.raises(MissingKey, match="GATEWAY_SEAL_PRIVATE_KEY"):
        ingest_keys.unseal(envelope.reply_handle)
    with pytest.raises(MissingKey, match="GATEWAY_DESK_SESSION_KEY"):
        ingest_keys.key_for("desk/csrf")

    await publish_reply(split["url"], envelope)  # as the desk would
    calls = await split["twilio"].wait_for_calls(1)
    assert len(calls) == 1 and calls[0].path == MESSAGES_PATH
    assert calls[0].fields["To"] == PERSON and calls[0].fields["Body"] == REPLY
    for process in (ingest, split["outbound"]):
        logs = process.logs()
        assert PERSON not in logs and envelope.reply_handle not in logs
        assert all(value not in logs for value in split["keys"].values())


async def test_a_pharmacy_signs_in_through_the_ingest_as_its_database_user(split: dict) -> None:
    ingest: ServiceProcess = split["ingest"]
    # The example configuration keeps its cookies Secure: over plain HTTP they go by hand.
    async with ClientSession(base_url=ingest.base, cookie_jar=DummyCookieJar()) as session:
        async with session.get("/channels/masker19/") as response:
            assert response.status == 200
            csrf = re.search(r'name="csrf" value="([^"]+)"', await response.text())
            cookies = {name: morsel.value for name, morsel in response.cookies.items()}
        assert csrf is not None and cookies
        form = {"apotheek": "demo-apotheek", "wachtwoord": "masker19-demo", "csrf": csrf.group(1)}
        async with session.post(
            "/channels/masker19/login", data=form, cookies=cookies, allow_redirects=False
        ) as response:
            assert response.status == 303, await response.text()
            cookies |= {name: morsel.value for name, morsel in response.cookies.items()}
        async with session.get("/channels/masker19/", cookies=cookies) as response:
            assert response.status == 200 and "Afmelden" in await response.text()
    assert "Traceback" not in ingest.logs() and "InsufficientPrivilege" not in ingest.logs()
