"""Keyed pseudonyms and sealed reply handles, both derived from GATEWAY_SECRET_KEY.

One secret feeds two independent keys through HKDF, so a leaked pseudonym key
says nothing about the sealing key and the other way round.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

import orjson
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MIN_SECRET_CHARS = 32


class SealError(Exception):
    """A reply handle that was tampered with, or sealed under another key."""


def _derive(secret: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(secret)


class Keyring:
    def __init__(self, secret: str) -> None:
        if len(secret) < MIN_SECRET_CHARS:
            raise ValueError(f"GATEWAY_SECRET_KEY must be at least {MIN_SECRET_CHARS} characters")
        raw = secret.encode()
        self._pseudonym_key = _derive(raw, b"veilig-thuis-gateway/pseudonym/v1")
        self._fernet = Fernet(base64.urlsafe_b64encode(_derive(raw, b"veilig-thuis-gateway/seal/v1")))

    @staticmethod
    def generate_secret() -> str:
        return secrets.token_urlsafe(48)

    def pseudonym(self, address: str, *, prefix: str = "p_") -> str:
        """Stable per address and key; not reversible without the key."""
        digest = hmac.new(self._pseudonym_key, address.encode(), hashlib.sha256).hexdigest()
        return prefix + digest[:40]

    def seal(self, handle: dict[str, str]) -> str:
        return self._fernet.encrypt(orjson.dumps(handle, option=orjson.OPT_SORT_KEYS)).decode()

    def unseal(self, token: str) -> dict[str, str]:
        try:
            return orjson.loads(self._fernet.decrypt(token.encode()))
        except (InvalidToken, ValueError) as exc:
            raise SealError("reply handle could not be unsealed") from exc
