"""The desk's fixtures for the integration tests: two desk processes on one PostgreSQL,
their counsellors signed in (second factor enrolled), and the calls the tests make."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import yaml
from aiohttp import ClientSession, ClientTimeout

from gateway.service import load_config
from gateway.support.passwords import hash_password
from tests.conftest import EXAMPLE_CONFIG, ServiceProcess, clean_state
from tests.helpers.desk import Counsellors, person_texts

PASSWORD = "counsellor-password-2026"
COUNSELLORS = {
    "anna-zob": "zuidoost-brabant",
    "bram-zob": "zuidoost-brabant",
    "carla-rr": "rotterdam-rijnmond",
    "dirk-landelijk": "national",
    "cora-zob": "zuidoost-brabant",
    "nina-landelijk": "national",
}
COORDINATORS = {"cora-zob", "nina-landelijk"}
OPEN_MONDAY = "2025-11-24T10:00:00+01:00"


@pytest.fixture(scope="module")
def password_hash() -> str:
    return hash_password(PASSWORD)


def desk_config(root: Path, password_hash: str) -> Path:
    shutil.copytree(EXAMPLE_CONFIG, root)
    accounts = [
        {
            "id": cid,
            "name": cid.split("-")[0].title(),
            "team": team,
            "role": "coordinator" if cid in COORDINATORS else "counsellor",
            "password_hash": password_hash,
        }
        for cid, team in COUNSELLORS.items()
    ]
    (root / "counsellors.yaml").write_text(yaml.safe_dump({"counsellors": accounts}))
    service = yaml.safe_load((root / "gateway.yaml").read_text())
    service["desk"] = {"secure_cookies": False}
    (root / "gateway.yaml").write_text(yaml.safe_dump(service))
    return root


@contextlib.asynccontextmanager
async def running_desks(
    vhost,
    database_url: str,
    tmp_path: Path,
    password_hash: str,
    desk_file: dict | None = None,
    *,
    edit: Callable[[Path], None] | None = None,
    other_roles: tuple[str, ...] = ("desk",),
) -> AsyncIterator[dict]:
    """Two desk processes (the first also ingest and router) and every counsellor signed
    in; `desk_file`: what desk.yaml holds instead of the example's; `edit` changes the
    configuration directory further; `other_roles`: the second process's roles."""
    root = desk_config(tmp_path / "config", password_hash)
    if desk_file is not None:
        (root / "desk.yaml").write_text(yaml.safe_dump(desk_file))
    if edit is not None:
        edit(root)
    await clean_state(vhost[1], database_url, load_config(root))
    env = {"GATEWAY_DATABASE_URL": database_url, "GATEWAY_FAKE_TIME": OPEN_MONDAY}
    front = ServiceProcess(
        vhost[1], tmp_path / "a.log", roles=("ingest", "router", "desk"), config_dir=root, **env
    )
    other = ServiceProcess(vhost[1], tmp_path / "b.log", roles=other_roles, config_dir=root, **env)
    try:
        await front.wait_ready(40)
        await other.wait_ready(40)
        tokens = {}
        counsellors = Counsellors(PASSWORD)
        async with ClientSession() as session:
            for cid in COUNSELLORS:
                tokens[cid] = (await counsellors.sign_in(session, front.base, cid))["token"]
        yield {
            "counsellors": counsellors,
            "a": front,
            "b": other,
            "url": vhost[1],
            "tokens": tokens,
            "database_url": database_url,
            "root": root,
        }
    finally:
        front.stop()
        other.stop()


@pytest.fixture
async def desks(vhost, database_url, tmp_path, example_env, password_hash) -> AsyncIterator[dict]:
    async with running_desks(vhost, database_url, tmp_path, password_hash) as world:
        yield world


async def call(base: str, method: str, path: str, token: str | None, body: object = None) -> tuple[int, dict]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        ClientSession(timeout=ClientTimeout(total=30)) as session,
        session.request(method, base + path, json=body, headers=headers) as r,
    ):
        text = await r.text()
        return r.status, (json.loads(text) if text else {})


async def person_writes(desks: dict, sender: str, text: str) -> None:
    """By SMS: a channel counsellors can reply on."""
    await person_texts(desks["a"].base, sender, text)


async def listed(desks: dict, counsellor: str, *, via: str = "b", count: int = 1) -> list[dict]:
    for _ in range(100):
        status, body = await call(
            desks[via].base, "GET", "/api/v1/conversations", desks["tokens"][counsellor]
        )
        assert status == 200
        if len(body["conversations"]) >= count:
            return body["conversations"]
        await asyncio.sleep(0.1)
    return body["conversations"]


async def web_chat_claimed(desks: dict, socket, text: str) -> str:
    """A person starts a web chat and writes; anna-zob claims it. The conversation's path."""
    await socket.send_json({"type": "start"})
    assert (await socket.receive_json(timeout=10))["type"] == "started"
    await socket.send_json({"type": "message", "seq": 1, "text": text})
    assert (await socket.receive_json(timeout=10)) == {"type": "ack", "seq": 1}
    for _ in range(100):
        chats = [c for c in await listed(desks, "anna-zob", count=0) if c["channel_kind"] == "webchat"]
        if chats:
            break
        await asyncio.sleep(0.1)
    c = f"/api/v1/conversations/{chats[0]['conversation_id']}"
    assert (await call(desks["a"].base, "POST", c + "/claim", desks["tokens"]["anna-zob"]))[0] == 200
    return c


def outbound_beside(desks: dict, log: Path) -> ServiceProcess:
    """An outbound process on the desks' broker, store and configuration (start it with
    wait_ready, stop it after)."""
    return ServiceProcess(
        desks["url"], log, roles=("outbound",), config_dir=desks["root"],
        GATEWAY_DATABASE_URL=desks["database_url"],
    )  # fmt: skip
