"""`gateway telegram set-webhook CHANNEL_ID`: register a channel's webhook (its
`public_url` and secret token) with Telegram. Prints one JSON object."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TYPE_CHECKING, Any, cast

import orjson
from telegram.error import TelegramError

from gateway.config.models import Channel, Config

if TYPE_CHECKING:
    from adapters.telegram.kind import TelegramSettings


def add_commands(commands: Any) -> None:
    telegram = commands.add_parser("telegram", help="Telegram channel tasks")
    telegram_commands = telegram.add_subparsers(dest="telegram_command", required=True)
    set_webhook = telegram_commands.add_parser(
        "set-webhook", help="register a channel's webhook URL and secret token with Telegram"
    )
    set_webhook.add_argument("channel_id", help="a telegram channel id from the configuration")
    set_webhook.add_argument("--config", help="configuration directory")
    set_webhook.set_defaults(kind_command=set_webhook_command)


def set_webhook_command(args: argparse.Namespace, config: Config) -> int:
    from adapters.telegram.kind import TelegramBot, TelegramSettings

    channel = config.channels.get(args.channel_id)
    if channel is None or channel.kind != TelegramBot.name or not isinstance(
        channel.settings, TelegramSettings
    ):
        known = ", ".join(c.id for c in config.channels.values() if c.kind == TelegramBot.name) or "none"
        print(f"no telegram channel {args.channel_id!r}; telegram channels: {known}", file=sys.stderr)
        return 2
    if not channel.usable:
        print(f"set {', '.join(channel.missing_secrets)} in the environment first", file=sys.stderr)
        return 2
    settings = channel.settings
    if settings.public_url is None:
        print(f"channels/{channel.source.name}: settings.public_url is required", file=sys.stderr)
        return 2
    bot = TelegramBot()
    telegram_channel = cast("Channel[TelegramSettings]", channel)  # its settings say so

    async def register() -> bool:
        try:
            return await bot.set_webhook(telegram_channel)
        finally:
            await bot.close()

    result = {"channel": channel.id, "url": settings.public_url}
    try:
        ok = asyncio.run(register())
    except TelegramError as exc:
        print(orjson.dumps({**result, "ok": False, "error": type(exc).__name__}).decode())
        return 1
    print(orjson.dumps({**result, "ok": bool(ok)}).decode())
    return 0 if ok else 1
