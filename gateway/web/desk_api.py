"""The desk's JSON API under /api/v1/, with its OpenAPI document.

A counsellor signs in with `POST /api/v1/session` and gets a bearer token (for a
region's own case system) and the same token as an HttpOnly, SameSite=Strict
cookie (for the console, which then also sends the `csrf_token` in
`X-CSRF-Token` on every change). Every call acts for the counsellor's own team:
another team's conversation is 403, no or a bad session is 401.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

import structlog
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gateway.config.live import LiveConfig
from gateway.config.models import NATIONAL, Counsellor
from gateway.domain.envelope import MAX_TEXT_CHARS
from gateway.domain.messages import PublishError, Rejected, decode_json
from gateway.roles.desk import Desk
from gateway.support.keys import Keyring
from gateway.support.passwords import verify_password
from gateway.support.sessions import SignedTokens, SignInLimiter, demo_password_hash, set_cookie
from gateway.web.errors import NO_STORE, error_response, json_response, rejection_response

log = structlog.get_logger("gateway.desk_api")

COOKIE = "desk_session"
DEMO_PASSWORD = "desk-demo-2026"  # noqa: S105 - documented; only with GATEWAY_DEMO_ACCOUNTS=1
DEMO_TEAMS = {"demo-zob": "zuidoost-brabant", "demo-landelijk": NATIONAL}
SIGN_INS_PER_MINUTE = 10  # per client address: passwords are not to be guessed
DESK_KEY = web.AppKey("desk", Desk)
AUTH_KEY: web.AppKey[Auth] = web.AppKey("desk_auth")


class _SignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    counsellor: str = Field(min_length=1, max_length=80)
    password: str = Field(min_length=1, max_length=200)


class _Reply(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)


class _Transfer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    team: str = Field(min_length=1, max_length=80)
    reason: str = Field(min_length=1, max_length=500)


@dataclass(frozen=True)
class Who:
    counsellor: str
    name: str
    team: str
    via_cookie: bool
    token: str


class Auth:
    def __init__(self, live: LiveConfig, keyring: Keyring, demo_accounts: bool) -> None:
        self._live = live
        self._tokens = SignedTokens(keyring.key_for("desk/session"))
        self._sign_ins = SignInLimiter(SIGN_INS_PER_MINUTE)
        self._demo: dict[str, Counsellor] = {}
        if demo_accounts:
            shared = demo_password_hash(DEMO_PASSWORD)
            self._demo = {
                cid: Counsellor(id=cid, name=f"Demo ({team})", team=team, password_hash=shared)
                for cid, team in DEMO_TEAMS.items()
            }

    def may_try(self, address: str) -> bool:
        return self._sign_ins.allow(address)

    @property
    def secure_cookies(self) -> bool:
        return self._live.current.service.desk.secure_cookies

    def account(self, counsellor: str) -> Counsellor | None:
        return self._live.current.counsellors.get(counsellor) or self._demo.get(counsellor)

    def issue(self, counsellor: Counsellor) -> tuple[str, int]:
        return self._tokens.issue(counsellor.id, self._live.current.service.desk.session_minutes * 60)

    def csrf(self, token: str) -> str:
        return self._tokens.csrf(token)

    def csrf_ok(self, token: str, presented: str) -> bool:
        return self._tokens.csrf_ok(token, presented)

    def who(self, request: web.Request) -> Who:
        header = request.headers.get("Authorization", "")
        via_cookie = not header
        token = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
        if via_cookie:
            token = request.cookies.get(COOKIE, "")
        counsellor_id = self._tokens.subject(token)
        if counsellor_id is None:
            raise Rejected(401, "no_session", "sign in first (POST /api/v1/session)")
        account = self.account(counsellor_id)
        if account is None:
            raise Rejected(401, "no_session", "the session has ended; sign in again")
        return Who(account.id, account.name, account.team, via_cookie, token)


def _json(status: int, payload: Any, headers: dict[str, str] | None = None) -> web.Response:
    return json_response(status, payload, {**NO_STORE, **(headers or {})})


def _refused(refusal: Rejected) -> web.Response:
    challenge = {"WWW-Authenticate": 'Bearer realm="desk"'} if refusal.status == 401 else {}
    return rejection_response(refusal, {**NO_STORE, **challenge})


B = TypeVar("B", bound=BaseModel)


async def _body(request: web.Request, model: type[B]) -> B:
    data = decode_json(await request.read(), request.content_type, request.charset)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        fields = tuple(
            (".".join(str(p) for p in e["loc"]) or "body", e["msg"])
            for e in exc.errors(include_input=False, include_url=False)
        )
        raise Rejected(422, "invalid_request", "the request body is not valid", fields) from None


Handler = Callable[[web.Request, Who, Desk], Awaitable[web.StreamResponse]]


def _action(
    handler: Handler, *, changes: bool = False
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            auth = request.app[AUTH_KEY]
            who = auth.who(request)
            conversation_id = request.match_info.get("conversation_id")
            if conversation_id is not None and not CONVERSATION_ID.fullmatch(conversation_id):
                # Never made by the gateway; and PostgreSQL refuses text with NUL in it.
                raise Rejected(404, "unknown_conversation", "no conversation with this id")
            if (
                changes
                and who.via_cookie
                and not auth.csrf_ok(who.token, request.headers.get("X-CSRF-Token", ""))
            ):
                raise Rejected(403, "csrf", "send the session's csrf_token in X-CSRF-Token")
            return await handler(request, who, request.app[DESK_KEY])
        except Rejected as refusal:
            return _refused(refusal)
        except PublishError as failure:
            headers = {**NO_STORE, "Retry-After": "5"}
            return error_response(503, failure.reason, "the broker did not take it; retry", headers=headers)

    return wrapped


def _summary(summary: Any, now: float) -> dict[str, Any]:
    data = asdict(summary)
    data["waiting_seconds"] = max(0, int(now - summary.waiting_since.timestamp()))
    data["waiting_since"] = summary.waiting_since.isoformat()
    data["last_activity_at"] = summary.last_activity_at.isoformat()
    return data


async def sign_in(request: web.Request) -> web.Response:
    auth = request.app[AUTH_KEY]
    try:
        body = await _body(request, _SignIn)
    except Rejected as refusal:
        return _refused(refusal)
    if not auth.may_try(request.remote or "unknown"):
        return _refused(Rejected(429, "too_many_attempts", "too many sign-ins from here; wait a minute"))
    account = auth.account(body.counsellor)
    if account is None or not verify_password(body.password, account.password_hash):
        return _refused(Rejected(401, "wrong_credentials", "unknown counsellor or wrong password"))
    token, expires = auth.issue(account)
    response = _json(
        200,
        {"token": token, "csrf_token": auth.csrf(token), "counsellor": account.id, "name": account.name,
         "team": account.team, "expires_at": expires},
    )  # fmt: skip
    set_cookie(
        response,
        COOKIE,
        token,
        path="/",
        secure=auth.secure_cookies or request.secure,
        max_age=expires - int(time.time()),
    )
    log.info("counsellor_signed_in", counsellor=account.id, team=account.team)
    return response


async def _me(request: web.Request, who: Who, desk: Desk) -> web.Response:
    csrf = request.app[AUTH_KEY].csrf(who.token)
    return _json(200, {"counsellor": who.counsellor, "name": who.name, "team": who.team, "csrf_token": csrf})


CONSOLE = Path(__file__).resolve().parent / "static" / "desk"
CONSOLE_TYPES = {"index.html": "text/html", "desk.js": "text/javascript", "desk.css": "text/css"}


async def _to_console(request: web.Request) -> web.Response:
    raise web.HTTPPermanentRedirect("/desk/")


async def console(request: web.Request) -> web.Response:
    """The counsellor console: /desk/ and its script and stylesheet; no third-party assets."""
    name = request.match_info.get("name") or "index.html"
    if name not in CONSOLE_TYPES:
        raise web.HTTPNotFound()
    headers = {
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
        "connect-src 'self'; img-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'",
    }
    return web.Response(body=(CONSOLE / name).read_bytes(), content_type=CONSOLE_TYPES[name], headers=headers)


async def _list(request: web.Request, who: Who, desk: Desk) -> web.Response:
    include_closed = request.query.get("status") == "all"
    now = time.time()
    items = [_summary(s, now) for s in await desk.conversations(who.team, include_closed=include_closed)]
    return _json(200, {"team": who.team, "conversations": items})


async def _read(request: web.Request, who: Who, desk: Desk) -> web.Response:
    summary, entries = await desk.conversation(request.match_info["conversation_id"], who.team)
    transcript = [{**asdict(e), "at": e.at.isoformat()} for e in entries]
    return _json(200, {**_summary(summary, time.time()), "transcript": transcript})


async def _claim(request: web.Request, who: Who, desk: Desk) -> web.Response:
    summary = await desk.claim(request.match_info["conversation_id"], who.counsellor, who.team)
    return _json(200, _summary(summary, time.time()) | {"claimed_by": who.counsellor, "status": "claimed"})


async def _reply(request: web.Request, who: Who, desk: Desk) -> web.Response:
    body = await _body(request, _Reply)
    reply_id = await desk.reply(request.match_info["conversation_id"], who.counsellor, who.team, body.text)
    return _json(202, {"status": "queued", "id": reply_id})


async def _transfer(request: web.Request, who: Who, desk: Desk) -> web.Response:
    body = await _body(request, _Transfer)
    await desk.transfer(
        request.match_info["conversation_id"], who.counsellor, who.team, body.team, body.reason
    )
    return _json(200, {"status": "transferred", "team": body.team})


async def _close(request: web.Request, who: Who, desk: Desk) -> web.Response:
    await desk.close_conversation(request.match_info["conversation_id"], who.counsellor, who.team)
    return _json(200, {"status": "closed"})


async def _events(request: web.Request, who: Who, desk: Desk) -> web.StreamResponse:
    """Server-sent events: `changed` with a conversation id whenever one of the team's changes."""
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"})
    await response.prepare(request)
    queue: asyncio.Queue[str] = asyncio.Queue(maxsize=1000)

    def on_change(team: str, conversation_id: str) -> None:
        if team == who.team and not queue.full():
            queue.put_nowait(conversation_id)

    unsubscribe = desk.listen(on_change)
    try:
        await response.write(b": connected\n\n")
        while True:
            try:
                conversation_id = await asyncio.wait_for(queue.get(), 15)
                await response.write(f"event: changed\ndata: {conversation_id}\n\n".encode())
            except TimeoutError:
                await response.write(b": keep-alive\n\n")
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        unsubscribe()
    return response


