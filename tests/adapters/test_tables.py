"""Every kind's table of raw provider requests, run against the kind's pure verify and
parse (adapters.testing): no broker, no store, no HTTP server. The same rows run end
to end against the real RabbitMQ in test_<kind>.py; rows about what only the HTTP
layer or ingest decides (an unknown channel id, a body over the size limit, a
retried request) are left to those."""

from __future__ import annotations

from dataclasses import replace
from urllib.parse import urlencode

import pytest

from adapters import registry
from adapters.testing import message_fields, raw_request, run_webhook
from gateway.config.models import Config
from tests.adapters import test_http_json, test_telegram_bot, test_twilio_messaging

HTTP_ONLY = {"unknown_channel", "body_too_large"}
RECEIVED_URL = "http://127.0.0.1:8080/channels/{channel}/webhook"


def _pure(cases: list) -> list:
    return [c for c in cases if c.error not in HTTP_ONLY and getattr(c, "repeat", 1) == 1]


def _check(outcome, case, expected_messages: int) -> None:
    assert outcome.status == case.status, (outcome.status, outcome.error)
    assert outcome.error == case.error
    if case.error is not None:
        return
    assert len(outcome.messages) == expected_messages
    if expected_messages:
        fields = message_fields(outcome.messages[0])
        for key, value in case.expect.items():
            if key == "attachments" and value and "url" not in value[0]:
                got = [{k: a[k] for k in value[0]} for a in fields[key]]  # the row names some members
                assert got == value
            else:
                assert fields[key] == value, key


@pytest.mark.parametrize("case", _pure(test_http_json.CASES), ids=lambda c: c.name)
def test_http_json_row(config: Config, case) -> None:
    channel = config.channels[case.channel]
    request = raw_request(case.body, case.headers, RECEIVED_URL.format(channel=case.channel))
    _check(run_webhook(registry.kinds()["http-json"], channel, request), case, 1)


@pytest.mark.parametrize("case", _pure(test_telegram_bot.CASES), ids=lambda c: c.name)
def test_telegram_row(config: Config, case) -> None:
    channel = config.channels[case.channel]
    headers = {"Content-Type": case.content_type}
    if case.secret is not None:
        headers["X-Telegram-Bot-Api-Secret-Token"] = case.secret
    request = raw_request(case.body, headers, RECEIVED_URL.format(channel=case.channel))
    _check(run_webhook(registry.kinds()["telegram"], channel, request), case, case.published)


@pytest.mark.parametrize("case", _pure(test_twilio_messaging.CASES), ids=lambda c: c.name)
def test_twilio_row(config: Config, case) -> None:
    channel = config.channels[case.channel]
    if not case.public_url_configured:
        channel = replace(channel, settings=channel.settings.model_copy(update={"public_url": None}))
    received = RECEIVED_URL.format(channel=case.channel)
    headers = {"Content-Type": case.content_type}
    signature = test_twilio_messaging.signature(case, received)
    if signature is not None:
        headers["X-Twilio-Signature"] = signature
    body = case.body if case.body is not None else urlencode(case.fields).encode()
    outcome = run_webhook(registry.kinds()[channel.kind], channel, raw_request(body, headers, received))
    _check(outcome, case, case.published)
    if outcome.accepted is not None:
        assert case.twiml in outcome.accepted.reply.body.decode()
