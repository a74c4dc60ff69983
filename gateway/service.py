"""Assembling and running the service: configuration, keys, broker, store, roles, HTTP,
and the channel kinds (this module and `cli` are the only ones that import `adapters`).

Each resource is one `cleanup_ctx` of the application: started in order, closed in
the reverse order, and a failed start closes what had started.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web

from adapters import registry
from adapters.base import ChannelKind, Database
from gateway.broker.amqp import AmqpBroker, parse_urls
from gateway.broker.base import Broker, Message
from gateway.broker.embedded import EmbeddedBroker
from gateway.config import loader
from gateway.config.live import LiveConfig
from gateway.config.models import Channel, Config
from gateway.domain.messages import InboundMessage, MediaSource, MediaUnavailable
from gateway.domain.topology import Topology, build_topology
from gateway.roles.desk import Desk
from gateway.roles.identity import Identities
from gateway.roles.ingest import Ingest
from gateway.roles.outbound import Outbound
from gateway.roles.queue_monitor import watch_queue_depths
from gateway.roles.router import Router
from gateway.store.database import Store
from gateway.store.queue import queue_places
from gateway.support.clock import make_clock
from gateway.support.fieldcrypt import CHANNEL_DATA_KEYS, DATA_KEYS, FieldCipher
from gateway.support.keys import ROLE_KEYS, Keyring, MissingKey, SealError
from gateway.support.metrics import Metrics
from gateway.support.ratelimit import Limiter, LocalLimiter, RedisLimiter
from gateway.support.settings import Settings
from gateway.web.app import LINKS_KEY, create_app, page_channels, reload_config
from gateway.web.desk_api import add_routes as add_desk_routes

log = structlog.get_logger("gateway.service")

ROLES = ("ingest", "router", "outbound", "desk")
__all__ = [
    "ROLES",
    "Service",
    "build_service",
    "load_config",
    "make_clock",
    "make_store",
    "serve",
    "topology_for",
]


def kinds() -> dict[str, ChannelKind[Any]]:
    return registry.kinds()


def load_config(directory: str | Path) -> Config:
    """The configuration directory, validated against the registered channel kinds."""
    return loader.load_config(directory, kinds())


def make_store(url: str | None) -> Store:
    """The database with the core's migrations and every channel kind's own: a database
    migrated by one must be opened with all of them (Alembic needs every revision)."""
    return Store(url, [kind.migrations for kind in kinds().values() if kind.migrations])


def topology_for(config: Config) -> Topology:
    broker = config.service.broker
    fanouts = tuple(name for kind in kinds().values() for name in kind.fanout_exchanges)
    return build_topology(config.team_codes, broker.inbound_shards, broker.delivery_limit, fanouts)


def _ending_changed_sessions(identities: Identities, config: Config) -> Callable[[Config], None]:
    """After a reload: the sessions of counsellors removed, disabled or changed (password,
    team, role) end in the database, so on every process, reloaded yet or not."""
    known = dict(config.counsellors)
    pending: set[asyncio.Task[None]] = set()

    def reloaded(loaded: Config) -> None:
        nonlocal known
        changed = [cid for cid, was in known.items() if loaded.counsellors.get(cid) != was]
        known = dict(loaded.counsellors)
        if changed:
            task = asyncio.get_running_loop().create_task(identities.end_sessions_of("desk", changed))
            pending.add(task)
            task.add_done_callback(pending.discard)

    return reloaded


def _person_gone(
    live: LiveConfig, registered: dict[str, ChannelKind[Any]], keyring: Keyring
) -> Callable[[str, str, str], Awaitable[bool]]:
    """Asks the conversation's channel kind whether a reply can still reach the person."""

    async def gone(kind_name: str, instance: str, reply_handle: str) -> bool:
        kind, channel = registered.get(kind_name), live.current.channels.get(instance)
        if kind is None or channel is None:
            return False
        try:
            address = keyring.unseal(reply_handle).get("address", "")
        except SealError:
            return False
        return await kind.gone(channel, address)

    return gone