CONVERSATION_ID = re.compile(r"[A-Za-z0-9_.:-]{1,100}")
ROUTES: list[tuple[str, str, Handler, bool]] = [
    ("GET", "/api/v1/me", _me, False),
    ("GET", "/api/v1/conversations", _list, False),
    ("GET", "/api/v1/conversations/{conversation_id}", _read, False),
    ("POST", "/api/v1/conversations/{conversation_id}/claim", _claim, True),
    ("POST", "/api/v1/conversations/{conversation_id}/reply", _reply, True),
    ("POST", "/api/v1/conversations/{conversation_id}/transfer", _transfer, True),
    ("POST", "/api/v1/conversations/{conversation_id}/close", _close, True),
    ("GET", "/api/v1/events", _events, False),
]


async def openapi(request: web.Request) -> web.Response:
    return _json(200, OPENAPI)


def add_routes(
    app: web.Application, desk: Desk, live: LiveConfig, keyring: Keyring, demo_accounts: bool
) -> None:
    app[DESK_KEY] = desk
    app[AUTH_KEY] = Auth(live, keyring, demo_accounts)
    app.router.add_get("/desk", _to_console)
    app.router.add_get("/desk/", console)
    app.router.add_get("/desk/{name}", console)
    app.router.add_post("/api/v1/session", sign_in)
    app.router.add_get("/api/v1/openapi.json", openapi)
    for method, path, handler, changes in ROUTES:
        app.router.add_route(method, path, _action(handler, changes=changes))


