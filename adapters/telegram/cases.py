"""The telegram kind's table: raw updates exactly as Telegram posts them, each with the
status and envelope fields the gateway must give. Run against the pure verify/parse
(tests/adapters/test_tables.py) and end to end on RabbitMQ (tests/adapters/test_telegram_bot.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from gateway.config.models import Channel

TELEGRAM_CHANNEL = "telegram-amsterdam-amstelland"
TELEGRAM_BOT_TOKEN = "7000000001:AAH" + "b" * 32
TELEGRAM_SECRET = "telegram-secret_" + "s" * 16
# The credentials the example channel refers to, as the tests set them (never real ones).
TRIAL_ENV = {
    "GW_TELEGRAM_AMSTERDAM_AMSTELLAND_BOT_TOKEN": TELEGRAM_BOT_TOKEN,
    "GW_TELEGRAM_AMSTERDAM_AMSTELLAND_SECRET_TOKEN": TELEGRAM_SECRET,
}

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

    def raw(self, received_url: str) -> tuple[bytes, dict[str, str]]:
        headers = {"Content-Type": self.content_type}
        if self.secret is not None:
            headers["X-Telegram-Bot-Api-Secret-Token"] = self.secret
        return self.body, headers

    def channel_for(self, channel: Channel[Any]) -> Channel[Any]:
        return channel


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
