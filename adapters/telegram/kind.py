"""`telegram`: a Telegram bot, both ways.

Inbound: Telegram POSTs one JSON update to /channels/{id}/webhook with the
secret given at `setWebhook` in `X-Telegram-Bot-Api-Secret-Token` (compared in
constant time). The update is read with python-telegram-bot's
`Update.de_json`; when that fails (a nested object lacks a field the library
requires, as older and newer Bot API shapes do), the message is read from the
JSON itself: a signed message is never refused for a part we cannot read. Text,
captions, media, locations, venues, contacts, stickers, `/start` and edited
messages become envelopes whose text is never empty: what is not text is marked
in Dutch ("[locatie gedeeld: 51.44, 5.47]", "[sticker]", "[onbekend bericht van
Telegram]"); an edit is a new message in the same conversation marked `edited`.
Updates without a message or without a chat (a member joined, a poll) are
answered 200 and ignored. The envelope id derives from the bot id and
`update_id`, so a redelivered update is the same message.
Media travel as references `telegram:file/<file_id>` (fetched with getFile).

Outbound: python-telegram-bot's `Bot`, with `api_base_url` configurable so tests
talk to a local fake. `gateway telegram set-webhook CHANNEL_ID` registers the
webhook (`public_url` and the secret) with Telegram.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import telegram
from pydantic import Field
from telegram.error import (
    BadRequest,
    ChatMigrated,
    EndPointNotFound,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.request import HTTPXRequest
from yarl import URL

from adapters.base import ChannelKind
from adapters.registry import register
from gateway.config.models import Channel, KindSettings, SecretRef
from gateway.domain.envelope import MAX_ATTACHMENTS, MAX_TEXT_CHARS
from gateway.domain.messages import (
    Accepted,
    InboundAttachment,
    InboundMessage,
    MediaSource,
    MediaUnavailable,
    Outgoing,
    Rejected,
    Reply,
    SendFailed,
    WebhookRequest,
)
from gateway.support.keys import same_secret

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name
ALLOWED_UPDATES = ("message", "edited_message")
FILE_PREFIX = "telegram:file/"  # an attachment's URL in the envelope: the file_id, fetched via getFile
_PERMANENT: tuple[tuple[type[TelegramError], str], ...] = (
    (ChatMigrated, "telegram-chat-migrated"),
    (BadRequest, "telegram-400"),
    (InvalidToken, "telegram-401"),
    (Forbidden, "telegram-403"),
    (EndPointNotFound, "telegram-404"),
)


class TelegramSettings(KindSettings):
    bot_token: SecretRef
    secret_token: SecretRef
    public_url: str | None = Field(
        default=None, pattern=r"^https://", description="The webhook URL given to setWebhook"
    )
    api_base_url: str = Field(default="https://api.telegram.org", pattern=r"^https?://")


def bot_id(channel: Channel[TelegramSettings]) -> str:
    """The numeric bot id: the part of the token before the colon."""
    return channel.secrets["bot_token"].split(":", 1)[0]


@register
class TelegramBot(ChannelKind[TelegramSettings]):
    name = "telegram"
    label = "Telegram"
    settings_model = TelegramSettings
    # python-telegram-bot logs request parameters, httpx URLs that hold the bot token.
    quiet_loggers = ("telegram", "httpx", "httpcore")
    sensitive_log_keys = frozenset({"chat_id", "username"})

    def __init__(self) -> None:
        self._bots: dict[tuple[str, ...], telegram.Bot] = {}

    # inbound

    def verify(self, channel: Channel[TelegramSettings], request: WebhookRequest) -> None:
        presented = request.headers.get(SECRET_HEADER)
        if not presented:
            raise Rejected(403, "missing_secret_token", f"{SECRET_HEADER} is required")
        if not same_secret(presented, channel.secrets["secret_token"]):
            raise Rejected(403, "wrong_secret_token", f"{SECRET_HEADER} does not match")

    def parse(self, channel: Channel[TelegramSettings], request: WebhookRequest) -> Accepted:
        data = request.json()
        if not isinstance(data, dict) or type(data.get("update_id")) is not int:
            raise Rejected(422, "invalid_update", "an update is an object with an integer update_id")
        ok = Reply(status=200)
        key = next((k for k in ALLOWED_UPDATES if isinstance(data.get(k), dict)), None)
        if key is None:
            # Not a message (a member joined, a poll...): acknowledged and ignored, without
            # parsing, so a kind of update newer than this library is not refused either.
            return Accepted((), ok)
        message: Any
        try:
            update = telegram.Update.de_json(data, None)
            message = update.message or update.edited_message
        except Exception:
            # A nested object lacks a field the library requires (a User without is_bot, a
            # file without file_unique_id...) or holds a value it cannot take (a date beyond
            # the platform's clock): the message is read from the JSON itself, not refused.
            message = None
        if message is None:
            message = _Raw(data[key])
        chat_id = _chat_id(message)
        if chat_id is None:
            return Accepted((), ok)  # no chat to answer: not a message we can route
        attachments = _attachments(message)[:MAX_ATTACHMENTS]
        inbound = InboundMessage(
            provider_message_id=f"{bot_id(channel)}:{data['update_id']}",
            address=chat_id,
            text=_text(message, bool(attachments)),
            attachments=attachments,
            edited=key == "edited_message",
        )
        return Accepted((inbound,), ok)

    # outbound

    def bot(self, channel: Channel[TelegramSettings]) -> telegram.Bot:
        base = channel.settings.api_base_url.rstrip("/")
        key = (channel.id, channel.secrets["bot_token"], base)
        if key not in self._bots:
            self._bots[key] = telegram.Bot(
                channel.secrets["bot_token"],
                base_url=f"{base}/bot",
                base_file_url=f"{base}/file/bot",
                request=HTTPXRequest(connection_pool_size=32),
            )
        return self._bots[key]

    async def send(self, channel: Channel[TelegramSettings], outgoing: Outgoing) -> str:
        try:
            sent = await self.bot(channel).send_message(chat_id=int(outgoing.address), text=outgoing.text)
        except RetryAfter as exc:
            wait = exc.retry_after
            seconds = wait.total_seconds() if isinstance(wait, timedelta) else float(wait)
            raise SendFailed("telegram-429", permanent=False, retry_after=seconds) from None
        except TimedOut:
            raise SendFailed("timeout", permanent=False) from None
        except TelegramError as exc:
            for kind, reason in _PERMANENT:
                if isinstance(exc, kind):
                    raise SendFailed(reason, permanent=True) from None
            if isinstance(exc, NetworkError):  # 5xx and connection errors
                raise SendFailed("telegram-network", permanent=False) from None
            raise SendFailed("telegram-error", permanent=True) from None
        return str(sent.message_id)

    async def media(self, channel: Channel[TelegramSettings], url: str) -> MediaSource:
        """`getFile` says where the file is; it is fetched from the Bot API's own host."""
        if not url.startswith(FILE_PREFIX):
            raise MediaUnavailable("not_a_telegram_file")
        try:
            found = await self.bot(channel).get_file(url.removeprefix(FILE_PREFIX))
        except TimedOut:
            raise MediaUnavailable("timeout", permanent=False) from None
        except TelegramError as exc:
            retry = isinstance(exc, (RetryAfter, NetworkError)) and not isinstance(exc, BadRequest)
            raise MediaUnavailable("telegram_get_file", permanent=not retry) from None
        if not found.file_path:
            raise MediaUnavailable("telegram_no_file_path")
        host = (URL(channel.settings.api_base_url).host or "").lower()
        return MediaSource(found.file_path, frozenset({host}), size=found.file_size)

    async def set_webhook(self, channel: Channel[TelegramSettings]) -> bool:
        url = channel.settings.public_url
        if url is None:
            raise ValueError(f"{channel.source.name}: settings.public_url is required for set-webhook")
        return await self.bot(channel).set_webhook(
            url=url, secret_token=channel.secrets["secret_token"], allowed_updates=list(ALLOWED_UPDATES)
        )

    def add_commands(self, commands: Any) -> None:
        from adapters.telegram.cli import add_commands

        add_commands(commands)

    async def close(self) -> None:
        bots, self._bots = self._bots, {}
        for bot in bots.values():
            await bot.shutdown()


