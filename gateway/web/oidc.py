"""Sign-in through the region's identity provider: OpenID Connect, the authorization
code flow with PKCE (S256), state and nonce.

`GET /api/v1/oidc/login` sends the browser to the provider; the pending login (state,
nonce, PKCE verifier, expiry) travels with it in a sealed cookie (AES-256-GCM under a
key of its own), so no process has to remember it and any desk process can take the
callback. `GET /api/v1/oidc/callback` checks the state against that cookie, redeems
the code at the token endpoint (with the verifier and the client secret), checks the
ID token's signature against the provider's JWKS and its claims (issuer, audience,
expiry, nonce), merges in the userinfo endpoint's claims, and maps the configured
claim to a team and role. Every failure ends in a plain refusal page and the audit
hook; nothing the provider or the browser sent (code, tokens, state, claims) is ever
logged or put in an exception: only event names and reason codes.

The protocol pieces come from Authlib (PKCE challenge, authorization URL, ID-token
claim rules) and joserfc, the JOSE library Authlib itself uses; the HTTP calls go
through aiohttp like the rest of the gateway.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from html import escape
from typing import Any, Literal, cast
from urllib.parse import quote

import aiohttp
import orjson
import structlog
from aiohttp import web
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri  # type: ignore[import-untyped]
from authlib.oauth2.rfc7636 import create_s256_code_challenge  # type: ignore[import-untyped]
from authlib.oidc.core import CodeIDToken  # type: ignore[import-untyped]
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet, KeySetSerialization
from joserfc.jws import JWSRegistry

from gateway.config.models import ENV_REF, OidcSettings
from gateway.domain.identity import Identity, team_and_role
from gateway.support.keys import Keyring
from gateway.web.errors import error_response

log = structlog.get_logger("gateway.oidc")

LOGIN_PATH = "/api/v1/oidc/login"
CALLBACK_PATH = "/api/v1/oidc/callback"
PENDING_COOKIE = "__Host-desk_oidc"
PLAIN_PENDING_COOKIE = "desk_oidc"  # plain-HTTP trials: a browser refuses __Host- without Secure
PENDING_SECONDS = 600
METADATA_SECONDS = 3600
CLOCK_LEEWAY_SECONDS = 60
HTTP_TIMEOUT = aiohttp.ClientTimeout(total=10)
# Only signatures made with the provider's private key: "none" and HMAC (keyed with
# the client secret) are refused whatever the discovery document offers.
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
# The error codes of OpenID Connect Core 3.1.2.6 and RFC 6749 4.1.2.1: logged as
# they are; any other text a callback carries is logged as "other".
OAUTH_ERRORS = frozenset(
    {
        "access_denied", "invalid_request", "unauthorized_client", "unsupported_response_type",
        "invalid_scope", "server_error", "temporarily_unavailable", "interaction_required",
        "login_required", "account_selection_required", "consent_required", "invalid_request_uri",
        "invalid_request_object", "request_not_supported", "request_uri_not_supported",
        "registration_not_supported",
    }
)  # fmt: skip
MAX_ACCOUNT_CHARS = 200
MAX_NAME_CHARS = 120
NONCE_BYTES = 12
SEAL_CONTEXT = b"veilig-thuis-gateway/desk-oidc-pending/v1"

RefusalReason = Literal["no_team", "state_mismatch", "provider_error", "token_invalid", "provider_denied"]
OnIdentity = Callable[[web.Request, Identity], Awaitable[web.StreamResponse]]
OnRefused = Callable[[web.Request, str, Identity | None], Awaitable[None]]

DESK_LINK = '<p><a href="/desk/">Terug naar de desk</a> <span lang="en">(back to the desk)</span></p>'
REFUSALS: Mapping[str, tuple[str, str, str]] = {
    # reason: (title, Dutch, English)
    "no_team": (
        "Geen toegang tot de desk",
        "Geen toegang tot de desk: je account hoort bij geen team. Vraag je beheerder je account "
        "aan een team van Veilig Thuis toe te voegen.",
        "No access to the desk: your account belongs to no team. Ask your administrator to add "
        "your account to a Veilig Thuis team.",
    ),
    "state_mismatch": (
        "Inloggen niet gelukt",
        "Het inloggen is verlopen of in een ander venster begonnen. Begin opnieuw bij de desk.",
        "The sign-in expired or was started in another window. Start again at the desk.",
    ),
    "provider_denied": (
        "Inloggen niet gelukt",
        "Het inloggen bij je organisatie is afgebroken of geweigerd.",
        "Signing in at your organisation was cancelled or refused.",
    ),
    "provider_error": (
        "Inloggen niet gelukt",
        "De inlogdienst van je organisatie gaf geen bruikbaar antwoord. Probeer het later opnieuw "
        "of meld het je beheerder.",
        "Your organisation's sign-in service gave no usable answer. Try again later or tell your "
        "administrator.",
    ),
    "token_invalid": (
        "Inloggen niet gelukt",
        "Het antwoord van de inlogdienst van je organisatie kon niet worden vertrouwd. Meld het je "
        "beheerder.",
        "The answer of your organisation's sign-in service could not be trusted. Tell your administrator.",
    ),
}


class Refused(Exception):
    """A sign-in that cannot go on. Carries the reason code and status only: never
    anything the provider or the browser sent."""

    def __init__(self, reason: RefusalReason, status: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


@dataclass(frozen=True)
class PendingLogin:
    state: str
    nonce: str
    verifier: str
    expires: int

    @classmethod
    def start(cls) -> PendingLogin:
        return cls(
            state=secrets.token_urlsafe(32),
            nonce=secrets.token_urlsafe(32),
            verifier=secrets.token_urlsafe(64),  # 86 characters, within RFC 7636's 43 to 128
            expires=int(time.time()) + PENDING_SECONDS,
        )


class PendingSeal:
    """Seals a pending login into a cookie value and opens it again; a changed,
    foreign or expired cookie opens to None."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def seal(self, pending: PendingLogin) -> str:
        plain = orjson.dumps(
            {"s": pending.state, "n": pending.nonce, "v": pending.verifier, "e": pending.expires}
        )
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plain, SEAL_CONTEXT)
        return base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")

    def open(self, value: str) -> PendingLogin | None:
        try:
            raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
            fields = orjson.loads(self._aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], SEAL_CONTEXT))
            pending = PendingLogin(
                state=str(fields["s"]),
                nonce=str(fields["n"]),
                verifier=str(fields["v"]),
                expires=int(fields["e"]),
            )
        except (InvalidTag, ValueError, binascii.Error, KeyError, TypeError):
            return None
        return pending if pending.expires > time.time() else None


