"""A key per purpose: what each role's keys can and cannot do, the try-out's derivation
(pseudonyms and page keys as before the split), the migration window for handles and
second factors sealed before it, and what a process refuses to start without."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

import orjson
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from gateway.cli import KEY_ROLES, main
from gateway.service import data_cipher, make_keyring
from gateway.support import keys
from gateway.support.fieldcrypt import FieldCipher, FieldKeyError
from gateway.support.keys import Keyring, MissingKey, SealError
from gateway.support.settings import Settings

SECRET = "a-secret-for-the-key-tests-" + "s" * 20
HANDLE = {"address": "+31612345678", "channel": "sms-zuidoost-brabant", "kind": "sms"}
ROLE_ENV = {
    "ingest": (
        "GATEWAY_PSEUDONYM_KEY",
        "GATEWAY_SEAL_PUBLIC_KEY",
        "GATEWAY_PAGES_KEY",
        "GATEWAY_CHANNEL_DATA_KEYS",
    ),
    "router": (),
    "outbound": ("GATEWAY_SEAL_PRIVATE_KEY", "GATEWAY_CHANNEL_DATA_KEYS"),
    "desk": ("GATEWAY_SEAL_PRIVATE_KEY", "GATEWAY_DESK_SESSION_KEY", "GATEWAY_DATA_KEYS"),
}


def _hkdf(secret: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(secret)


def legacy_seal(secret: str, handle: dict[str, str]) -> str:
    """A handle as the gateway sealed it before the split: "g1." + AES-GCM."""
    aead = AESGCM(_hkdf(secret.encode(), b"veilig-thuis-gateway/seal/v1"))
    nonce = os.urandom(12)
    raw = nonce + aead.encrypt(nonce, orjson.dumps(handle, option=orjson.OPT_SORT_KEYS), None)
    return "g1." + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def role_keyring(generated: dict[str, str], role: str, legacy: str | None = None) -> Keyring:
    own = {name: generated[name] for name in ROLE_ENV[role] if name in keys.SPECIFIC}
    return Keyring.from_env(own, legacy_secret=legacy)


def settings(**env: str) -> Settings:
    return Settings.from_env(env)


def test_ingest_seals_what_it_cannot_open_and_outbound_and_desk_open_it() -> None:
    generated = keys.generate()
    ingest = role_keyring(generated, "ingest")
    sealed = ingest.seal(HANDLE)
    assert sealed.startswith("g2.") and "612345678" not in sealed
    with pytest.raises(MissingKey, match="GATEWAY_SEAL_PRIVATE_KEY"):
        ingest.unseal(sealed)
    assert role_keyring(generated, "outbound").unseal(sealed) == HANDLE
    assert role_keyring(generated, "desk").unseal(sealed) == HANDLE
    with pytest.raises(SealError):
        role_keyring(keys.generate(), "outbound").unseal(sealed)  # another deployment's key


def test_ingest_cannot_make_a_desk_session_key_or_a_desk_secret() -> None:
    ingest = role_keyring(keys.generate(), "ingest")
    for purpose in ("desk/csrf", "desk/oidc", "identity/recovery-codes"):
        with pytest.raises(MissingKey, match="GATEWAY_DESK_SESSION_KEY"):
            ingest.key_for(purpose)
    with pytest.raises(MissingKey, match="GATEWAY_DESK_SESSION_KEY"):
        ingest.lock({"totp": "JBSWY3DPEHPK3PXP"})
    assert len(ingest.key_for("masker19/csrf")) == 32  # its own pages' keys


def test_outbound_and_router_make_neither_pseudonyms_nor_seals_nor_sessions() -> None:
    generated = keys.generate()
    for keyring in (role_keyring(generated, "outbound"), Keyring.from_keys()):
        with pytest.raises(MissingKey, match="GATEWAY_PSEUDONYM_KEY"):
            keyring.pseudonym("+31612345678")
        with pytest.raises(MissingKey, match="GATEWAY_DESK_SESSION_KEY"):
            keyring.key_for("desk/csrf")
    with pytest.raises(MissingKey, match="GATEWAY_SEAL_PUBLIC_KEY"):
        Keyring.from_keys().seal(HANDLE)


def test_keys_per_purpose_are_independent() -> None:
    generated = keys.generate()
    desk = role_keyring(generated, "desk")
    assert desk.key_for("desk/csrf") != desk.key_for("desk/oidc")
    assert len({generated[name] for name in keys.SPECIFIC}) == len(keys.SPECIFIC)
    other = keys.generate()
    assert role_keyring(other, "desk").key_for("desk/csrf") != desk.key_for("desk/csrf")


def test_the_secret_alone_derives_every_key_as_before_the_split() -> None:
    keyring = Keyring(SECRET)
    pseudonym_key = _hkdf(SECRET.encode(), b"veilig-thuis-gateway/pseudonym/v1")
    expected = "p_" + hmac.new(pseudonym_key, b"+31612345678", hashlib.sha256).hexdigest()[:40]
    assert keyring.pseudonym("+31612345678") == expected
    for purpose in ("desk/csrf", "masker19/csrf", "identity/recovery-codes"):
        assert keyring.key_for(purpose) == _hkdf(
            SECRET.encode(), f"veilig-thuis-gateway/{purpose}/v1".encode()
        )
    sealed = keyring.seal(HANDLE)
    assert sealed.startswith("g2.") and keyring.unseal(sealed) == HANDLE
    assert keyring.unseal(legacy_seal(SECRET, HANDLE)) == HANDLE
    assert keyring.unlock(legacy_seal(SECRET, {"totp": "ABC"})) == {"totp": "ABC"}
    assert keyring.legacy_key_for("desk/csrf") is None  # key_for already is the legacy one
    assert Keyring(SECRET).unseal(sealed) == HANDLE  # the same secret, the same seal keys


def test_handles_sealed_before_the_split_open_while_the_secret_is_kept() -> None:
    generated = keys.generate()
    old = legacy_seal(SECRET, HANDLE)
    assert role_keyring(generated, "outbound", legacy=SECRET).unseal(old) == HANDLE
    with pytest.raises(SealError, match="GATEWAY_SECRET_KEY is not configured"):
        role_keyring(generated, "outbound").unseal(old)
    with pytest.raises(SealError):
        role_keyring(generated, "outbound", legacy="another-secret-" + "x" * 30).unseal(old)
    desk = role_keyring(generated, "desk", legacy=SECRET)
    assert desk.unlock(legacy_seal(SECRET, {"totp": "ABC"})) == {"totp": "ABC"}
    assert desk.legacy_key_for("identity/recovery-codes") == Keyring(SECRET).key_for(
        "identity/recovery-codes"
    )


def test_a_desk_secret_opens_only_with_its_desk_key() -> None:
    generated = keys.generate()
    locked = role_keyring(generated, "desk").lock({"totp": "JBSWY3DPEHPK3PXP"})
    assert locked.startswith("d1.") and "JBSWY3DPEHPK3PXP" not in locked
    assert role_keyring(generated, "desk").unlock(locked) == {"totp": "JBSWY3DPEHPK3PXP"}
    with pytest.raises(SealError):
        role_keyring(keys.generate(), "desk").unlock(locked)
    with pytest.raises(SealError):
        role_keyring(generated, "desk").unlock(locked[:-2] + ("AA" if locked[-2:] != "AA" else "BB"))


def test_a_bad_key_is_named_and_never_echoed() -> None:
    with pytest.raises(ValueError, match="GATEWAY_PSEUDONYM_KEY must be 32 bytes") as short:
        Keyring.from_env({"GATEWAY_PSEUDONYM_KEY": "c2hvcnQ"})
    assert "c2hvcnQ" not in str(short.value)
    with pytest.raises(ValueError, match="GATEWAY_DESK_SESSION_KEY is not base64url"):
        Keyring.from_env({"GATEWAY_DESK_SESSION_KEY": "not base64 at all!"})
    mismatched = {**keys.generate(), "GATEWAY_SEAL_PUBLIC_KEY": keys.generate()["GATEWAY_SEAL_PUBLIC_KEY"]}
    with pytest.raises(ValueError, match="is not the public key of"):
        Keyring.from_env(mismatched)


@pytest.mark.parametrize("role", ["ingest", "router", "outbound", "desk"])
def test_each_role_starts_with_its_own_keys_and_not_without_one_of_them(role: str) -> None:
    generated = {
        **keys.generate(),
        "GATEWAY_DATA_KEYS": "k1:" + "A" * 43,
        "GATEWAY_CHANNEL_DATA_KEYS": "w1:" + "B" * 43,
    }
    own = {name: generated[name] for name in ROLE_ENV[role]}
    # Another role's key beside them: specific keys are given, the secret derives nothing.
    other = next(name for name in keys.SPECIFIC if name not in ROLE_ENV[role] and "SEAL" not in name)
    given = settings(**own, **{other: generated[other]})
    start(given, role)
    for name in ROLE_ENV[role]:
        fewer = settings(**{k: v for k, v in own.items() if k != name}, **{other: generated[other]})
        with pytest.raises(ValueError, match=name):
            start(fewer, role)


def start(given: Settings, role: str) -> None:
    """What build_service asks of the keys before anything runs."""
    keyring = make_keyring(given, frozenset({role}))
    for variable in ("GATEWAY_DATA_KEYS", "GATEWAY_CHANNEL_DATA_KEYS"):
        data_cipher(given, keyring, frozenset({role}), variable)


def test_specific_keys_do_not_need_the_secret_and_the_secret_alone_is_a_try_out() -> None:
    generated = keys.generate()
    keyring = make_keyring(settings(**generated), frozenset({"ingest", "outbound"}))
    assert not keyring.derived and not keyring.has_legacy_secret
    assert make_keyring(settings(GATEWAY_SECRET_KEY=SECRET), frozenset({"desk"})).derived
    with pytest.raises(ValueError, match="GATEWAY_SEAL_PRIVATE_KEY"):  # the secret does not fill gaps
        make_keyring(settings(GATEWAY_SECRET_KEY=SECRET, GATEWAY_PSEUDONYM_KEY=generated[keys.PSEUDONYM]),
                     frozenset({"outbound"}))  # fmt: skip


def test_keys_generate_prints_a_complete_env_file_naming_roles(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "generate"]) == 0
    lines = capsys.readouterr().out.splitlines()
    values = dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))
    assert set(values) == set(KEY_ROLES) == {*keys.SPECIFIC, "GATEWAY_DATA_KEYS", "GATEWAY_CHANNEL_DATA_KEYS"}
    for name in values:
        comment = lines[lines.index(f"{name}={values[name]}") - 1]
        assert comment.startswith("# ") and "Roles:" in comment
    keyring = Keyring.from_env(values)
    assert keyring.unseal(keyring.seal(HANDLE)) == HANDLE
    assert FieldCipher.from_env(values["GATEWAY_DATA_KEYS"]).newest == "k1"
    channel = FieldCipher.from_env(values["GATEWAY_CHANNEL_DATA_KEYS"], "GATEWAY_CHANNEL_DATA_KEYS")
    assert channel.newest == "k1"
    with pytest.raises(FieldKeyError):  # two keyrings, two keys: one does not open the other's
        desk = FieldCipher.from_env(values["GATEWAY_DATA_KEYS"])
        desk.decrypt_text(*channel.encrypt_text("x", "t:1"), "t:1")
    assert main(["keys", "generate", "--json"]) == 0
    assert set(orjson.loads(capsys.readouterr().out)) == set(values)


def test_keys_generate_from_the_secret_keeps_its_pseudonyms_and_data(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_SECRET_KEY", SECRET)
    assert main(["keys", "generate", "--from-secret", "--json", "--data-key-id", "2027-01"]) == 0
    values = orjson.loads(capsys.readouterr().out)
    assert Keyring.from_env(values).pseudonym("+31612") == Keyring(SECRET).pseudonym("+31612")
    cipher = FieldCipher.from_env(values["GATEWAY_DATA_KEYS"])
    assert cipher.newest == "2027-01"
    key_id, stored = FieldCipher.derived(SECRET).encrypt_text("bel me", "desk_messages:m1")
    assert cipher.decrypt_text(key_id, stored, "desk_messages:m1") == "bel me"
    channel = FieldCipher.from_env(values["GATEWAY_CHANNEL_DATA_KEYS"], "GATEWAY_CHANNEL_DATA_KEYS")
    key_id, stored = FieldCipher.derived(SECRET, "GATEWAY_CHANNEL_DATA_KEYS").encrypt_text("hoi", "r:1")
    assert channel.decrypt_text(key_id, stored, "r:1") == "hoi"
    monkeypatch.delenv("GATEWAY_SECRET_KEY")
    assert main(["keys", "generate", "--from-secret"]) == 2
