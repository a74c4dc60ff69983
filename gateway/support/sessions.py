"""The one signed-session mechanism, used by the desk and by Masker 19: a signed,
expiring token (a cookie or a bearer token), CSRF tokens bound to a value, the
sign-in limiter, and the demo accounts' password hash.

A token is ``subject|expires.MAC``, the MAC an HMAC-SHA256 (base64url) under a key
of its own purpose; a CSRF token is the MAC of ``csrf|<bound value>`` (the session
token, or a nonce cookie before sign-in).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from functools import lru_cache

from aiohttp import web

from gateway.support.keys import same_secret
from gateway.support.passwords import hash_password
from gateway.support.ratelimit import Window


class SignedTokens:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def _mac(self, value: str) -> str:
        digest = hmac.new(self._key, value.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def issue(self, subject: str, seconds: int) -> tuple[str, int]:
        """A token for `subject`, valid for `seconds`; and when it expires (Unix time)."""
        expires = int(time.time()) + seconds
        value = f"{subject}|{expires}"
        return f"{value}.{self._mac(value)}", expires

    def subject(self, token: str) -> str | None:
        """Whose token this is, or None when it is forged, malformed or expired."""
        value, _, mac = token.rpartition(".")
        if not value or not same_secret(mac, self._mac(value)):
            return None
        subject, _, expires = value.partition("|")
        if not subject or not expires.isdigit() or int(expires) < time.time():
            return None
        return subject

    def csrf(self, bound: str) -> str:
        return self._mac(f"csrf|{bound}")

    def csrf_ok(self, bound: str, presented: str) -> bool:
        return bool(bound) and same_secret(presented, self.csrf(bound))


class SignInLimiter:
    """Sign-in attempts per client address per minute: passwords are not to be guessed."""

    def __init__(self, per_minute: int) -> None:
        self._window = Window(per_minute, 60)

    def allow(self, address: str, per_minute: int | None = None) -> bool:
        """`per_minute`: the limit now in force, when a reload may have changed it."""
        if per_minute is not None and per_minute != self._window.limit:
            self._window = Window(per_minute, 60)
        return self._window.allow(address)


def set_cookie(
    response: web.StreamResponse, name: str, value: str, *, path: str, secure: bool, max_age: int | None
) -> None:
    """HttpOnly, SameSite=Strict; Secure unless configured off for a plain-HTTP trial."""
    response.set_cookie(
        name, value, path=path, httponly=True, samesite="Strict", secure=secure, max_age=max_age
    )


@lru_cache(maxsize=4)
def demo_password_hash(password: str) -> str:
    """Made once per process (hashing is slow on purpose); only with GATEWAY_DEMO_ACCOUNTS=1."""
    return hash_password(password)
