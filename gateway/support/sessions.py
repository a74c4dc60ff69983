"""The cookie and CSRF side of sessions, shared by the desk and Masker 19. The sessions
themselves live in the database (`gateway.store.identity`, `gateway.roles.identity`);
a cookie carries only a session's random token.

A CSRF token is an HMAC-SHA256 (base64url) of ``csrf|<bound value>`` under a key of its
own purpose: bound to the session token, or to a nonce cookie before sign-in.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from functools import lru_cache

from aiohttp import web

from gateway.support.keys import same_secret
from gateway.support.passwords import hash_password

HOST_PREFIX = "__Host-"


class CsrfTokens:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def csrf(self, bound: str) -> str:
        digest = hmac.new(self._key, f"csrf|{bound}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def csrf_ok(self, bound: str, presented: str) -> bool:
        return bool(bound) and same_secret(presented, self.csrf(bound))


def cookie_name(base: str, secure: bool) -> str:
    """`__Host-<base>`: the browser keeps it for this origin only, Secure, Path=/. A plain-HTTP
    trial (secure cookies configured off) cannot have one, so there it is just `<base>`."""
    return HOST_PREFIX + base if secure else base


def set_cookie(
    response: web.StreamResponse,
    name: str,
    value: str,
    *,
    path: str,
    secure: bool,
    max_age: int | None = None,
    samesite: str = "Strict",
) -> None:
    """HttpOnly, SameSite=Strict unless said otherwise; Secure unless configured off for a
    plain-HTTP trial. No max_age: the cookie ends with the browser."""
    response.set_cookie(
        name, value, path=path, httponly=True, samesite=samesite, secure=secure, max_age=max_age
    )


def clear_cookie(response: web.StreamResponse, name: str, *, path: str, secure: bool) -> None:
    response.del_cookie(name, path=path, secure=secure, httponly=True, samesite="Strict")


@lru_cache(maxsize=4)
def demo_password_hash(password: str) -> str:
    """Made once per process (hashing is slow on purpose); only with GATEWAY_DEMO_ACCOUNTS=1."""
    return hash_password(password)
