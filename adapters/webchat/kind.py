"""`webchat`: an anonymous chat in the browser, over a WebSocket.

Served under /channels/{id}/: the standalone page (``/``), the framed chat
(``frame``, which only the channel's allowed origins may embed), the launcher a
region puts on its own site with one tag (``widget.js``: a button and a
sandboxed iframe of ``frame``, so the host page never holds the conversation),
the chat's script (``chat.js``) and stylesheet (``chat.css``), the schedule
state (``status``), the socket (``socket``) and quick exit (``end``, answered
with Clear-Site-Data). None of it is kept in a cache (no-store).

The protocol is JSON frames. The person's messages carry sequence numbers
(``{"type": "message", "seq": n, "text": ...}``); the gateway answers
``{"type": "ack", "seq": n}`` once the broker confirmed the message, and a
resent number already stored is acked again without a second publish.
Replies carry the session's own numbers (``{"type": "reply", "seq": n, ...}``);
after a drop the page resumes with ``{"type": "resume", "session": token,
"last_reply": n}`` and gets every later reply once. Replies are kept in the
store for the session's life and a wake-up on the gw.webchat fanout exchange
tells whichever process holds the session's socket to push them, so a reply
consumed by another process still arrives (a slow poll catches a missed
wake-up).

While the person waits for a counsellor the socket tells them their place in the
team's queue, ``{"type": "queue", "place": n}``, and ``"place": null`` once it is
gone (claimed, closed); only when it changes. One loop per process asks the
store every `PLACE_SECONDS` for the places of all its open sessions at once, one
query per channel (not per socket).

The session token lives only in the page's memory (no cookie, no storage); the
gateway keeps its SHA-256, which is also the person's address. A session ends
on quick exit or after `session_idle_seconds` without a message either way; its
replies are deleted then.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import secrets
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import structlog
from aiohttp import WSMsgType, web
from pydantic import Field
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.base import ChannelKind, Host
from adapters.registry import register
from adapters.webchat import store
from adapters.webchat.store import ChatStore
from gateway.config.models import NATIONAL, Channel, KindSettings
from gateway.domain.kinds import PageRoutes
from gateway.domain.messages import InboundMessage, Outgoing, PublishError, SendFailed
from gateway.domain.schedules import AMSTERDAM, resolve, state_at
from gateway.domain.texts import format_local

# Fanout: a reply was stored for a session; whichever process holds its socket pushes it.
WEBCHAT_EXCHANGE = "gw.webchat"
WAKE_TYPE = "gateway.webchat.wake.v1"
log = structlog.get_logger("gateway.webchat")

STATIC = Path(__file__).resolve().parent / "static"
PAGE = STATIC / "index.html"  # the standalone page and the framed chat, {{mode}} apart
# Served by the kind's own routes (not as a kind's static files) so that they carry no-store.
ASSETS = {"widget.js": "text/javascript", "chat.js": "text/javascript", "chat.css": "text/css"}
ORIGIN = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$")  # what may go into frame-ancestors
MAX_FRAME_BYTES = 16 * 1024
POLL_SECONDS = 2.0
PLACE_SECONDS = 2.0  # how often the sockets' places in the queue are looked up, all at once
SEND_SECONDS = 5.0  # a socket that takes longer to take a place frame gets it at the next change
FREE_PHONE = "0800-2000"
EMERGENCY = "112"


def _local_texts(moment: datetime | None) -> dict[str, str] | None:
    if moment is None:
        return None
    return {lang: format_local(moment.astimezone(AMSTERDAM), lang) for lang in ("nl", "en")}


class _Connection:
    def __init__(self, socket: web.WebSocketResponse, address: str, channel_id: str) -> None:
        self.socket = socket
        self.address = address
        self.channel_id = channel_id
        self.session_id: str | None = None
        self.last_reply = 0
        self.place: int | None = None  # the place in the queue the page was told last
        self.lock = asyncio.Lock()

    async def send(self, frame: dict[str, Any]) -> None:
        if not self.socket.closed:
            await self.socket.send_str(orjson.dumps(frame).decode())


def session_id_of(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class WebChatSettings(KindSettings):
    allowed_origins: list[str] = Field(
        default_factory=list, description="Sites that may embed the widget, e.g. https://www.example.nl"
    )
    exit_url: str = Field(
        default="https://www.google.com/search?q=weer",
        pattern=r"^https?://",
        description="The neutral site quick exit replaces the page with",
    )
    session_idle_seconds: int = Field(default=1800, ge=5, le=86400)
    max_message_chars: int = Field(default=2000, ge=1, le=4096)
    messages_per_minute: int = Field(default=20, ge=1, le=600, description="Per session")
    address_messages_per_minute: int = Field(default=60, ge=1, le=6000, description="Per client address")
    address_sessions_per_hour: int = Field(default=30, ge=1, le=10000)


ChatChannel = Channel[WebChatSettings]


@register
class WebChat(ChannelKind[WebChatSettings]):
    name = "webchat"
    label = "Webchat"
    settings_model = WebChatSettings
    takes_webhooks = False  # it talks over /channels/{id}/socket
    fanout_exchanges = (WEBCHAT_EXCHANGE,)
    migrations = Path(__file__).resolve().parent / "migrations"
    encrypted_columns = (store.REPLY_TEXT,)

    def __init__(self) -> None:
        self._host: Host | None = None
        self._chats: ChatStore | None = None
        self._connections: dict[str, set[_Connection]] = defaultdict(set)
        self._places: asyncio.Task[None] | None = None

    async def attach(self, host: Host) -> None:
        self._host = host
        self._chats = ChatStore(host.database, host.fields)
        self._connections.clear()
        with contextlib.suppress(RuntimeError):  # a loop of an earlier service, closed already
            await self.close()
        if host.serves_pages:  # only a process holding sockets needs the wake-ups
            await host.subscribe(WEBCHAT_EXCHANGE, self._wake_up)
            self._places = asyncio.create_task(self._places_loop())

    async def close(self) -> None:
        places, self._places = self._places, None
        if places is not None:
            places.cancel()

    async def forget_before(self, connection: AsyncConnection, cutoff: datetime) -> None:
        await store.forget_before(connection, cutoff)

    # outbound

    async def send(self, channel: ChatChannel, outgoing: Outgoing) -> str:
        host = self._need_host()
        seq = await self._need_chats().add_chat_reply(
            outgoing.address, outgoing.message_id, outgoing.origin, outgoing.text
        )
        if seq is None:
            raise SendFailed("session_ended", permanent=True)
        with contextlib.suppress(PublishError):  # stored: the poll delivers it if nobody wakes
            wake = orjson.dumps({"session": outgoing.address})
            await host.notify(WEBCHAT_EXCHANGE, WAKE_TYPE, wake, f"wake-{outgoing.message_id}")
        return f"webchat-{seq}"

    async def gone(self, channel: ChatChannel, address: str) -> bool:
        session = await self._need_chats().chat_session(address)
        return session is None or session.ended or self._expired(channel, session.last_seen_at)

    async def _wake_up(self, body: bytes) -> None:
        try:
            session = str(orjson.loads(body)["session"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return
        for connection in list(self._connections.get(session, ())):
            await self._push(connection)

    # pages

    def routes(self) -> PageRoutes:
        return {
            ("GET", ""): self._index,
            ("GET", "frame"): self._frame_page,
            **{("GET", name): self._asset for name in ASSETS},
            ("GET", "status"): self._status,
            ("GET", "socket"): self._socket,
            ("POST", "end"): self._end,
        }

    async def _index(self, channel: ChatChannel, request: web.Request) -> web.Response:
        """The standalone page: nobody may frame it."""
        return self._page(channel, request, "page", "'none'")

    async def _frame_page(self, channel: ChatChannel, request: web.Request) -> web.Response:
        """The chat the launcher (widget.js) opens in an iframe on a region's own site: only
        the gateway itself and the channel's allowed origins may frame it."""
        ancestors = " ".join(["'self'", *(o for o in channel.settings.allowed_origins if ORIGIN.match(o))])
        return self._page(channel, request, "frame", ancestors)

    def _page(self, channel: ChatChannel, request: web.Request, mode: str, ancestors: str) -> web.Response:
        html = PAGE.read_text().replace("{{lang}}", channel.language).replace("{{mode}}", mode)
        host = request.host
        csp = (
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
            f"connect-src 'self' ws://{host} wss://{host}; base-uri 'none'; form-action 'none'; "
            f"frame-ancestors {ancestors}"
        )
        return web.Response(
            text=html,
            content_type="text/html",
            headers={
                "Content-Security-Policy": csp,
                "Referrer-Policy": "no-referrer",
                "X-Content-Type-Options": "nosniff",
                "Cache-Control": "no-store",
                "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
            },
        )

    async def _asset(self, channel: ChatChannel, request: web.Request) -> web.Response:
        """The launcher, the chat's script and its stylesheet, never kept in a cache."""
        name = request.match_info.get("path", "")
        content_type = ASSETS[name]
        return web.Response(
            body=(STATIC / name).read_bytes(),
            content_type=content_type,
            headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
        )

    def _cors(self, channel: ChatChannel, request: web.Request) -> dict[str, str]:
        origin = request.headers.get("Origin")
        if origin and origin in channel.settings.allowed_origins:
            return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}
        return {}

    async def _status(self, channel: ChatChannel, request: web.Request) -> web.Response:
        host = self._need_host()
        config = host.config
        region = channel.region
        schedule_name = config.regions[region].schedule if region else config.national.schedule
        state = state_at(resolve(schedule_name, config.schedules), host.now())
        next_open = state.next_change if not state.open else None
        name = config.regions[region].name if region else config.national.name
        body = {
            "open": state.open,
            "next_open": next_open.astimezone(AMSTERDAM).isoformat() if next_open else None,
            "next_open_text": _local_texts(next_open),
            "region": name,
            "team": region or NATIONAL,
            "phone": FREE_PHONE,
            "emergency": EMERGENCY,
            "language": channel.language,
            "exit_url": channel.settings.exit_url,
            "max_message_chars": channel.settings.max_message_chars,
        }
        headers = {"Cache-Control": "no-store", **self._cors(channel, request)}
        return web.Response(body=orjson.dumps(body), content_type="application/json", headers=headers)

    def _origin_allowed(self, channel: ChatChannel, request: web.Request) -> bool:
        origin = request.headers.get("Origin")
        if origin is None:
            return False
        own = {f"http://{request.host}", f"https://{request.host}"}
        return origin in own or origin in channel.settings.allowed_origins

    async def _end(self, channel: ChatChannel, request: web.Request) -> web.Response:
        """Quick exit when the socket is gone: POST the token as the body."""
        token = (await request.text())[:200].strip()
        if token:
            await self._end_session(session_id_of(token))
        # The browser forgets whatever it may have kept of the gateway's origin.
        headers = {"Clear-Site-Data": '"cache", "storage"', "Cache-Control": "no-store"}
        return web.Response(status=204, headers={**headers, **self._cors(channel, request)})

    async def _end_session(self, session_id: str) -> None:
        await self._need_chats().end_session(session_id)
        for connection in list(self._connections.pop(session_id, ())):
            with contextlib.suppress(Exception):
                await connection.send({"type": "ended"})
                await connection.socket.close()

    # the socket

    async def _socket(self, channel: ChatChannel, request: web.Request) -> web.StreamResponse:
        host = self._need_host()
        if not self._origin_allowed(channel, request):
            host.refused(self.name, "origin_not_allowed")
            raise web.HTTPForbidden(reason="Origin Not Allowed")
        socket = web.WebSocketResponse(heartbeat=20, max_msg_size=MAX_FRAME_BYTES)
        await socket.prepare(request)
        connection = _Connection(socket, request.remote or "unknown", channel.id)
        poller = asyncio.create_task(self._poll(channel, connection))
        try:
            async for frame in socket:
                if frame.type is WSMsgType.TEXT:
                    await self._frame(channel, connection, frame.data)
                elif frame.type is WSMsgType.BINARY:
                    await self._refuse(connection, "bad_frame", "frames are JSON text")
                elif frame.type is WSMsgType.ERROR:
                    break
        finally:
            poller.cancel()
            if connection.session_id is not None:
                self._connections[connection.session_id].discard(connection)
                if not self._connections[connection.session_id]:
                    self._connections.pop(connection.session_id, None)
        if socket.close_code == 1009:  # aiohttp closed it: a frame over MAX_FRAME_BYTES
            host.refused(self.name, "frame_too_large")
        return socket

    async def _refuse(self, connection: _Connection, error: str, detail: str, **extra: object) -> None:
        self._need_host().refused(self.name, error)
        await connection.send({"type": "error", "error": error, "detail": detail, **extra})

    async def _frame(self, channel: ChatChannel, connection: _Connection, data: str) -> None:
        try:
            frame = orjson.loads(data)
        except orjson.JSONDecodeError:
            await self._refuse(connection, "bad_frame", "a frame is one JSON object")
            return
        kind = frame.get("type") if isinstance(frame, dict) else None
        if kind == "start":
            await self._start(channel, connection)
        elif kind == "resume":
            await self._resume(channel, connection, frame)
        elif kind == "message":
            await self._message(channel, connection, frame)
        elif kind == "received":
            pass  # the page confirms a reply; replies are kept for the session's life anyway
        elif kind == "end":
            if connection.session_id is not None:
                await self._end_session(connection.session_id)
        elif kind == "ping":
            await connection.send({"type": "pong"})
        else:
            await self._refuse(connection, "bad_frame", "unknown frame type")

    async def _allow(self, channel: ChatChannel, limit: str, key: str, count: int, seconds: int) -> bool:
        """One event against one of the channel's limits, through the limiter the service
        lends (shared by every process when it has Redis)."""
        return await self._need_host().limiter.allow(f"webchat:{channel.id}:{limit}", key, count, seconds)

    async def _start(self, channel: ChatChannel, connection: _Connection) -> None:
        if connection.session_id is not None:
            await self._refuse(connection, "bad_frame", "this socket already has a session")
            return
        starts = channel.settings.address_sessions_per_hour
        if not await self._allow(channel, "starts", connection.address, starts, 3600):
            await self._refuse(connection, "rate_limited", "too many new chats from here; wait a while")
            return
        token = secrets.token_urlsafe(32)
        session_id = session_id_of(token)
        await self._need_chats().start_session(session_id, channel.id)
        self._join(connection, session_id)
        await connection.send({"type": "started", "session": token, "stored": 0})

    def _join(self, connection: _Connection, session_id: str) -> None:
        connection.session_id = session_id
        self._connections[session_id].add(connection)

    async def _resume(self, channel: ChatChannel, connection: _Connection, frame: dict[str, Any]) -> None:
        token, last = frame.get("session"), frame.get("last_reply", 0)
        if not isinstance(token, str) or type(last) is not int or last < 0 or connection.session_id:
            await self._refuse(connection, "bad_frame", "resume needs the session token and last_reply")
            return
        session = await self._need_chats().chat_session(session_id_of(token))
        if session is None or session.channel_id != channel.id:
            await self._refuse(connection, "unknown_session", "start a new chat")
            return
        if session.ended or self._expired(channel, session.last_seen_at):
            await connection.send({"type": "expired"})
            await self._end_session(session.session_id)
            return
        connection.last_reply = min(last, session.server_seq)
        self._join(connection, session.session_id)
        await connection.send({"type": "resumed", "stored": session.client_seq})
        await self._push(connection)

    async def _message(self, channel: ChatChannel, connection: _Connection, frame: dict[str, Any]) -> None:
        chats = self._need_chats()
        seq, text = frame.get("seq"), frame.get("text")
        limit = channel.settings.max_message_chars
        if connection.session_id is None:
            await self._refuse(connection, "no_session", "send start or resume first")
            return
        if type(seq) is not int or not 0 < seq < 10**9 or not isinstance(text, str) or not text.strip():
            await self._refuse(connection, "bad_frame", "a message has a positive seq and some text")
            return
        if len(text) > limit:
            await self._refuse(connection, "too_large", f"at most {limit} characters", seq=seq)
            return
        session = await chats.chat_session(connection.session_id)
        if session is None or session.ended or self._expired(channel, session.last_seen_at):
            await connection.send({"type": "expired"})
            if session is not None:
                await self._end_session(session.session_id)
            return
        if seq <= session.client_seq:  # a resend of what is stored already
            await connection.send({"type": "ack", "seq": seq})
            return
        settings = channel.settings
        if not await self._allow(
            channel, "session_messages", connection.session_id, settings.messages_per_minute, 60
        ) or not await self._allow(
            channel, "address_messages", connection.address, settings.address_messages_per_minute, 60
        ):
            await self._refuse(connection, "rate_limited", "too many messages; wait a minute", seq=seq)
            return
        message = InboundMessage(
            provider_message_id=f"{connection.session_id}:{seq}", address=connection.session_id, text=text
        )
        try:
            await self._need_host().accept(channel, (message,))
        except PublishError as failure:
            await self._refuse(connection, failure.reason, "not stored; it will be sent again", seq=seq)
            return
        await chats.touch_session(connection.session_id, client_seq=seq)
        await connection.send({"type": "ack", "seq": seq})

    def _expired(self, channel: ChatChannel, last_seen: datetime) -> bool:
        idle = timedelta(seconds=channel.settings.session_idle_seconds)
        return datetime.now(UTC) - last_seen > idle

    async def _push(self, connection: _Connection) -> None:
        """Send the replies the page has not had yet, in order, each once per connection."""
        if connection.session_id is None:
            return
        async with connection.lock:
            replies = await self._need_chats().chat_replies_after(
                connection.session_id, connection.last_reply
            )
            for reply in replies:
                await connection.send(
                    {"type": "reply", "seq": reply.seq, "id": reply.message_id, "origin": reply.origin,
                     "text": reply.text}
                )  # fmt: skip
                connection.last_reply = reply.seq

    async def _poll(self, channel: ChatChannel, connection: _Connection) -> None:
        """Catch a missed wake-up, and end a session that has been idle too long."""
        chats = self._need_chats()
        while not connection.socket.closed:
            await asyncio.sleep(POLL_SECONDS)
            if connection.session_id is None:
                continue
            try:
                await self._push(connection)
                session = await chats.chat_session(connection.session_id)
                if session is not None and self._expired(channel, session.last_seen_at):
                    await connection.send({"type": "expired"})
                    await self._end_session(session.session_id)
                    return
            except Exception as exc:  # the database is down: try again on the next tick
                log.warning("webchat_poll_failed", error=type(exc).__name__)

    async def _places_loop(self) -> None:
        while True:
            await asyncio.sleep(PLACE_SECONDS)
            if not self._connections:
                continue
            try:
                await self.update_places()
            except Exception as exc:  # the database is down: the pages keep the last place
                log.warning("webchat_queue_places_failed", error=type(exc).__name__)

    async def update_places(self) -> None:
        """Look up the place in the queue of every open session, one query per channel, and
        tell the sockets whose place changed. Only the number goes to the page."""
        host = self._need_host()
        by_channel: dict[str, set[str]] = defaultdict(set)
        for session_id, connections in list(self._connections.items()):
            for connection in connections:
                by_channel[connection.channel_id].add(session_id)
        frames = []
        for channel_id, session_ids in by_channel.items():
            places = await host.queue_places(channel_id, session_ids)
            for session_id in session_ids:
                place = places.get(session_id)
                for connection in list(self._connections.get(session_id, ())):
                    if connection.place != place:
                        frames.append(self._tell_place(connection, place))
        await asyncio.gather(*frames)

    async def _tell_place(self, connection: _Connection, place: int | None) -> None:
        try:
            await asyncio.wait_for(connection.send({"type": "queue", "place": place}), SEND_SECONDS)
        except Exception:  # a closing or stuck socket: a new one is told afresh
            return
        connection.place = place

    def _need_host(self) -> Host:
        if self._host is None:
            raise RuntimeError("the webchat kind was not attached to a running service")
        return self._host

    def _need_chats(self) -> ChatStore:
        if self._chats is None:
            raise RuntimeError("the webchat kind was not attached to a running service")
        return self._chats
