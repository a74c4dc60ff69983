"""Who is at the desk: signing in and out, one's own sessions, the second factor, a
password change, and sign-in through the region's identity provider.

A session is a random token kept server-side (only its hash is stored): the
console gets it as an HttpOnly `__Host-desk_session` cookie without Max-Age, a
region's own case system as a bearer token. Changes made with the cookie carry the
session's `csrf_token` in `X-CSRF-Token`. The routes and their answers are the
contract in docs/desk.md.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import structlog
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gateway.config.live import LiveConfig
from gateway.config.models import NATIONAL, DeskSettings
from gateway.domain.identity import Identity, LocalAccount, Session, SignedIn
from gateway.domain.messages import Rejected, decode_json
from gateway.roles.identity import Identities
from gateway.store.identity import AuditEvent
from gateway.support.keys import Keyring
from gateway.support.sessions import CsrfTokens, clear_cookie, cookie_name, demo_password_hash, set_cookie
from gateway.web.errors import NO_STORE, json_response, rejection_response
from gateway.web.oidc import add_oidc_routes

log = structlog.get_logger("gateway.desk_auth")

REALM = "desk"
COOKIE = "desk_session"
DEMO_PASSWORD = "desk-demo-2026"  # noqa: S105 - documented; only with GATEWAY_DEMO_ACCOUNTS=1
DEMO_TEAMS = {"demo-zob": "zuidoost-brabant", "demo-landelijk": NATIONAL}
DEMO_PRIVACY_OFFICER = "demo-privacy"
AUTH_KEY: web.AppKey[Auth] = web.AppKey("desk_auth")


class _SignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    counsellor: str = Field(min_length=1, max_length=80)
    password: str = Field(min_length=1, max_length=200)
    code: str | None = Field(default=None, max_length=20, description="TOTP or recovery code")


class _Code(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(min_length=1, max_length=20)


class _NewPassword(BaseModel):
    model_config = ConfigDict(extra="forbid")
    current_password: str = Field(min_length=1, max_length=200)
    new_password: str = Field(min_length=1, max_length=200)


B = TypeVar("B", bound=BaseModel)


PLAIN_HTTP_COOKIE = (
    "Aanmelden lukt niet via gewoon http op dit adres: de browser bewaart het beveiligde "
    "sessiecookie alleen via https (of op localhost). Gebruik https, of zet voor een proef "
    "desk.secure_cookies: false."
)


def is_loopback_host(host: str | None) -> bool:
    """localhost, *.localhost or a loopback address: where a browser keeps Secure cookies over http."""
    name = (host or "").strip("[]").rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def secure_cookie_dropped(request: web.Request, secure_cookies: bool) -> bool:
    """A Secure cookie set on this request will not come back: plain http (after the trusted
    proxies' X-Forwarded-Proto) to a host that is not loopback, so the browser drops it."""
    return secure_cookies and not request.secure and not is_loopback_host(request.url.host)


async def read_body(request: web.Request, model: type[B]) -> B:
    """The JSON body as `model`, or Rejected 400/415/422 naming the fields."""
    data = decode_json(await request.read(), request.content_type, request.charset)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        fields = tuple(
            (".".join(str(p) for p in e["loc"]) or "body", e["msg"])
            for e in exc.errors(include_input=False, include_url=False)
        )
        raise Rejected(422, "invalid_request", "the request body is not valid", fields) from None


def answer(status: int, payload: Any, headers: dict[str, str] | None = None) -> web.Response:
    return json_response(status, payload, {**NO_STORE, **(headers or {})})


def refused(refusal: Rejected) -> web.Response:
    challenge = {"WWW-Authenticate": 'Bearer realm="desk"'} if refusal.status == 401 else {}
    return rejection_response(refusal, {**NO_STORE, **challenge})


@dataclass(frozen=True)
class Who:
    session: Session
    token: str
    via_cookie: bool

    @property
    def identity(self) -> Identity:
        return self.session.identity


class Auth:
    def __init__(
        self, live: LiveConfig, identities: Identities, keyring: Keyring, demo_accounts: bool
    ) -> None:
        self._live = live
        self.identities = identities
        self._csrf = CsrfTokens(keyring.key_for("desk/csrf"))
        self._demo: dict[str, tuple[str, str, str]] = {}
        if demo_accounts:
            self._demo = {cid: (f"Demo ({team})", team, "counsellor") for cid, team in DEMO_TEAMS.items()}
            self._demo[DEMO_PRIVACY_OFFICER] = ("Demo (privacy officer)", NATIONAL, "privacy-officer")
            demo_password_hash(DEMO_PASSWORD)  # made now, at start, not on the event loop later

    @property
    def settings(self) -> DeskSettings:
        return self._live.current.service.desk

    @property
    def idle(self) -> timedelta:
        return timedelta(minutes=self.settings.idle_minutes)

    @property
    def lifetime(self) -> timedelta:
        return timedelta(minutes=self.settings.session_minutes)

    def account(self, account_id: str) -> LocalAccount | None:
        """A local account: from counsellors.yaml, or a demo account when they are on."""
        factor = self.settings.second_factor
        counsellor = self._live.current.counsellors.get(account_id)
        if counsellor is not None:
            return LocalAccount(
                REALM, counsellor.id, counsellor.name, counsellor.team, counsellor.role,
                counsellor.password_hash, factor, counsellor.disabled,
            )  # fmt: skip
        if account_id in self._demo:
            name, team, role = self._demo[account_id]
            demo_hash = demo_password_hash(DEMO_PASSWORD)
            return LocalAccount(REALM, account_id, name, team, role, demo_hash, factor)
        return None

    def secure(self, request: web.Request) -> bool:
        return self.settings.secure_cookies or request.secure

    def csrf(self, token: str) -> str:
        return self._csrf.csrf(token)

    def presented_token(self, request: web.Request) -> tuple[str, bool]:
        """The token and whether it came in the cookie (then changes need the CSRF token)."""
        header = request.headers.get("Authorization", "")
        if header:
            return (header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""), False
        for name in (cookie_name(COOKIE, True), COOKIE):
            if name in request.cookies:
                return request.cookies[name], True
        return "", True

    async def who(self, request: web.Request, *, touch: bool = True) -> Who:
        """The live session of this request (in any stage); Rejected 401 without one."""
        token, via_cookie = self.presented_token(request)
        session = await self.identities.current(REALM, token, self.idle, self.account, touch=touch)
        if session is None:
            raise Rejected(401, "no_session", "no session, or it has ended: sign in (POST /api/v1/session)")
        return Who(session, token, via_cookie)

    @staticmethod
    def require_full(who: Who) -> None:
        if who.session.stage != "full":
            raise Rejected(
                403, "enrol_second_factor", "set up the second factor first (POST /api/v1/second-factor)"
            )

    def check_csrf(self, who: Who, request: web.Request) -> None:
        if who.via_cookie and not self._csrf.csrf_ok(who.token, request.headers.get("X-CSRF-Token", "")):
            raise Rejected(403, "csrf", "send the session's csrf_token in X-CSRF-Token")

    def local_account(self, who: Who) -> LocalAccount:
        account = self.account(who.identity.account) if who.identity.method != "oidc" else None
        if account is None:
            raise Rejected(409, "not_local", "this account signs in through the identity provider")
        return account

    def oidc_offer(self) -> dict[str, str] | None:
        oidc = self.settings.oidc
        return {"label": oidc.label, "login": "/api/v1/oidc/login"} if oidc is not None else None

    def signed_in(self, request: web.Request, signed_in: SignedIn, **extra: Any) -> web.Response:
        session, identity = signed_in.session, signed_in.session.identity
        if secure_cookie_dropped(request, self.settings.secure_cookies):
            # The token still works as a bearer token; the console's cookie will not come back.
            extra = {**extra, "cookie_problem": PLAIN_HTTP_COOKIE}
            log.warning("desk_cookie_over_plain_http", host_is_loopback=False, secure_cookies=True)
        response = answer(
            200,
            {
                "token": signed_in.token,
                "csrf_token": self.csrf(signed_in.token),
                **_described(session),
                "second_factor": signed_in.second_factor,
                "idle_minutes": self.settings.idle_minutes,
                **extra,
            },
        )
        secure = self.secure(request)
        set_cookie(response, cookie_name(COOKIE, secure), signed_in.token, path="/", secure=secure)
        log.info(
            "counsellor_signed_in", counsellor=identity.account, team=identity.team, method=identity.method
        )
        return response

    def signed_out(self, request: web.Request, status: int = 204) -> web.Response:
        response = web.Response(status=status, headers=NO_STORE)
        for secure in (True, False):
            clear_cookie(response, cookie_name(COOKIE, secure), path="/", secure=secure)
        return response


def _described(session: Session) -> dict[str, Any]:
    identity = session.identity
    return {
        "counsellor": identity.account,
        "name": identity.name,
        "team": identity.team,
        "role": identity.role,
        "method": identity.method,
        "session_id": session.public_id,
        "expires_at": int(session.expires_at.timestamp()),
    }


def _factor(who: Who) -> str:
    if who.identity.method in ("password+totp", "password+recovery"):
        return "ok"
    return "enrol" if who.session.stage == "enrol" else "off"


async def sign_in(request: web.Request) -> web.Response:
    auth = request.app[AUTH_KEY]
    settings = auth.settings
    try:
        body = await read_body(request, _SignIn)
        signed_in = await auth.identities.sign_in(
            REALM,
            auth.account(body.counsellor),
            body.password,
            body.code,
            request.remote or "unknown",
            per_minute=settings.sign_ins_per_minute,
            per_hour=settings.sign_ins_per_account_per_hour,
            lifetime=auth.lifetime,
        )
    except Rejected as refusal:
        return refused(refusal)
    return auth.signed_in(request, signed_in)


async def sign_out(request: web.Request) -> web.Response:
    auth = request.app[AUTH_KEY]
    try:
        who = await auth.who(request)
        auth.check_csrf(who, request)
    except Rejected as refusal:
        return refused(refusal)
    await auth.identities.sign_out(who.token, who.session)
    return auth.signed_out(request)


async def me(request: web.Request) -> web.Response:
    auth = request.app[AUTH_KEY]
    try:
        who = await auth.who(request)
    except Rejected as refusal:
        return refused(Rejected(refusal.status, refusal.reason, refusal.detail, oidc=auth.oidc_offer()))
    return answer(
        200,
        {
            **_described(who.session),
            "csrf_token": auth.csrf(who.token),
            "second_factor": _factor(who),
            "oidc": auth.oidc_offer(),
        },
    )


async def own_sessions(request: web.Request) -> web.Response:
    auth = request.app[AUTH_KEY]
    try:
        who = await auth.who(request)
    except Rejected as refusal:
        return refused(refusal)
    identity = who.identity
    found = await auth.identities.sessions.of(REALM, identity.account, auth.idle)
    listed = [
        {
            "id": s.public_id,
            "method": s.identity.method,
            "created_at": s.created_at.isoformat(),
            "last_seen_at": s.last_seen_at.isoformat(),
            "expires_at": s.expires_at.isoformat(),
            "current": s.public_id == who.session.public_id,
        }
        for s in found
    ]
    return answer(200, {"sessions": listed})


async def end_session(request: web.Request) -> web.Response:
    auth = request.app[AUTH_KEY]
    try:
        who = await auth.who(request)
        auth.check_csrf(who, request)
        public_id = request.match_info["session_id"]
        if len(public_id) > 64 or not await auth.identities.end_one(who.session, public_id):
            raise Rejected(404, "unknown_session", "none of your active sessions has this id")
    except Rejected as refusal:
        return refused(refusal)
    if public_id == who.session.public_id:
        return auth.signed_out(request)
    return web.Response(status=204, headers=NO_STORE)


async def begin_second_factor(request: web.Request) -> web.Response:
    auth = request.app[AUTH_KEY]
    try:
        who = await auth.who(request)
        auth.check_csrf(who, request)
        account = auth.local_account(who)
    except Rejected as refusal:
        return refused(refusal)
    secret, uri, svg = await auth.identities.begin_enrolment(account)
    return answer(200, {"secret": secret, "otpauth_uri": uri, "qr_svg": svg})


async def confirm_second_factor(request: web.Request) -> web.Response:
    auth = request.app[AUTH_KEY]
    try:
        who = await auth.who(request)
        auth.check_csrf(who, request)
        account = auth.local_account(who)
        body = await read_body(request, _Code)
        codes, signed_in = await auth.identities.confirm_enrolment(
            who.session, account, body.code, auth.lifetime
        )
    except Rejected as refusal:
        return refused(refusal)
    return auth.signed_in(request, signed_in, recovery_codes=codes)


async def change_password(request: web.Request) -> web.Response:
    auth = request.app[AUTH_KEY]
    try:
        who = await auth.who(request)
        auth.require_full(who)
        auth.check_csrf(who, request)
        account = auth.local_account(who)
        body = await read_body(request, _NewPassword)
        await auth.identities.change_password(who.session, account, body.current_password, body.new_password)
    except Rejected as refusal:
        return refused(refusal)
    return auth.signed_out(request)


AUTH_ROUTES: list[tuple[str, str, Callable[[web.Request], Awaitable[web.Response]]]] = [
    ("POST", "/api/v1/session", sign_in),
    ("DELETE", "/api/v1/session", sign_out),
    ("GET", "/api/v1/me", me),
    ("GET", "/api/v1/sessions", own_sessions),
    ("DELETE", "/api/v1/sessions/{session_id}", end_session),
    ("POST", "/api/v1/second-factor", begin_second_factor),
    ("POST", "/api/v1/second-factor/confirm", confirm_second_factor),
    ("POST", "/api/v1/password", change_password),
]


def add_auth_routes(
    app: web.Application, live: LiveConfig, identities: Identities, keyring: Keyring, demo_accounts: bool
) -> Auth:
    auth = app[AUTH_KEY] = Auth(live, identities, keyring, demo_accounts)
    for method, path, handler in AUTH_ROUTES:
        app.router.add_route(method, path, handler)

    async def from_provider(request: web.Request, identity: Identity) -> web.StreamResponse:
        signed_in = await identities.start_external(identity, auth.lifetime)
        response = auth.signed_in(request, signed_in)
        response.set_status(303)
        response.headers["Location"] = "/desk/"
        return response

    async def provider_refused(request: web.Request, reason: str, identity: Identity | None) -> None:
        account = identity.account if identity is not None else "unknown"
        await identities.refused_sign_in(account, "oidc", reason, identity.team if identity else None)

    add_oidc_routes(
        app,
        lambda: auth.settings.oidc,
        keyring,
        lambda: auth.settings.secure_cookies,
        from_provider,
        provider_refused,
    )
    return auth


def audit_refusal(who: Who, action: str, refusal: Rejected, conversation_id: str | None) -> AuditEvent:
    result = "denied" if refusal.status in (401, 403) else "failed"
    return AuditEvent.by(who.identity, action, result, conversation_id, refusal.reason)


def parse_time(text: str, field: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise Rejected(422, "invalid_request", f"{field} must be an ISO 8601 date or time") from None
    # A date or time without an offset is Dutch time, as the people reading the log mean it.
    return value if value.tzinfo is not None else value.replace(tzinfo=ZoneInfo("Europe/Amsterdam"))
