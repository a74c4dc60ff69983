"""The `telegram` channel kind: a Telegram bot, both ways (see README.md here)."""

from adapters.telegram.kind import TelegramBot

__all__ = ["TelegramBot"]
