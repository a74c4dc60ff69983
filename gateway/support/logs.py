"""structlog JSON logs that keep message text, phone numbers, chat handles and
intake details out.

Three guards, because one is never enough:
1. keys that carry content or addresses are replaced by "[redacted]";
2. every remaining string is scrubbed of phone numbers, e-mail addresses and
   @handles;
3. exceptions are logged as their type and stack locations only, never their
   message (a library error may quote the input), and records from other
   libraries are logged by their static template, never their arguments, except
   the few in FORMATTED_LOGGERS whose arguments are known to be no one's content.
"""

from __future__ import annotations

import logging
import re
import sys
import traceback
from collections.abc import Iterable, MutableMapping
from typing import Any, TextIO

import structlog

SENSITIVE_KEYS = frozenset(
    {
        "text",
        "body",
        "message",
        "message_text",
        "content",
        "payload",
        "note",
        "notes",
        "from",
        "to",
        "from_",
        "to_",
        "phone",
        "phone_number",
        "number",
        "address",
        "sender_address",
        "handle",
        "chat_handle",
        "username",
        "profile_name",
        "reply_handle",
        "intake",
        "email",
        "contact",
        "name",
        "password",
        "token",
        "secret",
        "authorization",
        "headers",
    }
)
REDACTED = "[redacted]"
_PATTERNS = (
    re.compile(r"(?<![\w-])(?:\+|00)[1-9](?:[ \-]?\d){6,15}(?!\w)"),  # international numbers
    re.compile(r"(?<![\w-])0[1-9](?:[ \-]?\d){8}(?!\w)"),  # Dutch national numbers
    re.compile(r"whatsapp:[^\s\"',]+", re.IGNORECASE),
    re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+"),  # e-mail addresses
    re.compile(r"(?<![\w@])@[A-Za-z][\w]{2,}"),  # @handles
)
_KEEP_VERBATIM = frozenset({"timestamp", "level", "logger"})
# Libraries of the core that log message bodies at DEBUG; a channel kind names its SDK's own.
QUIET_LOGGERS = ("aio_pika", "aiormq", "aiohttp.access", "aiosqlite", "asyncpg", "sqlalchemy")
# Libraries whose log arguments never carry a person's content, so their lines are formatted
# in full (still scrubbed by `redact`). Alembic's are revision ids, migration titles and the
# dialect's name ("Running upgrade 0001 -> 0002, ..."). Not aio_pika/aiormq: their lines
# quote the broker URL, password included, and at DEBUG the frames they send.
FORMATTED_LOGGERS = ("alembic",)
_sensitive = SENSITIVE_KEYS


def scrub(value: str) -> str:
    for pattern in _PATTERNS:
        value = pattern.sub(REDACTED, value)
    return value


def _scrub_value(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {
            k: REDACTED if str(k).lower() in _sensitive else _scrub_value(v) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_scrub_value(v) for v in value]
    return value


def redact(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event_dict):
        if key in _KEEP_VERBATIM:
            continue
        if key.lower() in _sensitive:
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _scrub_value(event_dict[key])
    return event_dict


def exception_without_message(
    _: Any, __: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    exc_info = event_dict.pop("exc_info", None)
    if exc_info is True:
        exc_info = sys.exc_info()
    if isinstance(exc_info, BaseException):
        exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
    if isinstance(exc_info, tuple) and exc_info[0] is not None:
        event_dict["exc_type"] = exc_info[0].__name__
        event_dict["stack"] = [
            f"{frame.filename.rsplit('/', 1)[-1]}:{frame.lineno}:{frame.name}"
            for frame in traceback.extract_tb(exc_info[2])[-8:]
        ]
    return event_dict


class _TemplateOnly(logging.Filter):
    """Other libraries' records keep their format string and lose their arguments; those of
    FORMATTED_LOGGERS are formatted with theirs."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("gateway"):
            return True
        if any(record.name == lib or record.name.startswith(lib + ".") for lib in FORMATTED_LOGGERS):
            try:
                record.msg = record.getMessage()
            except (TypeError, ValueError):  # a malformed record: keep its template
                record.msg = str(record.msg)
        else:
            record.msg = str(record.msg)
        record.args = None
        return True


def configure_logging(
    level: str = "INFO",
    stream: TextIO | None = None,
    *,
    sensitive_keys: Iterable[str] = (),
    quiet_loggers: Iterable[str] = (),
) -> None:
    """`sensitive_keys` and `quiet_loggers`: what the channel kinds add (their providers'
    field names; their SDKs' loggers, which format request data into their lines)."""
    global _sensitive
    _sensitive = SENSITIVE_KEYS | {key.lower() for key in sensitive_keys}
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        exception_without_message,
        redact,
    ]
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.JSONRenderer(),
        ],
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    handler.addFilter(_TemplateOnly())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in (*QUIET_LOGGERS, *quiet_loggers):  # never their DEBUG or INFO lines
        logging.getLogger(noisy).setLevel(logging.WARNING)
