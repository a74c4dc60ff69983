"""A channel kind as the core sees it: the one port every kind implements.

The core never imports a kind; whoever assembles the service (`gateway.service`,
`gateway.cli`) passes the registered kinds in, and each satisfies this protocol
(`adapters.base.ChannelKind` gives the defaults). Pages are served under
/channels/{id}/ from the kind's `routes()`; `verify` and `parse` are pure.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, Protocol

from gateway.config.models import Channel, KindSettings, Region
from gateway.domain.messages import Accepted, Outgoing, WebhookRequest

# (method, path below /channels/{id}/) -> handler(channel, aiohttp request) -> response
PageRoutes = Mapping[tuple[str, str], Callable[[Any, Any], Awaitable[Any]]]


class Kind(Protocol):
    name: ClassVar[str]
    settings_model: ClassVar[type[KindSettings]]
    takes_webhooks: ClassVar[bool]
    fanout_exchanges: ClassVar[tuple[str, ...]]
    migrations: ClassVar[Path | None]
    static: ClassVar[Path | None]
    sensitive_log_keys: ClassVar[frozenset[str]]
    quiet_loggers: ClassVar[tuple[str, ...]]

    def check(self, settings: Any, regions: dict[str, Region]) -> list[tuple[str, str]]: ...

    def verify(self, channel: Channel[Any], request: WebhookRequest) -> None: ...

    def parse(self, channel: Channel[Any], request: WebhookRequest) -> Accepted: ...

    async def send(self, channel: Channel[Any], outgoing: Outgoing) -> str: ...

    def routes(self) -> PageRoutes: ...

    async def attach(self, host: Any) -> None: ...

    async def forget_before(self, connection: Any, cutoff: datetime) -> None: ...

    async def close(self) -> None: ...
