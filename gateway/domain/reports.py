"""The figures the regions and the network report: periods, small-number suppression and
the report itself, made from counts. Pure: the store counts, this decides what is shown.

Periods are Europe/Amsterdam days, both ends included: an ISO week (`2026-W48`), a
two-week inventory period (`2026-P24`: ISO weeks 47 and 48; period n is weeks 2n-1 and
2n, and in a year of 53 weeks P27 is week 53 alone), a month (`2026-11`) or any range of
days. Each report also gives the period before it of the same kind (the week, the
inventory period, the month before; for a range, as many days just before).

Suppression, so no person can be recognised: a count from 1 to below the threshold
(default 5) is shown as "<5"; a zero is shown, it tells of nobody. Where cells add up to
a total that is shown (the channel mix, the contact roles, the age groups, the outcomes,
the weeks, the teams, the after-hours contacts by where they went), one hidden cell
would follow from the total and the others: a second cell, the smallest shown non-zero
one, is hidden too, shown as "hidden". A figure made of table cells (Masker 19 intakes
of the channel mix, converted and serious of the outcomes) is hidden where one of its
cells is. A share is given only where its denominator is at least the threshold and its
own count is shown; a difference with the previous period only where both are shown.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

DEFAULT_THRESHOLD = 5
MASKER19 = "masker19"
MAX_DAYS = 366 * 5  # a range longer than five years is refused

_WEEK = re.compile(r"^([0-9]{4})-W([0-9]{2})$")
_INVENTORY = re.compile(r"^([0-9]{4})-P([0-9]{2})$")
_MONTH = re.compile(r"^([0-9]{4})-([0-9]{2})$")
_DAY = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
FIRST_YEAR, LAST_YEAR = 2000, 2999  # the gateway's figures begin after 2000; no year 9999 period


class PeriodError(ValueError):
    """A period that cannot be read: the message says which field and why."""


@dataclass(frozen=True)
class Period:
    kind: str  # week | inventory | month | range
    start: date
    end: date  # included
    label: str

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def previous(self) -> Period:
        if self.kind == "week":
            return week_period(self.start - timedelta(days=7))
        if self.kind == "inventory":
            return inventory_period(self.start - timedelta(days=1))
        if self.kind == "month":
            last = self.start - timedelta(days=1)
            return month_period(last.year, last.month)
        end = self.start - timedelta(days=1)
        start = end - timedelta(days=self.days - 1)
        return Period("range", start, end, f"{start.isoformat()}/{end.isoformat()}")

    def weeks(self) -> list[tuple[int, int]]:
        """The ISO weeks (year, week) the period touches, in order: the trend's columns."""
        found: list[tuple[int, int]] = []
        day = self.start
        while day <= self.end:
            iso = day.isocalendar()
            if not found or found[-1] != (iso.year, iso.week):
                found.append((iso.year, iso.week))
            day += timedelta(days=1)
        return found


def _weeks_in(year: int) -> int:
    return date(year, 12, 28).isocalendar().week


def week_period(day: date) -> Period:
    iso = day.isocalendar()
    start = date.fromisocalendar(iso.year, iso.week, 1)
    return Period("week", start, start + timedelta(days=6), f"{iso.year}-W{iso.week:02d}")


def inventory_period(day: date) -> Period:
    iso = day.isocalendar()
    number = (iso.week + 1) // 2
    return _inventory(iso.year, number)


def _inventory(year: int, number: int) -> Period:
    first = 2 * number - 1
    last = min(2 * number, _weeks_in(year))
    start = date.fromisocalendar(year, first, 1)
    end = date.fromisocalendar(year, last, 7)
    return Period("inventory", start, end, f"{year}-P{number:02d}")


