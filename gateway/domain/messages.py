"""The types channel kinds and the core share: a provider's raw request, the messages
a kind reads from it, a reply to send, and the errors either side raises.

Nothing here does I/O: a kind's `verify` and `parse` are pure functions of these.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any
from urllib.parse import parse_qsl

import orjson
from multidict import CIMultiDict, CIMultiDictProxy, MultiDict


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
        text = decode_text(self.body, self.content_type, self.charset, "application/x-www-form-urlencoded")
        try:
            pairs = parse_qsl(
                text,
                keep_blank_values=True,
                strict_parsing=bool(text),
                encoding="utf-8",
                errors="strict",
                max_num_fields=MAX_FORM_FIELDS,
            )
        except ValueError:
            raise Rejected(400, "malformed_form", "the body is not a valid form") from None
        return MultiDict(pairs)

    def json(self) -> Any:
        """The body as JSON (application/json, UTF-8); raises Rejected."""
        return decode_json(self.body, self.content_type, self.charset)


def decode_text(body: bytes, content_type: str, charset: str | None, expected: str) -> str:
    """A body of the expected media type as UTF-8 text, or Rejected (415, 400): the one
    place that checks a request's media type and charset."""
    if content_type != expected:
        raise Rejected(415, "unsupported_content_type", f"send Content-Type: {expected}")
    if charset is not None and charset.lower().replace("-", "") != "utf8":
        raise Rejected(415, "unsupported_charset", "the body is sent as UTF-8 (charset=utf-8)")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise Rejected(400, "invalid_encoding", "the body is not valid UTF-8") from None


def decode_json(body: bytes, content_type: str, charset: str | None) -> Any:
    """A JSON body, or Rejected (415, 400)."""
    text = decode_text(body, content_type, charset, "application/json")
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        raise Rejected(400, "malformed_json", "the body is not valid JSON") from None


MAX_FORM_FIELDS = 200


@dataclass(frozen=True)
class InboundAttachment:
    content_type: str
    url: str
    size: int | None = None


@dataclass(frozen=True)
class MediaSource:
    """Where the bytes of an attachment a person sent can be fetched, as its channel kind
    says: the URL, the hosts the fetch and each redirect may reach, and the credentials
    sent to the first host only. `size` is what the provider declared, if anything."""

    url: str
    hosts: frozenset[str]
    basic_auth: tuple[str, str] | None = None
    size: int | None = None


class MediaUnavailable(Exception):
    """The kind cannot say where an attachment is (`reason`: a short code, no content);
    `permanent` is false when asking again later may help (the provider did not answer)."""

    def __init__(self, reason: str, *, permanent: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


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
    delivery_for: str | None = None  # the provider's id of the reply the status is about
    delivery_reason: str | None = None  # the provider's error code when it failed


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
    """A request or action refused, with the HTTP status it means. `reason` is a short
    machine-readable code and `detail` a sentence, neither with any content of the request;
    `fields` names the fields at fault (and what is wrong, never their value); `extra` adds
    members to the error body (such as who holds a conversation)."""

    def __init__(
        self,
        status: int,
        reason: str,
        detail: str = "",
        fields: tuple[tuple[str, str], ...] = (),
        headers: dict[str, str] | None = None,
        **extra: object,
    ) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.detail = detail or reason.replace("_", " ")
        self.fields = fields
        self.headers = headers or {}
        self.extra = extra


class PublishError(Exception):
    """A message could not be stored (the broker did not confirm it); `reason` is a short
    code for metrics and logs."""

    reason = "publish_failed"