def _error_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["error", "detail"],
        "properties": {"error": {"type": "string"}, "detail": {"type": "string"}},
    }


_SUMMARY = {
    "type": "object",
    "required": [
        "conversation_id",
        "team",
        "channel_kind",
        "status",
        "urgent",
        "after_hours",
        "waiting_seconds",
    ],
    "properties": {
        "conversation_id": {"type": "string"},
        "team": {"type": "string"},
        "channel_kind": {"type": "string"},
        "status": {"type": "string", "enum": ["waiting", "claimed", "closed"]},
        "urgent": {"type": "boolean"},
        "after_hours": {"type": "boolean"},
        "claimed_by": {"type": ["string", "null"]},
        "waiting_since": {"type": "string", "format": "date-time"},
        "last_activity_at": {"type": "string", "format": "date-time"},
        "waiting_seconds": {"type": "integer"},
    },
}


def _operation(summary: str, ok: int, ok_schema: dict[str, Any], *, body: dict[str, Any] | None = None,
               conversation: bool = False) -> dict[str, Any]:  # fmt: skip
    error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    operation: dict[str, Any] = {
        "summary": summary,
        "security": [{"bearer": []}, {"cookie": []}],
        "responses": {
            str(ok): {"description": "done", "content": {"application/json": {"schema": ok_schema}}},
            "401": {"description": "no session", **error},
        },
    }
    if conversation:
        operation["parameters"] = [
            {"name": "conversation_id", "in": "path", "required": True, "schema": {"type": "string"}}
        ]
        operation["responses"]["403"] = {"description": "another team's conversation", **error}
        operation["responses"]["404"] = {"description": "unknown conversation", **error}
    if body is not None:
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
        operation["responses"]["422"] = {"description": "invalid body", **error}
    return operation


OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "Veilig Thuis gateway: counsellor desk", "version": "1"},
    "components": {
        "schemas": {"Error": _error_schema(), "Summary": _SUMMARY},
        "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer"},
            "cookie": {"type": "apiKey", "in": "cookie", "name": COOKIE},
        },
    },
    "paths": {
        "/api/v1/session": {
            "post": {
                "summary": "Sign in; returns a bearer token (also set as a cookie) and a CSRF token",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["counsellor", "password"],
                                "properties": {
                                    "counsellor": {"type": "string"},
                                    "password": {"type": "string"},
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "200": {"description": "signed in"},
                    "401": {"description": "wrong credentials"},
                    "429": {"description": "too many sign-ins from this address"},
                    "422": {"description": "invalid body"},
                },
            }
        },
        "/api/v1/me": {"get": _operation("Who is signed in", 200, {"type": "object"})},
        "/api/v1/conversations": {
            "get": _operation(
                "The team's conversations, urgent first, then the longest waiting",
                200,
                {
                    "type": "object",
                    "properties": {
                        "conversations": {"type": "array", "items": {"$ref": "#/components/schemas/Summary"}}
                    },
                },
            )
        },
        "/api/v1/conversations/{conversation_id}": {
            "get": _operation("A conversation and its transcript", 200, {"type": "object"}, conversation=True)
        },
        "/api/v1/conversations/{conversation_id}/claim": {
            "post": _operation(
                "Claim it (409 with claimed_by if another has it)",
                200,
                {"$ref": "#/components/schemas/Summary"},
                conversation=True,
            )
        },
        "/api/v1/conversations/{conversation_id}/reply": {
            "post": _operation(
                "Reply through the person's own channel",
                202,
                {"type": "object"},
                conversation=True,
                body={"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}},
            )
        },
        "/api/v1/conversations/{conversation_id}/transfer": {
            "post": _operation(
                "Transfer to another region or national, with a reason",
                200,
                {"type": "object"},
                conversation=True,
                body={
                    "type": "object",
                    "required": ["team", "reason"],
                    "properties": {"team": {"type": "string"}, "reason": {"type": "string"}},
                },
            )
        },
        "/api/v1/conversations/{conversation_id}/close": {
            "post": _operation("Close it", 200, {"type": "object"}, conversation=True)
        },
        "/api/v1/events": {
            "get": {
                "summary": "Server-sent events: `changed` with a conversation id",
                "security": [{"bearer": []}, {"cookie": []}],
                "responses": {
                    "200": {"description": "text/event-stream"},
                    "401": {"description": "no session"},
                },
            }
        },
        "/api/v1/openapi.json": {
            "get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI"}}}
        },
    },
}
