"""Rate limits behind the load balancer and across processes, with real processes, the
real RabbitMQ, PostgreSQL and Redis: the client is the address a trusted proxy forwards
(and only a trusted one), and a sign-in limit is one limit over two desk processes.

A: ingest and desk, trusting 127.0.0.1 (the test is the load balancer), sharing Redis.
B: desk, the same. C: ingest and desk trusting only 10.0.0.0/8, so the test's forwarded
headers are forgeries; its Redis does not answer.

Every forwarded address is random per run (and every counsellor's id), so concurrent runs
and earlier ones never share a window in the shared Redis; the keys are deleted after.
C's windows are its own (Redis is down), and only one test signs in or starts chats there.
"""

from __future__ import annotations

import asyncio
import ipaddress
import random
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
import redis.asyncio as redis
import yaml
from aiohttp import ClientSession, ClientTimeout

from gateway.service import load_config
from gateway.support.passwords import hash_password
from gateway.support.ratelimit import RedisLimiter
from tests.conftest import EXAMPLE_CONFIG, EXAMPLE_SECRETS, ServiceProcess, clean_state, free_port

pytestmark = [pytest.mark.broker, pytest.mark.asyncio(loop_scope="module")]

CHAT = "webchat-zuidoost-brabant"
STARTS_PER_HOUR = 5
SIGN_INS_PER_MINUTE = 4
SIGN_INS_PER_ACCOUNT = 6
OPEN_MONDAY = "2025-11-24T10:00:00+01:00"


def random_addresses(count: int) -> list[str]:
    """Distinct addresses of the benchmarking range (198.18.0.0/15) and, one in five,
    of the documentation range 2001:db8::/32."""
    picked: set[str] = set()
    while len(picked) < count:
        if len(picked) % 5 == 4:
            picked.add(str(ipaddress.IPv6Address("2001:db8::") + random.getrandbits(64)))
        else:
            picked.add(str(ipaddress.IPv4Address("198.18.0.0") + random.randrange(2, 2**17 - 2)))
    return sorted(picked)


def config_dir(root: Path, accounts: list[str]) -> Path:
    shutil.copytree(EXAMPLE_CONFIG, root)
    password_hash = hash_password("the-right-password-2026")
    counsellors = [
        {
            "id": cid,
            "name": "Test",
            "team": "zuidoost-brabant",
            "role": "counsellor",
            "password_hash": password_hash,
        }
        for cid in accounts
    ]
    (root / "counsellors.yaml").write_text(yaml.safe_dump({"counsellors": counsellors}))
    service = yaml.safe_load((root / "gateway.yaml").read_text())
    service["desk"] = {
        **service.get("desk", {}),
        "secure_cookies": False,
        "sign_ins_per_minute": SIGN_INS_PER_MINUTE,
        "sign_ins_per_account_per_hour": SIGN_INS_PER_ACCOUNT,
    }
    (root / "gateway.yaml").write_text(yaml.safe_dump(service))
    chat_file = root / "channels" / f"{CHAT}.yaml"
    chat = yaml.safe_load(chat_file.read_text())
    chat["settings"]["address_sessions_per_hour"] = STARTS_PER_HOUR
    chat_file.write_text(yaml.safe_dump(chat))
    return root


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(vhost, database_url, redis_url, tmp_path_factory) -> AsyncIterator[dict]:
    """One set of processes for the module: every test keeps to addresses and accounts of
    its own, so they share no window."""
    tmp_path = tmp_path_factory.mktemp("limits")
    accounts = [f"limit-{uuid.uuid4().hex[:8]}" for _ in range(3)]
    root = config_dir(tmp_path / "config", accounts)
    with pytest.MonkeyPatch.context() as env:
        for name, value in EXAMPLE_SECRETS.items():
            env.setenv(name, value)
        await clean_state(vhost[1], database_url, load_config(root))
    common = {"GATEWAY_DATABASE_URL": database_url, "GATEWAY_FAKE_TIME": OPEN_MONDAY}
    shared = {**common, "GATEWAY_TRUSTED_PROXIES": "127.0.0.1/32", "GATEWAY_REDIS_URL": redis_url}
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    processes = {
        "a": ServiceProcess(
            vhost[1], tmp_path / "a.log", roles=("ingest", "desk"), config_dir=root, **shared
        ),
        "b": ServiceProcess(vhost[1], tmp_path / "b.log", roles=("desk",), config_dir=root, **shared),
        "c": ServiceProcess(
            vhost[1],
            tmp_path / "c.log",
            roles=("ingest", "desk"),
            config_dir=root,
            **common,
            GATEWAY_TRUSTED_PROXIES="10.0.0.0/8",
            GATEWAY_REDIS_URL=dead_redis,
        ),
    }
    used: list[str] = []
    try:
        await asyncio.gather(*(p.wait_ready(40) for p in processes.values()))
        yield {**processes, "accounts": accounts, "used": used, "redis_url": redis_url}
    finally:
        for process in processes.values():
            process.terminate()  # all at once: each then takes its shutdown time side by side
        for process in processes.values():
            process.stop()
        await forget_keys(redis_url, used, accounts)


