"""The limiters: this process's windows and the ones in the real Redis, held to one table
of cases; then what only Redis does (one window for several clients and processes, keys
that name no one, an outage that refuses nobody)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace

import pytest
import redis.asyncio as redis
from aiohttp.test_utils import TestClient, TestServer

from gateway.service import build_service
from gateway.support.ratelimit import Limiter, LocalLimiter, RedisLimiter
from tests.conftest import ROOT, broker_required, free_port, settings_for

ADDRESS = "198.51.100.77"


@contextlib.asynccontextmanager
async def own_prefix(url: str) -> AsyncIterator[str]:
    """A key prefix of this test's own, and every key under it deleted afterwards."""
    prefix = f"gw-test:{uuid.uuid4().hex[:12]}:"
    try:
        yield prefix
    finally:
        client = redis.Redis.from_url(url)
        try:
            keys = [key async for key in client.scan_iter(match=prefix + "*")]
            if keys:
                await client.delete(*keys)
        finally:
            await client.aclose()


@pytest.fixture(params=["local", "redis"])
async def limiter(request: pytest.FixtureRequest) -> AsyncIterator[Limiter]:
    if request.param == "local":
        yield LocalLimiter()
        return
    url = request.getfixturevalue("redis_url")
    async with own_prefix(url) as prefix:
        shared = RedisLimiter(url, prefix=prefix, on_fallback=_no_fallback)
        try:
            yield shared
        finally:
            await shared.aclose()


def _no_fallback() -> None:
    raise AssertionError("Redis did not answer: the case was decided locally")


async def calls(limiter: Limiter, *events: tuple[str, str], limit: int, seconds: int = 60) -> list[bool]:
    return [await limiter.allow(scope, key, limit, seconds) for scope, key in events]


# (limit, [(scope, key), ...], what each call is answered)
CASES = [
    (3, [("s", ADDRESS)] * 5, [True, True, True, False, False]),
    (1, [("s", ADDRESS)] * 3, [True, False, False]),
    (1, [("s", "a"), ("s", "b"), ("t", "a"), ("s", "a"), ("t", "b")], [True, True, True, False, True]),
    (2, [("s", "2001:db8::1"), ("s", "2001:db8::2"), ("s", "2001:db8::1"), ("s", "2001:db8::1")],
     [True, True, True, False]),
    (2, [("s\x1fa", "b"), ("s", "a\x1fb"), ("s\x1fa", "b"), ("s\x1fa", "b")], [True, True, True, False]),
]  # fmt: skip


@pytest.mark.parametrize(("limit", "events", "answers"), CASES)
async def test_the_table(
    limiter: Limiter, limit: int, events: list[tuple[str, str]], answers: list[bool]
) -> None:
    assert await calls(limiter, *events, limit=limit) == answers


async def test_refused_events_do_not_count_and_the_window_slides(limiter: Limiter) -> None:
    event = ("slide", ADDRESS)
    assert await calls(limiter, event, limit=2, seconds=2) == [True]
    await asyncio.sleep(1.0)
    assert await calls(limiter, event, event, limit=2, seconds=2) == [True, False]  # refused: not counted
    await asyncio.sleep(1.2)  # the first event has left the window; the second has not
    assert await calls(limiter, event, event, limit=2, seconds=2) == [True, False]


async def test_concurrent_calls_never_pass_the_limit(limiter: Limiter) -> None:
    answers = await asyncio.gather(*(limiter.allow("burst", ADDRESS, 10, 60) for _ in range(40)))
    assert answers.count(True) == 10


async def test_two_clients_share_one_window(redis_url: str) -> None:
    async with own_prefix(redis_url) as prefix:
        one = RedisLimiter(redis_url, prefix=prefix, on_fallback=_no_fallback)
        two = RedisLimiter(redis_url, prefix=prefix, on_fallback=_no_fallback)
        try:
            answers = [await (one if i % 2 else two).allow("shared", ADDRESS, 4, 60) for i in range(10)]
        finally:
            await one.aclose()
            await two.aclose()
    assert answers == [True] * 4 + [False] * 6


HAMMER = """
import asyncio, sys
from gateway.support.ratelimit import RedisLimiter

async def main():
    limiter = RedisLimiter(sys.argv[1], prefix=sys.argv[2])
    answers = await asyncio.gather(*(limiter.allow("hammer", "198.51.100.77", 15, 60) for _ in range(20)))
    await limiter.aclose()
    print(answers.count(True))

asyncio.run(main())
"""


async def test_two_processes_at_once_pass_the_limit_only_once_together(redis_url: str) -> None:
    async with own_prefix(redis_url) as prefix:
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable, "-c", HAMMER, redis_url, prefix, cwd=ROOT, stdout=subprocess.PIPE
            )
            for _ in range(2)
        ]
        outputs = [await proc.communicate() for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0]
    assert sum(int(out) for out, _ in outputs) == 15


