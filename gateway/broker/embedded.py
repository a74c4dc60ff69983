"""An in-process broker with the same interface as AmqpBroker, for trying the
service out on one machine and for fast unit tests. It keeps nothing across a
restart; production and the integration tests use RabbitMQ."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from gateway.broker.base import (
    BatchHandler,
    ConsumerState,
    Handler,
    Message,
    Notification,
    Unroutable,
    handle_until_done,
)
from gateway.domain.topology import Topology
from gateway.support.metrics import Metrics

log = structlog.get_logger("gateway.embedded_broker")


def topic_matches(pattern: str, key: str) -> bool:
    """AMQP topic matching: `*` is exactly one word, `#` zero or more words."""
    words, parts = pattern.split("."), key.split(".")

    def match(i: int, j: int) -> bool:
        if i == len(words):
            return j == len(parts)
        if words[i] == "#":
            return any(match(i + 1, k) for k in range(j, len(parts) + 1))
        return j < len(parts) and words[i] in ("*", parts[j]) and match(i + 1, j + 1)

    return match(0, 0)


@dataclass
class _Queue:
    name: str
    delivery_limit: int | None
    dead_letter_exchange: str | None
    single_active: bool
    messages: deque[tuple[Message, int]] = field(default_factory=deque)
    available: asyncio.Event = field(default_factory=asyncio.Event)
    consumers: list[asyncio.Task[None]] = field(default_factory=list)


class _EmbeddedDelivery:
    def __init__(self, broker: EmbeddedBroker, queue: _Queue, message: Message, count: int) -> None:
        self._broker = broker
        self._queue = queue
        self.message = message
        self.delivery_count = count
        self.redelivered = count > 0
        self.settled = asyncio.Event()

    async def ack(self) -> None:
        self.settled.set()

    async def reject(self, requeue: bool) -> None:
        if not self.settled.is_set():
            self._broker._requeue_or_dead_letter(self._queue, self.message, self.delivery_count, requeue)
        self.settled.set()


class EmbeddedBroker:
    def __init__(self, metrics: Metrics | None = None) -> None:
        self._metrics = metrics
        self._exchanges: dict[str, str] = {}
        self._alternates: dict[str, str] = {}
        self._bindings: dict[str, list[tuple[str, str]]] = {}
        self._queues: dict[str, _Queue] = {}
        self._subscribers: dict[str, list[Notification]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._ready = False
        self._consumer_states: list[ConsumerState] = []

    @property
    def ready(self) -> bool:
        return self._ready

    def consumers(self) -> list[ConsumerState]:
        return self._consumer_states

    @property
    def description(self) -> str:
        return "embedded in-process broker (keeps nothing across a restart)"

    async def start(self, topology: Topology, *, declare: bool = True) -> None:
        for exchange in topology.exchanges:
            self._exchanges[exchange.name] = exchange.type
            if "alternate-exchange" in exchange.arguments:
                self._alternates[exchange.name] = exchange.arguments["alternate-exchange"]
            self._bindings.setdefault(exchange.name, [])
        for queue in topology.queues:
            args = queue.arguments
            self._queues[queue.name] = _Queue(
                name=queue.name,
                delivery_limit=args.get("x-delivery-limit"),
                dead_letter_exchange=args.get("x-dead-letter-exchange"),
                single_active=bool(args.get("x-single-active-consumer")),
            )
        for binding in topology.bindings:
            self._bindings[binding.exchange].append((binding.routing_key, binding.queue))
        self._ready = True
        if self._metrics:
            self._metrics.broker_connected.set(1)

    async def wait_ready(self, seconds: float) -> bool:
        return self._ready

    def _route(self, exchange: str, routing_key: str) -> list[_Queue]:
        if exchange == "":
            queue = self._queues.get(routing_key)
            return [queue] if queue else []
        kind = self._exchanges.get(exchange)
        if kind is None:
            return []
        names: list[str] = []
        for pattern, queue_name in self._bindings[exchange]:
            if (
                kind == "fanout"
                or (kind == "direct" and pattern == routing_key)
                or (kind == "topic" and topic_matches(pattern, routing_key))
            ) and queue_name not in names:
                names.append(queue_name)
        if not names and exchange in self._alternates:
            return self._route(self._alternates[exchange], routing_key)
        return [self._queues[n] for n in names]

    async def queue_depths(self, names: list[str]) -> dict[str, int]:
        return {name: len(self._queues[name].messages) for name in names if name in self._queues}

    async def subscribe(self, exchange: str, handler: Notification) -> None:
        self._subscribers.setdefault(exchange, []).append(handler)

    async def publish(self, exchange: str, routing_key: str, message: Message) -> None:
        queues = self._route(exchange, routing_key)
        for handler in self._subscribers.get(exchange, []):
            task = asyncio.ensure_future(handler(message.body))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        if not queues and not self._subscribers.get(exchange):
            if self._metrics:
                self._metrics.publish_failures.labels(exchange, "unroutable").inc()
            raise Unroutable()
        for queue in queues:
            queue.messages.append((message, 0))
            queue.available.set()
        if self._metrics:
            self._metrics.publish_latency.labels(exchange).observe(0.0)

    def _requeue_or_dead_letter(self, queue: _Queue, message: Message, count: int, requeue: bool) -> None:
        count += 1
        limit_reached = queue.delivery_limit is not None and count > queue.delivery_limit
        if requeue and not limit_reached:
            queue.messages.appendleft((message, count))
            queue.available.set()
            return
        if queue.dead_letter_exchange:
            reason = "delivery_limit" if limit_reached else "rejected"
            headers = {
                **message.headers,
                "x-first-death-queue": queue.name,
                "x-first-death-reason": reason,
            }
            dead = Message(
                message.body,
                message.message_id,
                message.correlation_id,
                message.type,
                message.timestamp,
                message.content_type,
                headers,
            )
            for target in self._route(queue.dead_letter_exchange, queue.name):
                target.messages.append((dead, 0))
                target.available.set()

    async def consume(self, queue: str, handler: Handler, *, prefetch: int = 32) -> None:
        target = self._queues[queue]
        self._consumer_states.append(ConsumerState(queue, consuming=True, node="embedded", attached=1))
        if target.single_active and target.consumers:
            # A second consumer stands by; with one process it never takes over.
            return
        target.consumers.append(asyncio.create_task(self._dispatch(target, handler)))

    async def _dispatch(self, queue: _Queue, handler: Handler) -> None:
        while True:
            while not queue.messages:
                queue.available.clear()
                await queue.available.wait()
            message, count = queue.messages.popleft()
            delivery = _EmbeddedDelivery(self, queue, message, count)
            try:
                await handler(delivery)
            except Exception as exc:
                log.error("consumer_failed", queue=queue.name, error=type(exc).__name__)
                await delivery.reject(requeue=True)

    async def consume_batches(
        self,
        queue: str,
        handler: BatchHandler,
        *,
        batch_size: int = 64,
        on_attach: Callable[[], None] | None = None,
    ) -> None:
        target = self._queues[queue]
        self._consumer_states.append(ConsumerState(queue, consuming=True, node="embedded", attached=1))
        if on_attach is not None:
            on_attach()
        if target.single_active and target.consumers:
            return
        target.consumers.append(asyncio.create_task(self._dispatch_batches(target, handler, batch_size)))

    async def _dispatch_batches(self, queue: _Queue, handler: BatchHandler, batch_size: int) -> None:
        while True:
            while not queue.messages:
                queue.available.clear()
                await queue.available.wait()
            taken = [queue.messages.popleft() for _ in range(min(batch_size, len(queue.messages)))]
            deliveries = [_EmbeddedDelivery(self, queue, m, count) for m, count in taken]
            outcome = await handle_until_done(handler, deliveries, queue.name, lambda: False)  # type: ignore[arg-type]
            assert outcome is not None  # never given up: only cancellation ends the retries
            # As on RabbitMQ: publish, commit the handler's state, and only then settle.
            try:
                for publish in outcome.publishes:
                    await self.publish(publish.exchange, publish.routing_key, publish.message)
                if outcome.committed:
                    await outcome.committed()
            except Exception as exc:
                log.error("batch_not_published", queue=queue.name, error=type(exc).__name__)
                if outcome.aborted:
                    await outcome.aborted()
                for delivery in reversed(deliveries):  # back to the head of the queue, in order
                    queue.messages.appendleft((delivery.message, delivery.delivery_count))
                queue.available.set()
                await asyncio.sleep(0.1)
                continue
            dead = {id(d) for d in outcome.dead}
            for delivery in deliveries:
                if id(delivery) in dead:
                    await delivery.reject(requeue=False)
                else:
                    await delivery.ack()

    def depth(self, queue: str) -> int:
        return len(self._queues[queue].messages)

    def drain(self, queue: str) -> list[Message]:
        target = self._queues[queue]
        messages = [m for m, _ in target.messages]
        target.messages.clear()
        return messages

    async def close(self) -> None:
        self._ready = False
        for state in self._consumer_states:
            state.consuming = False
        for queue in self._queues.values():
            for task in queue.consumers:
                task.cancel()
            await asyncio.gather(*queue.consumers, return_exceptions=True)
            queue.consumers.clear()
