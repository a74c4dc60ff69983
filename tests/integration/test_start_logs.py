"""What a real `gateway run` says as it starts: library lines that read, and the warnings."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from collections.abc import Iterator

import pytest
from yarl import URL

from gateway.service import plain_http_cookie_warning
from tests.conftest import ServiceProcess, as_admin

pytestmark = pytest.mark.broker
EVERY_ADDRESS = "0.0.0.0"  # noqa: S104 - what an operator sets to reach it from another machine


@pytest.fixture
def fresh_database(database_admin_url: str) -> Iterator[str]:
    """A database no migration has run on yet (the session's one may be upgraded already)."""
    name = f"gw_test_{uuid.uuid4().hex[:10]}"
    asyncio.run(as_admin(database_admin_url, f'CREATE DATABASE "{name}"'))
    yield str(URL(database_admin_url).with_path("/" + name))
    asyncio.run(as_admin(database_admin_url, f'DROP DATABASE "{name}" WITH (FORCE)'))


def records(text: str) -> list[dict]:
    lines = []
    for line in text.splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            continue
    return lines


async def test_alembic_lines_carry_their_revisions(vhost, fresh_database, tmp_path) -> None:
    service = ServiceProcess(
        vhost[1], tmp_path / "service.log", roles=("ingest", "router"), GATEWAY_DATABASE_URL=fresh_database
    )
    try:
        await service.wait_ready(40)
    finally:
        service.stop()
    lines = [r for r in records(service.logs()) if str(r.get("logger", "")).startswith("alembic")]
    events = [r["event"] for r in lines]
    assert any(e.startswith("Context impl PostgresqlImpl") for e in events), events
    assert any(e.startswith("Running upgrade  -> 0001") for e in events), events
    assert not any("%s" in e or "%r" in e for e in events), events


def warned(service: ServiceProcess) -> list[dict]:
    return [r for r in records(service.logs()) if r.get("event") == "secure_cookies_over_plain_http"]


async def test_listening_beyond_loopback_with_secure_cookies_warns(vhost, database_url, tmp_path) -> None:
    wide = ServiceProcess(
        vhost[1], tmp_path / "wide.log", roles=("ingest", "router", "desk"),
        GATEWAY_DATABASE_URL=database_url, GATEWAY_HTTP_HOST=EVERY_ADDRESS, port_in_env=True,
    )  # fmt: skip
    narrow = ServiceProcess(
        vhost[1], tmp_path / "narrow.log", roles=("ingest", "router", "desk"),
        GATEWAY_DATABASE_URL=database_url, port_in_env=True,
    )  # fmt: skip
    try:
        await wide.wait_ready(40)
        await narrow.wait_ready(40)
    finally:
        wide.stop()
        narrow.stop()
    [warning] = warned(wide)
    assert warning["level"] == "warning" and warning["host"] == EVERY_ADDRESS
    assert "desk" in warning["secure_cookies"] and "masker19" in warning["secure_cookies"]
    assert "https" in warning["detail"] and "secure_cookies: false" in warning["detail"]
    assert warned(narrow) == []


def test_which_settings_make_the_warning(config) -> None:
    everything = frozenset({"ingest", "router", "desk"})
    for host in ("127.0.0.1", "::1", "localhost"):
        assert plain_http_cookie_warning(config, everything, host) is None
    assert plain_http_cookie_warning(config, frozenset({"desk"}), "192.0.2.5")["secure_cookies"] == ["desk"]
    assert plain_http_cookie_warning(config, frozenset({"router", "outbound"}), "192.0.2.5") is None
    desk = config.service.desk.model_copy(update={"secure_cookies": False})
    service = config.service.model_copy(update={"desk": desk})
    relaxed = dataclasses.replace(config, service=service)
    assert plain_http_cookie_warning(relaxed, frozenset({"desk"}), "192.0.2.5") is None
