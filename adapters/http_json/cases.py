"""The http-json kind's table: raw requests as a region's system sends them, each with the
status and envelope fields the gateway must give. Run against the pure verify/parse
(tests/adapters/test_tables.py) and end to end on RabbitMQ (tests/adapters/test_http_json.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from gateway.config.models import Channel

HTTP_JSON_CHANNEL = "http-json-zuidoost-brabant"
TOKEN_ENV = "GW_HTTP_JSON_ZUIDOOST_BRABANT_TOKEN"
TEST_TOKEN = "test-token-" + "x" * 24
# The credentials the example channel refers to, as the tests set them (never real ones).
TRIAL_ENV = {TOKEN_ENV: TEST_TOKEN}

JSON = "application/json"
GOOD = f"Bearer {TEST_TOKEN}"


@dataclass
class Case:
    name: str
    body: bytes
    status: int
    error: str | None = None
    headers: dict[str, str] = field(default_factory=lambda: {"Authorization": GOOD, "Content-Type": JSON})
    channel: str = HTTP_JSON_CHANNEL
    expect: dict[str, object] = field(default_factory=dict)
    repeat: int = 1
    published: int = 1

    def raw(self, received_url: str) -> tuple[bytes, dict[str, str]]:
        return self.body, self.headers

    def channel_for(self, channel: Channel[Any]) -> Channel[Any]:
        return channel


def body(**fields: object) -> bytes:
    return json.dumps(
        {"message_id": "ext-1", "sender": "+31612345678", "text": "hallo", **fields},
        ensure_ascii=False,
    ).encode()


CASES = [
    Case("plain text", body(text="Ik wil iets vragen"), 202, expect={"text": "Ik wil iets vragen"}),
    Case(
        "emoji and non-latin",
        body(text="Help 🙏 помогите مساعدة"),
        202,
        expect={"text": "Help 🙏 помогите مساعدة"},
    ),
    Case(
        "one attachment",
        body(
            text="",
            attachments=[{"content_type": "image/jpeg", "url": "https://files.example/1.jpg", "size": 2048}],
        ),
        202,
        expect={
            "attachments": [
                {"content_type": "image/jpeg", "url": "https://files.example/1.jpg", "size": 2048}
            ]
        },
    ),
    Case(
        "several attachments",
        body(
            attachments=[
                {"content_type": "image/png", "url": "ref:1"},
                {"content_type": "audio/ogg", "url": "ref:2"},
            ]
        ),
        202,
        expect={
            "attachments": [
                {"content_type": "image/png", "url": "ref:1", "size": None},
                {"content_type": "audio/ogg", "url": "ref:2", "size": None},
            ]
        },
    ),
    Case(
        "location hint",
        body(municipality="Eindhoven", postcode="5611 AB"),
        202,
        expect={"location_hint": {"municipality": "Eindhoven", "postcode": "5611"}},
    ),
    Case(
        "charset parameter",
        body(),
        202,
        headers={"Authorization": GOOD, "Content-Type": "application/json; charset=utf-8"},
    ),
    Case(
        "lowercase bearer scheme",
        body(),
        202,
        headers={"Authorization": f"bearer {TEST_TOKEN}", "Content-Type": JSON},
    ),
    Case("missing token", body(), 401, "missing_token", headers={"Content-Type": JSON}),
    Case(
        "wrong token",
        body(),
        401,
        "wrong_token",
        headers={"Authorization": "Bearer not-the-token", "Content-Type": JSON},
    ),
    Case(
        "basic auth instead of bearer",
        body(),
        401,
        "missing_token",
        headers={"Authorization": "Basic dXNlcjpwYXNz", "Content-Type": JSON},
    ),
    Case(
        "wrong content type",
        body(),
        415,
        "unsupported_content_type",
        headers={"Authorization": GOOD, "Content-Type": "text/plain"},
    ),
    Case(
        "form instead of json",
        b"message_id=1&text=hallo",
        415,
        "unsupported_content_type",
        headers={"Authorization": GOOD, "Content-Type": "application/x-www-form-urlencoded"},
    ),
    Case(
        "declared latin-1",
        body(),
        415,
        "unsupported_charset",
        headers={"Authorization": GOOD, "Content-Type": "application/json; charset=latin-1"},
    ),
    Case("malformed json", b'{"message_id": "1", "text": ', 400, "malformed_json"),
    Case("truncated body", body()[:-5], 400, "malformed_json"),
    Case(
        "invalid utf-8",
        b'{"message_id": "1", "sender": "a", "text": "\xff\xfe"}',
        400,
        "invalid_encoding",
    ),
    Case("empty body", b"", 400, "malformed_json"),
    Case("json array", b"[1, 2]", 422, "invalid_message"),
    Case(
        "missing message id",
        json.dumps({"sender": "a", "text": "x"}).encode(),
        422,
        "invalid_message",
    ),
    Case("no text and no attachment", body(text="   "), 422, "invalid_message"),
    Case("unknown field", body(phone="0612345678"), 422, "invalid_message"),
    Case("text too long", body(text="x" * 4097), 422, "invalid_message"),
    Case("bad postcode", body(postcode="0000"), 422, "invalid_message"),
    Case("oversized body", body(text="x" * 70_000), 413, "body_too_large"),
    Case("unknown channel", body(), 404, "unknown_channel", channel="no-such-channel"),
]
