"""Field encryption at rest: the keyring's format, what opens with what, and that a
value is bound to its row."""

from __future__ import annotations

import pytest

from gateway.support.fieldcrypt import FieldCipher, FieldKeyError, generate_key, parse_keys

OLD, NEW = generate_key("k1"), generate_key("k2")


def test_the_first_key_encrypts_and_every_key_decrypts() -> None:
    before = FieldCipher.from_env(OLD)
    key_id, stored = before.encrypt_text("bel 0612345678", "desk_messages:m1")
    assert key_id == "k1" and "0612345678" not in stored
    after = FieldCipher.from_env(f"{NEW},{OLD}")
    assert after.newest == "k2"
    assert after.decrypt_text(key_id, stored, "desk_messages:m1") == "bel 0612345678"
    assert after.encrypt_text("x", "desk_messages:m2")[0] == "k2"


def test_a_value_opens_only_in_its_own_row_and_with_its_key() -> None:
    cipher = FieldCipher.from_env(OLD)
    key_id, stored = cipher.encrypt_text("geheim", "desk_messages:m1")
    with pytest.raises(FieldKeyError):
        cipher.decrypt_text(key_id, stored, "desk_messages:m2")  # copied into another row
    with pytest.raises(FieldKeyError):
        cipher.decrypt_text(key_id, stored, "desk_handovers:m1")  # or another table
    with pytest.raises(FieldKeyError):
        FieldCipher.from_env(NEW).decrypt_text(key_id, stored, "desk_messages:m1")  # key not in the ring
    altered = stored[:-4] + ("AAAA" if not stored.endswith("AAAA") else "BBBB")
    with pytest.raises(FieldKeyError):
        cipher.decrypt_text(key_id, altered, "desk_messages:m1")
    with pytest.raises(FieldKeyError):
        cipher.decrypt_text(key_id, "not base64!", "desk_messages:m1")


def test_a_value_from_before_encryption_is_read_as_it_is() -> None:
    assert FieldCipher.from_env(OLD).decrypt_text(None, "oude tekst", "desk_messages:m1") == "oude tekst"


def test_bytes_round_trip() -> None:
    cipher = FieldCipher.from_env(OLD)
    key_id, blob = cipher.encrypt(b"\x89PNG...", "desk_attachments:a1")
    assert cipher.decrypt(key_id, blob, "desk_attachments:a1") == b"\x89PNG..."


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", "holds no key"),
        ("K1:" + OLD.split(":")[1], "the id must be"),
        ("k1:" + "A" * 10, "must be 32 bytes"),
        ("k1:***", "not base64url"),
        (f"{OLD},{OLD}", "appears twice"),
    ],
)
def test_a_wrong_keyring_says_what_is_wrong_without_echoing_a_key(value: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem) as caught:
        parse_keys(value)
    secret = value.partition(":")[2]
    assert not secret or secret.split(",")[0] not in str(caught.value)


def test_the_derived_key_is_stable_for_one_secret() -> None:
    secret = "s" * 40
    key_id, stored = FieldCipher.derived(secret).encrypt_text("tekst", "t:1")
    assert FieldCipher.derived(secret).decrypt_text(key_id, stored, "t:1") == "tekst"
    with pytest.raises(FieldKeyError):
        FieldCipher.derived("t" * 40).decrypt_text(key_id, stored, "t:1")
