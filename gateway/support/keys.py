"""Keyed pseudonyms and sealed reply handles, both derived from GATEWAY_SECRET_KEY.

One secret feeds two independent keys through HKDF, so a leaked pseudonym key
says nothing about the sealing key and the other way round. Reply handles are
sealed with AES-256-GCM (authenticated: a changed byte fails to unseal) under a
random 96-bit nonce: "g1." + base64url(nonce || ciphertext || tag).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
import secrets

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MIN_SECRET_CHARS = 32
SEAL_PREFIX = "g1."
NONCE_BYTES = 12


class SealError(Exception):
    """A reply handle that was tampered with, or sealed under another key."""


def _derive(secret: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(secret)


def same_secret(presented: str, expected: str) -> bool:
    """Constant-time comparison of a presented token with the expected one. On bytes:
    hmac.compare_digest raises TypeError for a str with non-ASCII characters, which a
    hostile header, cookie or form field can carry."""
    return hmac.compare_digest(presented.encode(), expected.encode())


class Keyring:
    def __init__(self, secret: str) -> None:
        if len(secret) < MIN_SECRET_CHARS:
            raise ValueError(f"GATEWAY_SECRET_KEY must be at least {MIN_SECRET_CHARS} characters")
        raw = secret.encode()
        self._secret = raw
        self._pseudonym_key = _derive(raw, b"veilig-thuis-gateway/pseudonym/v1")
        self._aead = AESGCM(_derive(raw, b"veilig-thuis-gateway/seal/v1"))

    def key_for(self, purpose: str) -> bytes:
        """An independent key for one purpose (signed session cookies, CSRF tokens)."""
        return _derive(self._secret, f"veilig-thuis-gateway/{purpose}/v1".encode())

    @staticmethod
    def generate_secret() -> str:
        return secrets.token_urlsafe(48)

    def pseudonym(self, address: str, *, prefix: str = "p_") -> str:
        """Stable per address and key; not reversible without the key."""
        digest = hmac.digest(self._pseudonym_key, address.encode(), "sha256")
        return prefix + digest.hex()[:40]

    def seal(self, handle: dict[str, str]) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, orjson.dumps(handle, option=orjson.OPT_SORT_KEYS), None)
        return SEAL_PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")

    def unseal(self, token: str) -> dict[str, str]:
        try:
            if not token.startswith(SEAL_PREFIX):
                raise ValueError("unknown seal version")
            data = token[len(SEAL_PREFIX) :]
            raw = base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
            plain = self._aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], None)
            handle: dict[str, str] = orjson.loads(plain)
            return handle
        except (InvalidTag, ValueError, binascii.Error) as exc:
            raise SealError("reply handle could not be unsealed") from exc
