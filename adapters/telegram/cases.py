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


def update(update_id: int, body: dict[str, object], key: str = "message") -> bytes:
    """An update whose message is given whole (for the shapes `message` does not make)."""
    return json.dumps({"update_id": update_id, key: body}, ensure_ascii=False).encode()


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
            "text": "[foto] kijk",
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
            "text": "[document]",
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
            "text": "[spraakbericht]",
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
        "a chat that is not an object: no one to answer, acknowledged",
        message(text="x").replace(b'"chat": {', b'"chat": 5, "x": {'),
        200,
        published=0,
    ),
    Case("oversized body", message(text="x" * 70_000), 413, "body_too_large"),
    Case("unknown channel id", message(text="x"), 404, "unknown_channel", channel="telegram-nergens"),
]


# Issue 20: a message is never refused, nor published empty, for a part we cannot read.
# Each as Telegram sends it today and in the older shapes it has sent (Bot API changelog:
# file_unique_id since 4.5, Sticker.type since 6.2 (is_video 5.7), Location.horizontal_accuracy
# since 5.0, Venue.google_place_id since 5.0, Contact.vcard since 3.6).
LAT, LON = 51.441642, 5.469722
VOICE = {"file_id": "AwACAgQ-voice", "file_unique_id": "v1", "duration": 7, "mime_type": "audio/ogg"}
STICKER_TODAY = {
    "file_id": "CAACAgQ-sticker", "file_unique_id": "st1", "type": "regular", "width": 512, "height": 512,
    "is_animated": False, "is_video": False, "emoji": "😢", "set_name": "Feelings", "file_size": 18000,
}
STICKER_OLD = {"file_id": "CAACAgQ-sticker", "width": 512, "height": 512, "emoji": "😢", "file_size": 18000}
STICKER_FILE = [{"content_type": "image/webp", "url": "telegram:file/CAACAgQ-sticker", "size": 18000}]
OLD_LOCATION = {"longitude": 5.47, "latitude": 51.44}
VENUE_LOCATION = {"latitude": LAT, "longitude": LON}
VENUE = {
    "location": VENUE_LOCATION, "title": "Huisartsenpost Centrum", "address": "Stationsweg 12, Eindhoven",
}
VENUE_TEXT = f"[locatie gedeeld: Huisartsenpost Centrum, Stationsweg 12, Eindhoven: {LAT}, {LON}]"
PERSON_WITHOUT_IS_BOT = {"id": CHAT_ID, "first_name": "Anna"}
CHAT_WITHOUT_TYPE = {"id": CHAT_ID, "first_name": "Anna"}


def raw_message(**content: object) -> dict[str, object]:
    return {"message_id": 43, "from": PERSON, "chat": CHAT, "date": 1763900000, **content}


