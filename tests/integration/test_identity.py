"""Counsellor identity against the real PostgreSQL and RabbitMQ, with two desk
processes: sessions that end everywhere (sign-out, idle, password, configuration),
the SSE stream closing after sign-out, the second factor, timing that says nothing
about which accounts exist, a sign-in burst that leaves the loop free, and the
access log: one record per desk call, refusals included, a chain that shows an
edited record, an action not carried out when its record cannot be written, and a
log only the privacy officer reads. The logs of these runs hold no secret."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pyotp
import pytest
import yaml
from aiohttp import ClientSession, ClientTimeout

from gateway.service import load_config
from gateway.support.passwords import hash_password
from tests.conftest import EXAMPLE_CONFIG, ROOT, TEST_SECRET, ServiceProcess, clean_state, drain
from tests.helpers.desk import Counsellors, person_texts

pytestmark = pytest.mark.broker

PASSWORD = "identity-password-2026"
NEW_PASSWORD = "a-new-password-for-anna"
ACCOUNTS = {
    "anna-zob": ("zuidoost-brabant", "counsellor"),
    "bram-zob": ("zuidoost-brabant", "counsellor"),
    "carla-rr": ("rotterdam-rijnmond", "counsellor"),
    "pim-privacy": ("national", "privacy-officer"),
}
OPEN_MONDAY = "2025-11-24T10:00:00+01:00"


@pytest.fixture(scope="module")
def password_hash() -> str:
    return hash_password(PASSWORD)


def identity_config(root: Path, password_hash: str, **desk: object) -> Path:
    shutil.copytree(EXAMPLE_CONFIG, root)
    accounts = [
        {
            "id": cid,
            "name": cid.split("-")[0].title(),
            "team": team,
            "role": role,
            "password_hash": password_hash,
        }
        for cid, (team, role) in ACCOUNTS.items()
    ]
    (root / "counsellors.yaml").write_text(yaml.safe_dump({"counsellors": accounts}))
    service = yaml.safe_load((root / "gateway.yaml").read_text())
    service["desk"] = {"secure_cookies": False, **desk}
    (root / "gateway.yaml").write_text(yaml.safe_dump(service))
    return root


class World:
    """Two desk processes on one database; every secret the test handled, to look for
    in their logs at the end."""

    def __init__(
        self, a: ServiceProcess, b: ServiceProcess, database_url: str, root: Path, amqp: str
    ) -> None:
        self.a, self.b, self.database_url, self.root, self.amqp = a, b, database_url, root, amqp
        self.counsellors = Counsellors(PASSWORD)
        self.secrets: set[str] = {PASSWORD, NEW_PASSWORD}

    async def sign_in(self, account: str, base: str | None = None) -> dict:
        async with ClientSession() as session:
            answer = await self.counsellors.sign_in(session, base or self.a.base, account)
        self.secrets.update({answer["token"], answer["session_id"], answer["csrf_token"]})
        self.secrets.update(self.counsellors.secrets.values())
        self.secrets.update(answer.get("recovery_codes", []))
        return answer

    async def code(self, account: str) -> str:
        code = await self.counsellors.code(account)
        self.secrets.add(code)
        return code

    async def audit_rows(self) -> list[asyncpg.Record]:
        db = await asyncpg.connect(self.database_url)
        try:
            return await db.fetch("SELECT * FROM audit_log ORDER BY seq")
        finally:
            await db.close()

    async def sql(self, statement: str, *args: object) -> str:
        db = await asyncpg.connect(self.database_url)
        try:
            return await db.execute(statement, *args)
        finally:
            await db.close()


ADMIN_TOKEN = "identity-admin-token-2026"


async def start_world(vhost, database_url, tmp_path: Path, password_hash: str, **desk: object) -> World:
    root = identity_config(tmp_path / "config", password_hash, **desk)
    await clean_state(vhost[1], database_url, load_config(root))
    env = {
        "GATEWAY_DATABASE_URL": database_url,
        "GATEWAY_FAKE_TIME": OPEN_MONDAY,
        "GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN,
    }
    a = ServiceProcess(
        vhost[1], tmp_path / "a.log", roles=("ingest", "router", "desk"), config_dir=root, **env
    )
    b = ServiceProcess(vhost[1], tmp_path / "b.log", roles=("desk",), config_dir=root, **env)
    await a.wait_ready(40)
    await b.wait_ready(40)
    return World(a, b, database_url, root, vhost[1])


@pytest.fixture
async def world(vhost, database_url, tmp_path, example_env, password_hash) -> AsyncIterator[World]:
    world = await start_world(vhost, database_url, tmp_path, password_hash)
    try:
        yield world
    finally:
        world.a.stop()
        world.b.stop()
    logs = world.a.logs() + world.b.logs()
    leaked = [secret for secret in world.secrets if secret and secret in logs]
    assert not leaked, "a password, code, token or session id reached the logs"


async def call(
    base: str, method: str, path: str, token: str | None = None, body: object = None
) -> tuple[int, dict]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        ClientSession(timeout=ClientTimeout(total=30)) as session,
        session.request(method, base + path, json=body, headers=headers) as r,
    ):
        text = await r.text()
        return r.status, (await r.json() if text and r.content_type == "application/json" else {})


async def person_writes(world: World, text: str = "Ik wil iets vertellen") -> None:
    await person_texts(world.a.base, f"p-{uuid.uuid4().hex[:6]}", text)


async def a_waiting_conversation(world: World, token: str) -> str:
    before = {
        c["conversation_id"]
        for c in (await call(world.a.base, "GET", "/api/v1/conversations", token))[1]["conversations"]
    }
    await person_writes(world)
    for _ in range(100):
        listed = (await call(world.a.base, "GET", "/api/v1/conversations", token))[1]["conversations"]
        fresh = [c["conversation_id"] for c in listed if c["conversation_id"] not in before]
        if fresh:
            return fresh[0]
        await asyncio.sleep(0.1)
    raise AssertionError("the message did not reach the desk")


# sessions


async def test_sign_out_ends_the_session_on_the_other_desk_process_too(world) -> None:
    token = (await world.sign_in("anna-zob"))["token"]
    assert (await call(world.b.base, "GET", "/api/v1/me", token))[0] == 200
    status, _ = await call(world.a.base, "DELETE", "/api/v1/session", token)
    assert status == 204
    status, answer = await call(world.b.base, "GET", "/api/v1/me", token)
    assert (status, answer["error"]) == (401, "no_session")
    assert (await call(world.a.base, "GET", "/api/v1/conversations", token))[0] == 401


async def test_an_idle_session_ends_and_an_absolute_end_holds(world) -> None:
    idle = (await world.sign_in("anna-zob"))["token"]
    old = (await world.sign_in("bram-zob"))["token"]
    assert (await call(world.b.base, "GET", "/api/v1/me", idle))[0] == 200
    # 21 minutes without use (the default idle end is 20), and a session past its 10 hours.
    await world.sql(
        "UPDATE sessions SET last_seen_at = now() - interval '21 minutes' WHERE account = 'anna-zob'"
    )
    await world.sql("UPDATE sessions SET expires_at = now() - interval '1 second' WHERE account = 'bram-zob'")
    assert (await call(world.b.base, "GET", "/api/v1/me", idle))[0] == 401
    assert (await call(world.a.base, "GET", "/api/v1/me", old))[0] == 401
    rows = await world.sql("SELECT 1 FROM sessions WHERE account IN ('anna-zob', 'bram-zob')")
    assert rows == "SELECT 0", "an ended session stayed in the database"


async def test_the_session_list_and_ending_one_of_them(world) -> None:
    first = await world.sign_in("anna-zob")
    second = await world.sign_in("anna-zob", world.b.base)
    status, listed = await call(world.a.base, "GET", "/api/v1/sessions", first["token"])
    assert status == 200
    ids = {s["id"]: s["current"] for s in listed["sessions"]}
    assert ids == {first["session_id"]: True, second["session_id"]: False}
    assert all("token" not in s for s in listed["sessions"])
    status, _ = await call(world.a.base, "DELETE", f"/api/v1/sessions/{second['session_id']}", first["token"])
    assert status == 204
    assert (await call(world.b.base, "GET", "/api/v1/me", second["token"]))[0] == 401
    assert (await call(world.b.base, "GET", "/api/v1/me", first["token"]))[0] == 200
    other = (await world.sign_in("bram-zob"))["token"]  # one cannot end someone else's session
    status, answer = await call(world.a.base, "DELETE", f"/api/v1/sessions/{first['session_id']}", other)
    assert (status, answer["error"]) == (404, "unknown_session")
    assert (await call(world.b.base, "GET", "/api/v1/me", first["token"]))[0] == 200


async def test_an_event_stream_closes_within_one_keep_alive_after_sign_out(world) -> None:
    token = (await world.sign_in("anna-zob"))["token"]
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        ClientSession(timeout=ClientTimeout(total=60)) as session,
        session.get(world.b.base + "/api/v1/events", headers=headers) as stream,
    ):
        assert stream.status == 200
        assert (await stream.content.readline()).startswith(b": connected")
        assert (await call(world.a.base, "DELETE", "/api/v1/session", token))[0] == 204
        signed_out = time.monotonic()
        received = b""
        while line := await asyncio.wait_for(stream.content.readline(), 20):
            received += line
        closed_after = time.monotonic() - signed_out
    assert b"event: signed_out" in received
    assert closed_after <= 15 + 2, f"the stream outlived its session by {closed_after:.1f} s"


async def test_a_password_change_ends_every_session(world) -> None:
    one = (await world.sign_in("anna-zob"))["token"]
    two = (await world.sign_in("anna-zob", world.b.base))["token"]
    body = {"current_password": "wrong", "new_password": NEW_PASSWORD}
    status, answer = await call(world.a.base, "POST", "/api/v1/password", one, body)
    assert (status, answer["error"]) == (401, "wrong_credentials")
    body = {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    assert (await call(world.a.base, "POST", "/api/v1/password", one, body))[0] == 204
    for token in (one, two):
        for base in (world.a.base, world.b.base):
            assert (await call(base, "GET", "/api/v1/me", token))[0] == 401
    code = await world.code("anna-zob")
    old = {"counsellor": "anna-zob", "password": PASSWORD, "code": code}
    assert (await call(world.b.base, "POST", "/api/v1/session", None, old))[0] == 401
    new = {"counsellor": "anna-zob", "password": NEW_PASSWORD, "code": code}
    status, answer = await call(world.b.base, "POST", "/api/v1/session", None, new)
    assert status == 200, answer
    world.secrets.update({answer["token"], answer["session_id"]})


async def test_disabling_an_account_ends_its_sessions_on_a_process_not_yet_reloaded(world) -> None:
    token = (await world.sign_in("anna-zob"))["token"]
    accounts = yaml.safe_load((world.root / "counsellors.yaml").read_text())
    for account in accounts["counsellors"]:
        if account["id"] == "anna-zob":
            account["disabled"] = True
    (world.root / "counsellors.yaml").write_text(yaml.safe_dump(accounts))
    world.a.process.send_signal(signal.SIGHUP)  # only a reloads; b still has the old configuration
    for _ in range(100):
        if (await call(world.b.base, "GET", "/api/v1/me", token))[0] == 401:
            break
        await asyncio.sleep(0.1)
    assert (await call(world.b.base, "GET", "/api/v1/me", token))[0] == 401


# the second factor


async def test_enrolment_a_wrong_code_and_recovery_codes_that_work_once(world) -> None:
    base = world.a.base
    status, first = await call(
        base, "POST", "/api/v1/session", None, {"counsellor": "carla-rr", "password": PASSWORD}
    )
    assert status == 200 and first["second_factor"] == "enrol"
    world.secrets.update({first["token"], first["session_id"]})
    status, answer = await call(base, "GET", "/api/v1/conversations", first["token"])
    assert (status, answer["error"]) == (403, "enrol_second_factor")
    status, enrolment = await call(base, "POST", "/api/v1/second-factor", first["token"])
    assert (
        status == 200
        and enrolment["qr_svg"].startswith("<svg")
        and "otpauth://totp/" in enrolment["otpauth_uri"]
    )
    secret = enrolment["secret"]
    world.secrets.add(secret)
    wrong = f"{(int(pyotp.TOTP(secret).now()) + 1) % 1_000_000:06d}"
    status, answer = await call(
        base, "POST", "/api/v1/second-factor/confirm", first["token"], {"code": wrong}
    )
    assert (status, answer["error"]) == (401, "wrong_second_factor")
    world.counsellors.secrets["carla-rr"] = secret
    code = await world.code("carla-rr")
    status, confirmed = await call(
        base, "POST", "/api/v1/second-factor/confirm", first["token"], {"code": code}
    )
    assert status == 200 and len(confirmed["recovery_codes"]) == 10
    world.secrets.update({confirmed["token"], confirmed["session_id"], *confirmed["recovery_codes"]})
    assert (await call(base, "GET", "/api/v1/me", first["token"]))[0] == 401, "enrolling left the old session"
    assert (await call(base, "GET", "/api/v1/conversations", confirmed["token"]))[0] == 200

    sign_in = {"counsellor": "carla-rr", "password": PASSWORD}
    status, answer = await call(base, "POST", "/api/v1/session", None, sign_in)
    assert (status, answer["error"]) == (401, "second_factor_required")
    status, answer = await call(base, "POST", "/api/v1/session", None, {**sign_in, "code": wrong})
    assert (status, answer["error"]) == (401, "wrong_second_factor")
    status, answer = await call(base, "POST", "/api/v1/session", None, {**sign_in, "code": code})
    assert (status, answer["error"]) == (401, "wrong_second_factor"), "a TOTP code worked twice"
    recovery = confirmed["recovery_codes"][3]
    status, answer = await call(world.b.base, "POST", "/api/v1/session", None, {**sign_in, "code": recovery})
    assert status == 200 and answer["method"] == "password+recovery"
    world.secrets.update({answer["token"], answer["session_id"]})
    status, answer = await call(base, "POST", "/api/v1/session", None, {**sign_in, "code": recovery})
    assert (status, answer["error"]) == (401, "wrong_second_factor"), "a recovery code worked twice"


# timing and the event loop


@pytest.fixture
async def open_world(vhost, database_url, tmp_path, example_env, password_hash) -> AsyncIterator[World]:
    """Sign-in limits out of the way, to measure the sign-in itself."""
    world = await start_world(
        vhost,
        database_url,
        tmp_path,
        password_hash,
        sign_ins_per_minute=10_000,
        sign_ins_per_account_per_hour=10_000,
    )
    try:
        yield world
    finally:
        world.a.stop()
        world.b.stop()


async def test_an_unknown_account_takes_as_long_as_a_known_one(open_world) -> None:
    base = open_world.b.base

    async def timed(account: str) -> float:
        start = time.perf_counter()
        status, _ = await call(
            base, "POST", "/api/v1/session", None, {"counsellor": account, "password": "wrong-guess"}
        )
        assert status == 401
        return time.perf_counter() - start

    await timed("anna-zob")  # the first call pays for connecting to the database
    known, unknown = [], []
    for _ in range(50):  # alternating, so the machine's load falls on both alike
        known.append(await timed("anna-zob"))
        unknown.append(await timed("nobody-here"))
    ratio = statistics.median(unknown) / statistics.median(known)
    print(f"sign-in medians: known {statistics.median(known) * 1000:.0f} ms, "
          f"unknown {statistics.median(unknown) * 1000:.0f} ms, ratio {ratio:.2f}")  # fmt: skip
    assert 0.8 <= ratio <= 1.2


async def test_a_sign_in_burst_does_not_delay_healthz(open_world) -> None:
    base = open_world.b.base
    body = {"counsellor": "anna-zob", "password": "wrong-guess"}
    async with ClientSession(timeout=ClientTimeout(total=120)) as session:

        async def attempt() -> None:
            async with session.post(base + "/api/v1/session", json=body) as r:
                assert r.status == 401

        async def health() -> float:
            start = time.perf_counter()
            async with session.get(base + "/healthz") as r:
                assert r.status == 200
            return time.perf_counter() - start

        await health()
        burst = asyncio.gather(*(attempt() for _ in range(20)))
        await asyncio.sleep(0.3)  # the pool is busy now
        delays = []
        while not burst.done():
            delays.append(await health())
            await asyncio.sleep(0.05)
        await burst
    assert len(delays) >= 10, "the burst ended before it could be measured"
    print(f"healthz during a burst of 20 sign-ins: median {statistics.median(delays) * 1000:.1f} ms, "
          f"max {max(delays) * 1000:.1f} ms over {len(delays)}")  # fmt: skip
    assert max(delays) < 0.050


# the access log


async def test_every_desk_call_writes_exactly_its_record_refusals_included(world) -> None:
    anna = (await world.sign_in("anna-zob"))["token"]
    carla = (await world.sign_in("carla-rr"))["token"]
    pim = (await world.sign_in("pim-privacy"))["token"]
    conversation = await a_waiting_conversation(world, anna)
    c = f"/api/v1/conversations/{conversation}"
    rows = [
        # (who, method, path, body) -> (account, action, result, reason, conversation)
        (anna, "GET", "/api/v1/conversations", None, ("anna-zob", "list", "ok", None, None)),
        (anna, "GET", c, None, ("anna-zob", "read", "ok", None, conversation)),
        (carla, "GET", c, None, ("carla-rr", "read", "denied", "other_team", conversation)),
        (
            anna,
            "POST",
            c + "/reply",
            {"text": "hallo"},
            ("anna-zob", "reply", "failed", "not_claimed", conversation),
        ),
        (carla, "POST", c + "/claim", None, ("carla-rr", "claim", "denied", "other_team", conversation)),
        (anna, "POST", c + "/claim", None, ("anna-zob", "claim", "ok", None, conversation)),
        (
            anna,
            "POST",
            c + "/reply",
            {"text": "Fijn dat je schrijft"},
            ("anna-zob", "reply", "ok", None, conversation),
        ),
        (pim, "GET", c, None, ("pim-privacy", "read", "denied", "not_permitted", conversation)),
        (anna, "GET", "/api/v1/audit", None, ("anna-zob", "audit_read", "denied", "not_permitted", None)),
        (
            anna,
            "GET",
            "/api/v1/conversations/c_nope",
            None,
            ("anna-zob", "read", "failed", "unknown_conversation", "c_nope"),
        ),
        (
            anna,
            "POST",
            c + "/transfer",
            {"team": "national", "reason": "acuut"},
            ("anna-zob", "transfer", "ok", None, conversation),
        ),
        (anna, "POST", c + "/close", None, ("anna-zob", "close", "denied", "other_team", conversation)),
        (pim, "GET", "/api/v1/audit", None, ("pim-privacy", "audit_read", "ok", None, None)),
    ]
    for token, method, path, body, expected in rows:
        before = len(await world.audit_rows())
        await call(world.a.base, method, path, token, body)
        written = (await world.audit_rows())[before:]
        assert len(written) == 1, (method, path, [dict(r) for r in written])
        record = written[0]
        got = (
            record["account"],
            record["action"],
            record["result"],
            record["reason"],
            record["conversation_id"],
        )
        assert got == expected, (method, path)
        assert record["method"] == "password+totp"
    sign_ins = [r for r in await world.audit_rows() if r["action"] == "sign_in"]
    assert {r["account"] for r in sign_ins} >= {"anna-zob", "carla-rr", "pim-privacy"}
    status, _ = await call(
        world.a.base, "POST", "/api/v1/session", None, {"counsellor": "anna-zob", "password": "x"}
    )
    assert status == 401
    last = (await world.audit_rows())[-1]
    assert (last["account"], last["action"], last["result"], last["reason"]) == (
        "anna-zob", "sign_in_failed", "failed", "wrong_credentials",
    )  # fmt: skip
    for record in await world.audit_rows():
        assert "Fijn dat je schrijft" not in str(dict(record)) and "hallo" not in str(dict(record))
    async with ClientSession() as session, session.get(world.a.base + "/metrics") as metrics:
        text = await metrics.text()
    assert 'gateway_audit_events_total{action="read",result="denied"}' in text
    assert 'gateway_sign_ins_total{result="wrong_credentials"}' in text
    assert "gateway_sessions_active" in text


async def test_sign_out_and_an_admin_reload_are_recorded(world) -> None:
    world.secrets.add(ADMIN_TOKEN)
    answer = await world.sign_in("bram-zob")
    assert (await call(world.b.base, "DELETE", "/api/v1/session", answer["token"]))[0] == 204
    last = (await world.audit_rows())[-1]
    assert (last["account"], last["action"], last["result"], last["method"]) == (
        "bram-zob", "sign_out", "ok", "password+totp",
    )  # fmt: skip
    assert (await call(world.a.base, "POST", "/admin/reload", ADMIN_TOKEN))[0] == 200
    last = (await world.audit_rows())[-1]
    assert (last["account"], last["action"], last["result"], last["method"]) == (
        "admin", "admin_reload", "ok", "admin-token",
    )  # fmt: skip
    assert (await call(world.a.base, "POST", "/admin/reload", "wrong"))[0] == 401
    assert (await world.audit_rows())[-1]["seq"] == last["seq"], "a refused admin call wrote a record"


async def test_only_the_privacy_officer_reads_the_log_and_reading_is_recorded(world) -> None:
    anna = (await world.sign_in("anna-zob"))["token"]
    pim = (await world.sign_in("pim-privacy"))["token"]
    conversation = await a_waiting_conversation(world, anna)
    await call(world.a.base, "GET", f"/api/v1/conversations/{conversation}", anna)
    status, answer = await call(world.a.base, "GET", "/api/v1/audit", anna)
    assert (status, answer["error"]) == (403, "not_permitted")
    status, answer = await call(world.b.base, "GET", f"/api/v1/audit?conversation={conversation}", pim)
    assert status == 200
    assert [(r["account"], r["action"]) for r in answer["records"]] == [("anna-zob", "read")]
    status, answer = await call(world.b.base, "GET", "/api/v1/audit?action=audit_read", pim)
    assert [(r["account"], r["result"]) for r in answer["records"]] == [
        ("pim-privacy", "ok"),
        ("pim-privacy", "ok"),
        ("anna-zob", "denied"),
    ]
    status, answer = await call(world.b.base, "GET", "/api/v1/audit?action=nonsense", pim)
    assert (status, answer["error"]) == (422, "invalid_request")
    status, answer = await call(world.b.base, "GET", "/api/v1/conversations", pim)
    assert (status, answer["error"]) == (403, "not_permitted"), "the privacy officer read the queue"


def audit_verify(database_url: str) -> subprocess.CompletedProcess[str]:
    env = {"GATEWAY_DATABASE_URL": database_url, "GATEWAY_SECRET_KEY": TEST_SECRET, "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", "audit", "verify"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )


async def test_an_edited_or_removed_record_is_found_by_audit_verify(world) -> None:
    anna = (await world.sign_in("anna-zob"))["token"]
    for _ in range(4):
        await call(world.a.base, "GET", "/api/v1/conversations", anna)
    total = len(await world.audit_rows())
    intact = await asyncio.to_thread(audit_verify, world.database_url)
    assert intact.returncode == 0, intact.stderr
    assert f"{total} records" in intact.stdout
    third = (await world.audit_rows())[2]["seq"]
    await world.sql("UPDATE audit_log SET account = 'someone-else' WHERE seq = $1", third)
    edited = await asyncio.to_thread(audit_verify, world.database_url)
    assert edited.returncode == 1 and f"record {third}:" in edited.stderr, edited.stderr
    await world.sql("UPDATE audit_log SET account = 'anna-zob' WHERE seq = $1", third)  # put it back
    assert (await asyncio.to_thread(audit_verify, world.database_url)).returncode == 0
    await world.sql("DELETE FROM audit_log WHERE seq = $1", third + 1)
    removed = await asyncio.to_thread(audit_verify, world.database_url)
    assert removed.returncode == 1 and f"record {third + 2}:" in removed.stderr, removed.stderr
    await world.sql("DELETE FROM audit_log WHERE seq = (SELECT max(seq) FROM audit_log)")
    assert (await asyncio.to_thread(audit_verify, world.database_url)).returncode == 1


@contextlib.asynccontextmanager
async def audit_inserts_refused(world: World) -> AsyncIterator[None]:
    """A trigger makes every access-log insert fail, as a full disk or a revoked grant would."""
    await world.sql(
        "CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'audit refused by the test'; END $$"
    )
    await world.sql(
        "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION refuse_audit()"
    )
    try:
        yield
    finally:
        await world.sql("DROP TRIGGER refuse_audit ON audit_log")
        await world.sql("DROP FUNCTION refuse_audit()")


async def test_an_action_whose_record_cannot_be_written_is_not_carried_out(world) -> None:
    anna = (await world.sign_in("anna-zob"))["token"]
    conversation = await a_waiting_conversation(world, anna)
    c = f"/api/v1/conversations/{conversation}"
    async with audit_inserts_refused(world):
        status, answer = await call(world.a.base, "POST", c + "/claim", anna)
        assert (status, answer["error"]) == (503, "store_unavailable")
        assert (await call(world.a.base, "GET", c, anna))[0] == 503, "a transcript was shown unrecorded"
    status, seen = await call(world.a.base, "GET", c, anna)
    assert status == 200 and seen["status"] == "waiting", "the claim happened without its record"
    assert (await call(world.a.base, "POST", c + "/claim", anna))[0] == 200
    await drain(world.amqp, ["gw.outbound"])
    async with audit_inserts_refused(world):
        status, _ = await call(world.a.base, "POST", c + "/reply", anna, {"text": "niet verstuurd"})
        assert status == 503
    sent = await drain(world.amqp, ["gw.outbound"], idle=1.5)
    assert not any(b"niet verstuurd" in m.body for m in sent), "a reply went out without its record"
    transcript = (await call(world.a.base, "GET", c, anna))[1]["transcript"]
    assert [e["text"] for e in transcript if e["direction"] == "out"] == []


# passwords, limits, switching the second factor off


async def test_an_old_cheap_hash_is_upgraded_at_sign_in_and_an_admin_reset_still_wins(
    vhost, database_url, tmp_path, example_env, monkeypatch
) -> None:
    from gateway.support import passwords

    with monkeypatch.context() as patched:
        patched.setattr(passwords, "LOG2_N", 15)  # as hashes were made before December 2026
        old_hash = passwords.hash_password(PASSWORD)
    assert old_hash.startswith("scrypt$15$")
    world = await start_world(vhost, database_url, tmp_path, old_hash)
    try:
        await world.sign_in("anna-zob")
        stored = await world.sql("SELECT 1 FROM account_credentials WHERE account = 'anna-zob' "
                                 "AND password_hash LIKE 'scrypt$17$%'")  # fmt: skip
        assert stored == "SELECT 1", "the hash was not upgraded"
        await world.sign_in("anna-zob", world.b.base)  # the upgraded hash verifies
        # An administrator resets the password in counsellors.yaml: that hash wins.
        accounts = yaml.safe_load((world.root / "counsellors.yaml").read_text())
        for account in accounts["counsellors"]:
            if account["id"] == "anna-zob":
                account["password_hash"] = hash_password(NEW_PASSWORD)
        (world.root / "counsellors.yaml").write_text(yaml.safe_dump(accounts))
        for process in (world.a, world.b):
            process.process.send_signal(signal.SIGHUP)
        await asyncio.sleep(1.0)
        code = await world.code("anna-zob")
        old = {"counsellor": "anna-zob", "password": PASSWORD, "code": code}
        assert (await call(world.a.base, "POST", "/api/v1/session", None, old))[0] == 401
        status, answer = await call(
            world.a.base, "POST", "/api/v1/session", None, {**old, "password": NEW_PASSWORD}
        )
        assert status == 200, answer
        world.secrets.update({answer["token"], answer["session_id"]})
    finally:
        world.a.stop()
        world.b.stop()


async def test_sign_ins_are_limited_per_account_whatever_the_address(
    vhost, database_url, tmp_path, example_env, password_hash
) -> None:
    world = await start_world(
        vhost,
        database_url,
        tmp_path,
        password_hash,
        sign_ins_per_minute=1000,
        sign_ins_per_account_per_hour=3,
    )
    try:
        guess = {"counsellor": "anna-zob", "password": "guess"}
        statuses = [(await call(world.b.base, "POST", "/api/v1/session", None, guess))[0] for _ in range(5)]
        assert statuses == [401, 401, 401, 429, 429]
        other = {"counsellor": "bram-zob", "password": "guess"}
        assert (await call(world.b.base, "POST", "/api/v1/session", None, other))[
            0
        ] == 401  # bram is not blocked
        last = (await world.audit_rows())[-2]
        assert (last["account"], last["action"], last["result"], last["reason"]) == (
            "anna-zob", "sign_in_failed", "denied", "too_many_attempts",
        )  # fmt: skip
    finally:
        world.a.stop()
        world.b.stop()


async def test_switching_the_second_factor_off_is_warned_at_start(
    vhost, database_url, tmp_path, example_env, password_hash
) -> None:
    world = await start_world(vhost, database_url, tmp_path, password_hash, second_factor=False)
    try:
        status, answer = await call(
            world.a.base, "POST", "/api/v1/session", None, {"counsellor": "anna-zob", "password": PASSWORD}
        )
        assert status == 200 and answer["second_factor"] == "off" and answer["method"] == "password"
        assert (await call(world.a.base, "GET", "/api/v1/conversations", answer["token"]))[0] == 200
    finally:
        world.a.stop()
        world.b.stop()
    assert "PASSWORD ONLY" in world.a.logs() and "second_factor_off" in world.b.logs()


async def test_the_access_logs_retention_keeps_one_unbroken_chain(database_url, example_env) -> None:
    from datetime import UTC, datetime, timedelta

    from gateway.service import make_store
    from gateway.store.identity import AuditEvent, AuditLog

    store = make_store(database_url)
    await store.start()
    try:
        async with store.transaction() as connection:
            from sqlalchemy import text

            await connection.execute(text("DELETE FROM audit_log"))
            await connection.execute(text("UPDATE audit_head SET seq = 0, hash = repeat('0', 64)"))
        now = datetime.now(UTC)
        for days_ago in (800, 760, 700, 10, 0):
            log = AuditLog(store, clock=lambda d=days_ago: now - timedelta(days=d))
            await log.record(AuditEvent("anna-zob", "password+totp", "read", "ok", conversation_id="c_1"))
        log = AuditLog(store)
        assert await log.forget_before(now - timedelta(days=730)) == 2
        count, broken = await log.verify()
        assert (count, broken) == (3, None)
    finally:
        await store.close()
