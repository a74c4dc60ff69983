"""Samples the depth of every queue of the topology into `gateway_queue_messages`, so ops
can alert on a growing gw.dead or a region queue nobody drains. Run by the router role."""

from __future__ import annotations

import asyncio

import structlog

from gateway.broker.base import Broker
from gateway.support.metrics import Metrics

log = structlog.get_logger("gateway.queue_monitor")
SAMPLE_EVERY_SECONDS = 15.0


async def sample_queue_depths(broker: Broker, queues: list[str], metrics: Metrics) -> None:
    for name, depth in (await broker.queue_depths(queues)).items():
        metrics.queue_messages.labels(name).set(depth)


async def watch_queue_depths(
    broker: Broker, queues: list[str], metrics: Metrics, every: float = SAMPLE_EVERY_SECONDS
) -> None:
    while True:
        try:
            await sample_queue_depths(broker, queues, metrics)
        except Exception as exc:  # the broker went away meanwhile: try again next time
            log.warning("queue_depths_failed", error=type(exc).__name__)
        await asyncio.sleep(every)
