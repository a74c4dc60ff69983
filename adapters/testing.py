"""One shared harness for a channel kind's table of raw provider requests.

`run_webhook` does with a raw request exactly what the service does before it
publishes: verify, then parse; a `Rejected` becomes its status and error code.
It needs no broker, store or HTTP server, so a kind's whole table runs in
milliseconds; the same rows also run end to end against the real RabbitMQ.
Each kind's table is `adapters/<kind>/cases.py`: `CASES` (rows that follow `Row`)
and `TRIAL_ENV` (the fake credentials its example channels are configured with).
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Protocol

from aiohttp.helpers import parse_mimetype
from multidict import CIMultiDict

from adapters import registry
from adapters.base import ChannelKind
from gateway.config.models import Channel
from gateway.domain.messages import Accepted, InboundMessage, Rejected, WebhookRequest


class Row(Protocol):
    """One raw provider request and what the gateway must make of it."""

    name: str
    status: int
    error: str | None  # the error code of a refusal
    channel: str  # the example channel instance it is sent to
    expect: dict[str, object]  # envelope fields (as JSON) of the first message
    repeat: int  # sent this many times (a provider's retry)
    published: int  # messages it becomes

    def raw(self, received_url: str) -> tuple[bytes, dict[str, str]]:
        """The body and headers, exactly as the provider sends them to that URL."""
        ...

    def channel_for(self, channel: Channel[Any]) -> Channel[Any]:
        """The channel as the row needs it configured (the example one, or a variant)."""
        ...


def tables() -> dict[str, ModuleType]:
    """Each kind folder's `cases` module, by package name."""
    found = {}
    for kind in registry.kinds().values():
        package = type(kind).__module__.rsplit(".", 1)[0]
        if package not in found and importlib.util.find_spec(f"{package}.cases") is not None:
            found[package] = importlib.import_module(f"{package}.cases")
    return found


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
    mimetype = parse_mimetype(headers.get("Content-Type", "application/octet-stream"))
    return WebhookRequest(
        method="POST",
        url_factory=lambda: url,
        headers=CIMultiDict(headers),
        body=body,
        content_type=f"{mimetype.type}/{mimetype.subtype}",
        charset=mimetype.parameters.get("charset"),
    )


def run_webhook(kind: ChannelKind[Any], channel: Channel[Any], request: WebhookRequest) -> Outcome:
    try:
        kind.verify(channel, request)
        accepted = kind.parse(channel, request)
    except Rejected as rejection:
        return Outcome(rejection.status, rejection.reason, None)
    return Outcome(accepted.reply.status, None, accepted)