class ProviderDirectory:
    """The provider's discovery document and JWKS, fetched once and kept: discovery for
    an hour, the JWKS until an ID token names a key it does not hold."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._metadata: dict[str, tuple[float, dict[str, Any]]] = {}
        self._jwks: dict[str, dict[str, Any]] = {}

    @property
    def http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=HTTP_TIMEOUT)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def metadata(self, issuer: str) -> dict[str, Any]:
        cached = self._metadata.get(issuer)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        document = await fetch_json(self.http, issuer.rstrip("/") + "/.well-known/openid-configuration")
        checked = checked_metadata(document, issuer)
        self._metadata[issuer] = (time.monotonic() + METADATA_SECONDS, checked)
        return checked

    async def jwks(self, jwks_uri: str, *, refresh: bool = False) -> dict[str, Any]:
        if refresh or jwks_uri not in self._jwks:
            self._jwks[jwks_uri] = await fetch_json(self.http, jwks_uri)
        return self._jwks[jwks_uri]


def checked_metadata(document: dict[str, Any], issuer: str) -> dict[str, Any]:
    """A discovery document the flow can use: its issuer is the configured one (OpenID
    Connect Discovery 1.0, section 4.3) and it names the endpoints the flow needs."""
    needed = ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri")
    if not all(isinstance(document.get(name), str) for name in needed):
        log.warning("oidc_discovery_incomplete")
        raise Refused("provider_error", 502)
    if document["issuer"].rstrip("/") != issuer.rstrip("/"):
        log.warning("oidc_discovery_issuer_mismatch")
        raise Refused("provider_error", 502)
    return document


async def fetch_json(
    http: aiohttp.ClientSession,
    url: str,
    *,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    form: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A JSON object from the provider; any failure is a provider_error (the status
    tells a refused request, 400, from an unreachable or broken provider, 502)."""
    try:
        async with http.request(method, url, headers=headers, data=form) as response:
            if response.status != 200:
                log.warning(
                    "oidc_provider_refused_request", endpoint=_endpoint_name(url), status=response.status
                )
                raise Refused("provider_error", 400 if 400 <= response.status < 500 else 502)
            document = orjson.loads(await response.read())
    except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError) as exc:
        log.warning("oidc_provider_unreachable", endpoint=_endpoint_name(url), error=type(exc).__name__)
        raise Refused("provider_error", 502) from None
    if not isinstance(document, dict):
        raise Refused("provider_error", 502)
    return document


