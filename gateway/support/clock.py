"""Time: the service's clock (real, or shifted for trials) and reading stored times."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime


def as_utc(moment: datetime) -> datetime:
    """A time read from the database: SQLite gives it back without its zone (it was UTC)."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def make_clock(fake_time: datetime | None) -> Callable[[], datetime]:
    """The real clock, or one that started at GATEWAY_FAKE_TIME and runs on from there."""
    if fake_time is None:
        return lambda: datetime.now(UTC)
    offset = fake_time - datetime.now(UTC)
    return lambda: datetime.now(UTC) + offset