def _media_sources(
    live: LiveConfig, registered: dict[str, ChannelKind[Any]]
) -> Callable[[str, str, str], Awaitable[MediaSource]]:
    """Asks an attachment's channel kind where its bytes are (hosts, credentials)."""

    async def source(kind_name: str, instance: str, url: str) -> MediaSource:
        kind, channel = registered.get(kind_name), live.current.channels.get(instance)
        if kind is None or channel is None:
            raise MediaUnavailable("channel_gone")
        return await kind.media(channel, url)

    return source


def make_keyring(settings: Settings, roles: Collection[str]) -> Keyring:
    """The keys these roles need, each from its own variable; or, with GATEWAY_SECRET_KEY
    alone (a try-out), every key derived from it. A role without a key it needs stops here,
    naming the variable."""
    specific = settings.specific_keys
    needed = sorted({variable for role in roles for variable in ROLE_KEYS[role]})
    if not specific and settings.secret_key is None and not needed:
        return Keyring.from_keys()  # the router: no key at all
    if not specific:
        if settings.secret_key is None:
            log.warning(
                "ephemeral_secret_key",
                detail="GATEWAY_SECRET_KEY is not set: generated a key for this run only; "
                "pseudonyms change and sealed reply handles become unreadable after a restart",
            )
            return Keyring(Keyring.generate_secret())
        log.warning(
            "keys_derived",
            detail="only GATEWAY_SECRET_KEY is set: EVERY key is derived from it, so any process "
            "holding it can open every reply handle and make a desk session. For a try-out only: "
            "give each role its own keys (gateway keys generate, docs/operations.md)",
        )
        return Keyring(settings.secret_key)
    keyring = Keyring.from_env(specific, legacy_secret=settings.secret_key)
    missing = keyring.missing(needed)
    if missing:
        raise ValueError(
            f"the {', '.join(sorted(roles))} role(s) need {', '.join(missing)} "
            "(`gateway keys generate`; which role holds which key: docs/operations.md)"
        )
    if settings.secret_key is not None:
        log.info(
            "legacy_secret_key",
            detail="GATEWAY_SECRET_KEY is set beside the specific keys: it only opens reply handles "
            "and second factors sealed before the key split; remove it when the migration window ends",
        )
    return keyring


# Which roles hold which keyring for what people wrote: the desk its transcripts; outbound
# (which stores them) and the sockets of ingest (which read them) the web chat's replies.
DATA_KEY_ROLES = {DATA_KEYS: ("desk",), CHANNEL_DATA_KEYS: ("outbound", "ingest")}


def data_cipher(
    settings: Settings, keyring: Keyring, roles: Collection[str], variable: str = DATA_KEYS
) -> FieldCipher:
    """That keyring from its variable, or for a try-out a key derived from
    GATEWAY_SECRET_KEY. With specific keys, a role that keeps what people wrote must be
    given the keyring; a role that does not gets a key of its own that opens nothing."""
    value = settings.data_keys if variable == DATA_KEYS else settings.channel_data_keys
    needing = sorted(set(roles) & set(DATA_KEY_ROLES[variable]))
    if value is not None:
        return FieldCipher.from_env(value, variable)
    if needing and not keyring.derived:
        raise ValueError(
            f"the {', '.join(needing)} role(s) need {variable} (`gateway keys generate`; docs/operations.md)"
        )
    if settings.secret_key is not None and keyring.derived:
        if needing:
            log.warning(
                "data_key_derived",
                variable=variable,
                detail=f"{variable} is not set: what people write is encrypted at rest under a "
                "key derived from GATEWAY_SECRET_KEY; give production its own data keys "
                "(docs/operations.md)",
            )
        return FieldCipher.derived(settings.secret_key, variable)
    return FieldCipher.ephemeral()


