"""A property of the telegram kind (issue 20): any update Telegram could send, built from
the shapes it sends (adapters/telegram/cases.py) with fields removed or added at random at
any depth, signed with the right secret token, is either published with non-empty content
or answered 2xx as "not a message" (no message, no chat to answer): never a 4xx, never an
empty envelope, never a crash. Against the pure verify and parse, and the envelope built
from what it gives, as ingest builds it.

Examples: GATEWAY_FUZZ_SCALE scales them (as tests/fuzz/test_entry_points.py); seeded by
GATEWAY_FUZZ_SEED (default 2026), so a run is reproducible."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from adapters import registry
from adapters.telegram import cases
from adapters.testing import raw_request, run_webhook
from gateway.config.models import Config
from gateway.roles.ingest import build_envelope
from gateway.support.keys import Keyring
from tests.conftest import TEST_SECRET

SCALE = float(os.environ.get("GATEWAY_FUZZ_SCALE", "1"))
SEED = int(os.environ.get("GATEWAY_FUZZ_SEED", "2026"))
EXAMPLES = max(10, int(600 * SCALE))
URL = f"http://127.0.0.1:8080/channels/{cases.TELEGRAM_CHANNEL}/webhook"
HEADERS = {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": cases.TELEGRAM_SECRET}


def _shapes() -> list[dict[str, Any]]:
    """The message of every row of the table that is one, as Telegram sent it."""
    found = []
    for row in cases.CASES:
        try:
            data = json.loads(row.body)
        except ValueError:
            continue
        if not isinstance(data, dict) or type(data.get("update_id")) is not int:
            continue
        for key in ("message", "edited_message"):
            if isinstance(data.get(key), dict):
                found.append(data[key])
    return found


SHAPES = _shapes()
# Names Telegram uses, so that an added field is often one the library reads.
NAMES = st.sampled_from(
    [
        "text", "caption", "chat", "from", "id", "is_bot", "type", "first_name", "date", "photo",
        "file_id", "file_unique_id", "file_size", "width", "height", "location", "latitude",
        "longitude", "venue", "title", "address", "contact", "phone_number", "sticker", "emoji",
        "voice", "video", "document", "animation", "dice", "value", "poll", "question", "entities",
        "reply_to_message", "forward_origin", "edit_date", "message_id", "mime_type",
    ]
) | st.text(max_size=12)
LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
VALUES = st.recursive(
    LEAVES,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(NAMES, inner, max_size=3),
    max_leaves=10,
)


@st.composite
def mutated(draw: st.DrawFn, value: Any) -> Any:
    """`value` with, in each object, some fields dropped, some replaced, some added."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, inner in value.items():
            fate = draw(st.integers(0, 11))
            if fate == 0:
                continue  # removed
            out[key] = draw(VALUES) if fate == 1 else draw(mutated(inner))
        for _ in range(draw(st.integers(0, 2))):
            out[draw(NAMES)] = draw(VALUES)
        return out
    if isinstance(value, list):
        return [draw(mutated(inner)) for inner in value if draw(st.integers(0, 7))]
    return value


@st.composite
def updates(draw: st.DrawFn) -> dict[str, Any]:
    key = draw(st.sampled_from(["message", "edited_message"]))
    shape = draw(st.sampled_from(SHAPES))
    update: dict[str, Any] = {"update_id": draw(st.integers(0, 2**31)), key: draw(mutated(shape))}
    for _ in range(draw(st.integers(0, 1))):
        name = draw(NAMES)
        if name != "update_id":
            update[name] = draw(VALUES)
    return update


def _routable(message: Any) -> bool:
    """A message with a chat to answer: it must be published."""
    chat = message.get("chat") if isinstance(message, dict) else None
    chat_id = chat.get("id") if isinstance(chat, dict) else None
    return isinstance(chat_id, int) and not isinstance(chat_id, bool)


@seed(SEED)
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(update=updates())
def test_any_signed_update_is_published_with_content_or_acknowledged(config: Config, update: dict) -> None:
    channel = config.channels[cases.TELEGRAM_CHANNEL]
    body = json.dumps(update, ensure_ascii=False).encode()
    outcome = run_webhook(registry.kinds()["telegram"], channel, raw_request(body, HEADERS, URL))
    assert outcome.error is None and 200 <= outcome.status < 300, (outcome.status, outcome.error)
    key = "message" if isinstance(update.get("message"), dict) else "edited_message"
    message = update.get(key)
    if isinstance(message, dict) and _routable(message):
        assert len(outcome.messages) == 1, "a message with a chat to answer was not published"
    assert len(outcome.messages) <= 1
    for inbound in outcome.messages:
        assert inbound.text.strip(), "published with empty text"
        assert inbound.edited == (key == "edited_message" and not isinstance(update.get("message"), dict))
        envelope = build_envelope(channel, inbound, Keyring(TEST_SECRET))
        assert json.loads(envelope.to_json())["text"] == inbound.text


@pytest.mark.parametrize("secret", [None, "not-the-secret"])
def test_without_the_right_secret_token_every_update_is_refused(config: Config, secret: str | None) -> None:
    channel = config.channels[cases.TELEGRAM_CHANNEL]
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret
    for shape in SHAPES:
        body = json.dumps({"update_id": 1, "message": shape}).encode()
        outcome = run_webhook(registry.kinds()["telegram"], channel, raw_request(body, headers, URL))
        assert outcome.status == 403 and not outcome.messages
