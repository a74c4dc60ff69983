"""The telegram channel, one row per raw update exactly as Telegram posts it,
through the whole ingest path into the real RabbitMQ: the expected status and
envelope."""

from __future__ import annotations

import contextlib
import io
import json
from typing import Any

import pytest

from adapters.telegram.cases import (
    BOT_ID,
    CASES,
    CHAT_ID,
    TELEGRAM_CHANNEL,
    TELEGRAM_SECRET,
    Case,
    message,
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
async def test_telegram_update(rabbit_service, vhost, case: Case) -> None:
    service, client = rabbit_service
    queues = inbound_queues(service.config)
    headers = {"Content-Type": case.content_type}
    if case.secret is not None:
        headers["X-Telegram-Bot-Api-Secret-Token"] = case.secret
    logs = io.StringIO()
    configure_logging("DEBUG", stream=logs)
    try:
        for _ in range(case.repeat):
            response = await client.post(f"/channels/{case.channel}/webhook", data=case.body, headers=headers)
            text = await response.text()
            assert response.status == case.status, text
    finally:
        configure_logging("INFO")
    logged = logs.getvalue()
    if case.published:  # a published message is logged: an empty log would prove nothing
        assert logged, "the service logged nothing: the check would prove nothing"
    leaked = [p for p in private(case) if p in logged]
    assert not leaked, f"a text, place or contact reached the logs: {leaked[:3]}"
    assert str(CHAT_ID) not in text and "anna" not in text.lower(), "the answer echoed the person"
    if case.status != 200:
        assert json.loads(text)["error"] == case.error
        assert sum((await queue_depths(vhost[1], queues)).values()) == 0, "a refused update was published"
        return
    messages = await drain(vhost[1], queues)
    assert len(messages) == case.published
    if not case.published:
        return
    update_id = json.loads(case.body)["update_id"]
    envelope = Envelope.from_json(messages[0].body)
    assert envelope.id == envelope_id(TELEGRAM_CHANNEL, f"{BOT_ID}:{update_id}")
    assert envelope.channel.kind == "telegram"
    keyring = Keyring(TEST_SECRET)
    assert envelope.sender == keyring.pseudonym(str(CHAT_ID))
    assert keyring.unseal(envelope.reply_handle)["address"] == str(CHAT_ID)
    raw = messages[0].body.decode()
    assert str(CHAT_ID) not in raw and "anna" not in raw.lower(), "the chat id or name travelled in clear"
    data = json.loads(envelope.to_json())
    for key, value in case.expect.items():
        assert data[key] == value


# What a person sent that must never reach the logs: texts, places, contacts (issue 20).
PRIVATE_KEYS = {"text", "caption", "phone_number", "first_name", "last_name", "title", "address", "question"}


def private(case: Case) -> set[str]:
    found = {str(CHAT_ID), "Anna"}
    expected = case.expect.get("text")
    if isinstance(expected, str) and len(expected) >= 8:
        found.add(expected)  # the text the counsellor sees, marks and all

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                if key in PRIVATE_KEYS and isinstance(inner, str) and len(inner) >= 4:
                    found.add(inner)
                elif key in ("latitude", "longitude") and len(str(inner)) >= 7:
                    found.add(str(inner))  # short ones (5.47) would match any timing
                else:
                    walk(inner)
        elif isinstance(value, list):
            for inner in value:
                walk(inner)

    with contextlib.suppress(ValueError):  # the rows of bodies that are not JSON
        walk(json.loads(case.body))
    return found


async def test_an_edit_stays_in_the_conversation_of_the_original(rabbit_service, vhost) -> None:
    service, client = rabbit_service
    headers = {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET}
    for body in (message(200001, text="eerst"), message(200002, key="edited_message", text="daarna")):
        response = await client.post(f"/channels/{TELEGRAM_CHANNEL}/webhook", data=body, headers=headers)
        assert response.status == 200
    envelopes = [Envelope.from_json(m.body) for m in await drain(vhost[1], inbound_queues(service.config))]
    assert [e.edited for e in envelopes] == [False, True]
    assert envelopes[0].conversation_id == envelopes[1].conversation_id
    assert envelopes[0].id != envelopes[1].id