PARTS_WE_CANNOT_ALL_READ = [
    Case(
        "location, today's shape",
        message(100101, location={"latitude": LAT, "longitude": LON, "horizontal_accuracy": 12.5}),
        200,
        expect={"text": f"[locatie gedeeld: {LAT}, {LON}]", "attachments": []},
    ),
    Case(
        "location, older shape (before Bot API 5.0)",
        message(100102, location=OLD_LOCATION),
        200,
        expect={"text": "[locatie gedeeld: 51.44, 5.47]"},
    ),
    Case(
        "live location",
        message(100103, location={"latitude": LAT, "longitude": LON, "live_period": 900, "heading": 90}),
        200,
        expect={"text": f"[locatie gedeeld: {LAT}, {LON}]"},
    ),
    Case(
        "venue, today's shape (the location repeated beside it)",
        message(
            100104,
            location=VENUE_LOCATION,
            venue={**VENUE, "google_place_id": "ChIJ-x", "foursquare_id": "4b0-x", "foursquare_type": "a/b"},
        ),
        200,
        expect={"text": VENUE_TEXT},
    ),
    Case(
        "venue, older shape (no location beside it)",
        message(100105, venue=VENUE),
        200,
        expect={"text": VENUE_TEXT},
    ),
    Case(
        "shared contact, today's shape",
        message(
            100106,
            contact={
                "phone_number": "+31612345678", "first_name": "Bram", "last_name": "de Vries",
                "user_id": 5550009999, "vcard": "BEGIN:VCARD\nVERSION:3.0\nEND:VCARD",
            },
        ),
        200,
        expect={"text": "[contact gedeeld: Bram de Vries +31612345678]"},
    ),
    Case(
        "shared contact, older shape (no vcard, no user)",
        message(100107, contact={"phone_number": "0612345678", "first_name": "Bram"}),
        200,
        expect={"text": "[contact gedeeld: Bram 0612345678]"},
    ),
    Case(
        "sticker, today's shape: its emoji, and the file",
        message(100108, sticker=STICKER_TODAY),
        200,
        expect={"text": "[sticker 😢]", "attachments": STICKER_FILE},
    ),
    Case(
        "sticker, older shape (no file_unique_id, no type): read from the JSON itself",
        message(100109, sticker=STICKER_OLD),
        200,
        expect={"text": "[sticker 😢]", "attachments": STICKER_FILE},
    ),
    Case(
        "voice without caption and without file_unique_id",
        message(100110, voice={"file_id": "AwACAgQ-voice", "duration": 3}),
        200,
        expect={
            "text": "[spraakbericht]",
            "attachments": [
                {"content_type": "audio/ogg", "url": "telegram:file/AwACAgQ-voice", "size": None}
            ],
        },
    ),
    Case(
        "video with caption",
        message(
            100111,
            caption="dit gebeurde gisteren",
            video={
                "file_id": "BAACAgQ-video", "file_unique_id": "vi1", "width": 640, "height": 360,
                "duration": 12, "mime_type": "video/mp4", "file_size": 800000,
            },
        ),
        200,
        expect={
            "text": "[video] dit gebeurde gisteren",
            "attachments": [
                {"content_type": "video/mp4", "url": "telegram:file/BAACAgQ-video", "size": 800000}
            ],
        },
    ),
    Case(
        "video note",
        message(
            100112,
            video_note={"file_id": "DQACAgQ-note", "file_unique_id": "vn1", "length": 240, "duration": 5},
        ),
        200,
        expect={"text": "[videobericht]"},
    ),
    Case(
        "GIF: sent as animation and as document, one file",
        message(
            100113,
            animation={
                "file_id": "CgACAgQ-gif", "file_unique_id": "a1", "width": 240, "height": 240,
                "duration": 2, "mime_type": "video/mp4",
            },
            document={"file_id": "CgACAgQ-gif", "file_unique_id": "a1", "mime_type": "video/mp4"},
        ),
        200,
        expect={
            "text": "[animatie]",
            "attachments": [{"content_type": "video/mp4", "url": "telegram:file/CgACAgQ-gif", "size": None}],
        },
    ),
    Case("dice", message(100114, dice={"emoji": "🎲", "value": 4}), 200, expect={"text": "[dobbelsteen: 4]"}),
    Case(
        "a poll sent in the chat",
        message(
            100115,
            poll={
                "id": "p2", "question": "Ben je veilig?", "options": [{"text": "ja", "voter_count": 0}],
                "total_voter_count": 0, "is_closed": False, "is_anonymous": True, "type": "regular",
                "allows_multiple_answers": False,
            },
        ),
        200,
        expect={"text": "[peiling: Ben je veilig?]"},
    ),
    Case(
        "a kind of message newer than this gateway",
        message(100116, gift={"gift": {"id": "g1", "star_count": 10}, "owned_gift_id": "x"}),
        200,
        expect={"text": "[onbekend bericht van Telegram]", "attachments": []},
    ),
    Case(
        "a service message with nothing to read",
        message(100117, chat_background_set={"type": {"type": "fill"}}),
        200,
        expect={"text": "[onbekend bericht van Telegram]"},
    ),
    Case(
        "a User without is_bot: the text is kept",
        update(100118, raw_message(**{"from": PERSON_WITHOUT_IS_BOT}, text="Ik durf niet naar huis")),
        200,
        expect={"text": "Ik durf niet naar huis"},
    ),
    Case(
        "a chat without type: the text is kept",
        update(100119, raw_message(chat=CHAT_WITHOUT_TYPE, text="kun je me helpen")),
        200,
        expect={"text": "kun je me helpen"},
    ),
    Case(
        "photo sizes without file_unique_id (before Bot API 4.5)",
        message(
            100120,
            caption="mijn arm",
            photo=[{k: v for k, v in size.items() if k != "file_unique_id"} for size in photo_sizes()],
        ),
        200,
        expect={
            "text": "[foto] mijn arm",
            "attachments": [
                {"content_type": "image/jpeg", "url": "telegram:file/AgACAgQ-large", "size": 98000}
            ],
        },
    ),
    Case(
        "an edited location without is_bot: still an edit",
        update(
            100121,
            {
                **raw_message(**{"from": PERSON_WITHOUT_IS_BOT}, location=OLD_LOCATION),
                "edit_date": 1763900090,
            },
            key="edited_message",
        ),
        200,
        expect={"text": "[locatie gedeeld: 51.44, 5.47]", "edited": True},
    ),
    Case(
        "a date beyond the platform's clock: the text is kept",
        update(100122, {**raw_message(text="nu"), "date": 10**18}),
        200,
        expect={"text": "nu"},
    ),
    Case(
        "a voice message whose file cannot be read",
        message(100123, voice={"duration": 3}),
        200,
        expect={"text": "[spraakbericht, niet te openen]", "attachments": []},
    ),
    Case(
        "text of Telegram's full 4096 characters: kept whole",
        message(100124, text="a" * 4096),
        200,
        expect={"text": "a" * 4096},
    ),
    Case(
        "text beyond Telegram's limit: cut visibly, not refused",
        message(100125, text="b" * 5000),
        200,
        expect={"text": "b" * (4096 - len(" [bericht ingekort]")) + " [bericht ingekort]"},
    ),
    Case(
        "a message without a chat: no one to answer, acknowledged",
        update(100126, {"message_id": 44, "date": 1763900000, "text": "x"}),
        200,
        published=0,
    ),
    Case("a message that is not an object: acknowledged", update(100127, 5), 200, published=0),  # type: ignore[arg-type]
]
CASES.extend(PARTS_WE_CANNOT_ALL_READ)
