"""`telegram`: a Telegram bot, both ways.

Inbound: Telegram POSTs one JSON update to /channels/{id}/webhook with the
secret given at `setWebhook` in `X-Telegram-Bot-Api-Secret-Token` (compared in
constant time). The update is read with python-telegram-bot's
`Update.de_json`. Text, captions, photos (the largest size), documents, voice
and other media, `/start` and edited messages become envelopes; an edit is a
new message in the same conversation marked `edited`. Updates without a message
(a member joined, a poll) are answered 200 and ignored. The envelope id derives
from the bot id and `update_id`, so a redelivered update is the same message.
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
        if not any(key in data for key in ALLOWED_UPDATES):
            # Not a message (a member joined, a poll...): acknowledged and ignored, without
            # parsing, so a kind of update newer than this library is not refused either.
            return Accepted((), ok)
        try:
            update = telegram.Update.de_json(data, None)
        except (TypeError, ValueError, KeyError, AttributeError, OverflowError, OSError):
            # OverflowError, OSError: a date beyond what the platform's clock can represent.
            raise Rejected(422, "invalid_update", "the update could not be read") from None
        message = update.message or update.edited_message
        if message is None or message.chat is None:
            return Accepted((), ok)
        text = message.text or message.caption or ""
        if len(text) > MAX_TEXT_CHARS:
            raise Rejected(422, "invalid_update", f"the text is longer than {MAX_TEXT_CHARS} characters")
        inbound = InboundMessage(
            provider_message_id=f"{bot_id(channel)}:{update.update_id}",
            address=str(message.chat.id),
            text=text,
            attachments=_attachments(message)[:MAX_ATTACHMENTS],
            edited=update.edited_message is not None,
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


def _attachments(message: Any) -> tuple[InboundAttachment, ...]:
    found: list[InboundAttachment] = []
    if message.photo:
        largest = max(message.photo, key=lambda size: size.width * size.height)
        found.append(_file(largest, "image/jpeg"))
    for media, default_type in (
        (message.document, "application/octet-stream"),
        (message.voice, "audio/ogg"),
        (message.audio, "audio/mpeg"),
        (message.video, "video/mp4"),
        (message.video_note, "video/mp4"),
        (message.sticker, "image/webp"),
    ):
        if media is not None:
            found.append(_file(media, getattr(media, "mime_type", None) or default_type))
    return tuple(found)


def _file(media: Any, content_type: str) -> InboundAttachment:
    return InboundAttachment(
        content_type=content_type[:255], url=f"{FILE_PREFIX}{media.file_id}"[:2048], size=media.file_size
    )
