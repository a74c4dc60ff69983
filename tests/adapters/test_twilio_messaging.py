"""The sms and whatsapp channels (Twilio), one row per raw request exactly as Twilio
sends it (a form body, signed by the real twilio library), through the whole
ingest path into the real RabbitMQ: the expected status, TwiML and envelope."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from urllib.parse import urlencode

import pytest
from twilio.request_validator import RequestValidator

from gateway.domain.envelope import Envelope, envelope_id
from gateway.support.keys import Keyring
from tests.conftest import (
    SMS_CHANNEL,
    TEST_SECRET,
    TWILIO_ACCOUNT_SID,
    TWILIO_AUTH_TOKEN,
    WHATSAPP_CHANNEL,
    drain,
    inbound_queues,
    queue_depths,
)

pytestmark = pytest.mark.broker

FORM = "application/x-www-form-urlencoded"
PUBLIC = "https://gateway.veiligthuis.example/channels/{channel}/webhook"
PERSON = "+31612345678"
SID = "SM" + "1f" * 16
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response />'


def sms(**fields: str) -> dict[str, str]:
    """An inbound SMS as Twilio posts it."""
    return {
        "ToCountry": "NL", "ToState": "", "SmsMessageSid": SID, "NumMedia": "0", "ToCity": "",
        "FromZip": "", "SmsSid": SID, "FromState": "", "SmsStatus": "received", "FromCity": "",
        "Body": "Ik wil iets vragen", "FromCountry": "NL", "To": "+3197010580001",
        "MessagingServiceSid": "", "ToZip": "", "NumSegments": "1", "MessageSid": SID,
        "AccountSid": TWILIO_ACCOUNT_SID, "From": PERSON, "ApiVersion": "2010-04-01", **fields,
    }  # fmt: skip


def whatsapp(**fields: str) -> dict[str, str]:
    """An inbound WhatsApp message as Twilio posts it."""
    return {
        "SmsMessageSid": SID, "NumMedia": "0", "ProfileName": "Anna de Vries", "MessageType": "text",
        "SmsSid": SID, "WaId": PERSON[1:], "SmsStatus": "received", "Body": "Hallo",
        "To": "whatsapp:+3197010580002", "NumSegments": "1", "ReferralNumMedia": "0",
        "MessageSid": SID, "AccountSid": TWILIO_ACCOUNT_SID, "From": f"whatsapp:{PERSON}",
        "ApiVersion": "2010-04-01", **fields,
    }  # fmt: skip


def status_callback(status: str) -> dict[str, str]:
    return {
        "SmsSid": SID, "SmsStatus": status, "MessageStatus": status, "To": PERSON,
        "MessageSid": SID, "AccountSid": TWILIO_ACCOUNT_SID, "From": "+3197010580001",
        "ApiVersion": "2010-04-01",
    }  # fmt: skip


def media(*types: str) -> dict[str, str]:
    fields = {"NumMedia": str(len(types)), "Body": ""}
    for n, content_type in enumerate(types):
        fields[f"MediaContentType{n}"] = content_type
        fields[f"MediaUrl{n}"] = (
            f"https://api.twilio.com/2010-04-01/Accounts/{TWILIO_ACCOUNT_SID}/Messages/{SID}/Media/ME{n:032d}"
        )
    return fields


@dataclass
class Case:
    name: str
    fields: dict[str, str]
    status: int
    error: str | None = None
    channel: str = SMS_CHANNEL
    # How the request is signed: "public" (the configured public URL), "received" (the URL
    # the test server saw), "other" (another URL), "none", or "garbage".
    signed: str = "public"
    body: bytes | None = None  # sent instead of the form, still signed over `fields`
    content_type: str = FORM
    public_url_configured: bool = True
    repeat: int = 1
    expect: dict[str, object] = field(default_factory=dict)
    twiml: str = EMPTY_TWIML
    published: int = 1


CASES = [
    Case("plain text sms", sms(), 200, expect={"text": "Ik wil iets vragen", "attachments": []}),
    Case(
        "emoji and non-latin text",
        sms(Body="Help 🙏 помогите مساعدة 救命"),
        200,
        expect={"text": "Help 🙏 помогите مساعدة 救命"},
    ),
    Case(
        "one media item (MMS)",
        sms(**media("image/jpeg")),
        200,
        expect={"text": "", "attachments": [{"content_type": "image/jpeg", "size": None}]},
    ),
    Case(
        "several media items",
        sms(**media("image/png", "audio/ogg", "application/pdf")),
        200,
        expect={
            "attachments": [
                {"content_type": "image/png", "size": None},
                {"content_type": "audio/ogg", "size": None},
                {"content_type": "application/pdf", "size": None},
            ]
        },
    ),
    Case(
        "whatsapp text, prefixed address and immediate reply",
        whatsapp(),
        200,
        channel=WHATSAPP_CHANNEL,
        expect={"text": "Hallo"},
        twiml="<Message>Bedankt voor je bericht.",
    ),
    Case(
        "whatsapp media",
        whatsapp(MessageType="image", **media("image/jpeg")),
        200,
        channel=WHATSAPP_CHANNEL,
        expect={"attachments": [{"content_type": "image/jpeg", "size": None}]},
        twiml="<Message>",
    ),
    Case("a retried webhook is one message", sms(), 200, repeat=3),
    Case(
        "no public url configured: the received url is signed",
        sms(),
        200,
        signed="received",
        public_url_configured=False,
    ),
    Case(
        "delivery status callback is counted, not published",
        status_callback("delivered"),
        200,
        published=0,
    ),
    Case("missing signature", sms(), 403, "missing_signature", signed="none"),
    Case("wrong signature", sms(), 403, "wrong_signature", signed="garbage"),
    Case("signature for another url", sms(), 403, "wrong_signature", signed="other"),
    Case(
        "received url signed while a public url is configured",
        sms(),
        403,
        "wrong_signature",
        signed="received",
    ),
    Case(
        "truncated body, cut inside a field name",
        sms(),
        400,
        "malformed_form",
        body=urlencode(sms()).encode().rsplit(b"&", 1)[0] + b"&ApiVer",
    ),
    Case(
        "truncated body, cut inside a value",
        sms(),
        403,
        "wrong_signature",
        body=urlencode(sms()).encode()[:-5],
    ),
    Case(
        "body that is not utf-8",
        sms(),
        400,
        "invalid_encoding",
        body=b"MessageSid=" + SID.encode() + b"&Body=caf\xe9&From=%2B31612345678",
    ),
    Case("json instead of a form", sms(), 415, "unsupported_content_type", content_type="application/json"),
    Case("whatsapp address on the sms channel", whatsapp(), 422, "invalid_message"),
    Case("sms address on the whatsapp channel", sms(), 422, "invalid_message", channel=WHATSAPP_CHANNEL),
    Case("missing MessageSid", sms(MessageSid="", SmsMessageSid=""), 422, "invalid_message"),
    Case(
        "media counted but missing",
        sms(NumMedia="2", MediaUrl0="https://x.example/1", MediaContentType0="image/png"),
        422,
        "invalid_message",
    ),
    Case("oversized body", sms(Body="x" * 70_000), 413, "body_too_large"),
    Case("unknown channel id", sms(), 404, "unknown_channel", channel="sms-nergens"),
]


def signature(case: Case, received_url: str) -> str | None:
    url = {
        "public": PUBLIC.format(channel=case.channel),
        "received": received_url,
        "other": "https://gateway.veiligthuis.example/channels/another/webhook",
    }.get(case.signed)
    if case.signed == "none":
        return None
    if url is None:
        return "bm90IGEgc2lnbmF0dXJl"
    return RequestValidator(TWILIO_AUTH_TOKEN).compute_signature(url, case.fields)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_twilio_request(rabbit_service, vhost, case: Case) -> None:
    service, client = rabbit_service
    if not case.public_url_configured:
        channel = service.config.channels[case.channel]
        settings = channel.settings.model_copy(update={"public_url": None})
        service.config.channels[case.channel] = replace(channel, settings=settings)
    queues = inbound_queues(service.config)
    path = f"/channels/{case.channel}/webhook"
    headers = {"Content-Type": case.content_type}
    sig = signature(case, str(client.make_url(path)))
    if sig is not None:
        headers["X-Twilio-Signature"] = sig
    body = case.body if case.body is not None else urlencode(case.fields).encode()
    for _ in range(case.repeat):
        response = await client.post(path, data=body, headers=headers)
        text = await response.text()
        assert response.status == case.status, text
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
    assert envelope.id == envelope_id(case.channel, SID)
    assert envelope.channel.kind == ("whatsapp" if address.startswith("whatsapp:") else "sms")
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