def month_period(year: int, month: int) -> Period:
    start = date(year, month, 1)
    following = date(year + month // 12, month % 12 + 1, 1)
    return Period("month", start, following - timedelta(days=1), f"{year}-{month:02d}")


def parse_period(period: str | None, start: str | None, end: str | None, today: date) -> Period:
    """`period` (2026-W48, 2026-P24, 2026-11) or `from` and `to` (ISO dates, both
    included); neither: the inventory period before the current one."""
    if period and (start or end):
        raise PeriodError("give either period or from and to, not both")
    if period:
        return _named_period(period.strip())
    if start or end:
        if not (start and end):
            raise PeriodError("from and to go together (YYYY-MM-DD, both days included)")
        first, last = _day(start, "from"), _day(end, "to")
        if last < first:
            raise PeriodError("to is before from")
        if (last - first).days + 1 > MAX_DAYS:
            raise PeriodError(f"a range is at most {MAX_DAYS} days")
        return Period("range", first, last, f"{first.isoformat()}/{last.isoformat()}")
    return inventory_period(today).previous()


def _year(year: int) -> int:
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise PeriodError(f"period: a year from {FIRST_YEAR} to {LAST_YEAR}")
    return year


def _named_period(text: str) -> Period:
    if match := _WEEK.match(text):
        year, week = _year(int(match[1])), int(match[2])
        if not 1 <= week <= _weeks_in(year):
            raise PeriodError(f"period: {year} has weeks 1 to {_weeks_in(year)}")
        return week_period(date.fromisocalendar(year, week, 1))
    if match := _INVENTORY.match(text):
        year, number = _year(int(match[1])), int(match[2])
        periods = (_weeks_in(year) + 1) // 2
        if not 1 <= number <= periods:
            raise PeriodError(f"period: {year} has inventory periods P01 to P{periods:02d}")
        return _inventory(year, number)
    if match := _MONTH.match(text):
        year, month = _year(int(match[1])), int(match[2])
        if not 1 <= month <= 12:
            raise PeriodError("period: a month is 01 to 12")
        return month_period(year, month)
    raise PeriodError(
        "period is an ISO week (2026-W48), an inventory period (2026-P24) or a month (2026-11)"
    )


def _day(text: str, name: str) -> date:
    try:
        day = date.fromisoformat(text) if _DAY.match(text) else None
    except ValueError:
        day = None
    if day is None:
        raise PeriodError(f"{name} must be a date, YYYY-MM-DD") from None
    if not FIRST_YEAR <= day.year <= LAST_YEAR:
        raise PeriodError(f"{name}: a date from {FIRST_YEAR} to {LAST_YEAR}")
    return day


# suppression


@dataclass(frozen=True)
class Cell:
    count: int
    hidden: bool
    vague: bool = False  # hidden in a table whose every cell is: labelled "hidden" whatever it is

    def shown(self, threshold: int) -> int | str:
        """The count; "<5" when below the threshold; "hidden" when hidden only so that
        another hidden count cannot be worked out (or in a table where every count is
        hidden, where "<5" beside "hidden" would give both away)."""
        if not self.hidden:
            return self.count
        return f"<{threshold}" if self.count < threshold and not self.vague else "hidden"


def suppress(counts: Mapping[str, int], threshold: int, total_shown: bool = True) -> dict[str, Cell]:
    """Cells that add up to a total: each from 1 to below the threshold hidden (a zero
    tells of nobody). Beside a shown total, while a hidden cell's value still follows from
    the total, the shown cells and what the labels say ("<5": 1 to 4, "hidden": 5 or
    more), the smallest shown non-zero cell is hidden as well. Without a total
    (`total_shown=False`, or cells that overlap such as topics) only the first rule."""
    hidden = {key for key, count in counts.items() if 0 < count < threshold}
    vague = False
    if total_shown:
        while hidden and _exposed(counts, hidden, threshold):
            shown = sorted((count, key) for key, count in counts.items() if key not in hidden and count > 0)
            if not shown:
                # Every cell hidden and the labels still tell (5 "hidden" + 1 "<5" = 6): all
                # are labelled "hidden", and their sum is all there is to know.
                vague = True
                break
            hidden.add(shown[0][1])
    return {key: Cell(count, key in hidden, vague and key in hidden) for key, count in counts.items()}


def _exposed(counts: Mapping[str, int], hidden: set[str], threshold: int) -> bool:
    """Whether one hidden cell's value can be worked out exactly: their sum is the total
    less the shown cells, and each lies within what its label says."""
    total = sum(counts[key] for key in hidden)
    bounds = {
        key: (1, threshold - 1) if counts[key] < threshold else (threshold, total) for key in hidden
    }
    least = sum(low for low, _ in bounds.values())
    most = sum(high for _, high in bounds.values())
    for low, high in bounds.values():
        # What the others leave for this one, at their most and at their least.
        can_be_low = max(low, total - (most - high))
        can_be_high = min(high, total - (least - low))
        if can_be_low >= can_be_high:
            return True
    return False


def share(part: Cell, whole: Cell, threshold: int) -> float | None:
    if part.hidden or whole.hidden or whole.count < threshold or whole.count == 0:
        return None
    return round(part.count / whole.count, 4)


def percentile(ordered: Sequence[int], fraction: float) -> float | None:
    """Linear interpolation between the closest ranks, as PostgreSQL's percentile_cont."""
    if not ordered:
        return None
    position = fraction * (len(ordered) - 1)
    below = int(position)
    above = min(below + 1, len(ordered) - 1)
    return float(ordered[below] + (ordered[above] - ordered[below]) * (position - below))


# the report


@dataclass(frozen=True)
class Counts:
    """What the store counted for one scope (a team, or the country) and one period."""

    contacts: int = 0
    by_channel: Mapping[str, int] = field(default_factory=dict)
    by_week: Mapping[str, int] = field(default_factory=dict)  # "2026-W48"
    by_team: Mapping[str, int] = field(default_factory=dict)  # the country's only
    registered: int = 0
    serious: int = 0
    contact_role: Mapping[str, int] = field(default_factory=dict)
    age_group: Mapping[str, int] = field(default_factory=dict)
    outcome: Mapping[str, int] = field(default_factory=dict)
    topics: Mapping[str, int] = field(default_factory=dict)
    masker19: int = 0
    urgent: int = 0
    acute: int = 0
    transferred: int = 0
    after_hours: int = 0
    after_hours_held: int = 0  # stayed with the region while it was closed
    after_hours_national: int = 0  # went to the national team (overflow, acute)
    after_hours_answered: int = 0
    after_hours_left: int = 0
    answered: int = 0
    left_before_reply: int = 0
    wait_median_seconds: float | None = None
    wait_p90_seconds: float | None = None


@dataclass(frozen=True)
class ReportOptions:
    threshold: int = DEFAULT_THRESHOLD
    converted_outcomes: frozenset[str] = frozenset()  # outcome codes that are "converted into a report"
    not_serious_outcomes: frozenset[str] = frozenset()  # outcome codes of "no serious conversation"
    codes: Mapping[str, Sequence[str]] = field(default_factory=dict)  # every configured code, per field


def _figures(counts: Counts, period: Period, options: ReportOptions) -> dict[str, Any]:
    k = options.threshold
    total = Cell(counts.contacts, 0 < counts.contacts < k)

    def with_codes(name: str, found: Mapping[str, int]) -> dict[str, int]:
        known = options.codes.get(name, ())
        return {**{code: 0 for code in known}, **found}

    def table(found: Mapping[str, int], whole: Cell, adds_up: bool = True) -> dict[str, Any]:
        cells = suppress(found, k, total_shown=adds_up and not whole.hidden)
        if whole.hidden:  # a hidden total: every part is hidden with it
            cells = {key: Cell(cell.count, True, cell.vague) for key, cell in cells.items()}
        return {key: {"count": c.shown(k), "share": share(c, whole, k)} for key, c in sorted(cells.items())}

    def part_of(count: int, whole: Cell, *, hidden_with: Sequence[object] = ()) -> dict[str, Any]:
        """A count within a whole: hidden below the threshold or with its whole, and with
        any table cell it would give away (`hidden_with`: the cells it is a sum of, or the
        whole's remainder)."""
        hidden = 0 < count < k or whole.hidden or any(isinstance(c, str) for c in hidden_with)
        cell = Cell(count, hidden)
        return {"count": cell.shown(k), "share": share(cell, whole, k)}

    converted = sum(n for code, n in counts.outcome.items() if code in options.converted_outcomes)
    weeks = {f"{y}-W{w:02d}": 0 for y, w in period.weeks()} | dict(counts.by_week)
    after = {
        "held_for_region": counts.after_hours_held,
        "to_national_team": counts.after_hours_national,
    }
    answered_figure = part_of(counts.answered, total)
    answered = Cell(counts.answered, isinstance(answered_figure["count"], str))
    waiting = {
        "answered": answered_figure,
        # A median of fewer than the threshold would describe too few people.
        "median_seconds": None if answered.hidden else counts.wait_median_seconds,
        "p90_seconds": None if answered.hidden else counts.wait_p90_seconds,
    }
    by_channel = table(with_codes("channel_kind", counts.by_channel), total)
    # A whole that is itself a part (registered of all contacts): hidden as it is shown,
    # so its own parts cannot add up to it.
    registered_figure = part_of(counts.registered, total)
    registered = Cell(counts.registered, isinstance(registered_figure["count"], str))
    after_hours_figure = part_of(counts.after_hours, total)
    after_hours = Cell(counts.after_hours, isinstance(after_hours_figure["count"], str))
    outcomes = table(with_codes("outcome", counts.outcome), registered)

    def outcome_cells(codes: frozenset[str]) -> list[object]:
        return [outcomes[code]["count"] for code in codes if code in outcomes]

    # Both follow from outcome cells (converted is their sum, serious the registered less
    # the not serious ones): hidden where one of those is.
    converted_figure = part_of(converted, registered, hidden_with=outcome_cells(options.converted_outcomes))
    not_serious = outcome_cells(options.not_serious_outcomes)
    serious_figure = part_of(counts.serious, registered, hidden_with=not_serious)
    figures: dict[str, Any] = {
        "contacts": total.shown(k),
        "by_channel": by_channel,
        "by_week": table(weeks, total),
        "registered": registered_figure,
        "serious": serious_figure,
        "contact_role": table(with_codes("contact_role", counts.contact_role), registered),
        "age_group": table(with_codes("age_group", counts.age_group), registered),
        "outcome": outcomes,
        "converted_to_report": converted_figure,
        "topics": table(with_codes("topics", counts.topics), registered, adds_up=False),
        # the same cell as in the channel mix, so neither gives the other away
        "masker19_intakes": by_channel.get(MASKER19, part_of(0, total)),
        "urgent": part_of(counts.urgent, total),
        "acute": part_of(counts.acute, total),
        "transferred": part_of(counts.transferred, total),
        "after_hours": {
            "contacts": after_hours_figure,
            "where": table(after, after_hours),
            "answered": part_of(counts.after_hours_answered, after_hours),
            "left_before_reply": part_of(counts.after_hours_left, after_hours),
        },
        "waiting_time": waiting,
        "left_before_reply": part_of(counts.left_before_reply, total),
    }
    if counts.by_team or "team" in options.codes:
        figures["by_team"] = table(with_codes("team", counts.by_team), total)
    return figures


def _change(now: Any, before: Any) -> Any:
    """The difference with the previous period, figure by figure, only between two counts
    both shown (a hidden one would follow from the other and the difference)."""
    if isinstance(now, dict) and isinstance(before, dict):
        return {key: _change(now[key], before.get(key)) for key in now if key != "share"}
    if isinstance(now, int) and not isinstance(now, bool) and isinstance(before, int):
        return now - before
    return None


def build_report(
    scope: str, period: Period, counts: Counts, previous: Counts, options: ReportOptions
) -> dict[str, Any]:
    """The report as the API, the CSV and the page give it."""
    now = _figures(counts, period, options)
    before = _figures(previous, period.previous(), options)
    return {
        "scope": scope,
        "period": _period_json(period),
        "previous_period": _period_json(period.previous()),
        "threshold": options.threshold,
        "figures": now,
        "previous": before,
        "change": _change(now, before),
    }


def _period_json(period: Period) -> dict[str, str]:
    return {
        "kind": period.kind,
        "label": period.label,
        "from": period.start.isoformat(),
        "to": period.end.isoformat(),
    }


def csv_rows(report: Mapping[str, Any]) -> list[list[str]]:
    """One row per figure: figure, part, this period, the previous one, the share."""
    rows = [["figure", "part", report["period"]["label"], report["previous_period"]["label"], "share"]]

    def walk(prefix: str, now: Any, before: Any) -> None:
        if isinstance(now, dict) and "count" in now:
            share_now = now.get("share")
            before_count = before.get("count") if isinstance(before, dict) else before
            figure, _, part = prefix.partition(".")
            rows.append([figure, part, str(now["count"]), _text(before_count), _text(share_now)])
            return
        if isinstance(now, dict):
            for key, value in now.items():
                if key == "share":
                    continue
                earlier = before.get(key) if isinstance(before, dict) else None
                walk(f"{prefix}.{key}" if prefix else key, value, earlier)
            return
        figure, _, part = prefix.partition(".")
        rows.append([figure, part, _text(now), _text(before), ""])

    walk("", report["figures"], report["previous"])
    return rows


def _text(value: object) -> str:
    return "" if value is None else str(value)
