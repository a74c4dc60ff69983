"""What a person wrote, encrypted at rest: field encryption for the transcript, notes,
handover notes, attachments and web chat replies.

AES-256-GCM under a keyring: GATEWAY_DATA_KEYS (the desk's transcript, notes and
attachments) and GATEWAY_CHANNEL_DATA_KEYS (what channel kinds keep in their own
tables: the web chat's replies, held by outbound and the sockets of ingest, never
opening a transcript) are each a comma-separated list of
`<key id>:<32 bytes, base64url>`; the first key encrypts, every key decrypts, so a new
key goes first and `gateway data rotate` re-encrypts the rows still under older ones.
Each row keeps the id of its key beside the ciphertext. The associated data binds a
ciphertext to its table and row, so a value copied into another row does not open.

A column whose key id is empty holds a value written before encryption (plain text);
it is read as it is until rotation encrypts it.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

KEY_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,15}$")
NONCE_BYTES = 12
DERIVED_KEY_ID = "derived"
DATA_KEYS = "GATEWAY_DATA_KEYS"
CHANNEL_DATA_KEYS = "GATEWAY_CHANNEL_DATA_KEYS"
# The HKDF purpose a try-out derives each keyring from GATEWAY_SECRET_KEY with.
DERIVED_PURPOSE = {DATA_KEYS: "data", CHANNEL_DATA_KEYS: "channel-data"}


@dataclass(frozen=True)
class EncryptedColumn:
    """One column encrypted at rest: its table, the row id that is part of the associated
    data (`<table>:<id>`), and the column beside it naming the key. `binary`: the value
    is bytes (an attachment), else base64 text."""

    table: str
    id_column: str
    value_column: str
    key_column: str = "key_id"
    binary: bool = False

    def context(self, row_id: str) -> str:
        return f"{self.table}:{row_id}"


class FieldKeyError(Exception):
    """A value that does not open: its key is not in the keyring, or it was altered."""


def _b64decode(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)


def parse_keys(value: str, variable: str = DATA_KEYS) -> list[tuple[str, bytes]]:
    """`id:base64url,id:base64url`, newest first; raises ValueError saying what is wrong
    (never echoing a key)."""
    keys: list[tuple[str, bytes]] = []
    for n, item in enumerate(part.strip() for part in value.split(",")):
        if not item:
            continue
        key_id, _, encoded = item.partition(":")
        if not KEY_ID.match(key_id):
            raise ValueError(f"{variable} entry {n + 1}: the id must be 1-16 of a-z, 0-9 and -")
        try:
            key = _b64decode(encoded)
        except (binascii.Error, ValueError):
            problem = f"{variable} entry {n + 1} ({key_id}): the key is not base64url"
            raise ValueError(problem) from None
        if len(key) != 32:
            raise ValueError(f"{variable} entry {n + 1} ({key_id}): the key must be 32 bytes")
        if any(key_id == known for known, _ in keys):
            raise ValueError(f"{variable}: the id {key_id} appears twice")
        keys.append((key_id, key))
    if not keys:
        raise ValueError(f"{variable} holds no key")
    return keys


def generate_key(key_id: str) -> str:
    """One keyring entry, `id:base64url`, for GATEWAY_DATA_KEYS or GATEWAY_CHANNEL_DATA_KEYS."""
    if not KEY_ID.match(key_id):
        raise ValueError("a key id is 1-16 of a-z, 0-9 and -")
    return f"{key_id}:{base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip('=')}"


def derive_key(secret: str, variable: str = DATA_KEYS) -> bytes:
    info = f"veilig-thuis-gateway/{DERIVED_PURPOSE[variable]}/v1".encode()
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(secret.encode())


class FieldCipher:
    def __init__(self, keys: list[tuple[str, bytes]]) -> None:
        if not keys:
            raise ValueError("a field cipher needs at least one key")
        self.newest = keys[0][0]
        self._keys = {key_id: AESGCM(key) for key_id, key in keys}

    @classmethod
    def from_env(cls, value: str, variable: str = DATA_KEYS) -> FieldCipher:
        return cls(parse_keys(value, variable))

    @classmethod
    def derived(cls, secret: str, variable: str = DATA_KEYS) -> FieldCipher:
        """The try-out's one key of that keyring, derived from GATEWAY_SECRET_KEY."""
        return cls([(DERIVED_KEY_ID, derive_key(secret, variable))])

    @classmethod
    def ephemeral(cls) -> FieldCipher:
        """A key for this process only (unit tests, a trial without any key)."""
        return cls([("ephemeral", secrets.token_bytes(32))])

    @property
    def key_ids(self) -> frozenset[str]:
        return frozenset(self._keys)

    def encrypt(self, plain: bytes, context: str) -> tuple[str, bytes]:
        """(key id, nonce || ciphertext || tag) under the newest key."""
        nonce = os.urandom(NONCE_BYTES)
        return self.newest, nonce + self._keys[self.newest].encrypt(nonce, plain, context.encode())

    def decrypt(self, key_id: str, blob: bytes, context: str) -> bytes:
        cipher = self._keys.get(key_id)
        if cipher is None:
            raise FieldKeyError("the value's key is not in the keyring")
        try:
            return cipher.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], context.encode())
        except (InvalidTag, ValueError):
            raise FieldKeyError("the value does not open with its key") from None

    def encrypt_text(self, text: str, context: str) -> tuple[str, str]:
        key_id, blob = self.encrypt(text.encode(), context)
        return key_id, base64.b64encode(blob).decode()

    def decrypt_text(self, key_id: str | None, stored: str, context: str) -> str:
        if not key_id:
            return stored  # written before encryption; rotation encrypts it
        try:
            blob = base64.b64decode(stored, validate=True)
        except (binascii.Error, ValueError):
            raise FieldKeyError("the value is not ciphertext") from None
        return self.decrypt(key_id, blob, context).decode()
