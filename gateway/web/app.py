"""The aiohttp application: webhooks, channel pages, health, readiness, metrics and the
admin reload. Channel kinds are passed in; the app never imports them."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path

import structlog
from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from gateway.broker.base import Broker, consumers_ready
from gateway.config.live import LiveConfig
from gateway.config.loader import Problem
from gateway.domain.kinds import Kind, PageRoutes
from gateway.domain.messages import PublishError, Rejected, WebhookRequest
from gateway.roles.ingest import Ingest
from gateway.store.database import Store
from gateway.store.identity import AuditEvent, AuditLog
from gateway.support.keys import same_secret
from gateway.support.metrics import Metrics
from gateway.support.proxies import Network
from gateway.web.errors import error_response, json_response, rejection_response
from gateway.web.proxies import forwarded_middleware, peer_of, strict_transport_security

log = structlog.get_logger("gateway.http")

LIVE_KEY = web.AppKey("config", LiveConfig)
ADMIN_TOKEN_KEY = web.AppKey("admin_token", str)
METRICS_TOKEN_KEY = web.AppKey("metrics_token", str)
LOOPBACK = frozenset({"127.0.0.1", "::1"})
FORWARDING_HEADERS = ("X-Forwarded-For", "Forwarded", "X-Real-IP")
AUDIT_KEY: web.AppKey[AuditLog | None] = web.AppKey("audit")
STORE_KEY: web.AppKey[Store | None] = web.AppKey("store")
# A provider's delivery status as the desk shows it beside a reply; others are not shown.
DESK_DELIVERY = {"sent": "sent", "delivered": "delivered", "read": "read", "undelivered": "failed",
                 "failed": "failed"}  # fmt: skip
BROKER_KEY = web.AppKey("broker", Broker)
INGEST_KEY = web.AppKey("ingest", Ingest)
METRICS_KEY = web.AppKey("metrics", Metrics)
READINESS_KEY: web.AppKey[dict[str, Callable[[], bool]]] = web.AppKey("readiness")
KINDS_KEY: web.AppKey[dict[str, Kind]] = web.AppKey("kinds")
ROUTES_KEY: web.AppKey[dict[str, PageRoutes]] = web.AppKey("routes")
LINKS_KEY: web.AppKey[dict[str, str]] = web.AppKey("links")
ASSET_TYPES = {".js": "text/javascript", ".css": "text/css"}


@web.middleware
async def _errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    started = time.perf_counter()
    try:
        response = await handler(request)
    except web.HTTPRequestEntityTooLarge:
        response = error_response(413, "body_too_large", "the request body is too large")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = error_response(exc.status, exc.reason.lower().replace(" ", "_"), exc.reason)
    except Rejected as rejection:
        response = rejection_response(rejection)
    except Exception:
        log.exception("request_failed", route=_route(request))
        response = error_response(500, "internal_error", "internal error")
    if response.status >= 400:
        log.info(
            "request_refused",
            route=_route(request),
            method=request.method,
            status=response.status,
            ms=round((time.perf_counter() - started) * 1000, 2),
        )
    return response


def _route(request: web.Request) -> str:
    info = request.match_info.route.resource
    return info.canonical if info is not None else "unmatched"


async def healthz(request: web.Request) -> web.Response:
    return json_response(200, {"status": "alive"})


async def readyz(request: web.Request) -> web.Response:
    checks = {name: bool(check()) for name, check in request.app[READINESS_KEY].items()}
    ready = all(checks.values())
    body: dict[str, object] = {"status": "ready" if ready else "not_ready", "checks": checks}
    consumed = request.app[BROKER_KEY].consumers()
    if consumed:  # queue names are topology names: no person's data
        body["consumers"] = {state.queue: state.report() for state in consumed}
    return json_response(200 if ready else 503, body)


async def metrics(request: web.Request) -> web.Response:
    """Live counters say what just happened (a Masker 19 intake to the national team):
    with GATEWAY_METRICS_TOKEN only for its bearer, without it only for this machine
    (a loopback peer that no proxy forwarded: `request.remote` is the client a trusted
    proxy names, so the TCP peer and the headers are checked as well)."""
    token = request.app[METRICS_TOKEN_KEY]
    if token:
        presented = request.headers.get("Authorization", "")
        if not same_secret(presented, f"Bearer {token}"):
            detail = "GET /metrics needs Authorization: Bearer <GATEWAY_METRICS_TOKEN>"
            raise Rejected(401, "metrics_token", detail, headers={"WWW-Authenticate": "Bearer"})
    elif (
        request.remote not in LOOPBACK
        or peer_of(request) not in LOOPBACK
        or any(h in request.headers for h in FORWARDING_HEADERS)
    ):
        detail = "set GATEWAY_METRICS_TOKEN to scrape /metrics from elsewhere"
        raise Rejected(403, "metrics_local_only", detail)
    registry_ = request.app[METRICS_KEY]
    return web.Response(body=registry_.exposition(), headers={"Content-Type": registry_.content_type})


async def index(request: web.Request) -> web.Response:
    """What this process serves: health, readiness, metrics, and the pages people and
    counsellors open (each page channel's entry page, the desk console)."""
    body: dict[str, object] = {
        "service": "veilig-thuis-gateway",
        "health": "/healthz",
        "ready": "/readyz",
        "metrics": "/metrics",
    }
    links: dict[str, str] = request.app[LINKS_KEY]
    body.update(links)
    pages = page_channels(request.app)
    if pages:
        body["channels"] = pages
    return json_response(200, body)


def page_channels(app: web.Application) -> dict[str, str]:
    """Channel id -> the path of its entry page, for the channels whose kind has pages."""
    routes = app[ROUTES_KEY]  # empty in a process that serves no channels
    return {
        channel.id: f"/channels/{channel.id}/"
        for channel in app[LIVE_KEY].current.channels.values()
        if ("GET", "") in routes.get(channel.kind, {})
    }


async def webhook(request: web.Request) -> web.Response:
    config = request.app[LIVE_KEY].current
    metrics_ = request.app[METRICS_KEY]
    channel = config.channels.get(request.match_info["channel_id"])
    if channel is None:
        metrics_.rejected.labels("unknown", "unknown_channel").inc()
        return error_response(404, "unknown_channel", "no channel with this id")
    kind: Kind = request.app[KINDS_KEY][channel.kind]
    if not kind.takes_webhooks:
        metrics_.rejected.labels(channel.kind, "not_a_webhook_channel").inc()
        return error_response(
            405,
            "not_a_webhook_channel",
            f"this channel takes no webhooks; its pages are at /channels/{channel.id}/",
        )
    if not channel.usable:
        metrics_.rejected.labels(channel.kind, "channel_not_configured").inc()
        return error_response(
            503,
            "channel_not_configured",
            "the channel's credentials are not configured",
            headers={"Retry-After": "60"},
        )
    limit = config.service.http.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        metrics_.rejected.labels(channel.kind, "body_too_large").inc()
        return error_response(413, "body_too_large", f"the request body exceeds {limit} bytes")
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        metrics_.rejected.labels(channel.kind, "body_too_large").inc()
        return error_response(413, "body_too_large", f"the request body exceeds {limit} bytes")
    raw = WebhookRequest(
        method=request.method,
        url_factory=lambda: str(request.url),
        headers=request.headers,
        body=body,
        content_type=request.content_type,
        charset=request.charset,
    )
    try:
        kind.verify(channel, raw)
        accepted = kind.parse(channel, raw)
    except Rejected as rejection:
        metrics_.rejected.labels(channel.kind, rejection.reason).inc()
        return rejection_response(rejection)
    if accepted.delivery_status is not None:
        metrics_.delivery_status.labels(channel.kind, accepted.delivery_status).inc()
        log.info("delivery_status", channel=channel.id, status=accepted.delivery_status)
        shown = DESK_DELIVERY.get(accepted.delivery_status)
        store = request.app[STORE_KEY]
        if shown is not None and accepted.delivery_for and store is not None:
            try:
                await store.delivery_reported(accepted.delivery_for, shown, accepted.delivery_reason)
            except (SQLAlchemyError, OSError) as exc:  # the provider retries a callback we fail
                log.warning("delivery_status_not_stored", error=type(exc).__name__)
                return error_response(503, "store_unavailable", "retry later", headers={"Retry-After": "5"})
    reply = accepted.reply
    if not accepted.messages:
        return web.Response(status=reply.status, body=reply.body, content_type=reply.content_type)
    try:
        ids = await request.app[INGEST_KEY].accept(channel, accepted.messages)
    except PublishError as failure:
        return error_response(
            503, failure.reason, "the message could not be stored; retry later", headers={"Retry-After": "5"}
        )
    log.debug("webhook_accepted", channel=channel.id, envelope_ids=ids)
    if reply.status == 202 and not reply.body:
        return json_response(202, {"status": "accepted", "ids": ids})
    return web.Response(status=reply.status, body=reply.body, content_type=reply.content_type)


async def admin_reload(request: web.Request) -> web.Response:
    """POST /admin/reload: load the configuration directory again and apply it if valid."""
    expected = request.app[ADMIN_TOKEN_KEY]
    if not expected:
        return error_response(404, "admin_disabled", "set GATEWAY_ADMIN_TOKEN to enable the admin endpoints")
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not same_secret(presented.strip(), expected):
        return error_response(401, "wrong_token", "send Authorization: Bearer <GATEWAY_ADMIN_TOKEN>")
    result = reload_config(request.app[LIVE_KEY], request.app[METRICS_KEY])
    audit = request.app[AUDIT_KEY]
    if audit is not None:
        outcome = "failed" if result["problems"] else "ok"
        await audit.record(AuditEvent("admin", "admin-token", "admin_reload", outcome))
    if result["problems"]:
        return json_response(422, {"error": "invalid_configuration", **result})
    return json_response(200, {"status": "reloaded", **result})


async def channel_page(request: web.Request) -> web.StreamResponse:
    """Everything a channel serves under /channels/{id}/ besides its webhook: its kind's
    route table (pages, sockets) and static files (scripts, stylesheets)."""
    config = request.app[LIVE_KEY].current
    channel = config.channels.get(request.match_info["channel_id"])
    if channel is None:
        return error_response(404, "unknown_channel", "no channel with this id")
    path = request.match_info.get("path", "")
    if path == "webhook":
        raise web.HTTPMethodNotAllowed(request.method, ["POST"])
    if not channel.usable:
        return error_response(503, "channel_not_configured", "the channel's credentials are not configured")
    kind: Kind = request.app[KINDS_KEY][channel.kind]
    handler = request.app[ROUTES_KEY][channel.kind].get((request.method, path))
    if handler is not None:
        response: web.StreamResponse = await handler(channel, request)
        return response
    if request.method == "GET" and kind.static is not None and (static := _asset(kind.static, path)):
        return static
    raise web.HTTPNotFound()


def _asset(folder: Path, name: str) -> web.Response | None:
    """A kind's own script or stylesheet, or None."""
    path = folder / name
    content_type = ASSET_TYPES.get(path.suffix)
    if content_type is None or "/" in name or not path.is_file():
        return None
    return web.Response(
        body=path.read_bytes(),
        content_type=content_type,
        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
    )


async def channel_root(request: web.Request) -> web.StreamResponse:
    raise web.HTTPPermanentRedirect(f"/channels/{request.match_info['channel_id']}/")


def reload_config(live: LiveConfig, metrics_: Metrics) -> dict[str, object]:
    """Reload and log the outcome (file, field and channel ids only, never values)."""
    before = set(live.current.channels)
    loaded, problems = live.reload()
    if loaded is None:
        metrics_.config_reloads.labels("refused").inc()
        log.warning("config_reload_refused", problems=[str(p) for p in problems])
        return {"problems": [_problem(p) for p in problems]}
    after = set(loaded.channels)
    metrics_.config_reloads.labels("applied").inc()
    summary = {
        "problems": [],
        "channels": len(after),
        "added": sorted(after - before),
        "removed": sorted(before - after),
    }
    log.info("config_reloaded", **summary)
    for warning in loaded.warnings:
        log.warning("config_warning", detail=warning)
    return summary


def _problem(problem: Problem) -> dict[str, str]:
    return {"file": problem.file, "field": problem.field, "message": problem.message}


def create_app(
    live: LiveConfig,
    broker: Broker,
    ingest: Ingest,
    metrics_: Metrics,
    kinds: Mapping[str, Kind],
    *,
    webhooks: bool = True,
    readiness: dict[str, Callable[[], bool]] | None = None,
    admin_token: str = "",
    metrics_token: str = "",
    audit: AuditLog | None = None,
    store: Store | None = None,
    trusted_proxies: Sequence[Network] = (),
) -> web.Application:
    """`readiness`: further named checks for /readyz, beside configuration, broker and topology.
    `trusted_proxies`: the peers whose X-Forwarded-For and -Proto are believed (every handler
    sees the client as `request.remote`); HSTS on whatever arrived over https."""
    max_body = live.current.service.http.max_body_bytes
    middlewares = [forwarded_middleware(trusted_proxies), _errors]
    app = web.Application(middlewares=middlewares, client_max_size=max_body)
    app.on_response_prepare.append(strict_transport_security)
    app[LIVE_KEY] = live
    app[ADMIN_TOKEN_KEY] = admin_token
    app[METRICS_TOKEN_KEY] = metrics_token
    app[AUDIT_KEY] = audit
    app[STORE_KEY] = store
    app[BROKER_KEY] = broker
    app[INGEST_KEY] = ingest
    app[METRICS_KEY] = metrics_
    app[KINDS_KEY] = dict(kinds)
    app[ROUTES_KEY] = {name: kind.routes() for name, kind in kinds.items()}
    app[LINKS_KEY] = {}
    app.router.add_get("/", index)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app[READINESS_KEY] = {
        "config": lambda: True,  # the app is only built from a loaded configuration
        "broker": lambda: broker.ready,
        "topology": lambda: broker.ready,  # declared on every (re)connect before ready
        "consumers": lambda: consumers_ready(broker.consumers()),  # every queue this role consumes
        **(readiness or {}),
    }
    app.router.add_post("/admin/reload", admin_reload)
    if webhooks:
        app.router.add_post("/channels/{channel_id}/webhook", webhook)
        app.router.add_get("/channels/{channel_id}", channel_root)
        app.router.add_route("GET", "/channels/{channel_id}/{path:.*}", channel_page)
        app.router.add_route("POST", "/channels/{channel_id}/{path:.*}", channel_page)
    else:
        app[KINDS_KEY], app[ROUTES_KEY] = {}, {}
    return app
