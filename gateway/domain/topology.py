"""The broker topology as plain data: every exchange, queue and binding the gateway uses.

    gw.inbound  (direct)  --"<shard>"-->        gw.inbound.<shard>   (quorum, single active)
    gw.region   (direct)  --"<code>.urgent"-->  gw.region.<code>.urgent  (quorum)
                          --"<code>.normal"-->  gw.region.<code>.normal  (quorum)
    gw.outbound (topic)   --"#"-->              gw.outbound          (quorum)
    gw.dead     (topic)   --"#"-->              gw.dead              (quorum)
    gw.unroutable (fanout) ----------->         gw.unroutable        (quorum)
    gw.webchat  (fanout)  ----------->          one exclusive queue per process holding
                                                web chat sockets (wake-ups, no data;
                                                declared by the webchat kind)
    gw.desk     (fanout)  ----------->          one exclusive queue per desk process
                                                (a conversation changed: team and id only)

gw.region and gw.outbound name gw.unroutable as their alternate exchange: the
router publishes its batches without `mandatory` (a return per message would
arrive apart from its confirm), so a message no binding takes is parked there
instead of being dropped.

Ingest hashes the conversation id onto one inbound shard, so one conversation's
messages stay in one queue whose single active consumer keeps their order.
Urgent and normal messages of a region sit in two queues because quorum queues
have no priorities on RabbitMQ 3.10/3.11: consumers drain `.urgent` first.
Every work queue dead-letters to `gw.dead` (at-least-once) after `delivery_limit`
failed deliveries, so a poison message is parked, not lost and not looping. What is
parked holds whole messages, so it expires no later than the desk's retention: by a
broker policy (`parking_policy`), since a quorum queue's arguments cannot change in
place.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any, Literal

INBOUND_EXCHANGE = "gw.inbound"
REGION_EXCHANGE = "gw.region"
OUTBOUND_EXCHANGE = "gw.outbound"
DEAD_EXCHANGE = "gw.dead"
UNROUTABLE_EXCHANGE = "gw.unroutable"
DESK_EXCHANGE = "gw.desk"
OUTBOUND_QUEUE = "gw.outbound"
DEAD_QUEUE = "gw.dead"
UNROUTABLE_QUEUE = "gw.unroutable"
PARKING_POLICY = "gw-parked-messages-expire"


def parking_policy(vhost: str, retention_hours: float) -> dict[str, Any]:
    """The policy that lets what is parked in gw.dead and gw.unroutable expire after the
    desk's retention (RabbitMQ definitions format; `rabbitmqctl set_policy` takes the same)."""
    return {
        "vhost": vhost,
        "name": PARKING_POLICY,
        "pattern": r"^gw\.(dead|unroutable)$",
        "apply-to": "queues",
        "definition": {"message-ttl": int(retention_hours * 3600 * 1000)},
        "priority": 10,
    }
PRIORITIES = ("urgent", "normal")

ExchangeType = Literal["direct", "topic", "fanout"]


@dataclass(frozen=True)
class Exchange:
    name: str
    type: ExchangeType
    arguments: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True)
class Queue:
    name: str
    arguments: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True)
class Binding:
    exchange: str
    queue: str
    routing_key: str


@dataclass(frozen=True)
class Topology:
    exchanges: tuple[Exchange, ...]
    queues: tuple[Queue, ...]
    bindings: tuple[Binding, ...]
    inbound_shards: int

    def queue_names(self) -> list[str]:
        return [q.name for q in self.queues]


def region_queue(code: str, priority: str) -> str:
    return f"gw.region.{code}.{priority}"


def region_routing_key(code: str, priority: str) -> str:
    return f"{code}.{priority}"


def inbound_queue(shard: int) -> str:
    return f"{INBOUND_EXCHANGE}.{shard}"


def inbound_shard(conversation_id: str, shards: int) -> int:
    """Stable across processes and restarts (unlike Python's salted hash())."""
    return zlib.crc32(conversation_id.encode()) % shards


def _work_queue_arguments(delivery_limit: int, *, single_active: bool = False) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "x-queue-type": "quorum",
        "x-delivery-limit": delivery_limit,
        "x-dead-letter-exchange": DEAD_EXCHANGE,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }
    if single_active:
        arguments["x-single-active-consumer"] = True
    return arguments


def build_topology(
    team_codes: list[str], inbound_shards: int, delivery_limit: int, kind_fanouts: tuple[str, ...] = ()
) -> Topology:
    """`kind_fanouts`: the wake-up exchanges channel kinds declare (web chat's gw.webchat)."""
    alternate = {"alternate-exchange": UNROUTABLE_EXCHANGE}
    exchanges = (
        Exchange(INBOUND_EXCHANGE, "direct"),
        Exchange(REGION_EXCHANGE, "direct", alternate),
        Exchange(OUTBOUND_EXCHANGE, "topic", alternate),
        Exchange(DEAD_EXCHANGE, "topic"),
        Exchange(UNROUTABLE_EXCHANGE, "fanout"),
        *(Exchange(name, "fanout") for name in kind_fanouts),
        Exchange(DESK_EXCHANGE, "fanout"),
    )
    queues: list[Queue] = [
        Queue(DEAD_QUEUE, {"x-queue-type": "quorum"}),
        Queue(UNROUTABLE_QUEUE, {"x-queue-type": "quorum"}),
    ]
    bindings: list[Binding] = [
        Binding(DEAD_EXCHANGE, DEAD_QUEUE, "#"),
        Binding(UNROUTABLE_EXCHANGE, UNROUTABLE_QUEUE, ""),
    ]
    for shard in range(inbound_shards):
        name = inbound_queue(shard)
        queues.append(Queue(name, _work_queue_arguments(delivery_limit, single_active=True)))
        bindings.append(Binding(INBOUND_EXCHANGE, name, str(shard)))
    for code in team_codes:
        for priority in PRIORITIES:
            name = region_queue(code, priority)
            queues.append(Queue(name, _work_queue_arguments(delivery_limit)))
            bindings.append(Binding(REGION_EXCHANGE, name, region_routing_key(code, priority)))
    queues.append(Queue(OUTBOUND_QUEUE, _work_queue_arguments(delivery_limit)))
    bindings.append(Binding(OUTBOUND_EXCHANGE, OUTBOUND_QUEUE, "#"))
    return Topology(tuple(exchanges), tuple(queues), tuple(bindings), inbound_shards)