def make_limiter(settings: Settings, metrics: Metrics) -> Limiter:
    """Shared by every process through Redis with GATEWAY_REDIS_URL; else this process's own."""
    if settings.redis_url is None:
        return LocalLimiter()
    return RedisLimiter(settings.redis_url, on_fallback=metrics.rate_limit_fallbacks.inc)


def make_broker(settings: Settings, config: Config, metrics: Metrics) -> Broker:
    if settings.amqp_url is None:
        return EmbeddedBroker(metrics)
    return AmqpBroker(
        parse_urls(settings.amqp_url),
        publish_timeout=config.service.broker.publish_timeout_seconds,
        metrics=metrics,
    )


@dataclass(frozen=True)
class KindHost:
    """What the service lends a channel kind (`adapters.base.Host`), and no more."""

    live: LiveConfig
    store: Store
    broker: Broker
    ingest: Ingest
    keyring: Keyring
    metrics: Metrics
    clock: Callable[[], datetime]
    settings: Settings
    serves_pages: bool
    identities: Identities
    fields: FieldCipher
    limiter: Limiter
    # A kind's page keys where no pages are served (GATEWAY_PAGES_KEY is ingest's): never used.
    _unused_page_keys: dict[str, bytes] = field(default_factory=dict)

    @property
    def config(self) -> Config:
        return self.live.current

    @property
    def database(self) -> Database:
        return self.store

    @property
    def demo_accounts(self) -> bool:
        return self.settings.demo_accounts

    def now(self) -> datetime:
        return self.clock()

    def key_for(self, purpose: str) -> bytes:
        try:
            return self.keyring.key_for(purpose)
        except MissingKey:
            if self.serves_pages:
                raise
            return self._unused_page_keys.setdefault(purpose, os.urandom(32))

    async def accept(self, channel: Channel[Any], messages: tuple[InboundMessage, ...]) -> list[str]:
        return await self.ingest.accept(channel, messages)

    def refused(self, kind: str, reason: str) -> None:
        self.metrics.rejected.labels(kind, reason).inc()

    async def notify(self, exchange: str, message_type: str, body: bytes, wake_id: str) -> None:
        wake = Message(
            body=body, message_id=wake_id, correlation_id=wake_id, type=message_type, timestamp=self.clock()
        )
        await self.broker.publish(exchange, "", wake)

    async def subscribe(self, exchange: str, handler: Callable[[bytes], Awaitable[None]]) -> None:
        await self.broker.subscribe(exchange, handler)

    async def queue_places(self, channel_instance: str, conversation_keys: Collection[str]) -> dict[str, int]:
        ids = {conversation_id_for(self.keyring, channel_instance, key): key for key in conversation_keys}
        async with self.store.reading() as connection:
            places = await queue_places(connection, ids)
        return {ids[conversation_id]: place for conversation_id, place in places.items()}


def conversation_id_for(keyring: Keyring, channel_instance: str, conversation_key: str) -> str:
    """The envelope's conversation id for a key on a channel, as `build_envelope` names it
    (tests/integration/test_queue_places.py holds the two together)."""
    return keyring.pseudonym(f"{channel_instance}\x1f{conversation_key}", prefix="c_")


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

    def links(self, base: str) -> dict[str, str]:
        """The pages a person, a pharmacy or a counsellor opens, as full URLs."""
        found = {f"channel {cid}": base + path for cid, path in page_channels(self.app).items()}
        if self.desk is not None:
            found["desk"] = base + "/desk/"
        return found


