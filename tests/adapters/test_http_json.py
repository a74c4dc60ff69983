"""The http-json channel, one row per raw request, through the whole service and
the real RabbitMQ: the expected status, and what reached the inbound queue."""

from __future__ import annotations

import json

import pytest

from adapters.http_json.cases import (
    CASES,
    GOOD,
    HTTP_JSON_CHANNEL,
    JSON,
    Case,
    body,
)
from gateway.domain.envelope import SCHEMA_VERSION, Envelope, envelope_id
from gateway.support.keys import Keyring
from tests.conftest import (
    TEST_SECRET,
    drain,
    inbound_queues,
    queue_depths,
)

pytestmark = pytest.mark.broker


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_http_json_request(rabbit_service, vhost, case: Case) -> None:
    service, client = rabbit_service
    queues = inbound_queues(service.config)
    response = await client.post(f"/channels/{case.channel}/webhook", data=case.body, headers=case.headers)
    payload = await response.json()
    assert response.status == case.status, payload
    if case.status != 202:
        assert payload["error"] == case.error
        assert sum((await queue_depths(vhost[1], queues)).values()) == 0, "a refused request was published"
        assert "612345678" not in json.dumps(payload), "the error echoed the input"
        return
    messages = await drain(vhost[1], queues)
    assert len(messages) == 1
    amqp = messages[0]
    envelope = Envelope.from_json(amqp.body)
    assert payload == {"status": "accepted", "ids": [envelope.id]}
    assert envelope.id == envelope_id(HTTP_JSON_CHANNEL, "ext-1") == amqp.message_id
    assert amqp.correlation_id == envelope.conversation_id
    assert amqp.type == SCHEMA_VERSION and amqp.content_type == "application/json"
    assert amqp.delivery_mode == 2 and amqp.timestamp is not None
    assert envelope.channel.kind == "http-json" and envelope.channel.instance == HTTP_JSON_CHANNEL
    assert envelope.region is None and envelope.route is None
    assert "612345678" not in amqp.body.decode(), "the address travelled in clear"
    keyring = Keyring(TEST_SECRET)
    assert envelope.sender == keyring.pseudonym(f"{HTTP_JSON_CHANNEL}:+31612345678")
    assert keyring.unseal(envelope.reply_handle)["address"] == f"{HTTP_JSON_CHANNEL}:+31612345678"
    data = json.loads(envelope.to_json())
    for key, value in case.expect.items():
        assert data[key] == value


async def test_get_on_a_webhook_is_405(rabbit_service) -> None:
    _, client = rabbit_service
    response = await client.get(f"/channels/{HTTP_JSON_CHANNEL}/webhook")
    assert response.status == 405


async def test_channel_without_credentials_answers_503_and_publishes_nothing(
    rabbit_service, vhost, monkeypatch
) -> None:
    service, client = rabbit_service
    channel = service.config.channels[HTTP_JSON_CHANNEL]
    from dataclasses import replace

    service.config.channels[HTTP_JSON_CHANNEL] = replace(
        channel, secrets={}, missing_secrets=("GW_HTTP_JSON_ZUIDOOST_BRABANT_TOKEN",)
    )
    response = await client.post(
        f"/channels/{HTTP_JSON_CHANNEL}/webhook",
        data=body(),
        headers={"Authorization": GOOD, "Content-Type": JSON},
    )
    assert response.status == 503
    assert (await response.json())["error"] == "channel_not_configured"
    assert sum((await queue_depths(vhost[1], inbound_queues(service.config))).values()) == 0