def _endpoint_name(url: str) -> str:
    """The last path segment, e.g. "token": enough to tell which call failed."""
    return url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1][:40]


def client_secret(oidc: OidcSettings) -> str:
    match = ENV_REF.match(oidc.client_secret)
    value = os.environ.get(match[1]) if match else None
    if not value:
        # The variable's name only: that is what the operator has to set.
        log.error("oidc_client_secret_missing", variable=match[1] if match else "?")
        raise Refused("provider_error", 503)
    return value


def redirect_uri(oidc: OidcSettings) -> str:
    return oidc.public_url + CALLBACK_PATH


def authorization_url(metadata: Mapping[str, Any], oidc: OidcSettings, pending: PendingLogin) -> str:
    url: str = prepare_grant_uri(
        metadata["authorization_endpoint"],
        client_id=oidc.client_id,
        response_type="code",
        redirect_uri=redirect_uri(oidc),
        scope=" ".join(oidc.scopes),
        state=pending.state,
        nonce=pending.nonce,
        code_challenge=create_s256_code_challenge(pending.verifier),
        code_challenge_method="S256",
        # Desk computers are shared: after one counsellor signs out, the next must not be
        # signed in silently with the provider session the first one left behind.
        prompt="login",
    )
    return url


def _basic_credentials(client_id: str, secret: str) -> str:
    # RFC 6749 section 2.3.1: both are form-encoded before they are joined and encoded.
    pair = f"{quote(client_id, safe='')}:{quote(secret, safe='')}"
    return "Basic " + base64.b64encode(pair.encode()).decode()


async def redeem_code(
    directory: ProviderDirectory, metadata: Mapping[str, Any], oidc: OidcSettings, code: str, verifier: str
) -> dict[str, Any]:
    secret = client_secret(oidc)
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri(oidc),
        "code_verifier": verifier,
    }
    headers = {"Accept": "application/json"}
    methods = metadata.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
    if "client_secret_basic" in methods:
        headers["Authorization"] = _basic_credentials(oidc.client_id, secret)
    else:
        form |= {"client_id": oidc.client_id, "client_secret": secret}
    tokens = await fetch_json(
        directory.http, metadata["token_endpoint"], method="POST", headers=headers, form=form
    )
    if not isinstance(tokens.get("id_token"), str) or not isinstance(tokens.get("access_token"), str):
        log.warning("oidc_token_response_incomplete")
        raise Refused("provider_error", 502)
    return tokens


def _signing_algorithms(metadata: Mapping[str, Any]) -> list[str]:
    offered = metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
    return [alg for alg in offered if alg in ASYMMETRIC_ALGORITHMS] or ["RS256"]


async def verified_id_token_claims(
    directory: ProviderDirectory,
    metadata: Mapping[str, Any],
    oidc: OidcSettings,
    tokens: Mapping[str, Any],
    nonce: str,
) -> dict[str, Any]:
    """The ID token's claims once its signature, issuer, audience, times, nonce and
    at_hash hold; token_invalid otherwise."""
    try:
        token = await _signature_checked(directory, metadata, tokens["id_token"])
        claims = CodeIDToken(
            token.claims,
            token.header,
            {
                "iss": {"essential": True, "value": metadata["issuer"]},
                "aud": {"essential": True, "value": oidc.client_id},
            },
            {"nonce": nonce, "client_id": oidc.client_id, "access_token": tokens["access_token"]},
        )
        claims.validate(leeway=CLOCK_LEEWAY_SECONDS)
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        # The error's type says which check failed; its message may quote a claim.
        log.warning("oidc_id_token_invalid", error=type(exc).__name__)
        raise Refused("token_invalid", 403) from None
    verified: dict[str, Any] = dict(claims)
    if not isinstance(verified.get("sub"), str) or not verified["sub"]:
        raise Refused("token_invalid", 403)
    return verified


