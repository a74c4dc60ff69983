"""The envelope: one versioned message format for every channel.

It is the queue contract that counsellors' tools consume. It never carries a
provider address (phone number, chat handle) in clear: the sender is a keyed
pseudonym and the address needed to answer travels sealed in `reply_handle`.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Final, Literal, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from gateway.config.models import CODE_PATTERN

SCHEMA_VERSION: Final = "gateway.envelope.v1"

# Namespace of envelope ids: uuid5(namespace, "<channel instance>\x1f<provider id>").
ENVELOPE_ID_NAMESPACE = uuid.UUID("9d6c1f0e-3b5a-5c4e-8f7a-2e1d0c9b8a76")

MAX_TEXT_CHARS = 4096
MAX_ATTACHMENTS = 10



class Urgency(StrEnum):
    NORMAL = "normal"
    HIGH = "high"
    ACUTE = "acute"


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("must carry a time zone")
    return value.astimezone(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(_utc)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ChannelRef(_Strict):
    kind: str = Field(pattern=CODE_PATTERN, max_length=40, description="Channel kind, e.g. sms")
    instance: str = Field(pattern=CODE_PATTERN, max_length=80, description="Channel instance id from config")


class Attachment(_Strict):
    content_type: str = Field(max_length=255)
    url: str = Field(max_length=2048, description="Where the media can be fetched, or a reference")
    size: int | None = Field(default=None, ge=0, description="Size in bytes when known")


class Route(_Strict):
    queue: str = Field(description="The region queue the router chose")
    reason: str = Field(max_length=200, description="Why: resolution and schedule, no content")
    after_hours: bool = False


class LocationHint(_Strict):
    """What the sender or pharmacy gave to find the region; the router resolves it."""

    municipality: str | None = Field(default=None, max_length=80)
    postcode: str | None = Field(default=None, pattern=r"^[1-9][0-9]{3}$")


class _Document(_Strict):
    """A message body on a queue: JSON with the schema version under "schema"."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    def to_json(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode()

    @classmethod
    def from_json(cls, data: bytes | str) -> Self:
        return cls.model_validate_json(data)


class Envelope(_Document):
    schema_: Literal["gateway.envelope.v1"] = Field(default=SCHEMA_VERSION, alias="schema")
    id: str = Field(description="Stable id derived from the provider's own message id")
    conversation_id: str = Field(max_length=100)
    channel: ChannelRef
    region: str | None = Field(
        default=None, pattern=CODE_PATTERN, description="Region code; null before routing"
    )
    received_at: UtcDatetime
    text: str = Field(default="", max_length=MAX_TEXT_CHARS)
    attachments: list[Attachment] = Field(default_factory=list, max_length=MAX_ATTACHMENTS)
    urgency: Urgency = Urgency.NORMAL
    route: Route | None = None
    sender: str = Field(description="Keyed pseudonym of the provider address", max_length=100)
    reply_handle: str = Field(description="Sealed (AES-GCM) address needed to answer")
    location_hint: LocationHint | None = None
    edited: bool = Field(
        default=False, description="The person edited an earlier message; this is the new text"
    )


OUTBOUND_SCHEMA_VERSION: Final = "gateway.outbound.v1"


class OutboundMessage(_Document):
    """A reply to a person, published to gw.outbound (routing key "<kind>.<instance>")."""

    schema_: Literal["gateway.outbound.v1"] = Field(default=OUTBOUND_SCHEMA_VERSION, alias="schema")
    id: str = Field(description="Stable: a republished reply keeps its id, so it is sent once")
    conversation_id: str = Field(max_length=100)
    channel: ChannelRef
    reply_handle: str = Field(description="The sealed address from the envelope")
    text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    origin: Literal["auto_reply", "counsellor", "wait_notice"]
    in_reply_to: str | None = Field(default=None, description="The envelope id answered")
    created_at: UtcDatetime


def auto_reply_id(conversation_id: str, period_end: datetime) -> str:
    """One auto-reply per conversation and closed period: the same inputs, the same id."""
    return str(
        uuid.uuid5(ENVELOPE_ID_NAMESPACE, f"auto-reply\x1f{conversation_id}\x1f{period_end.isoformat()}")
    )


def envelope_id(channel_instance: str, provider_message_id: str) -> str:
    """The same provider message (a webhook retry) always gets the same id."""
    return str(uuid.uuid5(ENVELOPE_ID_NAMESPACE, f"{channel_instance}\x1f{provider_message_id}"))


def now_utc() -> datetime:
    return datetime.now(UTC)


def json_schema(model: type[BaseModel] = Envelope) -> dict[str, Any]:
    schema = model.model_json_schema(by_alias=True, mode="serialization")
    name = "envelope-v1" if model is Envelope else "outbound-v1"
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://veiligthuis.example/schemas/{name}.json"
    schema["title"] = f"Veilig Thuis gateway {name.replace('-v', ' message, version ')}"
    return schema


if __name__ == "__main__":  # python -m gateway.domain.envelope [outbound] > schemas/<name>-v1.json
    import json
    import sys

    model = OutboundMessage if sys.argv[1:] == ["outbound"] else Envelope
    print(json.dumps(json_schema(model), indent=2, ensure_ascii=False))
