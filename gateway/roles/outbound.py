"""The outbound role: replies from gw.outbound to the person, through their own channel.

For each reply (auto-reply or counsellor): the address comes from the sealed
reply handle, never from a clear field; the channel kind's adapter sends it,
with each provider call bounded by `send_timeout_seconds` and transient failures
(5xx, 429, timeouts, connection errors) retried with exponential backoff (at
most `max_backoff_seconds`, but never sooner than a 429's Retry-After) up to
`attempts` calls. Then:

- accepted by the provider: recorded in `sent_replies`, then acked;
- refused for good (a 4xx): a copy goes to gw.dead with the reason (the
  provider's error code) in the `x-gateway-reason` header, counted in
  gateway_outbound_failures_total{channel_kind, reason}, then the original is acked;
- still failing after every attempt: requeued, so the queue's delivery limit
  finally dead-letters it.

A reply whose id is in `sent_replies` is acked without sending (a redelivery, or
the same auto-reply claimed twice). Neither Twilio's Messages API nor Telegram's
sendMessage takes an idempotency key, so one window remains: a crash after the
provider accepted a reply and before `sent_replies` recorded it sends it again
when the message is redelivered.

Replies of one conversation are sent one at a time, in the order they arrived,
within a process; across several outbound processes the order of two replies
sent within the same instant is not guaranteed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import structlog
from pydantic import ValidationError
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, wait_exponential

from gateway.broker.base import Broker, Delivery, Message
from gateway.config.live import LiveConfig
from gateway.config.models import Channel, OutboundSettings
from gateway.domain.envelope import OutboundMessage
from gateway.domain.kinds import Kind
from gateway.domain.messages import Outgoing, PublishError, SendFailed
from gateway.domain.topology import DEAD_EXCHANGE, OUTBOUND_QUEUE
from gateway.store.database import Store
from gateway.support.batching import GroupCommit
from gateway.support.keys import Keyring, SealError
from gateway.support.metrics import Metrics

log = structlog.get_logger("gateway.outbound")

REASON_HEADER = "x-gateway-reason"


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, SendFailed) and not exc.permanent


class Outbound:
    def __init__(
        self,
        live: LiveConfig,
        broker: Broker,
        store: Store,
        keyring: Keyring,
        metrics: Metrics,
        kinds: Mapping[str, Kind],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._kinds = kinds
        self._live = live
        self._broker = broker
        self._store = store
        self._keyring = keyring
        self._metrics = metrics
        self._clock = clock
        self._locks: dict[str, asyncio.Lock] = {}
        self._already_sent = GroupCommit(self._check_sent)
        self._record_sent = GroupCommit(self._write_sent)

    async def _check_sent(self, message_ids: list[str]) -> list[bool]:
        sent = await self._store.already_sent(message_ids)
        return [message_id in sent for message_id in message_ids]

    async def _write_sent(self, replies: list[tuple[str, str, str]]) -> list[None]:
        await self._store.record_sent(replies)
        await self._store.set_deliveries([message_id for message_id, _, _ in replies], "sent")
        return [None] * len(replies)

    @property
    def _settings(self) -> OutboundSettings:
        return self._live.current.service.outbound

    async def start(self) -> None:
        await self._broker.consume(OUTBOUND_QUEUE, self.handle, prefetch=self._settings.concurrency)

    async def handle(self, delivery: Delivery) -> None:
        try:
            reply = OutboundMessage.from_json(delivery.message.body)
        except ValidationError:
            log.error("unreadable_reply", message_id=delivery.message.message_id)
            self._metrics.unreadable.inc()
            await delivery.reject(requeue=False)  # dead-lettered by the queue (x-dead-letter-exchange)
            return
        conversation = reply.conversation_id
        lock = self._locks.setdefault(conversation, asyncio.Lock())
        try:
            async with lock:
                await self._deliver(delivery, reply)
        finally:
            if not lock.locked() and not getattr(lock, "_waiters", None):
                self._locks.pop(conversation, None)

    async def _deliver(self, delivery: Delivery, reply: OutboundMessage) -> None:
        kind_name = reply.channel.kind
        if await self._already_sent(reply.id):
            self._metrics.outbound_duplicates.labels(kind_name).inc()
            log.info("reply_already_sent", reply_id=reply.id)
            await delivery.ack()
            return
        channel = self._live.current.channels.get(reply.channel.instance)
        kind = self._kinds.get(channel.kind) if channel is not None else None
        if channel is None or kind is None or channel.kind != kind_name:
            await self._dead_letter(delivery, reply, "unknown_channel")
            return
        if not channel.usable:
            await self._dead_letter(delivery, reply, "channel_not_configured")
            return
        try:
            handle = self._keyring.unseal(reply.reply_handle)
        except SealError:
            await self._dead_letter(delivery, reply, "unreadable_handle")
            return
        if handle.get("channel") != channel.id or not handle.get("address"):
            await self._dead_letter(delivery, reply, "handle_mismatch")
            return
        outgoing = Outgoing(
            message_id=reply.id,
            address=handle["address"],
            text=reply.text,
            last_inbound_at=_instant(handle.get("at")),
            origin=reply.origin,
        )
        try:
            provider_id = await self._send(kind, channel, outgoing)
        except SendFailed as failure:
            if failure.permanent:
                await self._dead_letter(delivery, reply, failure.reason)
            else:
                log.warning("reply_send_gave_up", reply_id=reply.id, reason=failure.reason)
                await delivery.reject(requeue=True)  # the delivery limit bounds the redeliveries
            return
        await self._record_sent((reply.id, kind_name, provider_id))
        self._metrics.outbound_sent.labels(kind_name, reply.origin).inc()
        self._metrics.outbound_latency.labels(kind_name).observe(
            max(0.0, (datetime.now(UTC) - reply.created_at).total_seconds())
        )
        log.info("reply_sent", reply_id=reply.id, channel=channel.id, origin=reply.origin)
        await delivery.ack()

    async def _send(self, kind: Kind, channel: Channel[Any], outgoing: Outgoing) -> str:
        settings = self._settings
        backoff = wait_exponential(multiplier=0.2, max=settings.max_backoff_seconds)

        def wait(state: RetryCallState) -> float:
            """Exponential backoff, but never sooner than the provider's Retry-After."""
            failure = state.outcome.exception() if state.outcome else None
            retry_after = failure.retry_after if isinstance(failure, SendFailed) else None
            return max(backoff(state), retry_after or 0.0)

        def counted(state: RetryCallState) -> None:
            failure = state.outcome.exception() if state.outcome else None
            reason = failure.reason if isinstance(failure, SendFailed) else "error"
            self._metrics.outbound_retries.labels(channel.kind, reason).inc()

        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(settings.attempts),
            wait=wait,
            retry=retry_if_exception(_transient),
            before_sleep=counted,
            reraise=True,
        ):
            with attempt:
                try:
                    async with asyncio.timeout(settings.send_timeout_seconds):
                        return await kind.send(channel, outgoing)
                except TimeoutError:
                    raise SendFailed("timeout", permanent=False) from None
        raise AssertionError("unreachable: tenacity reraises the last failure")

    async def _dead_letter(self, delivery: Delivery, reply: OutboundMessage, reason: str) -> None:
        """Park a copy in gw.dead with the reason, then ack; if the broker cannot take the
        copy, requeue the original instead (never both lost)."""
        kind = reply.channel.kind
        copy = Message(
            body=delivery.message.body,
            message_id=delivery.message.message_id,
            correlation_id=delivery.message.correlation_id,
            type=delivery.message.type,
            timestamp=delivery.message.timestamp,
            headers={REASON_HEADER: reason, "x-gateway-channel-kind": kind, "x-first-queue": OUTBOUND_QUEUE},
        )
        try:
            await self._broker.publish(DEAD_EXCHANGE, f"outbound.{kind}", copy)
        except PublishError:
            await delivery.reject(requeue=True)
            return
        self._metrics.outbound_failures.labels(kind, reason).inc()
        log.warning("reply_dead_lettered", reply_id=reply.id, channel_kind=kind, reason=reason)
        with contextlib.suppress(Exception):  # the counsellor's view; the dead letter is what counts
            await self._store.set_deliveries([reply.id], "failed", reason[:60])
        await delivery.ack()


def _instant(value: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if value else None
    except ValueError:
        return None
