"""The sms and whatsapp kinds' table: raw requests exactly as Twilio sends them (a form,
signed by the real twilio library), each with the status, TwiML and envelope fields
the gateway must give. Run against the pure verify/parse (tests/adapters/test_tables.py)
and end to end on RabbitMQ (tests/adapters/test_twilio_messaging.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from twilio.request_validator import RequestValidator

from gateway.config.models import Channel

SMS_CHANNEL = "sms-zuidoost-brabant"
WHATSAPP_CHANNEL = "whatsapp-rotterdam-rijnmond"
TWILIO_ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
TWILIO_AUTH_TOKEN = "twilio-auth-token-" + "t" * 14
# The credentials the example channels refer to, as the tests set them (never real ones).
TRIAL_ENV = {
    "GW_SMS_ZUIDOOST_BRABANT_ACCOUNT_SID": TWILIO_ACCOUNT_SID,
    "GW_SMS_ZUIDOOST_BRABANT_AUTH_TOKEN": TWILIO_AUTH_TOKEN,
    "GW_WHATSAPP_ROTTERDAM_RIJNMOND_ACCOUNT_SID": TWILIO_ACCOUNT_SID,
    "GW_WHATSAPP_ROTTERDAM_RIJNMOND_AUTH_TOKEN": TWILIO_AUTH_TOKEN,
}

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


def without(fields: dict[str, str], *keys: str) -> dict[str, str]:
    """A form as an older or leaner shape sends it: those fields absent."""
    return {k: v for k, v in fields.items() if k not in keys}


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
    repeat: int = 1
    expect: dict[str, object] = field(default_factory=dict)
    twiml: str = EMPTY_TWIML
    published: int = 1

    def raw(self, received_url: str) -> tuple[bytes, dict[str, str]]:
        headers = {"Content-Type": self.content_type}
        sig = signature(self, received_url)
        if sig is not None:
            headers["X-Twilio-Signature"] = sig
        return (self.body if self.body is not None else urlencode(self.fields).encode()), headers

    def channel_for(self, channel: Channel[Any]) -> Channel[Any]:
        return channel


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
        "signed over the url as received (a host the client chose), not the public one",
        sms(),
        403,
        "wrong_signature",
        signed="received",
        published=0,
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
    Case("whatsapp address on the sms channel (a configuration error)", whatsapp(), 422, "invalid_message"),
    # Not a message at all: acknowledged with empty TwiML, nothing published.
    Case("missing MessageSid is not a message", sms(MessageSid="", SmsMessageSid="", SmsSid=""), 200,
         published=0),
    Case("missing From is not a message", without(sms(), "From"), 200, published=0),
    # What can be read is kept, what cannot is marked (issue 20).
    Case(
        "whatsapp From without the whatsapp: prefix is the number",
        whatsapp(From=PERSON),
        200,
        channel=WHATSAPP_CHANNEL,
        expect={"text": "Hallo"},
        twiml="<Message>",
    ),
    Case(
        "media counted but missing, and on a relative url: the text is kept",
        sms(NumMedia="2", MediaUrl0="/2010-04-01/Media/ME1", MediaContentType0="image/png"),
        200,
        expect={"text": "Ik wil iets vragen\n[2 bijlagen die niet te openen waren]", "attachments": []},
    ),
    Case(
        "media without a content type is an opaque attachment",
        sms(**{**media("image/jpeg", "audio/ogg"), "MediaContentType1": "", "Body": "kijk"}),
        200,
        expect={"text": "kijk", "attachments": [{"content_type": "image/jpeg", "size": None},
                                                 {"content_type": "application/octet-stream", "size": None}]},
    ),
    Case(
        "media without its MediaContentType field at all (an older shape)",
        without(sms(**media("image/png")), "MediaContentType0"),
        200,
        expect={"text": "", "attachments": [{"content_type": "application/octet-stream", "size": None}]},
    ),
    Case(
        "media over http on another host cannot be opened",
        sms(**{**media("image/png"), "MediaUrl0": "http://x.example/1"}),
        200,
        expect={"text": "[bijlage die niet te openen was]", "attachments": []},
    ),
    Case(
        "media sent without NumMedia (entries found by their names)",
        without(sms(**media("image/png")), "NumMedia"),
        200,
        expect={"attachments": [{"content_type": "image/png", "size": None}]},
    ),
    Case(
        "NumMedia that is a digit but not an ascii one",
        sms(NumMedia="\u00b2"),
        200,
        expect={"text": "Ik wil iets vragen", "attachments": []},
    ),
    Case(
        "media type with parameters is the type",
        sms(**media("audio/ogg; codecs=opus")),
        200,
        expect={"attachments": [{"content_type": "audio/ogg", "size": None}]},
    ),
    Case(
        "NumMedia that is not a number",
        sms(NumMedia="twee"),
        200,
        expect={"text": "Ik wil iets vragen", "attachments": []},
    ),
    Case(
        "whatsapp reply button, Body the same as ButtonText",
        whatsapp(MessageType="button", Body="Ja, bel me", ButtonText="Ja, bel me", ButtonPayload="bel-ja"),
        200,
        channel=WHATSAPP_CHANNEL,
        expect={"text": "Ja, bel me"},
        twiml="<Message>",
    ),
    Case(
        "whatsapp reply button with an empty Body",
        whatsapp(MessageType="button", Body="", ButtonText="Ja, bel me", ButtonPayload="bel-ja"),
        200,
        channel=WHATSAPP_CHANNEL,
        expect={"text": "[knop: Ja, bel me]"},
        twiml="<Message>",
    ),
    Case(
        "whatsapp reply button whose Body differs (the payload stays out)",
        whatsapp(MessageType="button", Body="Ja", ButtonText="Ja, bel me", ButtonPayload="bel-ja-id-7"),
        200,
        channel=WHATSAPP_CHANNEL,
        expect={"text": "Ja\n[knop: Ja, bel me]"},
        twiml="<Message>",
    ),
    Case(
        "whatsapp reply button, older shape without MessageType",
        without(whatsapp(Body="", ButtonText="Nee", ButtonPayload="x"), "MessageType"),
        200,
        channel=WHATSAPP_CHANNEL,
        expect={"text": "[knop: Nee]"},
        twiml="<Message>",
    ),
    Case(
        "whatsapp shared location",
        whatsapp(MessageType="location", Body="", Latitude="51.4416", Longitude="5.4697"),
        200,
        channel=WHATSAPP_CHANNEL,
        expect={"text": "[locatie gedeeld: 51.4416, 5.4697]", "attachments": []},
        twiml="<Message>",
    ),
    Case(
        "whatsapp shared place, with label and address",
        whatsapp(MessageType="location", Body="", Latitude="51.44", Longitude="5.47", Label="Station",
                 Address="Stationsplein 1, Eindhoven"),
        200,
        channel=WHATSAPP_CHANNEL,
        expect={"text": "[locatie gedeeld: 51.44, 5.47]\nStation, Stationsplein 1, Eindhoven"},
        twiml="<Message>",
    ),
    Case(
        "whatsapp location, older shape without MessageType and without a Body field",
        without(whatsapp(Latitude="51.44", Longitude="5.47"), "MessageType", "Body"),
        200,
        channel=WHATSAPP_CHANNEL,
        expect={"text": "[locatie gedeeld: 51.44, 5.47]"},
        twiml="<Message>",
    ),
    Case(
        "whatsapp location that cannot be read keeps the address",
        whatsapp(MessageType="location", Body="", Latitude="noord", Longitude="", Address="Markt 1"),
        200,
        channel=WHATSAPP_CHANNEL,
        expect={"text": "[locatie gedeeld, maar niet te lezen]\nMarkt 1"},
        twiml="<Message>",
    ),
    Case(
        "whatsapp message of a type we do not know",
        whatsapp(MessageType="interactive", Body=""),
        200,
        channel=WHATSAPP_CHANNEL,
        expect={"text": "[onbekend bericht van WhatsApp]", "attachments": []},
        twiml="<Message>",
    ),
    Case("empty sms", sms(Body=""), 200, expect={"text": "[onbekend bericht]", "attachments": []}),
    Case(
        "text over the envelope's limit is cut, not refused",
        sms(Body="x" * 5000),
        200,
        expect={"text": "x" * (4096 - len("[bericht ingekort]") - 1) + " [bericht ingekort]"},
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
    return str(RequestValidator(TWILIO_AUTH_TOKEN).compute_signature(url, case.fields))
