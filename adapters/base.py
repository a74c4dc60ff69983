"""The uniform surface every channel kind offers, decoupled from the HTTP server.

A channel kind is one module in `adapters/` holding a class that subclasses
`ChannelKind` and is registered with `@register`. Three calls make it:

- `verify(channel, request)`: is this webhook really from the provider? Raises
  `Rejected` (a 4xx) when not.
- `parse(channel, request)`: the provider's raw request becomes `Accepted`
  (messages to publish and what to answer the provider), or raises `Rejected`;
  nothing is published from a rejected request.
- `send(channel, outgoing)`: deliver a reply through the provider; returns the
  provider's message id or raises `SendFailed` (transient or permanent).

A kind that serves pages of its own (web chat, an intake form) also implements
`page(channel, request, path)` for everything under /channels/{id}/ other than
the webhook, and takes the service's `Runtime` in `attach()` at start.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar
from urllib.parse import parse_qsl

from multidict import CIMultiDict, CIMultiDictProxy, MultiDict
from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from aiohttp import web

    from gateway.config import Channel, Region
    from gateway.runtime import Runtime


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

    @cached_property
    def form(self) -> MultiDict[str]:
        """The body as an HTML form (application/x-www-form-urlencoded, UTF-8); raises Rejected."""
        if self.content_type != "application/x-www-form-urlencoded":
            raise Rejected(415, "unsupported_content_type", "send application/x-www-form-urlencoded")
        if self.charset is not None and self.charset.lower().replace("-", "") != "utf8":
            raise Rejected(415, "unsupported_charset", "forms are sent as UTF-8 (charset=utf-8)")
        try:
            text = self.body.decode("utf-8")
            pairs = parse_qsl(
                text,
                keep_blank_values=True,
                strict_parsing=bool(text),
                encoding="utf-8",
                errors="strict",
                max_num_fields=MAX_FORM_FIELDS,
            )
        except UnicodeDecodeError:
            raise Rejected(400, "invalid_encoding", "the form is not valid UTF-8") from None
        except ValueError:
            raise Rejected(400, "malformed_form", "the body is not a valid form") from None
        return MultiDict(pairs)


MAX_FORM_FIELDS = 200


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
    acute: bool = False  # someone is in danger right now (a Masker 19 intake says so)
    edited: bool = False


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes = b""
    content_type: str = "text/plain"


@dataclass(frozen=True)
class Accepted:
    """`messages` may be empty: an update the gateway acknowledges and ignores, or a
    delivery status callback (`delivery_status`, counted, never published)."""

    messages: tuple[InboundMessage, ...]
    reply: Reply = field(default_factory=lambda: Reply(status=202))
    delivery_status: str | None = None


@dataclass(frozen=True)
class Outgoing:
    """A reply to send: the address comes from the unsealed reply handle, never from a
    clear field; `last_inbound_at` is when the person's message it answers arrived."""

    message_id: str
    address: str
    text: str
    last_inbound_at: datetime | None = None
    origin: str = "counsellor"


class SendFailed(Exception):
    """The provider did not take the message. `reason` is a short code without content
    (the provider's error code where it gives one, e.g. "twilio-21211")."""

    def __init__(self, reason: str, *, permanent: bool, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent
        self.retry_after = retry_after


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


STATIC = Path(__file__).resolve().parent / "static"
ASSET_TYPES = {".js": "text/javascript", ".css": "text/css"}


def asset(kind: str, name: str) -> web.Response | None:
    """A kind's own script or stylesheet from adapters/static/<kind>/, or None."""
    from aiohttp import web

    path = STATIC / kind / name
    content_type = ASSET_TYPES.get(path.suffix)
    if content_type is None or "/" in name or not path.is_file():
        return None
    return web.Response(
        body=path.read_bytes(),
        content_type=content_type,
        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
    )


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

    async def send(self, channel: Channel, outgoing: Outgoing) -> str:
        """Deliver a reply through the provider and return its message id; raise
        `SendFailed` (permanent for a 4xx, transient for 5xx, 429, timeouts, no connection)."""
        raise SendFailed("kind_cannot_send", permanent=True)

    async def close(self) -> None:
        """Release provider clients (HTTP sessions) at shutdown."""

    def check(self, settings: BaseModel, regions: dict[str, Region]) -> list[tuple[str, str]]:
        """Problems (field, message) that need the rest of the configuration to see; a kind
        whose settings refer to municipalities or regions checks them here."""
        return []

    async def attach(self, runtime: Runtime) -> None:
        """Called once when a service starts, with what it lends to kinds that need it."""

    async def page(self, channel: Channel, request: web.Request, path: str) -> web.StreamResponse:
        """Serve /channels/{id}/{path} (a page, a script, a socket); 404 unless the kind has pages."""
        from aiohttp import web

        raise web.HTTPNotFound()
