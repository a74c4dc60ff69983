"""The telegram channel, one row per raw update exactly as Telegram posts it,
through the whole ingest path into the real RabbitMQ: the expected status and
envelope."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest

from gateway.domain.envelope import Envelope, envelope_id
from gateway.support.keys import Keyring
from tests.conftest import (
    TELEGRAM_BOT_TOKEN,
    TELEGRAM_CHANNEL,
    TELEGRAM_SECRET,
    TEST_SECRET,
    drain,
    inbound_queues,
    queue_depths,
)

pytestmark = pytest.mark.broker

CHAT_ID = 5550001234
BOT_ID = TELEGRAM_BOT_TOKEN.split(":")[0]
PERSON = {"id": CHAT_ID, "is_bot": False, "first_name": "Anna", "username": "anna_dv", "language_code": "nl"}
CHAT = {"id": CHAT_ID, "first_name": "Anna", "username": "anna_dv", "type": "private"}


def message(update_id: int = 100001, key: str = "message", **content: object) -> bytes:
    body = {"message_id": 42, "from": PERSON, "chat": CHAT, "date": 1763900000, **content}
    if key == "edited_message":
        body["edit_date"] = 1763900060
    return json.dumps({"update_id": update_id, key: body}, ensure_ascii=False).encode()


def photo_sizes() -> list[dict[str, object]]:
    """Telegram sends every size it made of a photo, not in size order."""
    sizes = [("small", 90, 67, 1200), ("large", 1280, 960, 98000), ("mid", 320, 240, 14000)]
    return [
        {"file_id": f"AgACAgQ-{name}", "file_unique_id": name, "width": w, "height": h, "file_size": size}
        for name, w, h, size in sizes
    ]


@dataclass
class Case:
    name: str
    body: bytes
    status: int
    error: str | None = None
    secret: str | None = TELEGRAM_SECRET
    content_type: str = "application/json"
    channel: str = TELEGRAM_CHANNEL
    repeat: int = 1
    published: int = 1
    expect: dict[str, object] = field(default_factory=dict)


CASES = [
    Case(
        "text",
        message(text="Ik wil iets vragen"),
        200,
        expect={"text": "Ik wil iets vragen", "edited": False},
    ),
    Case(
        "emoji and non-latin text",
        message(text="Help 🙏 помогите مساعدة 救命"),
        200,
        expect={"text": "Help 🙏 помогите مساعدة 救命"},
    ),
    Case(
        "photo with caption: the largest size",
        message(photo=photo_sizes(), caption="kijk"),
        200,
        expect={
            "text": "kijk",
            "attachments": [
                {"content_type": "image/jpeg", "url": "telegram:file/AgACAgQ-large", "size": 98000}
            ],
        },
    ),
    Case(
        "document",
        message(
            document={
                "file_id": "BQACAgQ-doc",
                "file_unique_id": "d1",
                "file_name": "brief.pdf",
                "mime_type": "application/pdf",
                "file_size": 52000,
            }
        ),
        200,
        expect={
            "attachments": [
                {"content_type": "application/pdf", "url": "telegram:file/BQACAgQ-doc", "size": 52000}
            ]
        },
    ),
    Case(
        "voice",
        message(
            voice={
                "file_id": "AwACAgQ-voice",
                "file_unique_id": "v1",
                "duration": 7,
                "mime_type": "audio/ogg",
                "file_size": 21000,
            }
        ),
        200,
        expect={
            "text": "",
            "attachments": [
                {"content_type": "audio/ogg", "url": "telegram:file/AwACAgQ-voice", "size": 21000}
            ],
        },
    ),
    Case(
        "/start",
        message(text="/start", entities=[{"type": "bot_command", "offset": 0, "length": 6}]),
        200,
        expect={"text": "/start"},
    ),
    Case(
        "edited message",
        message(update_id=100002, key="edited_message", text="Ik bedoelde iets anders"),
        200,
        expect={"text": "Ik bedoelde iets anders", "edited": True},
    ),
    Case("a redelivered update is one message", message(text="nog eens"), 200, repeat=3),
    Case(
        "member joined: acknowledged, nothing published",
        json.dumps(
            {
                "update_id": 100003,
                "my_chat_member": {
                    "chat": CHAT,
                    "from": PERSON,
                    "date": 1763900000,
                    "old_chat_member": {
                        "user": {"id": 1, "is_bot": True, "first_name": "bot"},
                        "status": "left",
                    },
                    "new_chat_member": {
                        "user": {"id": 1, "is_bot": True, "first_name": "bot"},
                        "status": "member",
                    },
                },
            }
        ).encode(),
        200,
        published=0,
    ),
    Case(
        "poll: acknowledged, nothing published",
        json.dumps(
            {
                "update_id": 100004,
                "poll": {
                    "id": "p1",
                    "question": "?",
                    "options": [{"text": "a", "voter_count": 0}],
                    "total_voter_count": 0,
                    "is_closed": False,
                    "is_anonymous": True,
                    "type": "regular",
                    "allows_multiple_answers": False,
                },
            }
        ).encode(),
        200,
        published=0,
    ),
    Case("missing secret token", message(text="x"), 403, "missing_secret_token", secret=None),
    Case("wrong secret token", message(text="x"), 403, "wrong_secret_token", secret="not-the-secret"),
    Case("truncated body", message(text="x")[:-9], 400, "malformed_json"),
    Case(
        "body that is not utf-8", b'{"update_id": 1, "message": {"text": "caf\xe9"}}', 400, "invalid_encoding"
    ),
    Case(
        "form instead of json",
        b"update_id=1",
        415,
        "unsupported_content_type",
        content_type="application/x-www-form-urlencoded",
    ),
    Case("no update_id", json.dumps({"message": {"text": "x"}}).encode(), 422, "invalid_update"),
    Case(
        "a chat that is not an object",
        message(text="x").replace(b'"chat": {', b'"chat": 5, "x": {'),
        422,
        "invalid_update",
    ),
    Case("oversized body", message(text="x" * 70_000), 413, "body_too_large"),
    Case("unknown channel id", message(text="x"), 404, "unknown_channel", channel="telegram-nergens"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_telegram_update(rabbit_service, vhost, case: Case) -> None:
    service, client = rabbit_service
    queues = inbound_queues(service.config)
    headers = {"Content-Type": case.content_type}
    if case.secret is not None:
        headers["X-Telegram-Bot-Api-Secret-Token"] = case.secret
    for _ in range(case.repeat):
        response = await client.post(f"/channels/{case.channel}/webhook", data=case.body, headers=headers)
        text = await response.text()
        assert response.status == case.status, text
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
