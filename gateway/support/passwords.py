"""Password hashes for accounts kept in configuration (pharmacies, counsellors):
scrypt from `cryptography`, never the password itself.

Format: ``scrypt$<log2 n>$<r>$<p>$<salt, base64url>$<hash, base64url>``. New hashes
cost N=2^17 (128 MiB, about 0.4 s here); older, cheaper hashes still verify and
`needs_upgrade` says so, so a sign-in can store a stronger one.

`PasswordChecks` runs the checks in a small thread pool (scrypt releases the GIL), so
a burst of sign-ins never stalls the event loop and every socket and webhook with it;
an unknown account is checked against a dummy hash of the same cost, so the answer's
timing does not tell whether the account exists.
"""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from cryptography.exceptions import InvalidKey
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

T = TypeVar("T")
LOG2_N, R, P, LENGTH = 17, 8, 1, 32
PREFIX = "scrypt"
# The hash of a random password nobody kept, at the current cost: what an unknown
# account is checked against (its value is not a secret; its cost is the point).
DUMMY_HASH = "scrypt$17$8$1$GvR9DUtPqiyPnyzcg4ns-A$kFKpeYQshyzEJ9SUdrbtNwpoDmfXgtQiPYj87hVkPcc"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str) -> str:
    if not password:
        raise ValueError("an empty password cannot be hashed")
    salt = os.urandom(16)
    key = Scrypt(salt=salt, length=LENGTH, n=2**LOG2_N, r=R, p=P).derive(password.encode())
    return f"{PREFIX}${LOG2_N}${R}${P}${_b64(salt)}${_b64(key)}"


def is_password_hash(value: str) -> bool:
    parts = value.split("$")
    return len(parts) == 6 and parts[0] == PREFIX and all(p.isdigit() for p in parts[1:4])


def needs_upgrade(stored: str) -> bool:
    """A valid hash made at a lower cost than new hashes get."""
    if not is_password_hash(stored):
        return False
    _, log2_n, r, p, _, _ = stored.split("$")
    return (int(log2_n), int(r), int(p)) < (LOG2_N, R, P)


def verify_password(password: str, stored: str) -> bool:
    """Constant time in the password; False for a malformed hash."""
    if not is_password_hash(stored):
        return False
    _, log2_n, r, p, salt, expected = stored.split("$")
    if not (10 <= int(log2_n) <= 20):
        return False
    try:
        Scrypt(salt=_unb64(salt), length=LENGTH, n=2 ** int(log2_n), r=int(r), p=int(p)).verify(
            password.encode(), _unb64(expected)
        )
    except (InvalidKey, ValueError):
        return False
    return True


class ChecksBusy(Exception):
    """More password checks are waiting than `max_waiting`: answer "try again" at once."""


def default_workers() -> int:
    """Two at most, and one core always left to the event loop."""
    return max(1, min(2, (os.cpu_count() or 2) - 1))


class PasswordChecks:
    """Password checks and hashing off the event loop, at most `workers` at a time (each
    holds 128 MiB while it runs); up to `max_waiting` more wait their turn, and beyond
    that a check raises ChecksBusy rather than queueing without bound."""

    def __init__(self, workers: int | None = None, max_waiting: int = 32) -> None:
        self._workers = workers or default_workers()
        self._pool = ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="passwords")
        self._max_in_pool = self._workers + max_waiting
        self._in_pool = 0

    async def verify(self, password: str, stored: str | None) -> bool:
        """`stored` None: the account is unknown; the same work is done and False returned."""
        if stored is None:
            await self._run(verify_password, password, DUMMY_HASH)
            return False
        return await self._run(verify_password, password, stored)

    async def hash(self, password: str) -> str:
        return await self._run(hash_password, password)

    async def _run(self, function: Callable[..., T], *args: str) -> T:
        if self._in_pool >= self._max_in_pool:
            raise ChecksBusy()
        self._in_pool += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, function, *args)
        finally:
            self._in_pool -= 1

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
