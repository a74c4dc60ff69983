"""Shared by the benchmarks: a vhost of their own, processes, load and statistics."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from yarl import URL

from tests.helpers.probe import wait_until_ready

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Vhost:
    """A throw-away RabbitMQ vhost, so a benchmark never touches real queues."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.name = f"gw-bench-{uuid.uuid4().hex[:8]}"
        self.url = base_url
        self.created = False

    def __enter__(self) -> Vhost:
        if shutil.which("rabbitmqctl"):
            self._ctl("add_vhost", self.name)
            user = URL(self.base_url).user or "guest"
            self._ctl("set_permissions", "-p", self.name, user, ".*", ".*", ".*")
            self.url = str(URL(self.base_url).with_path("/" + self.name))
            self.created = True
        return self

    def __exit__(self, *_: object) -> None:
        if self.created:
            self._ctl("delete_vhost", self.name)

    @staticmethod
    def _ctl(*args: str) -> None:
        subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=120)


@dataclass
class Process:
    args: list[str]
    env: dict[str, str]
    port: int
    log_path: Path | None = None
    process: subprocess.Popen | None = None

    def __enter__(self) -> Process:
        # A file, not a pipe: an unread pipe fills up and blocks the process it measures.
        log = open(self.log_path, "wb") if self.log_path else subprocess.DEVNULL
        self.process = subprocess.Popen(
            self.args, env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
        )
        return self

    def __exit__(self, *_: object) -> None:
        assert self.process is not None
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()

    def cpu_seconds(self) -> float:
        """User plus system CPU time the process has used so far."""
        assert self.process is not None
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def peak_rss_mb(self) -> float:
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    async def wait_ready(self, limit: float = 60) -> None:
        assert self.process is not None
        try:
            await wait_until_ready(f"http://127.0.0.1:{self.port}", self.process, limit)
        except RuntimeError:
            raise RuntimeError(f"{self.args[1:4]} exited; see {self.log_path}") from None


async def purge(url: str, queues: list[str]) -> None:
    """Empty these queues (those that exist) between phases."""
    import aio_pika

    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        for name in queues:
            try:
                await (await channel.get_queue(name, ensure=True)).purge()
            except aio_pika.exceptions.ChannelNotFoundEntity:
                channel = await connection.channel()
    finally:
        await connection.close()


def database_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "GATEWAY_TEST_DATABASE_URL", "postgresql://postgres:postgres@127.0.0.1:5432/postgres"
        ),
        help="an admin URL: the benchmark makes and drops a database of its own",
    )


async def as_admin(admin_url: str, statement: str) -> None:
    """One statement on its own connection (CREATE and DROP DATABASE refuse transactions)."""
    import asyncpg

    connection = await asyncpg.connect(admin_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@contextlib.asynccontextmanager
async def scratch_database(admin_url: str, prefix: str) -> AsyncIterator[str]:
    """A new PostgreSQL database for one benchmark run, dropped afterwards; yields its URL."""
    admin_url = admin_url.replace("postgresql+asyncpg://", "postgresql://")  # asyncpg's form
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    await as_admin(admin_url, f'CREATE DATABASE "{name}"')
    try:
        yield str(URL(admin_url).with_path("/" + name))
    finally:
        await as_admin(admin_url, f'DROP DATABASE "{name}" WITH (FORCE)')


def python_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update(extra)
    return env


@dataclass
class LoadResult:
    completed: int
    errors: int
    seconds: float
    latencies_ms: list[float] = field(repr=False)
    cpu_us_per_request: float = float("nan")

    @property
    def throughput(self) -> float:
        return self.completed / self.seconds

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies_ms)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def post_load(
    url: str, make_request: callable, connections: int, duration: float, warmup: float
) -> LoadResult:
    """`connections` clients post back to back; only requests that start after warm-up count."""
    latencies: list[float] = []
    errors = 0
    counter = iter(range(10**9))
    loop = asyncio.get_running_loop()
    start = loop.time()
    measure_from = start + warmup
    stop_at = measure_from + duration
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def client() -> None:
            nonlocal errors
            while True:
                began = loop.time()
                if began >= stop_at:
                    return
                data, headers = make_request(next(counter))
                try:
                    async with session.post(url, data=data, headers=headers) as response:
                        await response.read()
                        ok = response.status < 300
                except aiohttp.ClientError:
                    ok = False
                if began >= measure_from:
                    if ok:
                        latencies.append((loop.time() - began) * 1000)
                    else:
                        errors += 1

        await asyncio.gather(*(client() for _ in range(connections)))
    return LoadResult(len(latencies), errors, duration, latencies)


async def metric_total(port: int, family: str) -> float:
    """The sum over all label sets of one metric family on a gateway's /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/metrics") as response,
    ):
        text = await response.text()
    return sum(
        sample.value
        for metric in text_string_to_metric_families(text)
        if metric.name == family
        for sample in metric.samples
        if sample.name == family + "_total"
    )


def percentile(ordered: list[float], p: float) -> float:
    """The p-th percentile of an already sorted list (nearest rank)."""
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))] if ordered else float("nan")


def common_arguments(parser: argparse.ArgumentParser) -> None:
    """The broker and where the processes' logs go, as every benchmark takes them."""
    parser.add_argument(
        "--amqp-url", default=os.environ.get("GATEWAY_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    )
    parser.add_argument("--log-dir", default=str(ROOT / "bench" / "results"), help="the processes' logs")


def run_and_print(
    parser: argparse.ArgumentParser, run: Callable[[argparse.Namespace], Awaitable[dict]]
) -> None:
    """Parse, run, and print the result as the last line, one JSON object."""
    import json

    args = parser.parse_args()
    Path(args.log_dir).mkdir(parents=True, exist_ok=True)
    print(json.dumps(asyncio.run(run(args))))


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


PYTHON = sys.executable