async def test_keys_in_redis_name_no_one_and_expire(redis_url: str) -> None:
    async with own_prefix(redis_url) as prefix:
        limiter = RedisLimiter(redis_url, prefix=prefix, on_fallback=_no_fallback)
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        try:
            session_id = "s_" + uuid.uuid4().hex
            await limiter.allow("webchat_starts|webchat-zuidoost-brabant", ADDRESS, 5, 3600)
            await limiter.allow("sign_in_address|desk", ADDRESS, 5, 60)
            await limiter.allow("webchat_session", session_id, 5, 60)
            keys = [key async for key in client.scan_iter(match=prefix + "*")]
            assert len(keys) == 3
            for key in keys:
                assert ADDRESS not in key and session_id not in key and "webchat" not in key
                assert len(key) == len(prefix) + 64
                members = await client.zrange(key, 0, -1)
                assert all(ADDRESS not in m and session_id not in m for m in members)
                assert 0 < await client.pttl(key) <= 3600 * 1000
            ttls = sorted([await client.pttl(key) for key in keys])
            assert ttls[0] <= 60 * 1000 < ttls[-1]  # each key expires a window after its last event
        finally:
            await limiter.aclose()
            await client.aclose()


@pytest.fixture
def own_redis() -> Iterator[tuple[str, list[str]]]:
    """A port for a Redis of the test's own (not started yet), and the command that starts it."""
    server = shutil.which("redis-server")
    if server is None:
        if broker_required():
            pytest.fail("redis-server is missing (Debian's redis-server package)", pytrace=False)
        pytest.skip("redis-server is missing")
    port = free_port()
    command = [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    yield f"redis://127.0.0.1:{port}/0", command


async def _started(command: list[str], port: int) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        *command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    for _ in range(100):
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return process
        await asyncio.sleep(0.05)
    process.kill()
    raise RuntimeError("redis-server did not start")


def _events(caplog: pytest.LogCaptureFixture) -> list[dict]:
    return [r.msg for r in caplog.records if r.name == "gateway.ratelimit" and isinstance(r.msg, dict)]


async def test_redis_down_refuses_nobody_and_says_so_once_per_outage(
    own_redis: tuple[str, list[str]], caplog: pytest.LogCaptureFixture
) -> None:
    url, command = own_redis
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    fallbacks: list[int] = []
    limiter = RedisLimiter(url, prefix="gw-test:down:", pause=0, on_fallback=lambda: fallbacks.append(1))
    server = None
    try:
        with caplog.at_level(logging.INFO, logger="gateway.ratelimit"):
            # Down: decided by this process's windows, which still limit.
            assert await calls(limiter, *[("down", ADDRESS)] * 3, limit=2) == [True, True, False]
            assert len(fallbacks) == 3
            server = await _started(command, port)
            # Back: Redis's window, which starts empty.
            assert await calls(limiter, *[("down", ADDRESS)] * 3, limit=2) == [True, True, False]
            assert len(fallbacks) == 3
            server.terminate()
            await server.wait()
            server = None
            assert await calls(limiter, ("down", ADDRESS), limit=2) == [False]  # local again
            assert len(fallbacks) == 4
        events = [e["event"] for e in _events(caplog)]
        down, back = "rate_limits_redis_unavailable", "rate_limits_shared_again"
        assert events == [down, back, down]
        assert ADDRESS not in caplog.text and str(port) not in caplog.text
    finally:
        if server is not None:
            server.terminate()
            await server.wait()
        await limiter.aclose()


async def test_while_down_redis_is_not_tried_at_every_call() -> None:
    # 192.0.2.1 (TEST-NET-1) never answers: each try would cost the whole timeout.
    limiter = RedisLimiter("redis://192.0.2.1:6379/0", timeout=0.3, pause=30)
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        answers = [await limiter.allow("pause", ADDRESS, 100, 60) for _ in range(20)]
        assert answers == [True] * 20
        assert loop.time() - started < 0.3 * 3  # one timeout, not twenty
    finally:
        await limiter.aclose()


async def test_without_redis_the_service_says_limits_are_per_process(
    config, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    def warned() -> list[str]:
        return [
            r.msg["event"]
            for r in caplog.records
            if r.name == "gateway.service"
            and isinstance(r.msg, dict)
            and r.msg.get("event") == "limits_per_process"
        ]

    with caplog.at_level(logging.INFO, logger="gateway.service"):
        alone = build_service(settings_for(None), config, roles=frozenset({"ingest"}))
        async with TestClient(TestServer(alone.app)):
            assert warned() == ["limits_per_process"]
        caplog.clear()
        shared = build_service(
            replace(settings_for(None), redis_url=redis_url), config, roles=frozenset({"desk"})
        )
        async with TestClient(TestServer(shared.app)):
            assert warned() == []
        router = build_service(settings_for(None), config, roles=frozenset({"router"}))  # limits nothing
        async with TestClient(TestServer(router.app)):
            assert warned() == []
