"""The trusted-proxy middleware in the app: what a handler (and a WebSocket) sees as the
client, HSTS, and /metrics still refused to anything a proxy forwarded. The test
client's peer is 127.0.0.1."""

from __future__ import annotations

from dataclasses import replace

import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestClient, TestServer

from gateway.service import build_service
from gateway.support.proxies import parse_networks
from gateway.web.proxies import HSTS, forwarded_middleware, strict_transport_security
from tests.conftest import settings_for

LOOPBACK_TRUSTED = parse_networks("127.0.0.1/32,::1/128")
ELSEWHERE_TRUSTED = parse_networks("10.0.0.0/8")


def echo_app(trusted: object) -> web.Application:
    async def who(request: web.Request) -> web.Response:
        return web.json_response({"remote": request.remote, "scheme": request.scheme})

    async def socket(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_json({"remote": request.remote, "scheme": request.scheme})
        await ws.close()
        return ws

    async def fails(request: web.Request) -> web.Response:
        raise web.HTTPNotFound()

    app = web.Application(middlewares=[forwarded_middleware(trusted)])  # type: ignore[arg-type]
    app.on_response_prepare.append(strict_transport_security)
    app.router.add_get("/who", who)
    app.router.add_get("/socket", socket)
    app.router.add_get("/fails", fails)
    return app


@pytest.mark.parametrize(
    ("trusted", "headers", "remote", "scheme"),
    [
        (LOOPBACK_TRUSTED, {"X-Forwarded-For": "198.51.100.1"}, "198.51.100.1", "http"),
        (LOOPBACK_TRUSTED, {"X-Forwarded-For": "6.6.6.6, 198.51.100.1", "X-Forwarded-Proto": "https"},
         "198.51.100.1", "https"),
        (LOOPBACK_TRUSTED, {"X-Forwarded-For": "garbage"}, "127.0.0.1", "http"),
        (LOOPBACK_TRUSTED, {}, "127.0.0.1", "http"),
        (ELSEWHERE_TRUSTED, {"X-Forwarded-For": "198.51.100.1", "X-Forwarded-Proto": "https"},
         "127.0.0.1", "http"),
        ((), {"X-Forwarded-For": "198.51.100.1", "X-Forwarded-Proto": "https"}, "127.0.0.1", "http"),
    ],
)  # fmt: skip
async def test_handlers_and_sockets_see_the_client(
    trusted: object, headers: dict[str, str], remote: str, scheme: str
) -> None:
    async with TestClient(TestServer(echo_app(trusted))) as client:
        answer = await client.get("/who", headers=headers)
        assert await answer.json() == {"remote": remote, "scheme": scheme}
        assert (answer.headers.get("Strict-Transport-Security") == HSTS) is (scheme == "https")
        async with client.ws_connect("/socket", headers=headers) as ws:
            assert await ws.receive_json(timeout=5) == {"remote": remote, "scheme": scheme}
            assert (await ws.receive(timeout=5)).type in (WSMsgType.CLOSE, WSMsgType.CLOSED)
        refused = await client.get("/fails", headers=headers)
        assert refused.status == 404
        assert (refused.headers.get("Strict-Transport-Security") == HSTS) is (scheme == "https")


async def test_the_gateway_app_behind_a_trusted_loopback_proxy(config) -> None:
    settings = replace(settings_for(None), trusted_proxies=LOOPBACK_TRUSTED)
    service = build_service(settings, config)
    async with TestClient(TestServer(service.app)) as client:
        secure = await client.get("/healthz", headers={"X-Forwarded-Proto": "https"})
        assert secure.status == 200 and secure.headers["Strict-Transport-Security"] == HSTS
        assert "Strict-Transport-Security" not in (await client.get("/healthz")).headers
        missing = await client.get("/nowhere", headers={"X-Forwarded-Proto": "https"})
        assert missing.status == 404 and missing.headers["Strict-Transport-Security"] == HSTS
        # Garbage in the headers a trusted proxy passes on is never a 500.
        for garbage in ("é, 198.51.100.1, ß", "1.2.3.4.5, ::::", "a" * 4000, ",,,,", "[::1"):
            answer = await client.get("/healthz", headers={"X-Forwarded-For": garbage})
            assert answer.status == 200
        # /metrics: a local scrape, yes; anything forwarded, even "from" loopback, no.
        assert (await client.get("/metrics")).status == 200
        for forwarded in ("198.51.100.1", "127.0.0.1", "garbage"):
            refused = await client.get("/metrics", headers={"X-Forwarded-For": forwarded})
            assert refused.status == 403, forwarded
