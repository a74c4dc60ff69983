"""The uniform surface every channel kind offers, and what the service lends it.

A channel kind is one folder in `adapters/` whose package registers a subclass of
`ChannelKind` with `@register`. Three calls make it:

- `verify(channel, request)`: is this webhook really from the provider? Raises
  `Rejected` (a 4xx) when not.
- `parse(channel, request)`: the provider's raw request becomes `Accepted`
  (messages to publish and what to answer the provider), or raises `Rejected`;
  nothing is published from a rejected request.
- `send(channel, outgoing)`: deliver a reply through the provider; returns the
  provider's message id or raises `SendFailed` (transient or permanent).
- `media(channel, url)`: where the bytes of an attachment the person sent are (the
  provider's hosts and credentials); the desk fetches them within its limits.

A kind may also declare, each optional: pages and sockets under /channels/{id}/
(`routes()`, and `static` files), tables of its own (`migrations`, an Alembic
branch, and `forget_before` for retention), fanout exchanges for wake-ups, a CLI
subcommand (`add_commands`) and log keys to redact. A kind that needs the running
service gets a `Host` in `attach()`: the one ingest path, its database, keys and
the configuration in force, and nothing more.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.config.models import Channel, Config, KindSettings, Region
from gateway.domain.identity import LocalAccount, Session, SignedIn
from gateway.domain.kinds import PageRoutes
from gateway.domain.messages import (
    Accepted,
    InboundMessage,
    MediaSource,
    MediaUnavailable,
    Outgoing,
    SendFailed,
    WebhookRequest,
)
from gateway.support.fieldcrypt import EncryptedColumn, FieldCipher
from gateway.support.ratelimit import Limiter

S = TypeVar("S", bound=KindSettings)


class Database(Protocol):
    """The service's database, for a kind's own tables."""

    @property
    def dialect(self) -> str: ...

    def transaction(self) -> AbstractAsyncContextManager[AsyncConnection]: ...

    def reading(self) -> AbstractAsyncContextManager[AsyncConnection]: ...


class SignIns(Protocol):
    """The service's one sign-in mechanism (`gateway.roles.identity`), for a kind with
    accounts of its own (Masker 19's pharmacies): server-side sessions, the limits, the
    access log. A kind never checks a password or keeps a session itself."""

    async def sign_in(
        self,
        realm: str,
        account: LocalAccount | None,
        password: str,
        code: str | None,
        address: str,
        *,
        per_minute: int,
        per_hour: int,
        lifetime: timedelta,
    ) -> SignedIn:
        """Raises Rejected (401 wrong_credentials, 429 too_many_attempts, ...)."""
        ...

    async def current(
        self,
        realm: str,
        token: str,
        idle: timedelta,
        lookup: Callable[[str], LocalAccount | None],
        *,
        touch: bool = True,
    ) -> Session | None: ...

    async def sign_out(self, token: str, session: Session) -> None: ...


class Host(Protocol):
    """What a running service lends a kind that needs more than verify, parse and send."""

    @property
    def identities(self) -> SignIns: ...

    @property
    def config(self) -> Config:
        """The configuration in force (it changes on a reload)."""
        ...

    @property
    def database(self) -> Database: ...

    @property
    def serves_pages(self) -> bool:
        """This process serves channel pages and sockets (the ingest role)."""
        ...

    @property
    def demo_accounts(self) -> bool: ...

    def now(self) -> datetime:
        """The schedules' clock (GATEWAY_FAKE_TIME shifts it in trials)."""
        ...

    def key_for(self, purpose: str) -> bytes:
        """An independent key for one purpose of this kind (signed cookies, CSRF)."""
        ...

    @property
    def fields(self) -> FieldCipher:
        """The keys (GATEWAY_CHANNEL_DATA_KEYS, not the desk's) for what a person or a
        counsellor wrote that the kind keeps in its tables; declare those columns in
        `encrypted_columns`."""
        ...

    @property
    def limiter(self) -> Limiter:
        """The rate limits, shared by every process of the service when it has Redis."""
        ...

    async def accept(self, channel: Channel[Any], messages: tuple[InboundMessage, ...]) -> list[str]:
        """The one ingest path, as for a webhook: count, publish confirmed, return envelope
        ids; raises PublishError when the broker did not take them."""
        ...

    def refused(self, kind: str, reason: str) -> None:
        """Count a refused request or frame in gateway_rejected_total."""
        ...

    async def notify(self, exchange: str, message_type: str, body: bytes, wake_id: str) -> None:
        """Publish a wake-up on one of the kind's fanout exchanges; raises PublishError."""
        ...

    async def subscribe(self, exchange: str, handler: Callable[[bytes], Awaitable[None]]) -> None:
        """Receive the wake-ups published on that exchange while this process runs."""
        ...

    async def queue_places(self, channel_instance: str, conversation_keys: Collection[str]) -> dict[str, int]:
        """Each waiting person's place in their team's queue (1: the next one a counsellor's
        "volgende" takes), by the key of their conversation on that channel (what the kind
        gives as `InboundMessage.conversation_key`, else the address). A person whose
        conversation is claimed, closed or not stored yet is absent. One query per
        thousand keys; nothing about the other people in the queue but the number."""
        ...


class ChannelKind(Generic[S]):
    """One channel kind; `S` is its settings model (`settings_model`)."""

    name: ClassVar[str]
    label: ClassVar[str] = ""  # what counsellors read ("WhatsApp"); the name when empty
    settings_model: ClassVar[type[KindSettings]] = KindSettings
    takes_webhooks: ClassVar[bool] = True
    fanout_exchanges: ClassVar[tuple[str, ...]] = ()
    migrations: ClassVar[Path | None] = None
    static: ClassVar[Path | None] = None
    sensitive_log_keys: ClassVar[frozenset[str]] = frozenset()  # log keys redacted beside the core's
    quiet_loggers: ClassVar[tuple[str, ...]] = ()  # its SDK's loggers: kept to warnings
    # Columns of its own tables that hold what people wrote, encrypted with `Host.fields`
    # (GATEWAY_CHANNEL_DATA_KEYS); `gateway data rotate` re-encrypts them.
    encrypted_columns: ClassVar[tuple[EncryptedColumn, ...]] = ()

    def verify(self, channel: Channel[S], request: WebhookRequest) -> None:
        """Raise `Rejected` unless the request really comes from the provider."""
        raise NotImplementedError

    def parse(self, channel: Channel[S], request: WebhookRequest) -> Accepted:
        """Turn a verified request into messages, or raise `Rejected`."""
        raise NotImplementedError

    async def send(self, channel: Channel[S], outgoing: Outgoing) -> str:
        """Deliver a reply through the provider and return its message id; raise
        `SendFailed` (permanent for a 4xx, transient for 5xx, 429, timeouts, no connection)."""
        raise SendFailed("kind_cannot_send", permanent=True)

    async def media(self, channel: Channel[S], url: str) -> MediaSource:
        """Where to fetch an attachment given as `url` in the envelope: the provider's own
        hosts only, with the credentials the provider wants; raise `MediaUnavailable`."""
        raise MediaUnavailable("kind_keeps_no_media")

    async def gone(self, channel: Channel[S], address: str) -> bool:
        """Whether a reply can no longer reach the person at `address` (a chat session the
        person left by quick exit, or that expired); the desk then refuses the reply."""
        return False

    def check(self, settings: S, regions: dict[str, Region]) -> list[tuple[str, str]]:
        """Problems (field, message) that need the rest of the configuration to see; a kind
        whose settings refer to municipalities or regions checks them here."""
        return []

    def routes(self) -> PageRoutes:
        """Pages, scripts and sockets under /channels/{id}/: (method, path) -> handler."""
        return {}

    async def attach(self, host: Host) -> None:
        """Called once when a service starts, with what it lends to kinds that need it."""

    async def forget_before(self, connection: AsyncConnection, cutoff: datetime) -> None:
        """Retention: delete what the kind's own tables hold about activity before `cutoff`,
        inside the desk's retention transaction."""

    def add_commands(self, commands: Any) -> None:
        """Add `gateway <kind> ...` subcommands to the CLI's subparsers (argparse)."""

    async def close(self) -> None:
        """Release provider clients (HTTP sessions) at shutdown."""