def build_service(
    settings: Settings, config: Config | None = None, roles: frozenset[str] = frozenset(ROLES)
) -> Service:
    unknown = roles - set(ROLES)
    if unknown or not roles:
        raise ValueError(f"roles must be among {', '.join(ROLES)}")
    registered = kinds()
    config = config or loader.load_config(settings.config_dir, registered)
    metrics = Metrics()
    keyring = make_keyring(settings, roles)
    fields = data_cipher(settings, keyring, roles)
    channel_fields = data_cipher(settings, keyring, roles, CHANNEL_DATA_KEYS)
    limiter = make_limiter(settings, metrics)
    broker = make_broker(settings, config, metrics)
    ingest = Ingest(broker, keyring, metrics, config.service.broker.inbound_shards)
    live = LiveConfig(config, registered)
    store = make_store(settings.database_url)
    clock = make_clock(settings.fake_time)
    router = Router(config, broker, store, metrics, clock) if "router" in roles else None
    if router is not None:
        live.subscribe(router.reconfigure)
    outbound = Outbound(live, broker, store, keyring, metrics, registered) if "outbound" in roles else None
    unknown_teams = set(settings.desk_teams) - set(config.team_codes)
    if unknown_teams:
        raise ValueError(f"GATEWAY_DESK_TEAMS names unknown teams: {', '.join(sorted(unknown_teams))}")
    retention = tuple(kind.forget_before for kind in registered.values())
    # Sessions and the access log keep real time, as the desk does, not the schedules' clock.
    identities = Identities(store, keyring, metrics, limiter=limiter)
    if "desk" in roles:  # the desk's sessions are the desk's (its database role alone may end them)
        live.subscribe(_ending_changed_sessions(identities, config))
    desk = (
        Desk(
            live,
            broker,
            store,
            metrics,
            teams=settings.desk_teams,
            retention_hooks=retention,
            audit=identities.audit,
            unseal=keyring.unseal,
            replying_kinds=frozenset(
                name for name, kind in registered.items() if type(kind).send is not ChannelKind.send
            ),
            person_gone=_person_gone(live, registered, keyring),
            media_source=_media_sources(live, registered),
            fields=fields,
            schedule_clock=clock,
        )
        if "desk" in roles
        else None
    )
    host = KindHost(
        live,
        store,
        broker,
        ingest,
        keyring,
        metrics,
        clock,
        settings,
        "ingest" in roles,
        identities,
        channel_fields,
        limiter,
    )
    app = create_app(
        live,
        broker,
        ingest,
        metrics,
        registered,
        webhooks="ingest" in roles,
        readiness={"database": lambda: store.ready},
        admin_token=settings.admin_token or "",
        metrics_token=settings.metrics_token or "",
        audit=identities.audit,
        store=store,
        trusted_proxies=settings.trusted_proxies,
    )
    if desk is not None:
        labels = {name: kind.label or name for name, kind in registered.items()}
        add_desk_routes(app, desk, live, identities, keyring, settings.demo_accounts, labels)
        app[LINKS_KEY]["desk"] = "/desk/"
    topology = topology_for(config)

    async def warnings(_: web.Application) -> AsyncIterator[None]:
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
        if isinstance(limiter, LocalLimiter) and roles & {"ingest", "desk"}:
            log.warning(
                "limits_per_process",
                detail="GATEWAY_REDIS_URL is not set: rate limits (new web chats, sign-ins) are kept "
                "per process, so N processes allow N times the limit. Give every process the same Redis.",
            )
        yield
        if isinstance(limiter, RedisLimiter):
            await limiter.aclose()

    async def database(_: web.Application) -> AsyncIterator[None]:
        await store.start()
        yield
        identities.close()
        await store.close()

    async def message_broker(_: web.Application) -> AsyncIterator[None]:
        await broker.start(topology, declare=settings.declare_topology)
        yield
        await broker.close()

    async def provider_clients(_: web.Application) -> AsyncIterator[None]:
        yield  # closed after the broker, so no reply is being sent through a closed client
        for kind in registered.values():
            await kind.close()

    async def channel_kinds(_: web.Application) -> AsyncIterator[None]:
        for kind in registered.values():
            await kind.attach(host)
        yield

    async def router_role(_: web.Application) -> AsyncIterator[None]:
        assert router is not None
        await router.start()
        durable = [queue.name for queue in topology.queues]
        monitor = asyncio.create_task(watch_queue_depths(broker, durable, metrics))
        yield
        monitor.cancel()

    async def outbound_role(_: web.Application) -> AsyncIterator[None]:
        assert outbound is not None
        await outbound.start()
        yield

    def idle_time() -> timedelta:
        return timedelta(minutes=live.current.service.desk.idle_minutes)

    def audit_retention() -> timedelta:
        return timedelta(days=live.current.service.desk.audit_retention_days)

    async def desk_role(_: web.Application) -> AsyncIterator[None]:
        assert desk is not None
        if settings.demo_accounts:
            log.warning(
                "demo_accounts",
                detail="GATEWAY_DEMO_ACCOUNTS is on: DEMO counsellors demo-zob and demo-landelijk can "
                "sign in to the desk with a published password. Never in production.",
            )
        if not config.service.desk.second_factor:
            log.warning(
                "second_factor_off",
                detail="desk.second_factor is false: counsellors with local accounts sign in with a "
                "PASSWORD ONLY. Anyone who learns one reads transcripts of people in danger. Turn it on.",
            )
        await desk.start()
        upkeep = asyncio.create_task(identities.maintain(idle_time, audit_retention))
        yield
        upkeep.cancel()
        await desk.close()

    async def announce(_: web.Application) -> AsyncIterator[None]:
        log.info("roles", roles=sorted(roles))
        yield

    app.cleanup_ctx.extend([warnings, database, provider_clients, message_broker, channel_kinds])
    # Closing runs in reverse: the desk stops its loops before the broker and the store close.
    app.cleanup_ctx.extend(
        ctx
        for ctx, wanted in ((router_role, router), (outbound_role, outbound), (desk_role, desk))
        if wanted is not None
    )
    app.cleanup_ctx.append(announce)
    for warning in config.warnings:
        log.warning("config_warning", detail=warning)
    return Service(settings, live, metrics, broker, app, frozenset(roles), store, router, outbound, desk)


LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


def plain_http_cookie_warning(config: Config, roles: frozenset[str], host: str) -> dict[str, object] | None:
    """Listening beyond loopback with Secure cookies but no https `public_url`: a browser on
    another machine reaching this over plain http drops the desk's and Masker 19's cookies.
    There is no service-level public_url. The desk's OIDC `public_url` is its origin as the
    browser sees it: https there clears the desk. The channels' public_url (twilio, telegram)
    are the providers' webhook addresses, not where a browser signs in, so they do not count;
    Masker 19 has none, so for it the listen address and secure_cookies alone decide."""
    if host in LOOPBACK_HOSTS:
        return None
    secure: list[str] = []
    oidc = config.service.desk.oidc
    desk_https = oidc is not None and oidc.public_url.startswith("https://")
    if "desk" in roles and config.service.desk.secure_cookies and not desk_https:
        secure.append("desk")
    if "ingest" in roles:
        channels = config.channels.items()
        secure += [cid for cid, ch in channels if getattr(ch.settings, "secure_cookies", False)]
    if not secure:
        return None
    return {
        "host": host,
        "secure_cookies": secure,
        "detail": f"listening on {host} (beyond loopback) with Secure cookies and no https public_url: "
        "a browser on another machine reaching this over plain http drops the session cookies, so "
        "signing in to the desk or Masker 19 fails. Serve it over https (a proxy in front), or for "
        "a trial set secure_cookies: false (desk.secure_cookies, the channel's settings).",
    }


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
    cookie_warning = plain_http_cookie_warning(service.config, service.roles, host)
    if cookie_warning is not None:
        log.warning("secure_cookies_over_plain_http", **cookie_warning)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104 - naming, not binding
    links = service.links(f"http://{shown}:{port}")
    log.info("pages", **links)  # the URLs hold channel ids only
    if sys.stdout.isatty():  # a person trying it out: the same, readable
        for name, url in links.items():
            print(f"  {name:<40} {url}", flush=True)
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