async def _signature_checked(
    directory: ProviderDirectory, metadata: Mapping[str, Any], id_token: str
) -> jwt.Token:
    """A key the cached JWKS lacks makes one fresh fetch of it: the provider rotated its keys."""
    algorithms = _signing_algorithms(metadata)
    registry = JWSRegistry(algorithms=algorithms, strict_check_header=False)
    jwks_uri = metadata["jwks_uri"]
    try:
        keys = _key_set(await directory.jwks(jwks_uri))
        return jwt.decode(id_token, keys, algorithms=algorithms, registry=registry)
    except InvalidKeyIdError:
        log.info("oidc_jwks_refetched")
        keys = _key_set(await directory.jwks(jwks_uri, refresh=True))
        return jwt.decode(id_token, keys, algorithms=algorithms, registry=registry)


def _key_set(document: dict[str, Any]) -> KeySet:
    if not isinstance(document.get("keys"), list):
        raise ValueError("a JWKS without keys")
    return KeySet.import_key_set(cast(KeySetSerialization, document))


async def userinfo_claims(
    directory: ProviderDirectory, metadata: Mapping[str, Any], access_token: str, subject: str
) -> dict[str, Any]:
    """The userinfo endpoint's claims (many providers put groups only there); they
    count only for the subject of the ID token (OpenID Connect Core, section 5.3.2)."""
    endpoint = metadata.get("userinfo_endpoint")
    if not isinstance(endpoint, str):
        return {}
    claims = await fetch_json(
        directory.http,
        endpoint,
        headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
    )
    if claims.get("sub") != subject:
        log.warning("oidc_userinfo_subject_mismatch")
        raise Refused("token_invalid", 403)
    return claims


def account_of(subject: str) -> str:
    """ "oidc:" and the subject; one too long for the audit's column keeps a readable
    start and a digest of the whole, so two long subjects never share an account."""
    account = "oidc:" + subject
    if len(account) <= MAX_ACCOUNT_CHARS:
        return account
    digest = hashlib.sha256(subject.encode()).hexdigest()[:32]
    return account[: MAX_ACCOUNT_CHARS - len(digest) - 1] + "~" + digest


def display_name(claims: Mapping[str, Any], subject: str) -> str:
    for claim in ("name", "preferred_username", "email"):
        value = claims.get(claim)
        if isinstance(value, str) and value.strip():
            return value.strip()[:MAX_NAME_CHARS]
    return subject[:MAX_NAME_CHARS]


def identity_from(claims: Mapping[str, Any], oidc: OidcSettings) -> Identity | None:
    """The desk identity the claims give, or None when the claim maps to no team."""
    mapped = team_and_role(claims, oidc.claim, [(m.value, m.team, m.role) for m in oidc.mappings])
    if mapped is None:
        return None
    subject = str(claims["sub"])
    team, role = mapped
    return Identity(
        realm="desk",
        account=account_of(subject),
        name=display_name(claims, subject),
        team=team,
        role=role,
        method="oidc",
    )


PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    # The callback's address holds the code and the state: no page passes it on.
    "Referrer-Policy": "no-referrer",
}


def refusal_page(reason: str, status: int) -> web.Response:
    title, dutch, english = REFUSALS.get(reason, REFUSALS["provider_error"])
    body = f"""<!DOCTYPE html>
<html lang="nl">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)} · Veilig Thuis</title>
<link rel="stylesheet" href="/desk/desk.css">
</head>
<body>
<main>
<h1>{escape(title)}</h1>
<p>{escape(dutch)}</p>
<p lang="en">{escape(english)}</p>
{DESK_LINK}
</main>
</body>
</html>
"""
    return web.Response(status=status, text=body, content_type="text/html", headers=PAGE_HEADERS)


