"""Opening schedules, as pure functions of the configuration and an instant.

Hours are wall-clock times in Europe/Amsterdam, so 09:00-17:00 stays 09:00-17:00
across both daylight-saving switches. A day's hours come from, in order:

1. a closed Dutch public holiday (from the `holidays` package): closed;
2. a dated exception covering the day: closed, or its own hours for the
   weekdays it names (other weekdays keep the regular hours);
3. the regular weekly hours.

`state_at` answers whether a schedule is open at an instant, why, and when
that next changes (None when it never does).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays

from gateway.config.models import WEEKDAYS, HolidayName, Schedule, ScheduleException, Weekday
from gateway.domain.texts import HOLIDAY_LABELS

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
HORIZON_DAYS = 800  # how far ahead next_change looks before concluding "never"

# The holidays package's English names for NL, by the slug used in schedules.yaml.
_PACKAGE_NAMES: dict[str, HolidayName] = {
    "New Year's Day": "new_years_day",
    "Good Friday": "good_friday",
    "Easter Sunday": "easter_sunday",
    "Easter Monday": "easter_monday",
    "King's Day": "kings_day",
    "Queen's Day": "kings_day",
    "Ascension Day": "ascension_day",
    "Pentecost": "whit_sunday",
    "Pentecost Monday": "whit_monday",
    "Christmas Day": "christmas_day",
    "Second Day of Christmas": "boxing_day",
}


@dataclass(frozen=True)
class ResolvedSchedule:
    """A schedule with `extends` applied; hashable, so days can be cached."""

    name: str
    always_open: bool
    weekly: tuple[tuple[tuple[int, int], ...], ...]  # per weekday: (start, end) minutes
    closed_holidays: frozenset[HolidayName]
    exceptions: tuple[tuple[date, date, str, bool, tuple[tuple[int, tuple[tuple[int, int], ...]], ...]], ...]

    def __post_init__(self) -> None:
        # Hashed once: the per-day caches are keyed on the schedule, and a dataclass's own
        # hash walks every nested tuple on every lookup.
        values = tuple(getattr(self, field.name) for field in dataclasses.fields(self))
        object.__setattr__(self, "_hash", hash(values))

    def __hash__(self) -> int:
        cached: int = self.__dict__["_hash"]
        return cached


@dataclass(frozen=True)
class ScheduleState:
    open: bool
    reason: str
    next_change: datetime | None


def _minutes(period: str) -> tuple[int, int]:
    start, end = period.split("-")
    sh, sm = start.split(":")
    eh, em = end.split(":")
    return int(sh) * 60 + int(sm), int(eh) * 60 + int(em)


def _periods(hours: list[str]) -> tuple[tuple[int, int], ...]:
    return tuple(sorted(_minutes(p) for p in hours))


def resolve(name: str, schedules: dict[str, Schedule]) -> ResolvedSchedule:
    """Apply `extends`: a child replaces the weekdays, holidays and flags it sets, and
    its exceptions come after (and so win over) its parent's."""
    chain: list[Schedule] = []
    current: str | None = name
    while current is not None:
        chain.append(schedules[current])
        current = schedules[current].extends
    weekly: dict[Weekday, list[str]] = {}
    closed: list[HolidayName] = []
    exceptions: list[ScheduleException] = []
    always_open = False
    for schedule in reversed(chain):
        weekly.update(schedule.weekly)
        if schedule.closed_holidays is not None:
            closed = list(schedule.closed_holidays)
        exceptions.extend(schedule.exceptions)
        always_open = schedule.always_open or always_open
    return ResolvedSchedule(
        name=name,
        always_open=always_open,
        weekly=tuple(_periods(weekly.get(day, [])) for day in WEEKDAYS),
        closed_holidays=frozenset(closed),
        exceptions=tuple(
            (
                e.start,
                e.end,
                e.name,
                e.closed,
                tuple((WEEKDAYS.index(day), _periods(hours)) for day, hours in (e.weekly or {}).items()),
            )
            for e in exceptions
        ),
    )


