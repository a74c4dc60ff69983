"""What people wrote is not in the database in clear, and a new data key can be brought
in while the service runs: real processes, PostgreSQL (pg_dump) and RabbitMQ."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest
from aiohttp import ClientSession

from adapters.webchat.store import REPLY_TEXT
from gateway.service import load_config
from gateway.support.fieldcrypt import CHANNEL_DATA_KEYS, DERIVED_KEY_ID, FieldCipher, generate_key
from gateway.support.keys import data_key_entry_from_secret
from tests.conftest import EXAMPLE_SECRETS, ROOT, TEST_SECRET, ServiceProcess, clean_state
from tests.helpers.desk import Counsellors, person_texts
from tests.integration.conftest import (
    OPEN_MONDAY,
    PASSWORD,
    call,
    desk_config,
    listed,
    outbound_beside,
    web_chat_claimed,
)

pytestmark = pytest.mark.broker

NUMBER = "0612345678"
MARKER = "KLAPROOS-7731"  # a word no table holds unless a message does


def pg_dump(database_url: str) -> str:
    pg_dump = shutil.which("pg_dump")
    assert pg_dump, "pg_dump is missing (Debian's postgresql-client); scripts/test installs it"
    done = subprocess.run([pg_dump, "--data-only", database_url], capture_output=True, text=True, check=True)
    return done.stdout


async def test_a_whole_conversation_leaves_no_text_number_or_marker_in_a_dump(desks) -> None:
    token, base = desks["tokens"]["anna-zob"], desks["a"].base
    await person_texts(base, "dump", "Hij slaat me. Bel me op " + f"{NUMBER}, {MARKER}-bericht")
    (summary,) = await listed(desks, "anna-zob")
    path = f"/api/v1/conversations/{summary['conversation_id']}"
    assert (await call(base, "POST", f"{path}/claim", token))[0] == 200
    note = {"text": f"{MARKER}-notitie {NUMBER}"}
    assert (await call(base, "POST", f"{path}/notes", token, note))[0] == 201
    assert (await call(base, "POST", f"{path}/reply", token, {"text": f"{MARKER}-antwoord"}))[0] == 202
    status, _ = await call(
        base, "POST", f"{path}/transfer", token, {"team": "national", "reason": f"{MARKER}-overdracht"}
    )
    assert status in (200, 202)
    status, seen = await call(base, "GET", path, desks["tokens"]["dirk-landelijk"])
    assert status == 200 and MARKER in seen["handovers"][0]["note"]  # readable for the desk
    first = f"Hij slaat me. Bel me op {NUMBER}, {MARKER}-bericht"
    assert [e["text"] for e in seen["transcript"]][:1] == [first]

    dump = await asyncio.to_thread(pg_dump, desks["database_url"])
    assert "desk_messages" in dump and summary["conversation_id"] in dump  # the dump is the real one
    for secret in (MARKER, NUMBER, "Hij slaat", "+3161"):
        assert secret not in dump, f"{secret!r} is in the database in clear"


async def test_a_web_chat_reply_is_stored_encrypted_and_reaches_the_person_readable(desks, tmp_path) -> None:
    """The counsellor's reply waits in webchat_replies for the person's socket: encrypted
    under the channel data keys (outbound writes it, the socket's process reads it), and
    `gateway data rotate` re-encrypts it with GATEWAY_CHANNEL_DATA_KEYS."""
    tokens, a = desks["tokens"], desks["a"]
    outbound = outbound_beside(desks, tmp_path / "outbound.log")
    try:
        await outbound.wait_ready(40)
        async with (
            ClientSession() as session,
            session.ws_connect(
                f"{a.base}/channels/webchat-zuidoost-brabant/socket", headers={"Origin": a.base}
            ) as socket,
        ):
            c = await web_chat_claimed(desks, socket, f"{MARKER}-chat, mijn nummer is {NUMBER}")
            reply = {"text": f"{MARKER}-webantwoord: bel gerust"}
            assert (await call(a.base, "POST", c + "/reply", tokens["anna-zob"], reply))[0] == 202
            while (frame := await socket.receive_json(timeout=20))["type"] != "reply":
                pass
            assert frame["text"] == reply["text"]
            dump = await asyncio.to_thread(pg_dump, desks["database_url"])
            assert "webchat_replies" in dump
            for secret in (MARKER, NUMBER, "bel gerust"):
                assert secret not in dump, f"{secret!r} is in the database in clear"
            connection = await asyncpg.connect(desks["database_url"])
            try:
                assert await connection.fetchval("SELECT key_id FROM webchat_replies") == DERIVED_KEY_ID
            finally:
                await connection.close()

            newest = generate_key("w1")
            derived = data_key_entry_from_secret(TEST_SECRET, DERIVED_KEY_ID, CHANNEL_DATA_KEYS)
            rotation = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "gateway.cli", "data", "rotate", "--json",
                env={"PATH": "/usr/bin:/bin", "GATEWAY_DATABASE_URL": desks["database_url"],
                     "GATEWAY_CHANNEL_DATA_KEYS": f"{newest},{derived}"},
                cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, err = await rotation.communicate()
            assert rotation.returncode == 0, err.decode()[-2000:]
            summary = json.loads(out.splitlines()[-1])
            assert summary["rotated"] == {"webchat_replies": 1} and "desk_messages" not in summary["rotated"]
            connection = await asyncpg.connect(desks["database_url"])
            try:
                row = await connection.fetchrow("SELECT message_id, key_id, text FROM webchat_replies")
            finally:
                await connection.close()
            opened = FieldCipher.from_env(newest).decrypt_text(
                row["key_id"], row["text"], REPLY_TEXT.context(row["message_id"])
            )
            assert row["key_id"] == "w1" and opened == reply["text"]
    finally:
        outbound.stop()
    assert MARKER not in (tmp_path / "outbound.log").read_text()


def keyed_env(database_url: str, keys: str) -> dict[str, str]:
    return {"GATEWAY_DATABASE_URL": database_url, "GATEWAY_FAKE_TIME": OPEN_MONDAY, "GATEWAY_DATA_KEYS": keys}


@contextlib.asynccontextmanager
async def desk_with(vhost, root: Path, log: Path, env: dict[str, str]):
    process = ServiceProcess(vhost[1], log, roles=("ingest", "router", "desk"), config_dir=root, **env)
    try:
        await process.wait_ready(40)
        yield process
    finally:
        process.stop()


async def key_ids(database_url: str) -> dict[str | None, int]:
    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch("SELECT key_id, count(*) FROM desk_messages GROUP BY key_id")
        return {r["key_id"]: r["count"] for r in rows}
    finally:
        await connection.close()


async def test_rotation_under_load_keeps_every_message_readable(
    vhost, database_url, tmp_path, example_env, password_hash
) -> None:
    root = desk_config(tmp_path / "config", password_hash)
    await clean_state(vhost[1], database_url, load_config(root))
    old, new = generate_key("k1"), generate_key("k2")
    sent: list[str] = []
    counsellors = Counsellors(PASSWORD)

    async def write(base: str, count: int) -> None:
        for _ in range(count):
            text = f"bericht {len(sent)}"
            sent.append(text)
            await person_texts(base, "rotation", text)

    async def transcript(base: str, token: str) -> list[str]:
        status, listing = await call(base, "GET", "/api/v1/conversations", token)
        assert status == 200
        (summary,) = listing["conversations"]
        path = f"/api/v1/conversations/{summary['conversation_id']}"
        status, conversation = await call(base, "GET", path, token)
        assert status == 200
        return [e["text"] for e in conversation["transcript"]]

    async with desk_with(vhost, root, tmp_path / "k1.log", keyed_env(database_url, old)) as first:
        await write(first.base, 30)
    assert await key_ids(database_url) == {"k1": 30}

    # The new key goes first; the old one stays to read what it encrypted.
    async with desk_with(vhost, root, tmp_path / "k2.log", keyed_env(database_url, f"{new},{old}")) as desk:
        async with ClientSession() as session:
            token = (await counsellors.sign_in(session, desk.base, "anna-zob"))["token"]
        assert await transcript(desk.base, token) == sent  # before
        readings: list[list[str]] = []
        stop = asyncio.Event()

        async def keep_reading() -> None:
            while not stop.is_set():
                readings.append(await transcript(desk.base, token))
                await asyncio.sleep(0.05)

        reader = asyncio.create_task(keep_reading())
        writer = asyncio.create_task(write(desk.base, 40))
        rotation = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway.cli", "data", "rotate",
            "--batch", "5", "--pause", "0.05", "--json",
            env={**EXAMPLE_SECRETS, "GATEWAY_SECRET_KEY": TEST_SECRET, "PATH": "/usr/bin:/bin",
                 **keyed_env(database_url, f"{new},{old}")},
            cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await rotation.communicate()
        assert rotation.returncode == 0, err.decode()[-2000:]
        await writer
        stop.set()
        await reader
        assert '"unreadable":{"desk_messages":0' in out.decode()
        # During: every reading was whole and in order, never an unreadable line.
        assert readings and all(r == sent[: len(r)] for r in readings), "a reading during rotation was wrong"
        assert await transcript(desk.base, token) == sent  # after
    counts = await key_ids(database_url)
    assert counts.get("k2") == len(sent) == 70 and set(counts) == {"k2"}, counts

    # The old key can go now.
    async with desk_with(vhost, root, tmp_path / "only-k2.log", keyed_env(database_url, new)) as later:
        async with ClientSession() as session:
            token = (await counsellors.sign_in(session, later.base, "anna-zob"))["token"]
        assert await transcript(later.base, token) == sent
