"""The uniform surface every channel kind offers, decoupled from the HTTP server.

A channel kind is one module in `adapters/` holding one class that subclasses
`ChannelKind` and is registered with `@register`. It receives a provider's raw
request as a `WebhookRequest` and answers with `Accepted` (messages to publish
and what to answer the provider) or raises `Rejected` (a 4xx, nothing published).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, ClassVar

from multidict import CIMultiDict, CIMultiDictProxy
from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from gateway.config import Channel


@dataclass(frozen=True)
class WebhookRequest:
    """A provider's request exactly as it arrived."""

    method: str
    url_factory: Callable[[], str]
    headers: CIMultiDictProxy[str] | CIMultiDict[str]
    body: bytes
    content_type: str
    charset: str | None = None

    @cached_property
    def url(self) -> str:
        """The URL the request was made to (built only when an adapter needs it)."""
        return self.url_factory()


@dataclass(frozen=True)
class InboundAttachment:
    content_type: str
    url: str
    size: int | None = None


@dataclass(frozen=True)
class InboundMessage:
    """One message from a person, as the adapter understood it.

    `address` is what the provider needs to reach the person again (a phone
    number, a chat id). It is pseudonymised and sealed by the gateway and never
    leaves it in clear.
    """

    provider_message_id: str
    address: str
    text: str = ""
    attachments: tuple[InboundAttachment, ...] = ()
    conversation_key: str | None = None
    municipality: str | None = None
    postcode: str | None = None
    urgent: bool = False


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes = b""
    content_type: str = "text/plain"


@dataclass(frozen=True)
class Accepted:
    messages: tuple[InboundMessage, ...]
    reply: Reply = field(default_factory=lambda: Reply(status=202))


class Rejected(Exception):
    """The request is refused; `reason` is a short machine-readable code with no content."""

    def __init__(
        self,
        status: int,
        reason: str,
        detail: str = "",
        fields: tuple[tuple[str, str], ...] = (),
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.detail = detail or reason.replace("_", " ")
        self.fields = fields
        self.headers = headers or {}


class KindSettings(BaseModel):
    """Base for a kind's `settings:` block; credentials are `SecretRef` fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ChannelKind:
    """One channel kind: verify a webhook, parse it, send a reply back."""

    name: ClassVar[str]
    Settings: ClassVar[type[KindSettings]] = KindSettings

    def verify(self, channel: Channel, request: WebhookRequest) -> None:
        """Raise `Rejected` unless the request really comes from the provider."""
        raise NotImplementedError

    def parse(self, channel: Channel, request: WebhookRequest) -> Accepted:
        """Turn a verified request into messages, or raise `Rejected`."""
        raise NotImplementedError

    async def send(self, channel: Channel, address: str, text: str) -> None:
        """Deliver a counsellor's reply to `address` through the provider."""
        raise NotImplementedError