async def forget_keys(url: str, addresses: list[str], accounts: list[str]) -> None:
    """The sign-in windows this test made in the shared Redis (the service's own prefix)."""
    limiter = RedisLimiter(url)
    client = redis.Redis.from_url(url)
    try:
        keys = [limiter.key_for("sign_in_address|desk", address) for address in addresses]
        keys += [limiter.key_for("sign_in_account", f"desk|{account}") for account in accounts]
        await client.delete(*keys)
    finally:
        await client.aclose()
        await limiter.aclose()


async def start_chat(base: str, forwarded_for: str | None) -> str:
    """A web chat start through the 'load balancer': the frame type it is answered."""
    headers = {"Origin": base}
    if forwarded_for is not None:
        headers["X-Forwarded-For"] = forwarded_for
    async with (
        ClientSession(timeout=ClientTimeout(total=30)) as session,
        session.ws_connect(f"{base}/channels/{CHAT}/socket", headers=headers) as socket,
    ):
        await socket.send_json({"type": "start"})
        answer = await socket.receive_json(timeout=10)
        if answer["type"] == "error":
            return str(answer["error"])
        return str(answer["type"])


async def starts(base: str, forwarded: list[str]) -> list[str]:
    gate = asyncio.Semaphore(10)

    async def one(address: str) -> str:
        async with gate:
            return await start_chat(base, address)

    return await asyncio.gather(*(one(address) for address in forwarded))


async def sign_in(base: str, account: str, forwarded_for: str) -> int:
    body = {"counsellor": account, "password": "a-wrong-password-2026"}
    async with (
        ClientSession(timeout=ClientTimeout(total=30)) as session,
        session.post(f"{base}/api/v1/session", json=body, headers={"X-Forwarded-For": forwarded_for}) as r,
    ):
        return r.status


def assert_no_address_logged(world: dict, addresses: list[str]) -> None:
    for name in ("a", "b", "c"):
        logs = world[name].logs()
        assert logs, name
        leaked = [address for address in addresses if address in logs]
        assert not leaked, f"process {name} logged forwarded addresses"


async def test_new_chats_are_limited_per_forwarded_address(world: dict) -> None:
    many, one = random_addresses(50), random_addresses(1)[0]
    world["used"].extend([*many, one])
    assert await starts(world["a"].base, many) == ["started"] * 50
    answers = await starts(world["a"].base, [one] * 50)
    assert answers.count("started") == STARTS_PER_HOUR
    assert answers.count("rate_limited") == 50 - STARTS_PER_HOUR
    assert_no_address_logged(world, [*many, one])


