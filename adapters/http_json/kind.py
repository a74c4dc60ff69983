"""`http-json`: a generic JSON webhook for a region that integrates another system.

POST /channels/{id}/webhook with `Authorization: Bearer <token>` and a JSON body:

    {"message_id": "abc-1", "sender": "their-user-7", "text": "...",
     "conversation": "optional grouping key", "attachments": [...],
     "municipality": "Eindhoven", "postcode": "5611"}

Answers 202 once the broker has confirmed the message.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from adapters.base import ChannelKind
from adapters.registry import register
from gateway.config.models import Channel, KindSettings, SecretRef
from gateway.domain.envelope import MAX_ATTACHMENTS, MAX_TEXT_CHARS
from gateway.domain.messages import Accepted, InboundAttachment, InboundMessage, Rejected, WebhookRequest
from gateway.support.keys import same_secret


class _Attachment(BaseModel):
    model_config = ConfigDict(extra="forbid")
    content_type: str = Field(min_length=1, max_length=255)
    url: str = Field(min_length=1, max_length=2048)
    size: int | None = Field(default=None, ge=0)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message_id: str = Field(min_length=1, max_length=200)
    sender: str = Field(min_length=1, max_length=200)
    conversation: str | None = Field(default=None, min_length=1, max_length=200)
    text: str = Field(default="", max_length=MAX_TEXT_CHARS)
    attachments: list[_Attachment] = Field(default_factory=list, max_length=MAX_ATTACHMENTS)
    municipality: str | None = Field(default=None, min_length=1, max_length=80)
    postcode: str | None = Field(default=None, pattern=r"^[1-9][0-9]{3}( ?[A-Za-z]{2})?$")

    @model_validator(mode="after")
    def _not_empty(self) -> _Body:
        if not self.text.strip() and not self.attachments:
            raise ValueError("a message needs text or at least one attachment")
        return self


class HttpJsonSettings(KindSettings):
    token: SecretRef


@register
class HttpJson(ChannelKind[HttpJsonSettings]):
    name = "http-json"
    label = "Eigen systeem van de regio"
    settings_model = HttpJsonSettings

    def verify(self, channel: Channel[HttpJsonSettings], request: WebhookRequest) -> None:
        header = request.headers.get("Authorization", "")
        scheme, _, presented = header.partition(" ")
        challenge = {"WWW-Authenticate": 'Bearer realm="gateway"'}
        if scheme.lower() != "bearer" or not presented:
            raise Rejected(401, "missing_token", "send Authorization: Bearer <token>", headers=challenge)
        expected = channel.secrets["token"]
        if not same_secret(presented.strip(), expected):
            raise Rejected(401, "wrong_token", "the bearer token is not valid", headers=challenge)

    def parse(self, channel: Channel[HttpJsonSettings], request: WebhookRequest) -> Accepted:
        raw = request.json()
        if not isinstance(raw, dict):
            raise Rejected(422, "invalid_message", "the body must be a JSON object")
        try:
            body = _Body.model_validate(raw)
        except ValidationError as exc:
            fields = tuple(
                (".".join(str(part) for part in err["loc"]) or "body", err["msg"])
                for err in exc.errors(include_input=False, include_url=False)
            )
            raise Rejected(422, "invalid_message", "the message is not valid", fields) from None
        postcode = body.postcode[:4] if body.postcode else None
        message = InboundMessage(
            provider_message_id=body.message_id,
            address=f"{channel.id}:{body.sender}",
            text=body.text,
            attachments=tuple(InboundAttachment(a.content_type, a.url, a.size) for a in body.attachments),
            conversation_key=body.conversation,
            municipality=body.municipality,
            postcode=postcode,
        )
        return Accepted(messages=(message,))
