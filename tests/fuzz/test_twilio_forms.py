"""The sms and whatsapp kinds' property (issue 20): any form Twilio could send, built from
the shapes it sends today and has sent before (text, MMS, WhatsApp media, reply buttons,
locations, types we do not know), with fields removed or added at random and signed with
twilio's own RequestValidator, is either published with content the counsellor can see
(text or an attachment, never an empty message) or answered 2xx as "not a message";
never a 4xx. Runs against the pure verify and parse (adapters.testing), as the tables do."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator

from adapters import registry
from adapters.testing import raw_request, run_webhook
from adapters.twilio.cases import (
    FORM,
    PERSON,
    PUBLIC,
    SMS_CHANNEL,
    TWILIO_AUTH_TOKEN,
    WHATSAPP_CHANNEL,
    media,
    sms,
    whatsapp,
)
from gateway.config.models import Config
from gateway.roles.ingest import build_envelope
from gateway.support.keys import Keyring
from tests.conftest import TEST_SECRET

value = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
number_like = st.sampled_from(["0", "1", "2", "10", "-1", "", "twee", "99999", " 1", "\u00b2", "\u0661"])
media_url = st.sampled_from([
    "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/SM1/Media/ME1",
    "https://media.twiliocdn.com/AC1/abc", "/2010-04-01/Accounts/AC1/Messages/SM1/Media/ME1",
    "http://api.twilio.com/m/1", "", "not a url", "https://", "https://x.example/1", "ftp://x.example/1",
])  # fmt: skip
content_type = st.sampled_from(["image/jpeg", "audio/ogg", "application/pdf", "", "image", "IMAGE/PNG",
                                "text/html; charset=utf-8", "x" * 300])  # fmt: skip
coordinate = st.sampled_from(["51.4416", "5.4697", "-90", "180.5", "nan", "inf", "", "noord", "1e3", "0"])
# Fields Twilio sends (or has sent), with values it could plausibly put in them.
KNOWN: dict[str, st.SearchStrategy[str]] = {
    "Body": value, "NumMedia": number_like, "MediaUrl0": media_url, "MediaContentType0": content_type,
    "MediaUrl1": media_url, "MediaContentType1": content_type, "MediaUrl10": media_url,
    "MediaContentType7": content_type, "MessageType": st.sampled_from(
        ["text", "image", "audio", "video", "document", "location", "button", "interactive", "sticker",
         "reaction", "unsupported", ""]),
    "ButtonText": value, "ButtonPayload": value, "Latitude": coordinate, "Longitude": coordinate,
    "Address": value, "Label": value, "ProfileName": value, "WaId": st.just(PERSON[1:]),
    "NumSegments": number_like, "ReferralNumMedia": number_like, "Forwarded": st.just("true"),
    "OriginalRepliedMessageSid": st.just("SM" + "2e" * 16), "SmsStatus": st.just("received"),
}  # fmt: skip


@st.composite
def forms(draw: st.DrawFn) -> tuple[str, dict[str, str]]:
    on_whatsapp = draw(st.booleans())
    base: dict[str, str] = whatsapp() if on_whatsapp else sms()
    shape = draw(st.sampled_from(["text", "media", "button", "location", "other"]))
    if shape == "media":
        base.update(media(*draw(st.lists(content_type, min_size=1, max_size=12))))
    elif shape == "button" and on_whatsapp:
        base.update(MessageType="button", Body=draw(value), ButtonText=draw(value), ButtonPayload=draw(value))
    elif shape == "location" and on_whatsapp:
        base.update(MessageType="location", Body="", Latitude=draw(coordinate), Longitude=draw(coordinate))
    elif shape == "other":
        base.update(MessageType=draw(KNOWN["MessageType"]), Body="")
    removed = draw(st.sets(st.sampled_from(sorted(base))))
    form = {k: v for k, v in base.items() if k not in removed}
    for key in draw(st.lists(st.sampled_from(sorted(KNOWN)), max_size=8)):
        form[key] = draw(KNOWN[key])
    form.update(draw(st.dictionaries(st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefgh0123456789", min_size=1,
                                             max_size=12), value, max_size=4)))  # fmt: skip
    form.pop("MessageStatus", None)  # a status callback: tested by its own rows
    if "From" in form:  # the sender as Twilio gives it on that channel (with or without the prefix)
        prefixed = on_whatsapp and draw(st.booleans())
        form["From"] = ("whatsapp:" if prefixed else "") + PERSON
    return (WHATSAPP_CHANNEL if on_whatsapp else SMS_CHANNEL), form


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(drawn=forms())
def test_any_signed_twilio_form_is_published_with_content_or_acknowledged(
    config: Config, drawn: tuple[str, dict[str, str]]
) -> None:
    channel_id, form = drawn
    channel = config.channels[channel_id]
    url = PUBLIC.format(channel=channel_id)
    headers = {"Content-Type": FORM,
               "X-Twilio-Signature": RequestValidator(TWILIO_AUTH_TOKEN).compute_signature(url, form)}
    request = raw_request(urlencode(form).encode(), headers, url)
    outcome = run_webhook(registry.kinds()[channel.kind], channel, request)
    assert 200 <= outcome.status < 300 and outcome.error is None, (outcome.status, outcome.error)
    event("published" if outcome.messages else "acknowledged as not a message")
    for message in outcome.messages:
        data: dict[str, Any] = json.loads(build_envelope(channel, message, Keyring(TEST_SECRET)).to_json())
        assert data["text"].strip() or data["attachments"], "published with nothing the counsellor can see"


def test_the_property_sees_a_refusal(config: Config) -> None:
    """The property's check is not vacuous: a wrongly signed form is a 403."""
    channel = config.channels[SMS_CHANNEL]
    url = PUBLIC.format(channel=SMS_CHANNEL)
    headers = {"Content-Type": FORM, "X-Twilio-Signature": "AAAA"}
    request = raw_request(urlencode(sms()).encode(), headers, url)
    assert run_webhook(registry.kinds()["sms"], channel, request).status == 403
