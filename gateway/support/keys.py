"""The gateway's keys, one per purpose, so each role holds only what it needs.

- GATEWAY_PSEUDONYM_KEY: keyed pseudonyms (senders, conversation ids), HMAC-SHA256.
- GATEWAY_SEAL_PUBLIC_KEY / GATEWAY_SEAL_PRIVATE_KEY: reply handles are sealed to an
  X25519 public key (libsodium's sealed box: an ephemeral key pair per handle, then
  XSalsa20-Poly1305), "g2." + base64url. Whoever holds only the public key (ingest)
  seals and cannot open what it sealed.
- GATEWAY_DESK_SESSION_KEY: the desk's own keys (CSRF tokens, the OpenID provider's
  pending sign-in, recovery-code hashes, the sealed TOTP secrets "d1." + AES-256-GCM).
- GATEWAY_PAGES_KEY: the channel pages' keys (`Host.key_for`, e.g. Masker 19's CSRF).

Every key is 32 bytes, base64url; `generate()` makes a set (`gateway keys generate`).
GATEWAY_DATA_KEYS and GATEWAY_CHANNEL_DATA_KEYS (what people wrote, at rest) are `fieldcrypt`'s.

`Keyring(secret)` alone, GATEWAY_SECRET_KEY for a try-out, derives every key from the
one secret through HKDF, the pseudonyms and the `key_for` keys exactly as before the
split. Beside specific keys the secret is only the legacy key of a migration window:
reply handles "g1." (AES-256-GCM under a key derived from it) and TOTP secrets sealed
before the split still open, and recovery codes made before it still match.

Nothing here puts key material in an exception or a log.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, PublicKey, SealedBox

from gateway.support.fieldcrypt import DATA_KEYS, derive_key

MIN_SECRET_CHARS = 32
KEY_BYTES = 32
SEAL_PREFIX = "g2."  # sealed to the public key
LEGACY_SEAL_PREFIX = "g1."  # AES-GCM under a key derived from GATEWAY_SECRET_KEY
LOCK_PREFIX = "d1."  # the desk's own secrets, AES-GCM under GATEWAY_DESK_SESSION_KEY
NONCE_BYTES = 12

PSEUDONYM = "GATEWAY_PSEUDONYM_KEY"
SEAL_PUBLIC = "GATEWAY_SEAL_PUBLIC_KEY"
SEAL_PRIVATE = "GATEWAY_SEAL_PRIVATE_KEY"
DESK_SESSION = "GATEWAY_DESK_SESSION_KEY"
PAGES = "GATEWAY_PAGES_KEY"
SECRET = "GATEWAY_SECRET_KEY"  # noqa: S105 - the variable's name
SPECIFIC = (PSEUDONYM, SEAL_PUBLIC, SEAL_PRIVATE, DESK_SESSION, PAGES)

# Which keys each role needs (the data keyrings besides: service.DATA_KEY_ROLES).
ROLE_KEYS: dict[str, tuple[str, ...]] = {
    "ingest": (PSEUDONYM, SEAL_PUBLIC, PAGES),
    "router": (),
    "outbound": (SEAL_PRIVATE,),
    "desk": (SEAL_PRIVATE, DESK_SESSION),
}
DESK_PURPOSES = ("desk/", "identity/")  # key_for purposes under the desk's key; the rest: pages


class SealError(Exception):
    """A sealed value that was tampered with, sealed under another key, or sealed before
    the split while the legacy GATEWAY_SECRET_KEY is no longer configured."""


class MissingKey(RuntimeError):
    """This process was not given the key for that: it is a role that must not do it."""

    def __init__(self, variable: str, what: str) -> None:
        super().__init__(f"{what} needs {variable}, which this process does not hold")
        self.variable = variable


def _derive(secret: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(secret)


def _purpose_key(root: bytes, purpose: str) -> bytes:
    return _derive(root, f"veilig-thuis-gateway/{purpose}/v1".encode())


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)


def parse_key(variable: str, value: str) -> bytes:
    """32 bytes from base64url; ValueError naming the variable (never echoing the value)."""
    try:
        raw = _unb64(value.strip())
    except (binascii.Error, ValueError):
        raise ValueError(f"{variable} is not base64url (make one with `gateway keys generate`)") from None
    if len(raw) != KEY_BYTES:
        raise ValueError(f"{variable} must be {KEY_BYTES} bytes, base64url (`gateway keys generate`)")
    return raw


def same_secret(presented: str, expected: str) -> bool:
    """Constant-time comparison of a presented token with the expected one. On bytes:
    hmac.compare_digest raises TypeError for a str with non-ASCII characters, which a
    hostile header, cookie or form field can carry."""
    return hmac.compare_digest(presented.encode(), expected.encode())


@dataclass(frozen=True)
class _Keys:
    pseudonym: bytes | None = None
    seal_public: bytes | None = None
    seal_private: bytes | None = None
    desk: bytes | None = None
    pages: bytes | None = None


def _seal_pair(secret: bytes) -> tuple[bytes, bytes]:
    private = PrivateKey(_derive(secret, b"veilig-thuis-gateway/seal/x25519/v2"))
    return bytes(private.public_key), bytes(private)


def _derived_keys(secret: bytes) -> _Keys:
    public, private = _seal_pair(secret)
    return _Keys(
        pseudonym=_derive(secret, b"veilig-thuis-gateway/pseudonym/v1"),
        seal_public=public,
        seal_private=private,
        desk=secret,  # key_for(purpose) derives from the secret itself, as before the split
        pages=secret,
    )


def generate() -> dict[str, str]:
    """A fresh set of every specific key, by variable name."""
    private = PrivateKey.generate()
    return {
        PSEUDONYM: _b64(secrets.token_bytes(KEY_BYTES)),
        SEAL_PUBLIC: _b64(bytes(private.public_key)),
        SEAL_PRIVATE: _b64(bytes(private)),
        DESK_SESSION: _b64(secrets.token_bytes(KEY_BYTES)),
        PAGES: _b64(secrets.token_bytes(KEY_BYTES)),
    }


def pseudonym_key_from_secret(secret: str) -> str:
    """GATEWAY_PSEUDONYM_KEY that gives the pseudonyms GATEWAY_SECRET_KEY gave, so a
    deployment moving to its own keys keeps its senders and conversation ids."""
    return _b64(_derive(secret.encode(), b"veilig-thuis-gateway/pseudonym/v1"))


def data_key_entry_from_secret(secret: str, key_id: str, variable: str = DATA_KEYS) -> str:
    """The entry `id:key` of that keyring (GATEWAY_DATA_KEYS, GATEWAY_CHANNEL_DATA_KEYS)
    that a try-out derived from GATEWAY_SECRET_KEY (`FieldCipher.derived`), so rows
    written then still open."""
    return f"{key_id}:{_b64(derive_key(secret, variable))}"


class Keyring:
    """`Keyring(secret)`: every key derived from one secret (a try-out, and the tests).
    `Keyring.from_keys(...)`: only the keys given; the secret, if any, is the legacy key."""

    def __init__(self, secret: str | None = None, *, _keys: _Keys | None = None) -> None:
        if secret is not None and len(secret) < MIN_SECRET_CHARS:
            raise ValueError(f"{SECRET} must be at least {MIN_SECRET_CHARS} characters")
        legacy = secret.encode() if secret is not None else None
        if _keys is None:
            if legacy is None:
                raise ValueError(f"a keyring needs {SECRET} or its own keys")
            _keys = _derived_keys(legacy)
            self.derived = True
        else:
            self.derived = False
        self._keys = _keys
        self._legacy = legacy
        self._legacy_aead = AESGCM(_derive(legacy, b"veilig-thuis-gateway/seal/v1")) if legacy else None
        self._seal_box = SealedBox(PublicKey(_keys.seal_public)) if _keys.seal_public else None
        self._open_box = SealedBox(PrivateKey(_keys.seal_private)) if _keys.seal_private else None
        if _keys.seal_private and _keys.seal_public != bytes(PrivateKey(_keys.seal_private).public_key):
            raise ValueError(f"{SEAL_PUBLIC} is not the public key of {SEAL_PRIVATE}")
        self._lock_aead = AESGCM(_purpose_key(_keys.desk, "identity/secrets")) if _keys.desk else None

    @classmethod
    def from_keys(
        cls,
        *,
        pseudonym: bytes | None = None,
        seal_public: bytes | None = None,
        seal_private: bytes | None = None,
        desk: bytes | None = None,
        pages: bytes | None = None,
        legacy_secret: str | None = None,
    ) -> Keyring:
        if seal_private is not None and seal_public is None:
            seal_public = bytes(PrivateKey(seal_private).public_key)  # it follows from the private key
        keys = _Keys(pseudonym, seal_public, seal_private, desk, pages)
        return cls(legacy_secret, _keys=keys)

    @classmethod
    def from_env(cls, env: dict[str, str], legacy_secret: str | None = None) -> Keyring:
        """The specific keys among `env` (variable -> value); ValueError names a bad one."""

        def key(variable: str) -> bytes | None:
            value = env.get(variable)
            return parse_key(variable, value) if value else None

        return cls.from_keys(
            pseudonym=key(PSEUDONYM),
            seal_public=key(SEAL_PUBLIC),
            seal_private=key(SEAL_PRIVATE),
            desk=key(DESK_SESSION),
            pages=key(PAGES),
            legacy_secret=legacy_secret,
        )

    @staticmethod
    def generate_secret() -> str:
        return secrets.token_urlsafe(48)

    def holds(self, variable: str) -> bool:
        keys = self._keys
        value = {
            PSEUDONYM: keys.pseudonym,
            SEAL_PUBLIC: keys.seal_public,
            SEAL_PRIVATE: keys.seal_private,
            DESK_SESSION: keys.desk,
            PAGES: keys.pages,
        }[variable]
        return value is not None

    def missing(self, variables: Iterable[str]) -> list[str]:
        return [variable for variable in variables if not self.holds(variable)]

    @property
    def has_legacy_secret(self) -> bool:
        return self._legacy is not None

    # purposes

    def key_for(self, purpose: str) -> bytes:
        """An independent key for one purpose (signed session cookies, CSRF tokens): the
        desk's ("desk/...", "identity/...") from GATEWAY_DESK_SESSION_KEY, a channel
        page's from GATEWAY_PAGES_KEY."""
        desk = purpose.startswith(DESK_PURPOSES)
        root = self._keys.desk if desk else self._keys.pages
        if root is None:
            raise MissingKey(DESK_SESSION if desk else PAGES, f"the key for {purpose}")
        return _purpose_key(root, purpose)

    def legacy_key_for(self, purpose: str) -> bytes | None:
        """The key `key_for` gave before the split (from GATEWAY_SECRET_KEY), while the
        secret is still configured beside the specific keys; None otherwise."""
        if self.derived or self._legacy is None:
            return None
        return _purpose_key(self._legacy, purpose)

    def pseudonym(self, address: str, *, prefix: str = "p_") -> str:
        """Stable per address and key; not reversible without the key."""
        if self._keys.pseudonym is None:
            raise MissingKey(PSEUDONYM, "a pseudonym")
        digest = hmac.digest(self._keys.pseudonym, address.encode(), "sha256")
        return prefix + digest.hex()[:40]

    # reply handles

    def seal(self, handle: dict[str, str]) -> str:
        if self._seal_box is None:
            raise MissingKey(SEAL_PUBLIC, "sealing a reply handle")
        return SEAL_PREFIX + _b64(self._seal_box.encrypt(orjson.dumps(handle, option=orjson.OPT_SORT_KEYS)))

    def unseal(self, token: str) -> dict[str, str]:
        """Raises MissingKey in a process without the private key (it must not open
        handles), SealError for a handle that does not open."""
        if token.startswith(LEGACY_SEAL_PREFIX):
            return self._legacy_unseal(token)
        if self._open_box is None:
            raise MissingKey(SEAL_PRIVATE, "opening a reply handle")
        if not token.startswith(SEAL_PREFIX):
            raise SealError("reply handle of an unknown version")
        try:
            plain = self._open_box.decrypt(_unb64(token[len(SEAL_PREFIX) :]))
        except (CryptoError, ValueError, binascii.Error):
            raise SealError("reply handle could not be unsealed") from None
        return _handle(plain)

    def _legacy_unseal(self, token: str) -> dict[str, str]:
        if self._legacy_aead is None:
            raise SealError(f"reply handle sealed before the key split, and {SECRET} is not configured")
        return _handle(_aead_open(self._legacy_aead, token[len(LEGACY_SEAL_PREFIX) :], "reply handle"))

    # the desk's own secrets (TOTP)

    def lock(self, secret: dict[str, str]) -> str:
        """A small secret of the desk's, sealed under GATEWAY_DESK_SESSION_KEY."""
        if self._lock_aead is None:
            raise MissingKey(DESK_SESSION, "sealing a desk secret")
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._lock_aead.encrypt(nonce, orjson.dumps(secret, option=orjson.OPT_SORT_KEYS), None)
        return LOCK_PREFIX + _b64(nonce + sealed)

    def unlock(self, token: str) -> dict[str, str]:
        """What `lock` sealed; also a TOTP secret sealed before the split ("g1.", while
        the legacy secret is configured)."""
        if token.startswith(LEGACY_SEAL_PREFIX):
            return self._legacy_unseal(token)
        if self._lock_aead is None:
            raise MissingKey(DESK_SESSION, "opening a desk secret")
        if not token.startswith(LOCK_PREFIX):
            raise SealError("desk secret of an unknown version")
        return _handle(_aead_open(self._lock_aead, token[len(LOCK_PREFIX) :], "desk secret"))


def _aead_open(aead: AESGCM, data: str, what: str) -> bytes:
    try:
        raw = _unb64(data)
        return aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], None)
    except (InvalidTag, ValueError, binascii.Error):
        raise SealError(f"{what} could not be unsealed") from None


def _handle(plain: bytes) -> dict[str, str]:
    try:
        handle = orjson.loads(plain)
    except orjson.JSONDecodeError:
        raise SealError("sealed value is not readable") from None
    if not isinstance(handle, dict):
        raise SealError("sealed value is not readable")
    return handle
