"""The broker on RabbitMQ (aio-pika).

Promises kept here: persistent messages, publisher confirms, `mandatory` with
returns raised (never silently dropped), bounded retries of transient faults,
readiness that is false whenever the link is down, and consumers re-attached
after every reconnect. A message republished after a lost confirm keeps its
message id, so the next hop can drop the duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import cast

import aio_pika
import aiormq
import structlog
from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
    AbstractIncomingMessage,
)
from aiormq import spec
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential
from yarl import URL

from gateway.broker.base import (
    BatchHandler,
    BrokerUnavailable,
    ConsumerState,
    Handler,
    Message,
    Notification,
    Publish,
    Unroutable,
    handle_until_done,
)
from gateway.domain.topology import Topology
from gateway.support.metrics import Metrics

log = structlog.get_logger("gateway.broker")


class _Transient(Exception):
    pass


@dataclass
class _Consumer:
    queue: str
    handler: Handler
    prefetch: int
    state: ConsumerState = field(init=False)

    def __post_init__(self) -> None:
        self.state = ConsumerState(self.queue)


@dataclass
class _BatchConsumer:
    queue: str
    handler: BatchHandler
    batch_size: int
    on_attach: Callable[[], None] | None = None
    state: ConsumerState = field(init=False)

    def __post_init__(self) -> None:
        self.state = ConsumerState(self.queue)


def amqp_properties(message: Message) -> spec.Basic.Properties:
    return spec.Basic.Properties(
        content_type=message.content_type,
        delivery_mode=2,  # persistent
        message_id=message.message_id,
        correlation_id=message.correlation_id,
        timestamp=message.timestamp,
        message_type=message.type,
        headers=dict(message.headers) or None,
    )


class _AmqpDelivery:
    def __init__(self, incoming: AbstractIncomingMessage) -> None:
        self._incoming = incoming
        headers = dict(incoming.headers or {})
        self.message = Message(
            body=incoming.body,
            message_id=incoming.message_id or "",
            correlation_id=incoming.correlation_id or "",
            type=incoming.type or "",
            timestamp=incoming.timestamp or datetime.fromtimestamp(0),
            content_type=incoming.content_type or "",
            headers=headers,
        )
        self.redelivered = bool(incoming.redelivered)
        count = headers.get("x-delivery-count", 0)
        self.delivery_count = int(count) if isinstance(count, int) else 0

    async def ack(self) -> None:
        await self._incoming.ack()

    async def reject(self, requeue: bool) -> None:
        await self._incoming.nack(requeue=requeue)


class _RawDelivery:
    """A batch consumer's delivery, read straight from aiormq (no aio-pika objects);
    acked by the batch loop, not one by one."""

    __slots__ = ("delivery_count", "delivery_tag", "message", "redelivered")

    def __init__(self, delivered: aiormq.abc.DeliveredMessage) -> None:
        properties = delivered.header.properties
        headers = properties.headers or {}
        self.message = Message(
            body=delivered.body,
            message_id=properties.message_id or "",
            correlation_id=properties.correlation_id or "",
            type=properties.message_type or "",
            timestamp=properties.timestamp or datetime.fromtimestamp(0),
            content_type=properties.content_type or "",
            headers=headers,
        )
        self.delivery_tag = cast(int, delivered.delivery_tag)  # always set on a basic.deliver
        self.redelivered = bool(delivered.redelivered)
        count = headers.get("x-delivery-count", 0)
        self.delivery_count = int(count) if isinstance(count, int) else 0

    async def ack(self) -> None:  # settled by the batch loop
        return None

    async def reject(self, requeue: bool) -> None:  # settled by the batch loop
        return None


def parse_urls(value: str) -> list[str]:
    """`GATEWAY_AMQP_URL` may list several nodes, comma-separated, tried in turn."""
    urls = [u.strip() for u in value.split(",") if u.strip()]
    if not urls:
        raise ValueError("GATEWAY_AMQP_URL is empty")
    for url in urls:
        if URL(url).scheme not in ("amqp", "amqps"):
            raise ValueError("GATEWAY_AMQP_URL must use amqp:// or amqps://")
    return urls


def redact_url(url: str) -> str:
    parsed = URL(url)
    return str(parsed.with_password("***")) if parsed.password else str(parsed)


class _ConfirmedPublisher:
    """A batch consumer's own confirm channel. A publish the broker rejects (basic.nack) is
    published again on a new channel: on RabbitMQ 3.10 a channel whose first publish to a
    quorum queue came while the queue's record still named a leader on a node that is gone
    keeps having that queue's publishes rejected until the node is back; a new channel looks
    the queue up afresh."""

    def __init__(
        self, connection: AbstractConnection, queue: str, timeout: float, metrics: Metrics | None
    ) -> None:
        self._connection = connection
        self._queue = queue  # the consumed queue, for logs and metrics
        self._timeout = timeout
        self._metrics = metrics
        self._channel: aiormq.abc.AbstractChannel | None = None

    async def _open(self) -> aiormq.abc.AbstractChannel:
        if self._channel is None or self._channel.is_closed:
            channel = await self._connection.channel(publisher_confirms=True)
            self._channel = await channel.get_underlay_channel()
        return self._channel

    async def publish_all(self, publishes: list[Publish], lost: asyncio.Event, state: ConsumerState) -> bool:
        """Publish in order and wait for every confirm; True once all are confirmed, False
        once the link is lost. After a nack the list is published again from the first
        rejected message on, in order: a later message confirmed the first time is then in
        its queue twice, with one message id. It keeps trying while the broker rejects (the
        batch stays unacked: nothing is dropped); `state.rejections` shows it in /readyz."""
        backoff = 0.05
        while publishes and not lost.is_set():
            channel = await self._open()
            sends = [
                channel.basic_publish(  # type: ignore[call-arg]  # aiormq takes `wait`; its abc omits it
                    p.message.body,
                    exchange=p.exchange,
                    routing_key=p.routing_key,
                    properties=amqp_properties(p.message),
                    wait=False,
                )
                for p in publishes
            ]
            try:
                async with asyncio.timeout(self._timeout):
                    results = await asyncio.gather(*sends, return_exceptions=True)
            except TimeoutError:
                log.warning("broker_confirm_timeout", queue=self._queue)
                lost.set()  # a paused or overloaded node: reconnect, to another node if listed
                return False
            failures = [r for r in results if isinstance(r, BaseException)]
            if not failures:
                return True
            if not all(isinstance(f, aiormq.exceptions.DeliveryError) for f in failures):
                raise next(f for f in failures if not isinstance(f, aiormq.exceptions.DeliveryError))
            first = next(i for i, r in enumerate(results) if isinstance(r, BaseException))
            log.warning("publish_rejected", queue=self._queue, rejected=len(failures), of=len(publishes))
            state.rejections += 1
            if self._metrics:
                for exchange in sorted({p.exchange for p in publishes[first:]}):
                    self._metrics.publish_retries.labels(exchange).inc()
            publishes = publishes[first:]
            await self.close()  # the next try looks every queue up afresh
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)
        return not publishes

    async def close(self) -> None:
        channel, self._channel = self._channel, None
        if channel is not None and not channel.is_closed:
            # Bounded: a paused node would hold Channel.Close-Ok, and with it the reconnect.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(channel.close(), 1.0)


class AmqpBroker:
    def __init__(
        self,
        urls: list[str],
        *,
        publish_timeout: float = 5.0,
        metrics: Metrics | None = None,
        name: str = "gateway",
        heartbeat: int = 10,
    ) -> None:
        self._urls = urls
        self._publish_timeout = publish_timeout
        self._metrics = metrics
        self._name = name
        self._heartbeat = heartbeat
        self._consumers: list[_Consumer] = []
        self._batch_consumers: list[_BatchConsumer] = []
        self._subscriptions: list[tuple[str, Notification]] = []
        self._batch_tasks: set[asyncio.Task[None]] = set()
        self._ready = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._connection: AbstractConnection | None = None
        self._underlay: aiormq.abc.AbstractChannel | None = None
        self._topology: Topology | None = None
        self._declare = True
        self._lost = asyncio.Event()
        self._node = ""
        self._renewing = asyncio.Lock()
        self._retiring: set[asyncio.Task[None]] = set()
        self._publisher: tuple[AbstractChannel, Callable[..., None]] | None = None

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    @property
    def description(self) -> str:
        return "RabbitMQ " + ", ".join(redact_url(u) for u in self._urls)

    async def start(self, topology: Topology, *, declare: bool = True) -> None:
        self._topology = topology
        self._declare = declare
        self._task = asyncio.create_task(self._supervise(), name="broker-supervisor")

    async def wait_ready(self, seconds: float) -> bool:
        try:
            await asyncio.wait_for(self._ready.wait(), seconds)
        except TimeoutError:
            return False
        return True

    async def consume(self, queue: str, handler: Handler, *, prefetch: int = 32) -> None:
        consumer = _Consumer(queue, handler, prefetch)
        self._consumers.append(consumer)
        if self._connection is not None and self.ready:
            await self._attach(self._connection, consumer)

    def _url_with_defaults(self, url: str) -> str:
        parsed = URL(url)
        query = dict(parsed.query)
        query.setdefault("heartbeat", str(self._heartbeat))
        query.setdefault("name", self._name)
        return str(parsed.with_query(query))

    async def _supervise(self) -> None:
        backoff = 0.2
        for attempt in itertools.count():
            if self._closing:
                return
            url = self._urls[attempt % len(self._urls)]
            try:
                await self._connect(url)
                backoff = 0.2
                await self._lost.wait()
                log.warning("broker_link_lost", node=redact_url(url))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("broker_connect_failed", node=redact_url(url), error=type(exc).__name__)
            finally:
                self._set_ready(False)
                await self._drop_connection()
            if self._closing:
                return
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    def consumers(self) -> list[ConsumerState]:
        return [c.state for c in self._consumers] + [c.state for c in self._batch_consumers]

    def _consuming(
        self, state: ConsumerState, channel: aiormq.abc.AbstractChannel, lost: asyncio.Event
    ) -> None:
        """Mark the consumer attached, and watch for the broker cancelling it (a queue deleted,
        a quorum queue member gone): a cancelled consumer is re-attached with the rest, through
        a reconnect, never left silently idle on an open channel."""

        def cancelled(_frame: object) -> None:
            if lost.is_set():
                return
            state.consuming = False
            log.warning("consumer_cancelled_by_broker", queue=state.queue, node=state.node)
            lost.set()

        channel.on_consumer_cancel_callbacks.add(cancelled)
        state.consuming = True
        state.node = self._node
        state.attached += 1
        state.delivered = state.settled = 0

    async def _connect(self, url: str) -> None:
        self._lost = asyncio.Event()
        self._node = redact_url(url)
        connection = await aio_pika.connect(self._url_with_defaults(url), timeout=self._publish_timeout)
        self._connection = connection
        lost = self._lost
        connection.close_callbacks.add(lambda *_: lost.set())
        assert self._topology is not None
        if self._declare:
            await declare_topology(connection, self._topology)
        await self._open_publisher(connection, lost)
        for consumer in self._consumers:
            await self._attach(connection, consumer)
        for batch_consumer in self._batch_consumers:
            await self._attach_batches(connection, batch_consumer)
        for exchange, handler in self._subscriptions:
            await self._attach_subscription(connection, exchange, handler)
        if lost.is_set():
            return
        self._set_ready(True)
        if self._metrics:
            self._metrics.broker_reconnects.inc()
        log.info("broker_ready", node=redact_url(url))

    async def _attach(self, connection: AbstractConnection, consumer: _Consumer) -> None:
        channel = await connection.channel()
        lost = self._lost
        channel.close_callbacks.add(lambda *_: lost.set())
        await channel.set_qos(prefetch_count=consumer.prefetch)
        queue = await channel.get_queue(consumer.queue, ensure=False)

        state = consumer.state

        async def on_message(incoming: AbstractIncomingMessage) -> None:
            delivery = _AmqpDelivery(incoming)
            state.delivered += 1
            try:
                await consumer.handler(delivery)
            except Exception as exc:
                log.error("consumer_failed", queue=consumer.queue, error=type(exc).__name__)
                with contextlib.suppress(Exception):
                    await delivery.reject(requeue=True)
            finally:
                state.settled += 1

        await queue.consume(on_message)
        self._consuming(state, await channel.get_underlay_channel(), lost)

    async def subscribe(self, exchange: str, handler: Notification) -> None:
        self._subscriptions.append((exchange, handler))
        if self._connection is not None and self.ready:
            await self._attach_subscription(self._connection, exchange, handler)

    async def _attach_subscription(
        self, connection: AbstractConnection, exchange: str, handler: Notification
    ) -> None:
        channel = await connection.channel()
        lost = self._lost
        channel.close_callbacks.add(lambda *_: lost.set())
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(exchange)

        async def on_message(incoming: AbstractIncomingMessage) -> None:
            try:
                await handler(incoming.body)
            except Exception as exc:
                log.error("subscriber_failed", exchange=exchange, error=type(exc).__name__)

        await queue.consume(on_message, no_ack=True)

    async def consume_batches(
        self,
        queue: str,
        handler: BatchHandler,
        *,
        batch_size: int = 64,
        on_attach: Callable[[], None] | None = None,
    ) -> None:
        consumer = _BatchConsumer(queue, handler, batch_size, on_attach)
        self._batch_consumers.append(consumer)
        if self._connection is not None and self.ready:
            await self._attach_batches(self._connection, consumer)

    async def _attach_batches(self, connection: AbstractConnection, consumer: _BatchConsumer) -> None:
        """One channel consumes (manual acks); the batch's publishes go out on a confirm
        channel of the batch's own, and the deliveries are acked only once the broker has
        confirmed every publish. Not AMQP transactions: on quorum queues, tx.commit settles
        the acks before the publishes are confirmed and answers commit-ok even when a publish
        was rejected, so a batch could be acked and lost (README, "Faults, measured")."""
        channel = await connection.channel(publisher_confirms=False)
        lost = self._lost
        channel.close_callbacks.add(lambda *_: lost.set())
        await channel.set_qos(prefetch_count=consumer.batch_size)
        underlay = await channel.get_underlay_channel()
        inbox: asyncio.Queue[aiormq.abc.DeliveredMessage] = asyncio.Queue()

        async def on_message(delivered: aiormq.abc.DeliveredMessage) -> None:
            inbox.put_nowait(delivered)

        if consumer.on_attach is not None:
            consumer.on_attach()
        await underlay.basic_consume(consumer.queue, on_message)
        self._consuming(consumer.state, underlay, lost)
        task = asyncio.create_task(self._run_batches(connection, underlay, inbox, consumer, lost))
        self._batch_tasks.add(task)
        task.add_done_callback(self._batch_tasks.discard)

    async def _run_batches(
        self,
        connection: AbstractConnection,
        underlay: aiormq.abc.AbstractChannel,
        inbox: asyncio.Queue[aiormq.abc.DeliveredMessage],
        consumer: _BatchConsumer,
        lost: asyncio.Event,
    ) -> None:
        publisher = _ConfirmedPublisher(connection, consumer.queue, self._publish_timeout, self._metrics)
        try:
            while not lost.is_set():
                batch = [await inbox.get()]
                while len(batch) < consumer.batch_size and not inbox.empty():
                    batch.append(inbox.get_nowait())
                deliveries = [_RawDelivery(delivered) for delivered in batch]
                consumer.state.delivered += len(deliveries)
                if not await self._settle_batch(underlay, publisher, consumer, deliveries, lost):
                    lost.set()  # the unacked deliveries come back on the next link
                    return
                consumer.state.settled += len(deliveries)
        except Exception as exc:
            # Never a worker gone quietly while its channel holds the batch: reconnect.
            log.error("batch_worker_failed", queue=consumer.queue, error=type(exc).__name__)
            consumer.state.consuming = False
            lost.set()
        finally:
            await publisher.close()

    async def _settle_batch(
        self,
        underlay: aiormq.abc.AbstractChannel,
        publisher: _ConfirmedPublisher,
        consumer: _BatchConsumer,
        deliveries: list[_RawDelivery],
        lost: asyncio.Event,
    ) -> bool:
        """Handle, publish with confirms, commit the handler's own state, then ack; each step
        is retried on the same, still unacked, batch, so a fault costs no delivery attempt
        (quorum queues dead-letter after `delivery_limit`). False once the link is lost."""
        while not lost.is_set():
            outcome = await handle_until_done(consumer.handler, list(deliveries), consumer.queue, lost.is_set)
            if outcome is None:
                return False
            finished = False
            try:
                try:
                    if not await publisher.publish_all(outcome.publishes, lost, consumer.state):
                        return False
                except (aiormq.exceptions.AMQPError, ConnectionError, RuntimeError) as exc:
                    log.warning("batch_not_published", queue=consumer.queue, error=type(exc).__name__)
                    return False
                try:
                    if outcome.committed:
                        await outcome.committed()
                    finished = True
                except Exception as exc:  # the handler's own commit (the database): handle again
                    log.error("batch_commit_failed", queue=consumer.queue, error=type(exc).__name__)
                    await asyncio.sleep(0.1)
                    continue
            finally:
                # Also on cancellation (shutdown): never leave the handler's own transaction open.
                if not finished and outcome.aborted:
                    try:
                        await outcome.aborted()
                    except Exception as exc:
                        log.error("batch_abort_failed", queue=consumer.queue, error=type(exc).__name__)
            dead = {id(delivery) for delivery in outcome.dead}
            try:
                for delivery in outcome.dead:  # dead-lettered (x-dead-letter-exchange)
                    tag = cast(_RawDelivery, delivery).delivery_tag
                    await underlay.basic_reject(tag, requeue=False)
                # Earlier batches are settled and rejected tags are no longer outstanding, so one
                # ack up to the last tag not rejected covers the rest (acking a rejected tag
                # would close the channel).
                kept = [d for d in deliveries if id(d) not in dead]
                if kept:
                    await underlay.basic_ack(kept[-1].delivery_tag, multiple=True)
            except (aiormq.exceptions.AMQPError, ConnectionError, RuntimeError) as exc:
                # Published and committed but not acked: redelivered, published again with the
                # same message ids, which the consumers drop.
                log.warning("batch_not_acked", queue=consumer.queue, error=type(exc).__name__)
                return False
            return True
        return False

    def _set_ready(self, ready: bool) -> None:
        if ready:
            self._ready.set()
        else:
            self._ready.clear()
            for state in self.consumers():
                state.consuming = False
        if self._metrics:
            self._metrics.broker_connected.set(1 if ready else 0)

    async def _drop_connection(self) -> None:
        # Wait for the batch workers to unwind (they abort their handlers' transactions) before
        # anything else closes under them.
        tasks = list(self._batch_tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        connection, self._connection = self._connection, None
        self._underlay = self._publisher = None
        if connection is not None and not connection.is_closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), 2)

    async def publish(self, exchange: str, routing_key: str, message: Message) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + self._publish_timeout
        properties = amqp_properties(message)
        try:
            try:
                await self._publish_once(exchange, routing_key, message.body, properties, deadline)
            except _Transient:
                # The slow path: bounded retries with backoff until the publish timeout.
                async for attempt in AsyncRetrying(
                    stop=stop_after_delay(max(deadline - loop.time(), 0)),
                    wait=wait_exponential(multiplier=0.05, max=1.0),
                    retry=retry_if_exception_type(_Transient),
                    reraise=True,
                ):
                    with attempt:
                        if self._metrics:
                            self._metrics.publish_retries.labels(exchange).inc()
                        await self._publish_once(exchange, routing_key, message.body, properties, deadline)
        except _Transient:
            if self._metrics:
                self._metrics.publish_failures.labels(exchange, "broker_unavailable").inc()
            raise BrokerUnavailable() from None
        except Unroutable:
            if self._metrics:
                self._metrics.publish_failures.labels(exchange, "unroutable").inc()
            raise
        if self._metrics:
            self._metrics.publish_latency.labels(exchange).observe(loop.time() - started)

    async def _publish_once(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        properties: spec.Basic.Properties,
        deadline: float,
    ) -> None:
        """One publish straight on aiormq's channel (no per-message aio-pika objects),
        waiting for the broker's confirm; transient faults raise _Transient."""
        if asyncio.get_running_loop().time() >= deadline:
            raise _Transient("deadline")
        link: asyncio.Event | None = None
        channel: aiormq.abc.AbstractChannel | None = None
        try:
            async with asyncio.timeout_at(deadline):
                if not self._ready.is_set():
                    await self._ready.wait()
                channel = self._underlay
                if channel is None:
                    raise _Transient("no channel")
                link = self._lost
                # wait=False: don't hold the channel lock until the socket has drained; the
                # confirm awaited here is what tells us the broker has the message.
                await channel.basic_publish(  # type: ignore[call-arg]  # aiormq takes `wait`; its abc omits it
                    body,
                    exchange=exchange,
                    routing_key=routing_key,
                    properties=properties,
                    mandatory=True,
                    wait=False,
                )
        except aiormq.exceptions.PublishError:
            raise Unroutable() from None
        except aiormq.exceptions.DeliveryError:
            # A nack. The retry goes out on a new channel: this one may keep a quorum queue's
            # leader that is gone (see _ConfirmedPublisher).
            await self._renew_publisher(channel)
            raise _Transient("nacked") from None
        except TimeoutError:
            if link is not None and not link.is_set():
                # Sent, but no confirm within the publish timeout: a paused or overloaded node
                # keeps the socket open. Not ready any more; reconnect, to another node if listed.
                log.warning("broker_confirm_timeout")
                if link is self._lost:
                    self._set_ready(False)
                link.set()
            raise _Transient("TimeoutError") from None
        except (
            aiormq.exceptions.AMQPError,
            aiormq.exceptions.ChannelInvalidStateError,
            ConnectionError,
            RuntimeError,
        ) as exc:
            raise _Transient(type(exc).__name__) from None

    async def _open_publisher(self, connection: AbstractConnection, lost: asyncio.Event) -> None:
        """The channel `publish` uses; its closing means the link is lost, unless we close it."""
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)

        def closed(*_: object) -> None:
            lost.set()

        channel.close_callbacks.add(closed)
        self._publisher = (channel, closed)
        self._underlay = await channel.get_underlay_channel()

    async def _renew_publisher(self, stale: aiormq.abc.AbstractChannel | None) -> None:
        async with self._renewing:
            connection, previous, lost = self._connection, self._publisher, self._lost
            if stale is None or self._underlay is not stale or connection is None or previous is None:
                return  # another publisher renewed it already, or the link is being re-made
            try:
                async with asyncio.timeout(self._publish_timeout):
                    await self._open_publisher(connection, lost)
            except (aiormq.exceptions.AMQPError, ConnectionError, RuntimeError, TimeoutError):
                lost.set()
                return
            if self._lost is not lost:  # the link was re-made meanwhile: that one is current
                return
            old, closed = previous
            old.close_callbacks.discard(closed)
            # Closed once the publishes still waiting on it have had their publish timeout, so
            # none of them fails with a bare "channel closed".
            retire = asyncio.create_task(self._close_later(old, self._publish_timeout))
            self._retiring.add(retire)
            retire.add_done_callback(self._retiring.discard)

    @staticmethod
    async def _close_later(channel: AbstractChannel, delay: float) -> None:
        await asyncio.sleep(delay)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(channel.close(), 1.0)

    async def queue_depths(self, names: list[str]) -> dict[str, int]:
        connection = self._connection
        if connection is None or not self.ready:
            return {}
        depths: dict[str, int] = {}
        channel = await connection.channel()
        try:
            for name in names:
                try:
                    queue = await channel.declare_queue(name, passive=True)
                except aio_pika.exceptions.ChannelNotFoundEntity:
                    channel = await connection.channel()  # a failed passive declare closes the channel
                    continue
                depths[name] = queue.declaration_result.message_count or 0
        finally:
            with contextlib.suppress(Exception):
                await channel.close()
        return depths

    async def close(self) -> None:
        self._closing = True
        self._lost.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        self._set_ready(False)
        await self._drop_connection()


async def declare_topology(connection: AbstractConnection, topology: Topology) -> None:
    """Declare every exchange, queue and binding; safe to repeat (idempotent)."""
    channel = await connection.channel()
    try:
        exchanges = {}
        for exchange in topology.exchanges:
            exchanges[exchange.name] = await channel.declare_exchange(
                exchange.name, exchange.type, durable=True, arguments=exchange.arguments or None
            )
        queues = {}
        for queue in topology.queues:
            queues[queue.name] = await channel.declare_queue(
                queue.name, durable=True, arguments=queue.arguments
            )
        for binding in topology.bindings:
            await queues[binding.queue].bind(exchanges[binding.exchange], binding.routing_key)
    finally:
        await channel.close()
