"""Prometheus metrics. Labels are channel kind, reason, exchange and role only:
never a channel user's address, text or anything derived from them."""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

disable_created_metrics()  # type: ignore[no-untyped-call]  # no *_created series: they double the output and nobody alerts on them

PUBLISH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """One registry per service instance, so tests can run several side by side."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.received = Counter(
            "gateway_messages_received",
            "Messages received from people, per channel kind",
            ["channel_kind"],
            registry=r,
        )
        self.published = Counter(
            "gateway_messages_published",
            "Messages the broker confirmed, per channel kind",
            ["channel_kind"],
            registry=r,
        )
        self.rejected = Counter(
            "gateway_messages_rejected",
            "Requests refused or not published, per channel kind and reason",
            ["channel_kind", "reason"],
            registry=r,
        )
        self.duplicates = Counter(
            "gateway_duplicates_suppressed",
            "Webhook retries recognised by their provider message id and not published again",
            ["channel_kind"],
            registry=r,
        )
        self.publish_latency = Histogram(
            "gateway_publish_latency_seconds",
            "Time from publish to the broker's confirm, retries included",
            ["exchange"],
            buckets=PUBLISH_BUCKETS,
            registry=r,
        )
        self.publish_retries = Counter(
            "gateway_publish_retries",
            "Publishes retried after a transient broker fault (may duplicate; same message id)",
            ["exchange"],
            registry=r,
        )
        self.publish_failures = Counter(
            "gateway_publish_failures",
            "Publishes given up, per exchange and reason",
            ["exchange", "reason"],
            registry=r,
        )
        self.broker_connected = Gauge(
            "gateway_broker_connected",
            "1 while the broker link is up and the topology declared",
            registry=r,
        )
        self.broker_reconnects = Counter(
            "gateway_broker_reconnects",
            "Broker connections (re)established",
            registry=r,
        )

        self.routed = Counter(
            "gateway_messages_routed",
            "Messages the router put in a team's queue, per team and decision (open/hold/overflow/acute)",
            ["team", "decision"],
            registry=r,
        )
        self.auto_replies = Counter(
            "gateway_auto_replies",
            "After-hours auto-replies published",
            registry=r,
        )
        self.unreadable = Counter(
            "gateway_unreadable_messages",
            "Inbound messages that were not a valid envelope (dead-lettered)",
            registry=r,
        )
        self.delivery_status = Counter(
            "gateway_delivery_status",
            "Provider delivery status callbacks, per channel kind and status (delivered, failed, ...)",
            ["channel_kind", "status"],
            registry=r,
        )
        self.unreadable_fields = Counter(
            "gateway_unreadable_fields",
            "Stored values that did not open: their data key is not in GATEWAY_DATA_KEYS, "
            "or they were altered",
            registry=r,
        )
        self.attachments = Counter(
            "gateway_attachments",
            "Attachments the desk fetched from a provider, per channel kind and result "
            "(stored, or the reason it was refused: too_large, type_not_allowed, host_not_allowed, ...)",
            ["channel_kind", "result"],
            registry=r,
        )
        self.outbound_sent = Counter(
            "gateway_outbound_sent",
            "Replies the provider accepted, per channel kind and origin (auto_reply/counsellor)",
            ["channel_kind", "origin"],
            registry=r,
        )
        self.outbound_failures = Counter(
            "gateway_outbound_failures",
            "Replies dead-lettered, per channel kind and reason (the provider's error code)",
            ["channel_kind", "reason"],
            registry=r,
        )
        self.outbound_retries = Counter(
            "gateway_outbound_retries",
            "Send attempts retried after a transient provider failure, per channel kind and reason",
            ["channel_kind", "reason"],
            registry=r,
        )
        self.outbound_duplicates = Counter(
            "gateway_outbound_duplicates",
            "Replies not sent because one with the same id was already sent",
            ["channel_kind"],
            registry=r,
        )
        self.outbound_latency = Histogram(
            "gateway_outbound_latency_seconds",
            "Time from a reply's creation to the provider accepting it, retries included",
            ["channel_kind"],
            buckets=PUBLISH_BUCKETS,
            registry=r,
        )
        self.config_reloads = Counter(
            "gateway_config_reloads",
            "Configuration reloads, per result (applied/refused)",
            ["result"],
            registry=r,
        )
        self.queue_messages = Gauge(
            "gateway_queue_messages",
            "Messages ready in each queue of the topology, sampled by the router role",
            ["queue"],
            registry=r,
        )
        self.desk_waiting = Gauge(
            "gateway_desk_waiting_conversations",
            "Conversations no counsellor has claimed yet, per team",
            ["team"],
            registry=r,
        )
        self.desk_oldest_waiting = Gauge(
            "gateway_desk_oldest_waiting_seconds",
            "How long the longest-waiting unclaimed conversation has waited, per team (0: none)",
            ["team"],
            registry=r,
        )
        self.sign_ins = Counter(
            "gateway_sign_ins",
            "Sign-ins to the desk and Masker 19, by result (ok, wrong_credentials, "
            "second_factor_required, wrong_second_factor, too_many_attempts, no_team, ...)",
            ["result"],
            registry=r,
        )
        self.sessions_active = Gauge(
            "gateway_sessions_active", "Sessions that have not ended, sampled by the desk role", registry=r
        )
        self.audit_events = Counter(
            "gateway_audit_events",
            "Access-log records written, by action and result (ok, denied, failed)",
            ["action", "result"],
            registry=r,
        )
        self.rate_limit_fallbacks = Counter(
            "gateway_rate_limit_fallbacks",
            "Rate-limit checks decided by this process's own windows because Redis "
            "(GATEWAY_REDIS_URL) did not answer",
            registry=r,
        )
        self._published_children: dict[str, Counter] = {}
        self._received_children: dict[str, Counter] = {}

    # The hot path's counters, looked up once per channel kind rather than per message.
    def published_for(self, channel_kind: str) -> Counter:
        return _child(self.published, self._published_children, channel_kind)

    def received_for(self, channel_kind: str) -> Counter:
        return _child(self.received, self._received_children, channel_kind)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def _child(counter: Counter, cache: dict[str, Counter], label: str) -> Counter:
    child = cache.get(label)
    if child is None:
        child = cache[label] = counter.labels(label)
    return child
