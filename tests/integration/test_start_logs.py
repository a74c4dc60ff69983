"""What a real `gateway run` says as it starts: library lines that read, and the warnings."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator

import pytest
from yarl import URL

from tests.conftest import ServiceProcess, as_admin

pytestmark = pytest.mark.broker


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