def add_oidc_routes(
    app: web.Application,
    settings: Callable[[], OidcSettings | None],
    keyring: Keyring,
    secure_cookies: Callable[[], bool],
    on_identity: OnIdentity,
    on_refused: OnRefused,
) -> None:
    """`GET /api/v1/oidc/login` and `GET /api/v1/oidc/callback`. `settings` is asked at
    every request (a reload may change it; None: not configured, 404). `on_identity`
    starts the session and answers; `on_refused` records a refusal (a reason code)."""
    seal = PendingSeal(keyring.key_for("desk/oidc"))
    directory = ProviderDirectory()

    def cookie_secure(request: web.Request) -> bool:
        return secure_cookies() or request.secure

    def cookie_name(request: web.Request) -> str:
        return PENDING_COOKIE if cookie_secure(request) else PLAIN_PENDING_COOKIE

    def forget_pending(request: web.Request, response: web.StreamResponse) -> None:
        response.del_cookie(
            cookie_name(request), path="/", secure=cookie_secure(request), httponly=True, samesite="Lax"
        )

    async def refuse(
        request: web.Request, reason: str, status: int, identity: Identity | None = None
    ) -> web.Response:
        log.info("oidc_sign_in_refused", reason=reason)
        await on_refused(request, reason, identity)
        page = refusal_page(reason, status)
        forget_pending(request, page)
        return page

    async def login(request: web.Request) -> web.StreamResponse:
        oidc = settings()
        if oidc is None:
            return not_configured()
        try:
            client_secret(oidc)  # fail here, before the person signs in at the provider for nothing
            metadata = await directory.metadata(oidc.issuer)
        except Refused as refusal:
            return await refuse(request, refusal.reason, refusal.status)
        pending = PendingLogin.start()
        response = web.Response(
            status=302, headers={"Location": authorization_url(metadata, oidc, pending), **PAGE_HEADERS}
        )
        # Lax, not Strict: the callback is a top-level navigation coming from the provider.
        response.set_cookie(
            cookie_name(request),
            seal.seal(pending),
            path="/",
            max_age=PENDING_SECONDS,
            secure=cookie_secure(request),
            httponly=True,
            samesite="Lax",
        )
        log.info("oidc_login_started")
        return response

    async def callback(request: web.Request) -> web.StreamResponse:
        oidc = settings()
        if oidc is None:
            return not_configured()
        try:
            claims = await signed_in_claims(request, oidc)
        except Refused as refusal:
            return await refuse(request, refusal.reason, refusal.status)
        identity = identity_from(claims, oidc)
        if identity is None:
            # Who tried, for the access log: the provider's subject, with no team or role.
            subject = str(claims["sub"])
            tried = Identity("desk", account_of(subject), display_name(claims, subject), "", "", "oidc")
            return await refuse(request, "no_team", 403, tried)
        log.info("oidc_signed_in")
        response = await on_identity(request, identity)
        if not response.prepared:
            forget_pending(request, response)
        return response

    async def signed_in_claims(request: web.Request, oidc: OidcSettings) -> dict[str, Any]:
        pending = seal.open(request.cookies.get(cookie_name(request), ""))
        state = request.query.get("state", "")
        if pending is None or not hmac.compare_digest(state.encode(), pending.state.encode()):
            raise Refused("state_mismatch", 400)
        metadata = await directory.metadata(oidc.issuer)
        check_response_issuer(request, metadata)
        if "error" in request.query:
            error = request.query["error"]
            log.info("oidc_provider_answered_error", error=error if error in OAUTH_ERRORS else "other")
            raise Refused("provider_denied", 403)
        code = request.query.get("code")
        if not code:
            raise Refused("provider_error", 400)
        tokens = await redeem_code(directory, metadata, oidc, code, pending.verifier)
        id_claims = await verified_id_token_claims(directory, metadata, oidc, tokens, pending.nonce)
        extra = await userinfo_claims(directory, metadata, tokens["access_token"], id_claims["sub"])
        # The signed ID token wins where both name a claim.
        return {**extra, **id_claims}

    async def close_directory(_: web.Application) -> None:
        await directory.close()

    app.router.add_get(LOGIN_PATH, login)
    app.router.add_get(CALLBACK_PATH, callback)
    app.on_cleanup.append(close_directory)


def check_response_issuer(request: web.Request, metadata: Mapping[str, Any]) -> None:
    """RFC 9207: a provider that names itself in the callback must name the one the
    login went to, so an answer from another provider is not taken for this one's."""
    named = request.query.get("iss")
    if named is None:
        if metadata.get("authorization_response_iss_parameter_supported") is True:
            raise Refused("provider_error", 400)
        return
    if named != metadata["issuer"]:
        log.warning("oidc_callback_issuer_mismatch")
        raise Refused("provider_error", 400)


def not_configured() -> web.Response:
    return error_response(
        404,
        "oidc_not_configured",
        "sign-in through an identity provider is not configured for this desk",
        headers={"Cache-Control": "no-store"},
    )
