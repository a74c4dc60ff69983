"""What a running service lends to the channel kinds that need more than verify,
parse and send: pages, sockets and state of their own (web chat, Masker 19)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from gateway.broker import Broker
from gateway.config import LiveConfig
from gateway.ingest import Ingest
from gateway.keys import Keyring
from gateway.metrics import Metrics
from gateway.settings import Settings
from gateway.store import Store


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    live: LiveConfig
    broker: Broker
    store: Store
    ingest: Ingest
    keyring: Keyring
    metrics: Metrics
    clock: Callable[[], datetime]
    serves_pages: bool = True  # this process serves channel pages and sockets (the ingest role)
