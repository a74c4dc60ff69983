"""The HTTP skeleton on the embedded broker: health, readiness, metrics, errors."""

from __future__ import annotations

import asyncio
import re

from adapters.http_json.cases import HTTP_JSON_CHANNEL
from gateway.domain.identity import Identity
from gateway.service import topology_for
from tests.conftest import (
    auth,
)

WEBHOOK = f"/channels/{HTTP_JSON_CHANNEL}/webhook"


async def test_health_and_readiness(embedded_service) -> None:
    _, client = embedded_service
    assert (await client.get("/healthz")).status == 200
    ready = await client.get("/readyz")
    assert ready.status == 200
    body = await ready.json()
    assert body["status"] == "ready"
    assert body["checks"] == {
        "config": True, "broker": True, "topology": True, "consumers": True, "database": True,
    }  # fmt: skip
    # Every role runs here: its own view of each queue it consumes, by topology name only.
    assert body["consumers"]["gw.inbound.0"]["consuming"] is True
    assert "gw.region.twente.normal" in body["consumers"]


async def test_unknown_paths_and_methods_answer_json_errors(embedded_service) -> None:
    _, client = embedded_service
    missing = await client.get("/nope")
    assert missing.status == 404 and (await missing.json())["error"] == "not_found"
    wrong_method = await client.delete("/healthz")
    assert wrong_method.status == 405


async def test_metrics_count_by_channel_kind_and_reason_only(embedded_service) -> None:
    service, client = embedded_service
    good = {"message_id": "m-1", "sender": "+31612345678", "text": "hallo"}
    assert (await client.post(WEBHOOK, json=good, headers=auth())).status == 202
    assert (await client.post(WEBHOOK, json=good, headers=auth())).status == 202
    assert (await client.post(WEBHOOK, data=b"{", headers=auth())).status == 400
    assert (await client.post(WEBHOOK, json=good, headers=auth("wrong"))).status == 401
    assert (await client.post("/channels/+31612345678/webhook", json=good)).status == 404
    text = await (await client.get("/metrics")).text()
    assert 'gateway_messages_received_total{channel_kind="http-json"} 2.0' in text
    assert 'gateway_messages_published_total{channel_kind="http-json"} 1.0' in text
    assert 'gateway_duplicates_suppressed_total{channel_kind="http-json"} 1.0' in text
    assert 'gateway_messages_rejected_total{channel_kind="http-json",reason="malformed_json"} 1.0' in text
    assert 'gateway_messages_rejected_total{channel_kind="http-json",reason="wrong_token"} 1.0' in text
    assert 'gateway_messages_rejected_total{channel_kind="unknown",reason="unknown_channel"} 1.0' in text
    assert "gateway_publish_latency_seconds_bucket" in text
    assert "gateway_broker_connected 1.0" in text
    labels = set(re.findall(r'(\w+)="', text))
    # queue: the topology's own queue names (gateway_queue_messages), never anything a person sent.
    assert labels <= {"channel_kind", "reason", "exchange", "le", "team", "decision", "queue"}, labels
    queues = set(re.findall(r'queue="([^"]+)"', text))
    assert queues and queues <= set(topology_for(service.config).queue_names()), queues
    assert "612345678" not in text
    assert service.metrics.published_for("http-json") is service.metrics.published_for("http-json")


async def test_webhook_reply_is_json_with_the_envelope_ids(embedded_service) -> None:
    service, client = embedded_service
    response = await client.post(
        WEBHOOK, json={"message_id": "m-2", "sender": "s", "text": "hallo"}, headers=auth()
    )
    payload = await response.json()
    assert response.status == 202 and payload["status"] == "accepted"
    stored: list[str] = []
    reader = Identity("desk", "test", "Test", "zuidoost-brabant", "counsellor", "password+totp")
    for _ in range(300):  # every role in one process: the router, then the desk, take it on
        listed = await service.desk.conversations(reader)
        if listed:
            conversation = await service.desk.conversation(listed[0].conversation_id, reader)
            stored = [e.message_id for e in conversation.transcript]
            break
        await asyncio.sleep(0.01)
    assert payload["ids"] == stored


async def test_metrics_are_for_this_machine_or_the_tokens_bearer(config) -> None:
    from dataclasses import replace

    from aiohttp.test_utils import TestClient, TestServer

    from gateway.service import build_service
    from tests.conftest import settings_for

    open_service = build_service(settings_for(None), config)
    async with TestClient(TestServer(open_service.app)) as client:
        assert (await client.get("/metrics")).status == 200  # loopback, as a local scrape
        forwarded = await client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"})
        assert forwarded.status == 403 and (await forwarded.json())["error"] == "metrics_local_only"
    guarded = build_service(replace(settings_for(None), metrics_token="m" * 32), config)
    async with TestClient(TestServer(guarded.app)) as client:
        refused = await client.get("/metrics")
        assert refused.status == 401 and refused.headers["WWW-Authenticate"] == "Bearer"
        assert (await client.get("/metrics", headers={"Authorization": "Bearer wrong"})).status == 401
        scraped = await client.get("/metrics", headers={"Authorization": "Bearer " + "m" * 32})
        assert scraped.status == 200 and "gateway_broker_connected" in await scraped.text()