async def test_a_forged_forwarded_for_from_an_untrusted_peer_is_ignored(world: dict) -> None:
    forged = random_addresses(50)
    world["used"].extend(forged)
    answers = await starts(world["c"].base, forged)  # C does not trust 127.0.0.1: all are the peer
    assert answers.count("started") == STARTS_PER_HOUR
    assert answers.count("rate_limited") == 50 - STARTS_PER_HOUR
    assert_no_address_logged(world, forged)


async def test_a_sign_in_limit_holds_over_two_desk_processes(world: dict) -> None:
    [address] = random_addresses(1)
    first, second, _ = world["accounts"]
    world["used"].append(address)
    # One forwarded address, the processes taking turns: the per-address limit is one limit.
    answers = [await sign_in(world["a" if i % 2 else "b"].base, first, address) for i in range(12)]
    assert answers == [401] * SIGN_INS_PER_MINUTE + [429] * (12 - SIGN_INS_PER_MINUTE)
    # One account from ten forwarded addresses, taking turns: the per-account limit is one
    # limit, and the addresses are told apart (else the per-address limit would refuse first).
    spread = random_addresses(10)
    world["used"].extend(spread)
    answers = [await sign_in(world["a" if i % 2 else "b"].base, second, spread[i]) for i in range(10)]
    assert answers == [401] * SIGN_INS_PER_ACCOUNT + [429] * (10 - SIGN_INS_PER_ACCOUNT)
    # Redis holds only hashes: no address, no account.
    client = redis.Redis.from_url(world["redis_url"], decode_responses=True)
    try:
        keys = [key async for key in client.scan_iter(match="gw:rl:*")]
    finally:
        await client.aclose()
    assert keys and not [k for k in keys if any(a in k for a in [address, *spread, first, second])]
    assert_no_address_logged(world, [address, *spread])


async def fallbacks(base: str) -> float:
    async with ClientSession() as session, session.get(base + "/metrics") as r:
        assert r.status == 200
        metrics = await r.text()
    [line] = [line for line in metrics.splitlines() if line.startswith("gateway_rate_limit_fallbacks_total ")]
    return float(line.split()[-1])


async def test_redis_down_refuses_no_one_and_is_counted(world: dict) -> None:
    [address] = random_addresses(1)
    before = await fallbacks(world["c"].base)  # (the web chat's own checks may count there too)
    answers = [
        await sign_in(world["c"].base, world["accounts"][2], address) for _ in range(SIGN_INS_PER_MINUTE + 1)
    ]
    # C's own windows decide (C sees every sign-in as its peer's, 127.0.0.1): limited, never a 5xx.
    assert answers == [401] * SIGN_INS_PER_MINUTE + [429]
    assert await fallbacks(world["c"].base) - before == 2 * len(answers)  # two windows a sign-in
    logs = world["c"].logs()
    # Redis is tried again after each pause, but the outage is told once.
    assert logs.count('"rate_limits_redis_unavailable"') == 1
    assert "limits_per_process" not in logs
    assert_no_address_logged(world, [address])


async def test_hsts_only_for_what_arrived_over_https(world: dict) -> None:
    async with ClientSession() as session:
        https = {"X-Forwarded-Proto": "https", "X-Forwarded-For": random_addresses(1)[0]}
        async with session.get(world["a"].base + "/healthz", headers=https) as r:
            assert r.headers.get("Strict-Transport-Security") == "max-age=31536000"
        async with session.get(world["a"].base + "/healthz") as r:
            assert "Strict-Transport-Security" not in r.headers
        async with session.get(world["a"].base + "/healthz", headers={"X-Forwarded-Proto": "http"}) as r:
            assert "Strict-Transport-Security" not in r.headers
        async with session.get(world["c"].base + "/healthz", headers=https) as r:  # forged
            assert r.status == 200 and "Strict-Transport-Security" not in r.headers
        # /metrics wants the token for anything a proxy forwarded, even from a trusted one.
        async with session.get(world["a"].base + "/metrics", headers=https) as r:
            assert r.status == 403
        async with session.get(world["a"].base + "/metrics") as r:
            assert r.status == 200
