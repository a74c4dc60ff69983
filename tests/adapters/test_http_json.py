"""The http-json channel, one row per raw request, through the whole service and
the real RabbitMQ: the expected status, and what reached the inbound queue."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest

from gateway.domain.envelope import SCHEMA_VERSION, Envelope, envelope_id
from gateway.support.keys import Keyring
from tests.conftest import (
    HTTP_JSON_CHANNEL,
    TEST_SECRET,
    TEST_TOKEN,
    drain,
    inbound_queues,
    queue_depths,
)

pytestmark = pytest.mark.broker

JSON = "application/json"
GOOD = f"Bearer {TEST_TOKEN}"


@dataclass
class Case:
    name: str
    body: bytes
    status: int
    error: str | None = None
    headers: dict[str, str] = field(default_factory=lambda: {"Authorization": GOOD, "Content-Type": JSON})
    channel: str = HTTP_JSON_CHANNEL
    expect: dict[str, object] = field(default_factory=dict)


def body(**fields: object) -> bytes:
    return json.dumps(
        {"message_id": "ext-1", "sender": "+31612345678", "text": "hallo", **fields},
        ensure_ascii=False,
    ).encode()


CASES = [
    Case("plain text", body(text="Ik wil iets vragen"), 202, expect={"text": "Ik wil iets vragen"}),
    Case(
        "emoji and non-latin",
        body(text="Help 🙏 помогите مساعدة"),
        202,
        expect={"text": "Help 🙏 помогите مساعدة"},
    ),
    Case(
        "one attachment",
        body(
            text="",
            attachments=[{"content_type": "image/jpeg", "url": "https://files.example/1.jpg", "size": 2048}],
        ),
        202,
        expect={
            "attachments": [
                {"content_type": "image/jpeg", "url": "https://files.example/1.jpg", "size": 2048}
            ]
        },
    ),
    Case(
        "several attachments",
        body(
            attachments=[
                {"content_type": "image/png", "url": "ref:1"},
                {"content_type": "audio/ogg", "url": "ref:2"},
            ]
        ),
        202,
        expect={
            "attachments": [
                {"content_type": "image/png", "url": "ref:1", "size": None},
                {"content_type": "audio/ogg", "url": "ref:2", "size": None},
            ]
        },
    ),
    Case(
        "location hint",
        body(municipality="Eindhoven", postcode="5611 AB"),
        202,
        expect={"location_hint": {"municipality": "Eindhoven", "postcode": "5611"}},
    ),
    Case(
        "charset parameter",
        body(),
        202,
        headers={"Authorization": GOOD, "Content-Type": "application/json; charset=utf-8"},
    ),
    Case(
        "lowercase bearer scheme",
        body(),
        202,
        headers={"Authorization": f"bearer {TEST_TOKEN}", "Content-Type": JSON},
    ),
    Case("missing token", body(), 401, "missing_token", headers={"Content-Type": JSON}),
    Case(
        "wrong token",
        body(),
        401,
        "wrong_token",
        headers={"Authorization": "Bearer not-the-token", "Content-Type": JSON},
    ),
    Case(
        "basic auth instead of bearer",
        body(),
        401,
        "missing_token",
        headers={"Authorization": "Basic dXNlcjpwYXNz", "Content-Type": JSON},
    ),
    Case(
        "wrong content type",
        body(),
        415,
        "unsupported_content_type",
        headers={"Authorization": GOOD, "Content-Type": "text/plain"},
    ),
    Case(
        "form instead of json",
        b"message_id=1&text=hallo",
        415,
        "unsupported_content_type",
        headers={"Authorization": GOOD, "Content-Type": "application/x-www-form-urlencoded"},
    ),
    Case(
        "declared latin-1",
        body(),
        415,
        "unsupported_charset",
        headers={"Authorization": GOOD, "Content-Type": "application/json; charset=latin-1"},
    ),
    Case("malformed json", b'{"message_id": "1", "text": ', 400, "malformed_json"),
    Case("truncated body", body()[:-5], 400, "malformed_json"),
    Case(
        "invalid utf-8",
        b'{"message_id": "1", "sender": "a", "text": "\xff\xfe"}',
        400,
        "invalid_encoding",
    ),
    Case("empty body", b"", 400, "malformed_json"),
    Case("json array", b"[1, 2]", 422, "invalid_message"),
    Case(
        "missing message id",
        json.dumps({"sender": "a", "text": "x"}).encode(),
        422,
        "invalid_message",
    ),
    Case("no text and no attachment", body(text="   "), 422, "invalid_message"),
    Case("unknown field", body(phone="0612345678"), 422, "invalid_message"),
    Case("text too long", body(text="x" * 4097), 422, "invalid_message"),
    Case("bad postcode", body(postcode="0000"), 422, "invalid_message"),
    Case("oversized body", body(text="x" * 70_000), 413, "body_too_large"),
    Case("unknown channel", body(), 404, "unknown_channel", channel="no-such-channel"),
]


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
