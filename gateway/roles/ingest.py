"""Ingest: turn an adapter's messages into envelopes and publish them, confirmed.

Webhook retries carry the provider's same message id, hence the same envelope
id. Within one process a confirmed id is remembered for a while and a retry is
answered without publishing again; concurrent copies wait for the first. Across
processes (or after a restart, or a republish after a lost confirm) a duplicate
can still reach the queue with the same AMQP `message_id`; the desk stores
messages idempotently by that id, so a counsellor never sees it twice.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from typing import Any

import structlog

from gateway.broker.base import Broker, Message
from gateway.config.models import Channel
from gateway.domain.envelope import (
    SCHEMA_VERSION,
    Attachment,
    ChannelRef,
    Envelope,
    LocationHint,
    Urgency,
    envelope_id,
    now_utc,
)
from gateway.domain.messages import InboundMessage, PublishError
from gateway.domain.topology import INBOUND_EXCHANGE, inbound_shard
from gateway.support.keys import Keyring
from gateway.support.metrics import Metrics

log = structlog.get_logger("gateway.ingest")


class RecentIds:
    """Ids confirmed by the broker recently; bounded in size and age."""

    def __init__(self, capacity: int = 200_000, ttl_seconds: float = 24 * 3600) -> None:
        self._capacity = capacity
        self._ttl = ttl_seconds
        self._seen: OrderedDict[str, float] = OrderedDict()

    def __contains__(self, message_id: str) -> bool:
        stamp = self._seen.get(message_id)
        if stamp is None:
            return False
        if time.monotonic() - stamp > self._ttl:
            del self._seen[message_id]
            return False
        return True

    def add(self, message_id: str) -> None:
        self._seen[message_id] = time.monotonic()
        self._seen.move_to_end(message_id)
        while len(self._seen) > self._capacity:
            self._seen.popitem(last=False)


def build_envelope(channel: Channel[Any], message: InboundMessage, keyring: Keyring) -> Envelope:
    conversation_key = message.conversation_key or message.address
    hint = (
        LocationHint(municipality=message.municipality, postcode=message.postcode)
        if message.municipality or message.postcode
        else None
    )
    received_at = now_utc()
    return Envelope(
        id=envelope_id(channel.id, message.provider_message_id),
        conversation_id=keyring.pseudonym(f"{channel.id}\x1f{conversation_key}", prefix="c_"),
        channel=ChannelRef(kind=channel.kind, instance=channel.id),
        received_at=received_at,
        text=message.text,
        attachments=[
            Attachment(content_type=a.content_type, url=a.url, size=a.size) for a in message.attachments
        ],
        urgency=Urgency.ACUTE if message.acute else Urgency.HIGH if message.urgent else Urgency.NORMAL,
        sender=keyring.pseudonym(message.address),
        # "at": when the person wrote, for windows such as WhatsApp's 24 hours.
        reply_handle=keyring.seal(
            {
                "channel": channel.id,
                "kind": channel.kind,
                "address": message.address,
                "at": received_at.isoformat(),
            }
        ),
        location_hint=hint,
        edited=message.edited,
    )


def amqp_message(envelope: Envelope) -> Message:
    return Message(
        body=envelope.to_json(),
        message_id=envelope.id,
        correlation_id=envelope.conversation_id,
        type=SCHEMA_VERSION,
        timestamp=envelope.received_at,
        headers={
            "channel-kind": envelope.channel.kind,
            "channel-instance": envelope.channel.instance,
        },
    )


class Ingest:
    def __init__(self, broker: Broker, keyring: Keyring, metrics: Metrics, inbound_shards: int) -> None:
        self._broker = broker
        self._keyring = keyring
        self._metrics = metrics
        self._shards = inbound_shards
        self._recent = RecentIds()
        self._in_flight: dict[str, asyncio.Future[None]] = {}

    async def accept(self, channel: Channel[Any], messages: tuple[InboundMessage, ...]) -> list[str]:
        """The one ingest path, for webhooks and for a kind's own pages alike: count the
        messages, publish each in order, return envelope ids. Raises PublishError (counted
        as refused, and logged without content)."""
        self._metrics.received_for(channel.kind).inc(len(messages))
        ids = []
        try:
            for message in messages:
                envelope = build_envelope(channel, message, self._keyring)
                await self._publish_once(envelope)
                ids.append(envelope.id)
        except PublishError as failure:
            self._metrics.rejected.labels(channel.kind, failure.reason).inc(len(messages))
            log.warning("publish_failed", channel=channel.id, reason=failure.reason)
            raise
        return ids

    async def _publish_once(self, envelope: Envelope) -> None:
        kind = envelope.channel.kind
        if envelope.id in self._recent:
            self._metrics.duplicates.labels(kind).inc()
            log.info("duplicate_suppressed", channel=envelope.channel.instance, envelope_id=envelope.id)
            return
        pending = self._in_flight.get(envelope.id)
        if pending is not None:
            self._metrics.duplicates.labels(kind).inc()
            await asyncio.shield(pending)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._in_flight[envelope.id] = future
        try:
            shard = inbound_shard(envelope.conversation_id, self._shards)
            await self._broker.publish(INBOUND_EXCHANGE, str(shard), amqp_message(envelope))
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody else must
            raise
        else:
            self._recent.add(envelope.id)
            future.set_result(None)
            self._metrics.published_for(kind).inc()
        finally:
            del self._in_flight[envelope.id]
