"""Password hashes for accounts kept in configuration (pharmacies, counsellors):
scrypt from `cryptography`, never the password itself.

Format: ``scrypt$<log2 n>$<r>$<p>$<salt, base64url>$<hash, base64url>``.
"""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidKey
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

LOG2_N, R, P, LENGTH = 15, 8, 1, 32
PREFIX = "scrypt"


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