class _Raw:
    """A message's JSON read like the library's objects, for an update the library could
    not read: a missing field is None, a nested object is another `_Raw`."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def __getattr__(self, name: str) -> Any:
        return _raw(self._data.get(name))


def _raw(value: Any) -> Any:
    if isinstance(value, dict):
        return _Raw(value)
    if isinstance(value, list):
        return [_raw(item) for item in value]
    return value


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _s(obj: Any, name: str) -> str | None:
    return _str(getattr(obj, name, None))


def _n(obj: Any, name: str) -> int | float | None:
    return _number(getattr(obj, name, None))


def _number(value: Any) -> int | float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:  # NaN
        return None
    return value


def _chat_id(message: Any) -> str | None:
    chat = getattr(message, "chat", None)
    chat_id = getattr(chat, "id", None) if chat is not None else None
    if isinstance(chat_id, bool) or not isinstance(chat_id, int):
        return None
    return str(chat_id)


# What the counsellor reads for each kind of media: (attribute, mark), in the order shown.
_MEDIA_MARKS = (
    ("photo", "foto"),
    ("animation", "animatie"),
    ("document", "document"),
    ("voice", "spraakbericht"),
    ("audio", "audio"),
    ("video", "video"),
    ("video_note", "videobericht"),
    ("sticker", "sticker"),
)
UNKNOWN = "[onbekend bericht van Telegram]"
CUT = " [bericht ingekort]"


def _text(message: Any, has_attachments: bool) -> str:
    """The text the counsellor sees: a mark for each part that is not text (in Dutch),
    then the text or caption. Never empty: a message with nothing readable says so."""
    marks: list[str] = []
    for attribute, mark in _MEDIA_MARKS:
        media = getattr(message, attribute, None)
        if not media:
            continue
        if attribute == "document" and getattr(message, "animation", None):
            continue  # Telegram sends a GIF both as animation and as document
        if attribute == "sticker" and _s(media, "emoji"):
            mark = f"sticker {_s(media, 'emoji')}"
        if not any(_file_id(part) for part in (media if isinstance(media, (list, tuple)) else [media])):
            mark = f"{mark}, niet te openen"
        marks.append(f"[{mark}]")
    venue = getattr(message, "venue", None)
    location = getattr(venue, "location", None) if venue else None
    location = location or getattr(message, "location", None)
    where = _coordinates(location)
    if venue:
        named = ", ".join(p for p in (_s(venue, "title"), _s(venue, "address")) if p)
        parts = ": ".join(p for p in (named, where) if p)
        marks.append(f"[locatie gedeeld: {parts}]" if parts else "[locatie gedeeld, niet te lezen]")
    elif location:
        marks.append(f"[locatie gedeeld: {where}]" if where else "[locatie gedeeld, niet te lezen]")
    contact = getattr(message, "contact", None)
    if contact:
        who = " ".join(
            p for p in (_s(contact, "first_name"), _s(contact, "last_name"), _s(contact, "phone_number")) if p
        )
        marks.append(f"[contact gedeeld: {who}]" if who else "[contact gedeeld, niet te lezen]")
    poll = getattr(message, "poll", None)
    if poll:
        question = _s(poll, "question")
        marks.append(f"[peiling: {question}]" if question else "[peiling]")
    dice = getattr(message, "dice", None)
    if dice:
        value = _n(dice, "value")
        marks.append(f"[dobbelsteen: {value}]" if value is not None else "[dobbelsteen]")
    written = _s(message, "text") or _s(message, "caption")
    text = " ".join([*marks, written] if written else marks)
    if not text and not has_attachments:
        text = UNKNOWN
    elif not text:
        text = "[bijlage]"
    if len(text) > MAX_TEXT_CHARS:
        # Telegram's own limits (4096 for a text, 1024 for a caption) keep a real message
        # within the envelope's; a longer one is cut visibly rather than refused.
        text = text[: MAX_TEXT_CHARS - len(CUT)] + CUT
    return text


def _coordinates(location: Any) -> str | None:
    """As Telegram sends them: no rounding, no place name looked up."""
    if not location:
        return None
    latitude, longitude = _n(location, "latitude"), _n(location, "longitude")
    if latitude is None or longitude is None:
        return None
    return f"{latitude}, {longitude}"


def _file_id(media: Any) -> str | None:
    return _s(media, "file_id")


def _attachments(message: Any) -> tuple[InboundAttachment, ...]:
    found: list[InboundAttachment] = []
    photo = getattr(message, "photo", None)
    if isinstance(photo, (list, tuple)):
        sizes = [size for size in photo if _file_id(size)]
        if sizes:
            largest = max(sizes, key=lambda size: (_n(size, "width") or 0) * (_n(size, "height") or 0))
            found.append(_file(largest, "image/jpeg"))
    for attribute, default_type in (
        ("document", "application/octet-stream"),
        ("voice", "audio/ogg"),
        ("audio", "audio/mpeg"),
        ("video", "video/mp4"),
        ("video_note", "video/mp4"),
        ("sticker", "image/webp"),
    ):
        media = getattr(message, attribute, None)
        if media is not None and not isinstance(media, (list, tuple)) and _file_id(media):
            found.append(_file(media, _s(media, "mime_type") or default_type))
    return tuple(found)


def _file(media: Any, content_type: str) -> InboundAttachment:
    size = getattr(media, "file_size", None)
    return InboundAttachment(
        content_type=content_type[:255],
        url=f"{FILE_PREFIX}{_file_id(media)}"[:2048],
        size=size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None,
    )