@lru_cache(maxsize=64)
def _nl_holidays(year: int) -> dict[date, HolidayName]:
    found: dict[date, HolidayName] = {}
    for day, name in holidays.country_holidays("NL", years=year, language="en_US").items():
        slug = _PACKAGE_NAMES.get(name)
        if slug:
            found[day] = slug
    return found


def holiday_on(day: date, closed: frozenset[HolidayName]) -> HolidayName | None:
    """The slug of the closed holiday on this day, if any."""
    if (day.month, day.day) == (5, 5):
        # Fixed date, independent of how the package classifies it in a given year.
        if "liberation_day" in closed:
            return "liberation_day"
        if "liberation_day_lustrum" in closed and day.year % 5 == 0:
            return "liberation_day_lustrum"
    slug = _nl_holidays(day.year).get(day)
    return slug if slug in closed else None


@lru_cache(maxsize=65536)
def day_hours(schedule: ResolvedSchedule, day: date) -> tuple[tuple[tuple[int, int], ...], str]:
    """The day's opening periods (minutes after local midnight) and why."""
    holiday = holiday_on(day, schedule.closed_holidays)
    if holiday:
        return (), f"closed: {HOLIDAY_LABELS[holiday]}"
    weekday = day.weekday()
    for start, end, name, closed, weekly in reversed(schedule.exceptions):
        if start <= day <= end:
            if closed:
                return (), f"closed: {name}"
            for exception_day, periods in weekly:
                if exception_day == weekday:
                    return periods, name
    return schedule.weekly[weekday], "regular hours"


def _local(day: date, minutes: int) -> datetime:
    """A wall-clock time on a day as a UTC instant (24:00 is the next midnight)."""
    if minutes == 24 * 60:
        return datetime.combine(day + timedelta(days=1), time(0), AMSTERDAM).astimezone(UTC)
    return datetime.combine(day, time(minutes // 60, minutes % 60), AMSTERDAM).astimezone(UTC)


@lru_cache(maxsize=65536)
def _day_intervals(schedule: ResolvedSchedule, day: date) -> tuple[tuple[datetime, datetime, str], ...]:
    periods, why = day_hours(schedule, day)
    return tuple((_local(day, start), _local(day, end), why) for start, end in periods)


def state_at(schedule: ResolvedSchedule, instant: datetime) -> ScheduleState:
    if instant.tzinfo is None:
        raise ValueError("instant must carry a time zone")
    if schedule.always_open:
        return ScheduleState(True, "open: always open (24/7)", None)
    now = instant.astimezone(UTC)
    today = now.astimezone(AMSTERDAM).date()
    for start, end, why in _day_intervals(schedule, today):
        if start <= now < end:
            return ScheduleState(True, f"open: {why}", _close_after(schedule, today, end))
    _, why_today = day_hours(schedule, today)
    reason = why_today if why_today.startswith("closed") else "closed: outside opening hours"
    return ScheduleState(False, reason, _open_after(schedule, today, now))


def _close_after(schedule: ResolvedSchedule, day: date, end: datetime) -> datetime:
    """The end of the open stretch through `end`, following periods that touch or overlap
    (17:00-24:00 then 00:00-02:00 is one stretch)."""
    for _ in range(2 * HORIZON_DAYS):
        extended = False
        for candidate in (day, day + timedelta(days=1)):
            for start, stop, _why in _day_intervals(schedule, candidate):
                if start <= end < stop:
                    end, day, extended = stop, candidate, True
        if not extended:
            return end
    return end


def _open_after(schedule: ResolvedSchedule, day: date, now: datetime) -> datetime | None:
    for offset in range(HORIZON_DAYS):
        for start, _stop, _why in _day_intervals(schedule, day + timedelta(days=offset)):
            if start > now:
                return start
    return None
