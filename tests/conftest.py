"""Shared fixtures. Broker tests use the real RabbitMQ in a vhost of their own;
when it cannot be reached they fail under CI=true (or GATEWAY_REQUIRE_BROKER=1)
and only skip on a developer's machine without it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import aio_pika
import pytest
from aiohttp.test_utils import TestClient, TestServer
from yarl import URL

from adapters.http_json.cases import TEST_TOKEN
from adapters.testing import tables
from gateway.config.models import Config
from gateway.service import Service, build_service, load_config, topology_for
from gateway.support.settings import Settings
from tests.helpers.harness import as_admin
from tests.helpers.probe import wait_until_ready

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_CONFIG = ROOT / "config"
TEST_SECRET = "test-secret-key-" + "k" * 32


# Every credential the example channels refer to, as each kind's table sets them.
EXAMPLE_SECRETS = {name: value for cases in tables().values() for name, value in cases.TRIAL_ENV.items()}


def broker_required() -> bool:
    return os.environ.get("CI") == "true" or os.environ.get("GATEWAY_REQUIRE_BROKER") == "1"


def _reachable(url: str) -> bool:
    parsed = URL(url)
    try:
        with socket.create_connection((parsed.host or "127.0.0.1", parsed.port or 5672), timeout=2):
            return True
    except OSError:
        return False


def rabbitmqctl(*args: str) -> str:
    result = subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True, timeout=60, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {args[0]} failed: {result.stderr.strip()[:300]}")
    return result.stdout


@pytest.fixture(scope="session")
def amqp_base_url() -> str:
    url = os.environ.get("GATEWAY_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    if not _reachable(url) or shutil.which("rabbitmqctl") is None:
        message = f"RabbitMQ is not reachable at {URL(url).host}:{URL(url).port} (or rabbitmqctl missing)"
        if broker_required():
            pytest.fail(message + ": broker tests may not skip here", pytrace=False)
        pytest.skip(message)
    return url


def make_vhost(base_url: str) -> tuple[str, str]:
    name = f"gw-test-{uuid.uuid4().hex[:10]}"
    rabbitmqctl("add_vhost", name)
    user = URL(base_url).user or "guest"
    rabbitmqctl("set_permissions", "-p", name, user, ".*", ".*", ".*")
    return name, str(URL(base_url).with_path("/" + name))


@pytest.fixture(scope="session")
def vhost(amqp_base_url: str) -> Iterator[tuple[str, str]]:
    """(name, url) of a vhost for this test session, deleted at the end."""
    name, url = make_vhost(amqp_base_url)
    yield name, url
    rabbitmqctl("delete_vhost", name)


@pytest.fixture(scope="session")
def database_admin_url() -> str:
    url = os.environ.get(
        "GATEWAY_TEST_DATABASE_URL", "postgresql://postgres:postgres@127.0.0.1:5432/postgres"
    )
    parsed = URL(url)
    try:
        with socket.create_connection((parsed.host or "127.0.0.1", parsed.port or 5432), timeout=2):
            pass
    except OSError:
        message = f"PostgreSQL is not reachable at {parsed.host}:{parsed.port}"
        if broker_required():
            pytest.fail(message + ": database tests may not skip here", pytrace=False)
        pytest.skip(message)
    return url


@pytest.fixture(scope="session")
def database_url(database_admin_url: str) -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped at the end."""
    name = f"gw_test_{uuid.uuid4().hex[:10]}"
    asyncio.run(as_admin(database_admin_url, f'CREATE DATABASE "{name}"'))
    yield str(URL(database_admin_url).with_path("/" + name))
    asyncio.run(as_admin(database_admin_url, f'DROP DATABASE "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The real Redis (GATEWAY_TEST_REDIS_URL); tests keep to key prefixes of their own."""
    url = os.environ.get("GATEWAY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    if not _reachable(str(URL(url).with_port(URL(url).port or 6379))):
        message = f"Redis is not reachable at {URL(url).host}:{URL(url).port or 6379}"
        if broker_required():
            pytest.fail(message + ": Redis tests may not skip here", pytrace=False)
        pytest.skip(message)
    return url


@pytest.fixture
def example_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in EXAMPLE_SECRETS.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def config(example_env: None) -> Config:
    return load_config(EXAMPLE_CONFIG)


def with_broker_settings(config: Config, **changes: object) -> Config:
    broker = config.service.broker.model_copy(update=changes)
    return replace(config, service=config.service.model_copy(update={"broker": broker}))


def settings_for(
    amqp_url: str | None, database_url: str | None = None, fake_time: datetime | None = None
) -> Settings:
    return Settings(
        amqp_url=amqp_url,
        config_dir=str(EXAMPLE_CONFIG),
        http_port=0,
        http_host="127.0.0.1",
        secret_key=TEST_SECRET,
        log_level="INFO",
        database_url=database_url,
        fake_time=fake_time,
    )


async def purge_all(url: str, config: Config) -> None:
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        for queue in topology_for(config).queues:
            try:
                declared = await channel.get_queue(queue.name, ensure=True)
            except aio_pika.exceptions.ChannelNotFoundEntity:
                channel = await connection.channel()
                continue
            await declared.purge()
    finally:
        await connection.close()


async def clean_state(url: str, database_url: str, config: Config) -> None:
    """Empty every queue of the topology and every table of the shared state."""
    import asyncpg

    await purge_all(url, config)
    connection = await asyncpg.connect(database_url)
    try:
        for table in (
            "auto_replies",
            "conversation_regions",
            "sent_replies",
            "webchat_sessions",
            "webchat_replies",
            "desk_conversations",
            "desk_messages",
            "desk_handovers",
            "desk_attachments",
            "desk_answers",
            "desk_registrations",
            "report_contacts",
            "reply_deliveries",
            "sessions",
            "account_credentials",
            "audit_log",
        ):
            with contextlib.suppress(asyncpg.UndefinedTableError):  # not migrated yet
                await connection.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed names
        with contextlib.suppress(asyncpg.UndefinedTableError):
            await connection.execute("UPDATE audit_head SET seq = 0, hash = repeat('0', 64)")
    finally:
        await connection.close()


async def drain(
    url: str, queues: list[str], *, idle: float = 0.7, limit: float = 30.0, ack: bool = True
) -> list[aio_pika.abc.AbstractIncomingMessage]:
    """Consume every message of these queues until none arrived for `idle` seconds."""
    received: list[aio_pika.abc.AbstractIncomingMessage] = []
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=500)
        arrived = asyncio.Event()

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            received.append(message)
            arrived.set()
            if ack:
                await message.ack()

        for name in queues:
            queue = await channel.get_queue(name, ensure=False)
            await queue.consume(on_message)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        while loop.time() < deadline:
            arrived.clear()
            try:
                await asyncio.wait_for(arrived.wait(), idle)
            except TimeoutError:
                break
    finally:
        await connection.close()
    return received


def inbound_queues(config: Config) -> list[str]:
    return [q.name for q in topology_for(config).queues if q.name.startswith("gw.inbound.")]


def team_queues(*codes: str) -> list[str]:
    return [f"gw.region.{code}.{priority}" for code in codes for priority in ("urgent", "normal")]


@pytest.fixture
async def rabbit_service(vhost: tuple[str, str], config: Config) -> AsyncIterator[tuple[Service, TestClient]]:
    """The ingest role in-process against the real RabbitMQ, with clean queues."""
    _, url = vhost
    service = build_service(settings_for(url), config, roles=frozenset({"ingest"}))
    client = TestClient(TestServer(service.app))
    await client.start_server()
    assert await service.broker.wait_ready(20), "service did not connect to RabbitMQ"
    await purge_all(url, config)
    try:
        yield service, client
    finally:
        await client.close()


@pytest.fixture
async def embedded_service(config: Config) -> AsyncIterator[tuple[Service, TestClient]]:
    service = build_service(settings_for(None), config)
    client = TestClient(TestServer(service.app))
    await client.start_server()
    try:
        yield service, client
    finally:
        await client.close()


def auth(token: str = TEST_TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


async def queue_depths(url: str, queues: list[str]) -> dict[str, int]:
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        depths = {}
        for name in queues:
            declared = await channel.declare_queue(name, passive=True)
            depths[name] = declared.declaration_result.message_count or 0
        return depths
    finally:
        await connection.close()


@pytest.fixture(autouse=True, scope="session")
def _quiet_structured_logs() -> None:
    from gateway.support.logs import configure_logging

    configure_logging("INFO")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServiceProcess:
    """`gateway run` as a real process, its logs in a file."""

    def __init__(
        self,
        amqp_url: str | None,
        log_path: Path,
        *,
        port_in_env: bool = False,
        roles: tuple[str, ...] = (),
        config_dir: Path = EXAMPLE_CONFIG,
        **env: str,
    ) -> None:
        self.port = free_port()
        self.log_path = log_path
        self.base = f"http://127.0.0.1:{self.port}"
        environ = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
        environ.update(
            {
                **EXAMPLE_SECRETS,
                "GATEWAY_SECRET_KEY": TEST_SECRET,
                "GATEWAY_CONFIG": str(config_dir),
                "GATEWAY_LOG_LEVEL": "DEBUG",
                **env,
            }
        )
        if amqp_url:
            environ["GATEWAY_AMQP_URL"] = amqp_url
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        args = [sys.executable, "-m", "gateway.cli", "run"]
        for role in roles:
            args += ["--role", role]
        if port_in_env:
            environ["GATEWAY_HTTP_PORT"] = str(self.port)
        else:
            args += ["--port", str(self.port)]
        self.process = subprocess.Popen(
            args,
            env=environ,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )

    async def wait_ready(self, limit: float = 30.0) -> None:
        try:
            await wait_until_ready(self.base, self.process, limit)
        except RuntimeError:
            raise RuntimeError(f"service exited early: {self.logs()[-2000:]}") from None

    def terminate(self) -> None:
        self.process.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 30.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self._log.close()
        return code

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")
