"""What every broker offers the roles: publishing with confirms, consuming one by one
or in batches applied atomically, wake-up subscriptions, and the consumers' state.
`amqp.AmqpBroker` is RabbitMQ; `embedded.EmbeddedBroker` lives in the process.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import structlog

from gateway.domain.messages import PublishError
from gateway.domain.topology import Topology

log = structlog.get_logger("gateway.broker")

__all__ = ["PublishError"]


@dataclass(frozen=True)
class Message:
    body: bytes
    message_id: str
    correlation_id: str
    type: str
    timestamp: datetime
    content_type: str = "application/json"
    headers: Mapping[str, Any] = field(default_factory=dict)


class Unroutable(PublishError):
    reason = "unroutable"


class BrokerUnavailable(PublishError):
    reason = "broker_unavailable"


class Delivery(Protocol):
    message: Message
    redelivered: bool
    delivery_count: int

    async def ack(self) -> None: ...

    async def reject(self, requeue: bool) -> None: ...


Handler = Callable[[Delivery], Awaitable[None]]
Notification = Callable[[bytes], Awaitable[None]]


@dataclass(frozen=True)
class Publish:
    exchange: str
    routing_key: str
    message: Message


@dataclass
class BatchOutcome:
    """What a batch handler wants done, atomically: publish these, dead-letter those
    deliveries, ack the rest. `committed` runs once the broker committed it all;
    `aborted` when it did not."""

    publishes: list[Publish] = field(default_factory=list)
    dead: list[Delivery] = field(default_factory=list)
    committed: Callable[[], Awaitable[None]] | None = None
    aborted: Callable[[], Awaitable[None]] | None = None


BatchHandler = Callable[[list[Delivery]], Awaitable[BatchOutcome]]
HANDLER_RETRY_MAX_SECONDS = 10.0


async def handle_until_done(
    handler: BatchHandler, deliveries: list[Delivery], queue: str, given_up: Callable[[], bool]
) -> BatchOutcome | None:
    """Retry the handler on the same batch (still unacked) until it succeeds, or None once
    `given_up()`: a database outage must not push messages over the delivery limit into
    gw.dead. Logs the queue name and the exception's type, never its message."""
    backoff = 0.1
    while not given_up():
        try:
            return await handler(deliveries)
        except Exception as exc:
            log.error("batch_handler_failed", queue=queue, error=type(exc).__name__)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, HANDLER_RETRY_MAX_SECONDS)
    return None


class Broker(Protocol):
    @property
    def ready(self) -> bool: ...

    @property
    def description(self) -> str: ...

    async def start(self, topology: Topology, *, declare: bool = True) -> None: ...

    async def wait_ready(self, seconds: float) -> bool: ...

    async def publish(self, exchange: str, routing_key: str, message: Message) -> None: ...

    async def consume(self, queue: str, handler: Handler, *, prefetch: int = 32) -> None: ...

    async def consume_batches(
        self,
        queue: str,
        handler: BatchHandler,
        *,
        batch_size: int = 64,
        on_attach: Callable[[], None] | None = None,
    ) -> None:
        """Hand the queue's messages to `handler` in order, in batches; the outcome of a
        batch (publishes, acks, dead-letters) is applied atomically. `on_attach` runs each
        time the consumer (re)attaches: state kept about the queue may be stale by then."""
        ...

    async def subscribe(self, exchange: str, handler: Notification) -> None:
        """Receive every message published to a fanout exchange while this process runs
        (a queue of its own, deleted with the connection; re-made after a reconnect).
        For wake-up calls, not for data: what is published while the link is down is missed."""
        ...

    async def queue_depths(self, names: list[str]) -> dict[str, int]:
        """Messages ready in each of these queues; queues that don't exist are left out."""
        ...

    def consumers(self) -> list[ConsumerState]:
        """This process's own view of every queue it consumes (for /readyz and fault reports)."""
        ...

    async def close(self) -> None: ...


@dataclass
class ConsumerState:
    """One consumed queue as this process sees it. `consuming`: the broker answered
    consume-ok on the current link and has not cancelled the consumer since."""

    queue: str
    consuming: bool = False
    node: str = ""
    attached: int = 0  # how many times it was (re)attached
    delivered: int = 0  # deliveries on the current attachment
    settled: int = 0  # of those, acked or rejected
    rejections: int = 0  # batches the broker rejected part of (basic.nack), published again

    def report(self) -> dict[str, object]:
        """For /readyz: no broker address (the logs name the node)."""
        return {
            "consuming": self.consuming,
            "attached": self.attached,
            "delivered": self.delivered,
            "unsettled": max(self.delivered - self.settled, 0),
            "rejections": self.rejections,
        }


def consumers_ready(states: list[ConsumerState]) -> bool:
    return all(state.consuming for state in states)
