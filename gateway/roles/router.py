"""The router role: inbound shard queues in, region queues (and auto-replies) out.

A counsellor's transfer reaches the router as a control message on the
conversation's own inbound shard (`transfer_publish`), so it is ordered with
that conversation's messages; the router records it in the store and keeps
conversation regions in a cache, cleared whenever it (re)attaches to a shard.
A transfer to a team that is closed claims that team's closed period as answered
(`answered_by_transfer`): the person gets no auto-reply because of a transfer.

Each inbound shard is consumed by a single active consumer (see
Broker.consume_batches): a batch's routed envelopes and auto-replies are published
with publisher confirms, then the auto-reply claims and the conversation regions
learnt are committed to the database, and only then is the batch acked. A router
killed after the confirms and before the ack leaves the batch to be routed again:
its envelopes reach the region queue a second time with the same message ids (the
desk stores each once), and its auto-replies keep their ids (the outbound role
drops the second). Nothing acked was ever unpublished: that is the promise.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import UTC, datetime

import orjson
import structlog
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.broker.base import BatchOutcome, Broker, Delivery, Message, Publish
from gateway.config.models import NATIONAL, Config
from gateway.domain.envelope import (
    OUTBOUND_SCHEMA_VERSION,
    SCHEMA_VERSION,
    Envelope,
    OutboundMessage,
    Route,
    auto_reply_id,
)
from gateway.domain.resolution import RegionIndex, Resolution, resolve_region
from gateway.domain.routing import Decision, answered_by_transfer, auto_reply_text, closed_policy, decide
from gateway.domain.schedules import ResolvedSchedule, resolve, state_at
from gateway.domain.topology import (
    INBOUND_EXCHANGE,
    OUTBOUND_EXCHANGE,
    REGION_EXCHANGE,
    inbound_queue,
    inbound_shard,
    region_queue,
)
from gateway.domain.urgency import AcuteDanger, classify, is_urgent
from gateway.store.database import Claims, Store
from gateway.support.metrics import Metrics

log = structlog.get_logger("gateway.router")

BATCH_SIZE = 64
TRANSFER_TYPE = "gateway.control.transfer.v1"
CACHE_SIZE = 200_000
LEARNT = ("municipality", "postcode")  # resolutions remembered as the conversation's region


def transfer_publish(conversation_id: str, region: str, inbound_shards: int) -> Publish:
    """What the desk publishes when a counsellor transfers a conversation to another region."""
    body = orjson.dumps({"conversation_id": conversation_id, "region": region})
    message = Message(
        body=body,
        message_id=str(uuid.uuid4()),
        correlation_id=conversation_id,
        type=TRANSFER_TYPE,
        timestamp=datetime.now(UTC),
    )
    return Publish(INBOUND_EXCHANGE, str(inbound_shard(conversation_id, inbound_shards)), message)


class RegionCache:
    """Conversation -> (region, transferred), or None when the store has nothing; bounded."""

    def __init__(self, capacity: int = CACHE_SIZE) -> None:
        self._capacity = capacity
        self._entries: OrderedDict[str, tuple[str, bool] | None] = OrderedDict()

    def __contains__(self, conversation_id: str) -> bool:
        return conversation_id in self._entries

    def get(self, conversation_id: str) -> tuple[str, bool] | None:
        return self._entries.get(conversation_id)

    def put(self, conversation_id: str, value: tuple[str, bool] | None) -> None:
        self._entries[conversation_id] = value
        self._entries.move_to_end(conversation_id)
        if len(self._entries) > self._capacity:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()


class Router:
    def __init__(
        self,
        config: Config,
        broker: Broker,
        store: Store,
        metrics: Metrics,
        clock: Callable[[], datetime],
    ) -> None:
        self._broker = broker
        self._store = store
        self._metrics = metrics
        self._clock = clock
        self._regions = RegionCache()
        self.reconfigure(config)

    def reconfigure(self, config: Config) -> None:
        """Take a reloaded configuration: channels, municipalities, schedules, phrases, texts.
        Batches already running finish with the one they started with."""
        schedules: dict[str, ResolvedSchedule] = {
            code: resolve(region.schedule, config.schedules) for code, region in config.regions.items()
        }
        schedules[NATIONAL] = resolve(config.national.schedule, config.schedules)
        # Most regions follow the national default: equal schedules share one object, so the
        # per-day caches find them by identity instead of comparing every field.
        shared: dict[ResolvedSchedule, ResolvedSchedule] = {}
        schedules = {code: shared.setdefault(schedule, schedule) for code, schedule in schedules.items()}
        self._index = RegionIndex.from_config(config)
        self._acute = AcuteDanger(config.routing.acute_phrases)
        self._schedules = schedules
        self._config = config

    async def start(self) -> None:
        for shard in range(self._config.service.broker.inbound_shards):
            await self._broker.consume_batches(
                inbound_queue(shard), self.route_batch, batch_size=BATCH_SIZE, on_attach=self._regions.clear
            )

    def resolve(self, envelope: Envelope, known: tuple[str, bool] | None) -> Resolution:
        if known and known[1]:
            return Resolution(known[0], "transferred by a counsellor")
        channel = self._config.channels.get(envelope.channel.instance)
        hint = envelope.location_hint
        return resolve_region(
            self._index,
            channel_region=channel.region if channel else None,
            municipality=hint.municipality if hint else None,
            postcode=hint.postcode if hint else None,
            current_region=known[0] if known else None,
        )

    def decide(self, envelope: Envelope, resolution: Resolution, now: datetime) -> Decision:
        channel = self._config.channels.get(envelope.channel.instance)
        state = state_at(self._schedules[resolution.region], now)
        return decide(
            resolution=resolution,
            state=state,
            urgency=classify(envelope.urgency, envelope.text, self._acute),
            policy=closed_policy(self._config, resolution.region, envelope.channel.kind),
            auto_reply_allowed=bool(channel and channel.auto_reply),
            acute_always_national=envelope.channel.kind in self._config.routing.acute_always_national,
        )

    async def route_batch(self, deliveries: list[Delivery]) -> BatchOutcome:
        now = self._clock()
        outcome = BatchOutcome()
        items: list[Envelope | tuple[str, str]] = []
        for delivery in deliveries:
            item = self._read(delivery)
            if item is None:
                outcome.dead.append(delivery)
            else:
                items.append(item)
        await self._load_regions(items)
        stack = AsyncExitStack()
        transaction: list[tuple[Claims, AsyncConnection]] = []

        async def database() -> tuple[Claims, AsyncConnection]:
            """One database transaction per batch, opened only when a message needs it."""
            if not transaction:
                transaction.append(await stack.enter_async_context(self._store.claims()))
            return transaction[0]

        try:
            for item in items:
                if isinstance(item, tuple):  # a transfer
                    conversation, region = item
                    claims, connection = await database()
                    await self._store.set_conversation_region(
                        conversation, region, transferred=True, connection=connection
                    )
                    self._regions.put(conversation, (region, True))
                    # No auto-reply because of the transfer: the receiving team's closed
                    # period is claimed as answered, in this batch's transaction, unsent.
                    answered = answered_by_transfer(state_at(self._schedules[region], now))
                    if answered is not None:
                        await claims.claim(conversation, answered)
                    continue
                await self._route(item, now, outcome, database)
        except BaseException:
            await stack.aclose()
            raise

        async def committed() -> None:
            if transaction:
                await transaction[0][1].commit()
            await stack.aclose()

        outcome.committed = committed
        outcome.aborted = stack.aclose
        return outcome

    def _read(self, delivery: Delivery) -> Envelope | tuple[str, str] | None:
        """An envelope, a transfer (conversation, region), or None for a poison message."""
        try:
            if delivery.message.type == TRANSFER_TYPE:
                data = orjson.loads(delivery.message.body)
                conversation, region = str(data["conversation_id"]), str(data["region"])
                if region in self._schedules:
                    return conversation, region
            else:
                return Envelope.from_json(delivery.message.body)
        except (ValidationError, orjson.JSONDecodeError, KeyError, TypeError):
            pass
        log.error("unreadable_message", message_id=delivery.message.message_id)
        self._metrics.unreadable.inc()
        return None

    async def _load_regions(self, items: list[Envelope | tuple[str, str]]) -> None:
        missing = {
            item.conversation_id
            for item in items
            if isinstance(item, Envelope) and item.conversation_id not in self._regions
        }
        if missing:
            found = await self._store.conversation_regions(list(missing))
            for conversation in missing:
                self._regions.put(conversation, found.get(conversation))

    async def _route(
        self,
        envelope: Envelope,
        now: datetime,
        outcome: BatchOutcome,
        database: Callable[[], Awaitable[tuple[Claims, AsyncConnection]]],
    ) -> None:
        conversation = envelope.conversation_id
        known = self._regions.get(conversation)
        resolution = self.resolve(envelope, known)
        decision = self.decide(envelope, resolution, now)
        outcome.publishes.append(self._routed(envelope, decision))
        self._metrics.routed.labels(decision.team, _label(decision)).inc()
        if resolution.reason in LEARNT and (known is None or known[0] != resolution.region):
            _, connection = await database()
            await self._store.set_conversation_region(
                conversation, resolution.region, transferred=False, connection=connection
            )
            self._regions.put(conversation, (resolution.region, False))
        if decision.reply_until is not None:
            claims, _ = await database()
            if await claims.claim(conversation, decision.reply_until):
                outcome.publishes.append(self._auto_reply(envelope, decision, now))
                self._metrics.auto_replies.inc()

    def _routed(self, envelope: Envelope, decision: Decision) -> Publish:
        priority = "urgent" if is_urgent(decision.urgency) else "normal"
        routed = envelope.model_copy(
            update={
                "region": decision.region,
                "urgency": decision.urgency,
                "route": Route(
                    queue=region_queue(decision.team, priority),
                    reason=decision.reason,
                    after_hours=decision.after_hours,
                ),
            }
        )
        message = Message(
            body=routed.to_json(),
            message_id=envelope.id,
            correlation_id=envelope.conversation_id,
            type=SCHEMA_VERSION,
            timestamp=envelope.received_at,
        )
        return Publish(REGION_EXCHANGE, decision.routing_key, message)

    def _auto_reply(self, envelope: Envelope, decision: Decision, now: datetime) -> Publish:
        assert decision.reply_until is not None
        channel = self._config.channels.get(envelope.channel.instance)
        language = channel.language if channel else "nl"
        reply = OutboundMessage(
            id=auto_reply_id(envelope.conversation_id, decision.reply_until),
            conversation_id=envelope.conversation_id,
            channel=envelope.channel,
            reply_handle=envelope.reply_handle,
            text=auto_reply_text(self._config, decision.region, language, decision.reply_until),
            origin="auto_reply",
            in_reply_to=envelope.id,
            created_at=now,
        )
        message = Message(
            body=reply.to_json(),
            message_id=reply.id,
            correlation_id=reply.conversation_id,
            type=OUTBOUND_SCHEMA_VERSION,
            timestamp=now,
        )
        return Publish(OUTBOUND_EXCHANGE, f"{envelope.channel.kind}.{envelope.channel.instance}", message)


def _label(decision: Decision) -> str:
    if not decision.after_hours:
        return "open"
    if decision.team != decision.region:
        return "acute" if decision.urgency == "acute" else "overflow"
    return "hold"
