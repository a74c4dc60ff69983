"""The sms and whatsapp channels (Twilio), one row per raw request exactly as Twilio
sends it (a form body, signed by the real twilio library), through the whole
ingest path into the real RabbitMQ: the expected status, TwiML and envelope."""

from __future__ import annotations

import io
import json
from urllib.parse import urlencode

import pytest
from twilio.request_validator import RequestValidator

from adapters.twilio.cases import (
    CASES,
    FORM,
    PERSON,
    PUBLIC,
    SID,
    SMS_CHANNEL,
    TWILIO_AUTH_TOKEN,
    WHATSAPP_CHANNEL,
    Case,
    signature,
    status_callback,
)
from gateway.domain.envelope import Envelope, envelope_id
from gateway.support.keys import Keyring
from gateway.support.logs import configure_logging
from tests.conftest import (
    TEST_SECRET,
    drain,
    inbound_queues,
    queue_depths,
)

pytestmark = pytest.mark.broker


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_twilio_request(rabbit_service, vhost, case: Case) -> None:
    service, client = rabbit_service
    queues = inbound_queues(service.config)
    path = f"/channels/{case.channel}/webhook"
    headers = {"Content-Type": case.content_type}
    sig = signature(case, str(client.make_url(path)))
    if sig is not None:
        headers["X-Twilio-Signature"] = sig
    body = case.body if case.body is not None else urlencode(case.fields).encode()
    logs = io.StringIO()
    configure_logging("DEBUG", stream=logs)
    try:
        for _ in range(case.repeat):
            response = await client.post(path, data=body, headers=headers)
            text = await response.text()
            assert response.status == case.status, text
    finally:
        configure_logging("INFO")
    logged = logs.getvalue()
    private = [PERSON[3:], "Anna", case.fields.get("Body") or "\0", case.fields.get("ButtonText") or "\0",
               case.fields.get("Latitude") or "\0", case.fields.get("Address") or "\0"]  # fmt: skip
    assert not [p for p in private if len(p) > 3 and p in logged], "a number, text or place reached the logs"
    assert PERSON[3:] not in text, "the answer echoed the number"
    if case.status != 200:
        assert json.loads(text)["error"] == case.error
        assert sum((await queue_depths(vhost[1], queues)).values()) == 0, "a refused request was published"
        return
    assert response.content_type == "text/xml" and case.twiml in text
    messages = await drain(vhost[1], queues)
    assert len(messages) == case.published
    if not case.published:
        return
    envelope = Envelope.from_json(messages[0].body)
    address = case.fields["From"]
    if case.channel == WHATSAPP_CHANNEL and not address.startswith("whatsapp:"):
        address = "whatsapp:" + address  # the number without its prefix is the same person
    assert envelope.id == envelope_id(case.channel, SID)
    assert envelope.channel.kind == ("whatsapp" if case.channel == WHATSAPP_CHANNEL else "sms")
    keyring = Keyring(TEST_SECRET)
    assert envelope.sender == keyring.pseudonym(address)
    handle = keyring.unseal(envelope.reply_handle)
    assert handle["address"] == address and handle["channel"] == case.channel
    raw = messages[0].body.decode()
    assert PERSON[3:] not in raw and "Anna" not in raw, "the number or profile name travelled in clear"
    data = json.loads(envelope.to_json())
    for key, value in case.expect.items():
        if key == "attachments":
            assert [{k: a[k] for k in ("content_type", "size")} for a in data[key]] == value
            assert all(a["url"].startswith("https://api.twilio.com/") for a in data[key])
        else:
            assert data[key] == value


async def test_status_callbacks_update_the_metric(rabbit_service) -> None:
    _, client = rabbit_service
    path = f"/channels/{SMS_CHANNEL}/webhook"
    fields = status_callback("undelivered")
    fields["ErrorCode"] = "30003"
    sig = RequestValidator(TWILIO_AUTH_TOKEN).compute_signature(PUBLIC.format(channel=SMS_CHANNEL), fields)
    response = await client.post(
        path, data=urlencode(fields), headers={"Content-Type": FORM, "X-Twilio-Signature": sig}
    )
    assert response.status == 200
    metrics = (await (await client.get("/metrics")).text()).splitlines()
    assert 'gateway_delivery_status_total{channel_kind="sms",status="undelivered"} 1.0' in metrics
