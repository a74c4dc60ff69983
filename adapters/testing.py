"""One shared harness for a channel kind's table of raw provider requests.

`run_webhook` does with a raw request exactly what the service does before it
publishes: verify, then parse; a `Rejected` becomes its status and error code.
It needs no broker, store or HTTP server, so a kind's whole table runs in
milliseconds; the same rows also run end to end against the real RabbitMQ.
`message_fields` gives a message the shape of the envelope fields a row expects.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from multidict import CIMultiDict

from adapters.base import ChannelKind
from gateway.config.models import Channel
from gateway.domain.messages import Accepted, InboundMessage, Rejected, WebhookRequest


@dataclass(frozen=True)
class Outcome:
    status: int
    error: str | None
    accepted: Accepted | None

    @property
    def messages(self) -> tuple[InboundMessage, ...]:
        return self.accepted.messages if self.accepted is not None else ()


def raw_request(body: bytes, headers: dict[str, str], url: str) -> WebhookRequest:
    """A request as aiohttp hands it to the webhook: the media type and charset split off."""
    content_type, _, parameters = headers.get("Content-Type", "application/octet-stream").partition(";")
    charset = None
    for parameter in parameters.split(";"):
        key, _, value = parameter.strip().partition("=")
        if key.lower() == "charset":
            charset = value.strip().strip('"')
    return WebhookRequest(
        method="POST",
        url_factory=lambda: url,
        headers=CIMultiDict(headers),
        body=body,
        content_type=content_type.strip().lower(),
        charset=charset,
    )


def run_webhook(kind: ChannelKind[Any], channel: Channel[Any], request: WebhookRequest) -> Outcome:
    try:
        kind.verify(channel, request)
        accepted = kind.parse(channel, request)
    except Rejected as rejection:
        return Outcome(rejection.status, rejection.reason, None)
    return Outcome(accepted.reply.status, None, accepted)


def message_fields(message: InboundMessage) -> dict[str, object]:
    """The envelope fields (as JSON) that this message becomes, for comparing with a row."""
    hint = (
        {"municipality": message.municipality, "postcode": message.postcode}
        if message.municipality or message.postcode
        else None
    )
    return {
        "text": message.text,
        "attachments": [
            {"content_type": a.content_type, "url": a.url, "size": a.size} for a in message.attachments
        ],
        "location_hint": hint,
        "edited": message.edited,
        "urgency": "acute" if message.acute else "high" if message.urgent else "normal",
    }
