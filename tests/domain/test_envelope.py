from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from gateway.domain.envelope import (
    SCHEMA_VERSION,
    Attachment,
    ChannelRef,
    Envelope,
    LocationHint,
    Route,
    Urgency,
    envelope_id,
    json_schema,
)
from gateway.support.keys import Keyring, SealError

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "schemas" / "envelope-v1.json"
KEYRING = Keyring("a-secret-for-the-envelope-tests-" + "z" * 16)


def make_envelope(**changes: object) -> Envelope:
    fields: dict[str, object] = {
        "id": envelope_id("sms-zuidoost-brabant", "SM123"),
        "conversation_id": "c_abc",
        "channel": ChannelRef(kind="sms", instance="sms-zuidoost-brabant"),
        "received_at": datetime(2026, 3, 1, 12, 0, tzinfo=UTC),
        "text": "Ik heb hulp nodig 🙏 помощь",
        "attachments": [Attachment(content_type="image/jpeg", url="https://media/1", size=10)],
        "sender": KEYRING.pseudonym("+31612345678"),
        "reply_handle": KEYRING.seal({"address": "+31612345678"}),
    }
    fields.update(changes)
    return Envelope(**fields)  # type: ignore[arg-type]


def test_round_trip_keeps_every_field() -> None:
    envelope = make_envelope(
        region="zuidoost-brabant",
        urgency=Urgency.ACUTE,
        route=Route(queue="gw.region.zuidoost-brabant.urgent", reason="channel region"),
        location_hint=LocationHint(municipality="Eindhoven", postcode="5611"),
    )
    data = json.loads(envelope.to_json())
    assert data["schema"] == SCHEMA_VERSION
    assert Envelope.from_json(envelope.to_json()) == envelope


def test_received_at_is_normalised_to_utc_and_naive_times_are_refused() -> None:
    amsterdam = timezone(timedelta(hours=1))
    envelope = make_envelope(received_at=datetime(2026, 1, 5, 10, 0, tzinfo=amsterdam))
    assert envelope.received_at == datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    assert envelope.received_at.utcoffset() == timedelta(0)
    with pytest.raises(ValidationError):
        make_envelope(received_at=datetime(2026, 1, 5, 10, 0))


@pytest.mark.parametrize(
    "change",
    [
        {"urgency": "extreme"},
        {"region": "Not A Code"},
        {"text": "x" * 5000},
        {"channel": {"kind": "sms"}},
        {"attachments": [{"content_type": "a/b", "url": "u"}] * 11},
    ],
)
def test_invalid_envelopes_are_refused(change: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        make_envelope(**change)


def test_unknown_fields_and_other_schema_versions_are_refused() -> None:
    data = json.loads(make_envelope().to_json())
    with pytest.raises(ValidationError):
        Envelope.model_validate({**data, "phone": "+31612345678"})
    with pytest.raises(ValidationError):
        Envelope.model_validate({**data, "schema": "gateway.envelope.v2"})


def test_id_is_stable_per_provider_message_and_channel() -> None:
    assert envelope_id("sms-a", "SM1") == envelope_id("sms-a", "SM1")
    assert envelope_id("sms-a", "SM1") != envelope_id("sms-a", "SM2")
    assert envelope_id("sms-a", "SM1") != envelope_id("sms-b", "SM1")


def test_pseudonym_is_stable_keyed_and_not_the_address() -> None:
    other = Keyring("another-secret-for-the-envelope-tests-" + "y" * 8)
    address = "+31612345678"
    assert KEYRING.pseudonym(address) == KEYRING.pseudonym(address)
    assert KEYRING.pseudonym(address) != KEYRING.pseudonym("+31612345679")
    assert KEYRING.pseudonym(address) != other.pseudonym(address)
    assert "612345678" not in KEYRING.pseudonym(address)


def test_reply_handle_is_sealed_and_round_trips() -> None:
    handle = {"channel": "sms-zuidoost-brabant", "address": "+31612345678"}
    sealed = KEYRING.seal(handle)
    assert "612345678" not in sealed
    assert KEYRING.unseal(sealed) == handle
    assert "612345678" not in make_envelope(reply_handle=sealed).to_json().decode()


def test_tampered_or_foreign_reply_handle_is_refused() -> None:
    sealed = KEYRING.seal({"address": "+31612345678"})
    flipped = sealed[:20] + ("A" if sealed[20] != "A" else "B") + sealed[21:]
    with pytest.raises(SealError):
        KEYRING.unseal(flipped)
    with pytest.raises(SealError):
        Keyring("someone-elses-secret-key-of-enough-length").unseal(sealed)
    with pytest.raises(SealError):
        KEYRING.unseal("not a token")


def test_short_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="at least"):
        Keyring("short")


def test_schema_file_is_current() -> None:
    """Regenerate with: python -m gateway.envelope > schemas/envelope-v1.json"""
    assert json.loads(SCHEMA_FILE.read_text()) == json_schema()


def test_schema_file_validates_a_real_envelope() -> None:
    schema = json.loads(SCHEMA_FILE.read_text())
    data = json.loads(make_envelope().to_json())
    assert set(schema["required"]) <= set(data)
    assert set(data) <= set(schema["properties"])
    assert schema["properties"]["schema"]["const"] == SCHEMA_VERSION


@given(
    text=st.text(max_size=4096),
    provider_id=st.text(min_size=1, max_size=200),
    address=st.text(min_size=1, max_size=100),
)
def test_any_text_and_address_round_trip(text: str, provider_id: str, address: str) -> None:
    envelope = make_envelope(
        id=envelope_id("x", provider_id),
        text=text,
        sender=KEYRING.pseudonym(address),
        reply_handle=KEYRING.seal({"address": address}),
    )
    again = Envelope.from_json(envelope.to_json())
    assert again == envelope
    assert KEYRING.unseal(again.reply_handle) == {"address": address}


def test_outbound_schema_file_is_current() -> None:
    """Regenerate with: python -m gateway.domain.envelope outbound > schemas/outbound-v1.json"""
    from gateway.domain.envelope import OutboundMessage

    path = SCHEMA_FILE.parent / "outbound-v1.json"
    assert json.loads(path.read_text()) == json_schema(OutboundMessage)


def test_auto_reply_id_is_one_per_conversation_and_closed_period() -> None:
    from gateway.domain.envelope import auto_reply_id

    monday = datetime(2025, 11, 24, 8, 0, tzinfo=UTC)
    assert auto_reply_id("c1", monday) == auto_reply_id("c1", monday)
    assert auto_reply_id("c1", monday) != auto_reply_id("c2", monday)
    assert auto_reply_id("c1", monday) != auto_reply_id("c1", monday + timedelta(days=1))
