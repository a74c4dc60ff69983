"""Assembling and running the service: config, keys, broker, roles and HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog
from aiohttp import web

from adapters import registry
from gateway.broker import AmqpBroker, Broker, parse_urls
from gateway.config import Config, LiveConfig, load_config
from gateway.desk import Desk
from gateway.desk_api import add_routes as add_desk_routes
from gateway.embedded_broker import EmbeddedBroker
from gateway.http import create_app, reload_config
from gateway.ingest import Ingest
from gateway.keys import Keyring
from gateway.metrics import Metrics
from gateway.outbound import Outbound
from gateway.queue_monitor import watch_queue_depths
from gateway.router import Router
from gateway.runtime import Runtime
from gateway.settings import Settings
from gateway.store import Store
from gateway.topology import Topology, build_topology

log = structlog.get_logger("gateway.service")

ROLES = ("ingest", "router", "outbound", "desk")


def make_clock(fake_time: datetime | None) -> Callable[[], datetime]:
    """The real clock, or one that started at GATEWAY_FAKE_TIME and runs on from there."""
    if fake_time is None:
        return lambda: datetime.now(UTC)
    offset = fake_time - datetime.now(UTC)
    return lambda: datetime.now(UTC) + offset


def topology_for(config: Config) -> Topology:
    broker = config.service.broker
    return build_topology(config.team_codes, broker.inbound_shards, broker.delivery_limit)


def make_broker(settings: Settings, config: Config, metrics: Metrics) -> Broker:
    if settings.amqp_url is None:
        return EmbeddedBroker(metrics)
    return AmqpBroker(
        parse_urls(settings.amqp_url),
        publish_timeout=config.service.broker.publish_timeout_seconds,
        metrics=metrics,
    )


@dataclass
class Service:
    settings: Settings
    live: LiveConfig
    metrics: Metrics
    broker: Broker
    app: web.Application
    roles: frozenset[str]
    store: Store
    router: Router | None = None
    outbound: Outbound | None = None
    desk: Desk | None = None

    @property
    def config(self) -> Config:
        return self.live.current

    def reload(self) -> dict[str, object]:
        return reload_config(self.live, self.metrics)


def build_service(
    settings: Settings, config: Config | None = None, roles: frozenset[str] = frozenset(ROLES)
) -> Service:
    unknown = roles - set(ROLES)
    if unknown or not roles:
        raise ValueError(f"roles must be among {', '.join(ROLES)}")
    config = config or load_config(settings.config_dir)
    metrics = Metrics()
    if settings.secret_key is None:
        log.warning(
            "ephemeral_secret_key",
            detail="GATEWAY_SECRET_KEY is not set: generated a key for this run only; "
            "pseudonyms change and sealed reply handles become unreadable after a restart",
        )
    keyring = Keyring(settings.secret_key or Keyring.generate_secret())
    broker = make_broker(settings, config, metrics)
    ingest = Ingest(broker, keyring, metrics, config.service.broker.inbound_shards)
    live = LiveConfig(config)
    store = Store(settings.database_url)
    clock = make_clock(settings.fake_time)
    router = Router(config, broker, store, metrics, clock) if "router" in roles else None
    if router is not None:
        live.subscribe(router.reconfigure)
    outbound = Outbound(live, broker, store, keyring, metrics) if "outbound" in roles else None
    unknown_teams = set(settings.desk_teams) - set(config.team_codes)
    if unknown_teams:
        raise ValueError(f"GATEWAY_DESK_TEAMS names unknown teams: {', '.join(sorted(unknown_teams))}")
    # The desk keeps real time, not the schedules' (possibly fake) clock.
    desk = Desk(live, broker, store, metrics, teams=settings.desk_teams) if "desk" in roles else None
    readiness = {"database": lambda: store.ready}
    runtime = Runtime(settings, live, broker, store, ingest, keyring, metrics, clock, "ingest" in roles)
    app = create_app(
        live,
        broker,
        ingest,
        metrics,
        webhooks="ingest" in roles,
        readiness=readiness,
        admin_token=settings.admin_token or "",
    )
    if desk is not None:
        add_desk_routes(app, desk, live, keyring, settings.demo_accounts)
    topology = topology_for(config)

    monitors: list[asyncio.Task[None]] = []

    async def start_broker(_: web.Application) -> None:
        if isinstance(broker, EmbeddedBroker):
            log.warning(
                "embedded_broker",
                detail="GATEWAY_AMQP_URL is not set: using the EMBEDDED IN-PROCESS BROKER. "
                "It keeps NOTHING across a restart. Use RabbitMQ in production.",
            )
        if settings.fake_time is not None:
            log.warning(
                "fake_time", detail="GATEWAY_FAKE_TIME is set: schedules use a shifted clock. For tests only."
            )
        if store.embedded:
            log.warning(
                "embedded_store",
                detail="GATEWAY_DATABASE_URL is not set: shared state (router, outbound, web chat "
                "sessions) lives in an in-memory SQLite database and is lost on restart",
            )
        await store.start()
        await broker.start(topology, declare=settings.declare_topology)
        for name in registry.names():
            kind = registry.find(name)
            if kind is not None:
                await kind.attach(runtime)
        if router is not None:
            await router.start()
            durable = [queue.name for queue in topology.queues]
            monitors.append(asyncio.create_task(watch_queue_depths(broker, durable, metrics)))
        if outbound is not None:
            await outbound.start()
        if desk is not None:
            if settings.demo_accounts:
                log.warning(
                    "demo_accounts",
                    detail="GATEWAY_DEMO_ACCOUNTS is on: DEMO counsellors demo-zob and demo-landelijk can "
                    "sign in to the desk with a published password. Never in production.",
                )
            await desk.start()
        log.info("roles", roles=sorted(roles))

    async def close_broker(_: web.Application) -> None:
        for monitor in monitors:
            monitor.cancel()
        if desk is not None:
            await desk.close()
        await broker.close()
        if outbound is not None:
            await outbound.close()
        await store.close()

    app.on_startup.append(start_broker)
    app.on_cleanup.append(close_broker)
    for warning in config.warnings:
        log.warning("config_warning", detail=warning)
    return Service(settings, live, metrics, broker, app, frozenset(roles), store, router, outbound, desk)


async def serve(service: Service, host: str, port: int) -> None:
    """Serve until SIGTERM or SIGINT, then stop accepting, finish in-flight requests and close."""
    runner = web.AppRunner(
        service.app,
        access_log=None,
        shutdown_timeout=service.config.service.http.shutdown_timeout_seconds,
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=1024)
    await site.start()
    log.info(
        "listening",
        host=host,
        port=port,
        broker=service.broker.description,
        channels=len(service.config.channels),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, service.reload)
    try:
        await stop.wait()
        log.info("shutting_down")
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)
        await runner.cleanup()
        log.info("stopped")
