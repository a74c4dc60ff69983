"""The client behind the load balancer, once for the whole app: a middleware that hands
every handler a request whose `remote` is the client and whose `scheme` is what the
client used (`gateway.support.proxies` decides, from GATEWAY_TRUSTED_PROXIES), and HSTS
on every response to a request that arrived over https.

aio-libs' aiohttp-remotes does not fit: its strict middleware refuses (400) a forwarded
header from a peer it does not trust and wants the proxies' order spelled out, its
relaxed one believes anyone. Here a forged header is ignored, never refused.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from aiohttp import hdrs, web
from aiohttp.typedefs import Middleware

from gateway.support.proxies import Network, resolve

HSTS = "max-age=31536000"  # a year; no preload: that is a promise for every subdomain
SECURE_KEY = web.RequestKey("gateway_secure", bool)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def peer_of(request: web.BaseRequest) -> str | None:
    """The TCP peer itself, whatever any header says."""
    transport = request.transport
    peername = transport.get_extra_info("peername") if transport is not None else None
    if isinstance(peername, (list, tuple)) and peername:
        return str(peername[0])
    return None


def forwarded_middleware(trusted: Sequence[Network]) -> Middleware:
    trusted = tuple(trusted)

    @web.middleware
    async def forwarded(request: web.Request, handler: Handler) -> web.StreamResponse:
        resolved = resolve(
            peer_of(request),
            request.scheme,
            request.headers.getall(hdrs.X_FORWARDED_FOR, ()),
            request.headers.getall(hdrs.X_FORWARDED_PROTO, ()),
            trusted,
        )
        # On this request too: aiohttp prepares a handler's response with the original.
        request[SECURE_KEY] = resolved.scheme == "https"
        if resolved.remote is not None and resolved.remote != request.remote:
            request = request.clone(remote=resolved.remote, scheme=resolved.scheme)
        elif resolved.scheme != request.scheme:
            request = request.clone(scheme=resolved.scheme)
        return await handler(request)

    return forwarded


async def strict_transport_security(request: web.BaseRequest, response: web.StreamResponse) -> None:
    """on_response_prepare: every response, WebSocket upgrades and errors too."""
    if request.get(SECURE_KEY, request.scheme == "https"):
        response.headers["Strict-Transport-Security"] = HSTS
