"""Every kind's table of raw provider requests (adapters/<kind>/cases.py), run against
the kind's pure verify and parse (adapters.testing): no broker, no store, no HTTP
server. The same rows run end to end against the real RabbitMQ in test_<kind>.py;
rows about what only the HTTP layer or ingest decides (an unknown channel id, a body
over the size limit, a retried request) are left to those."""

from __future__ import annotations

import json

import pytest

from adapters import registry
from adapters.testing import Row, raw_request, run_webhook, tables
from gateway.config.models import Config
from gateway.roles.ingest import build_envelope
from gateway.support.keys import Keyring
from tests.conftest import TEST_SECRET

HTTP_ONLY = {"unknown_channel", "body_too_large"}
RECEIVED_URL = "http://127.0.0.1:8080/channels/{channel}/webhook"
ROWS = [
    pytest.param(row, id=f"{package.rsplit('.', 1)[-1]}: {row.name}")
    for package, cases in tables().items()
    for row in cases.CASES
    if row.error not in HTTP_ONLY and row.repeat == 1
]


def test_every_kind_with_a_webhook_has_a_table() -> None:
    packages = {type(k).__module__.rsplit(".", 1)[0] for k in registry.kinds().values() if k.takes_webhooks}
    assert packages <= set(tables()), packages - set(tables())


@pytest.mark.parametrize("row", ROWS)
def test_row(config: Config, row: Row) -> None:
    channel = row.channel_for(config.channels[row.channel])
    received = RECEIVED_URL.format(channel=row.channel)
    body, headers = row.raw(received)
    outcome = run_webhook(registry.kinds()[channel.kind], channel, raw_request(body, headers, received))
    assert (outcome.status, outcome.error) == (row.status, row.error)
    if row.error is not None:
        return
    assert len(outcome.messages) == row.published
    if not row.published:
        return
    envelope = build_envelope(channel, outcome.messages[0], Keyring(TEST_SECRET))
    data = json.loads(envelope.to_json())
    for key, value in row.expect.items():
        if key == "attachments" and isinstance(value, list) and value and "url" not in value[0]:
            # the row names some members of each attachment (a provider's URL varies)
            assert [{k: a[k] for k in value[0]} for a in data[key]] == value
        else:
            assert data[key] == value, key
    twiml = getattr(row, "twiml", None)
    if twiml is not None and outcome.accepted is not None:
        assert twiml in outcome.accepted.reply.body.decode()
