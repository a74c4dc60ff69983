"""Reports: periods, small-number suppression built to be attacked, and the figures."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.domain.reports import (
    Cell,
    Counts,
    PeriodError,
    ReportOptions,
    build_report,
    csv_rows,
    parse_period,
    percentile,
    suppress,
)

TODAY = date(2026, 12, 2)
K = 5


@pytest.mark.parametrize(
    ("period", "start", "end", "previous"),
    [
        ("2026-W48", date(2026, 11, 23), date(2026, 11, 29), "2026-W47"),
        ("2026-W01", date(2025, 12, 29), date(2026, 1, 4), "2025-W52"),
        ("2026-P24", date(2026, 11, 16), date(2026, 11, 29), "2026-P23"),
        ("2026-P01", date(2025, 12, 29), date(2026, 1, 11), "2025-P26"),
        ("2020-P27", date(2020, 12, 28), date(2021, 1, 3), "2020-P26"),  # 2020 has 53 weeks
        ("2026-11", date(2026, 11, 1), date(2026, 11, 30), "2026-10"),
        ("2026-01", date(2026, 1, 1), date(2026, 1, 31), "2025-12"),
        ("2024-02", date(2024, 2, 1), date(2024, 2, 29), "2024-01"),
    ],
)
def test_named_periods_and_the_one_before(period: str, start: date, end: date, previous: str) -> None:
    found = parse_period(period, None, None, TODAY)
    assert (found.start, found.end, found.label) == (start, end, period)
    assert found.previous().label == previous
    assert found.previous().end.toordinal() == found.start.toordinal() - 1


def test_a_range_and_the_same_number_of_days_before_it() -> None:
    found = parse_period(None, "2026-11-10", "2026-11-19", TODAY)
    assert found.days == 10 and found.label == "2026-11-10/2026-11-19"
    before = found.previous()
    assert (before.start, before.end) == (date(2026, 10, 31), date(2026, 11, 9))


def test_no_period_is_the_last_complete_inventory_period() -> None:
    found = parse_period(None, None, None, TODAY)  # 2 December 2026 is in week 49: P25
    assert found.label == "2026-P24"


@pytest.mark.parametrize(
    ("period", "start", "end", "says"),
    [
        ("2026-W54", None, None, "weeks 1 to 53"),
        ("2026-W00", None, None, "weeks 1 to 53"),
        ("2021-W53", None, None, "weeks 1 to 52"),
        ("2026-P28", None, None, "P01 to P27"),
        ("2026-13", None, None, "01 to 12"),
        ("last week", None, None, "ISO week"),
        ("2026-W48", "2026-11-01", None, "not both"),
        (None, "2026-11-01", None, "go together"),
        (None, "2026-11-31", "2026-12-01", "from must be a date"),
        (None, "2026-11-10", "2026-11-01", "before from"),
        (None, "2000-01-01", "2026-01-01", "at most"),
        (None, "20261101", "2026-11-30", "from must be a date"),  # only YYYY-MM-DD
        (None, "2026-W48-1", "2026-11-30", "from must be a date"),
        ("\uff12\uff10\uff12\uff16-W48", None, None, "ISO week"),  # full-width digits
        ("0001-W01", None, None, "a year from 2000"),  # its period before is before year 1
        ("9999-12", None, None, "a year from 2000"),
        (None, "9995-01-01", "9999-12-31", "a date from 2000"),
    ],
)
def test_a_period_that_cannot_be_read_says_why(period: Any, start: Any, end: Any, says: str) -> None:
    with pytest.raises(PeriodError, match=says):
        parse_period(period, start, end, TODAY)


def recoverable(cells: dict[str, Cell], total: int | None) -> set[str]:
    """The hidden cells an attacker works out exactly from the shown total and cells."""
    hidden = [key for key, cell in cells.items() if cell.hidden]
    if total is None or len(hidden) != 1:
        return set()
    return set(hidden)


# Cases built to recover a hidden cell from the total and its neighbours.
@pytest.mark.parametrize(
    ("counts", "hidden"),
    [
        ({"slachtoffer": 40, "omstander": 3, "pleger": 12}, {"omstander", "pleger"}),
        ({"a": 40, "b": 3, "c": 2, "d": 12}, {"b", "c"}),  # two small ones protect each other
        ({"a": 40, "b": 0, "c": 3, "d": 9}, {"c", "d"}),  # a zero tells of nobody, and protects nothing
        ({"a": 40, "b": 0, "c": 12}, set()),
        ({"a": 100, "b": 50}, set()),
        ({"a": 4}, {"a"}),
        ({"a": 4, "b": 100}, {"a", "b"}),  # the total would give "a" away
    ],
)
def test_suppression_leaves_no_hidden_cell_to_work_out(counts: dict[str, int], hidden: set[str]) -> None:
    cells = suppress(counts, K, total_shown=sum(counts.values()) >= K)  # as a report calls it
    assert {key for key, cell in cells.items() if cell.hidden} == hidden
    total = sum(counts.values())
    assert not recoverable(cells, total if total >= K else None)
    assert all(cells[key].shown(K) == counts[key] for key in counts if key not in hidden)
    for key in hidden:
        assert cells[key].shown(K) == ("<5" if counts[key] < K else "hidden")


def solutions(cells: dict[str, Cell], total: int) -> dict[str, set[int]]:
    """Every value each hidden cell can have, found by trying them all: the hidden cells add
    up to the total less the shown ones; "<5" is 1 to 4, "hidden" 5 or more."""
    hidden = [key for key, cell in cells.items() if cell.hidden]
    left = total - sum(cell.count for cell in cells.values() if not cell.hidden)
    # A table with no "<5" in it has had every label made "hidden": 1 or more, nothing else.
    labelled = any(cells[key].shown(K) == "<5" for key in hidden)
    least_hidden = K if labelled else 1
    ranges = [range(1, K) if cells[key].shown(K) == "<5" else range(least_hidden, left + 1) for key in hidden]
    found: dict[str, set[int]] = {key: set() for key in hidden}

    def walk(i: int, remaining: int, chosen: list[int]) -> None:
        if i == len(hidden):
            if remaining == 0:
                for key, value in zip(hidden, chosen, strict=True):
                    found[key].add(value)
            return
        for value in ranges[i]:
            if value > remaining:
                break
            walk(i + 1, remaining - value, [*chosen, value])

    walk(0, left, [])
    return found


# Found by an outside review: "<5" beside "hidden" (5 or more) gave both values away.
@pytest.mark.parametrize(
    "counts",
    [
        {"sms": 14, "webchat": 5, "masker19": 1},
        {"held_for_region": 5, "to_national_team": 1},
        {"a": 4, "b": 4, "c": 30},
        {"a": 1, "b": 1, "c": 5, "d": 20},
    ],
)
def test_no_hidden_cell_can_be_worked_out_from_the_total_and_the_labels(counts: dict[str, int]) -> None:
    cells = suppress(counts, K)
    for key, values in solutions(cells, sum(counts.values())).items():
        assert counts[key] in values and len(values) > 1, (key, values)


@given(st.dictionaries(st.sampled_from("abcd"), st.integers(0, 14), min_size=1))
def test_every_hidden_cell_has_more_than_one_possible_value(counts: dict[str, int]) -> None:
    total = sum(counts.values())
    if total < K:  # a total below K is hidden itself, with every part
        return
    cells = suppress(counts, K)
    for key, values in solutions(cells, total).items():
        assert counts[key] in values and len(values) > 1, (counts, key, values)


@given(st.dictionaries(st.sampled_from("abcdefg"), st.integers(0, 60), min_size=1))
def test_no_table_ever_has_exactly_one_hidden_cell(counts: dict[str, int]) -> None:
    cells = suppress(counts, K)
    hidden = [key for key, cell in cells.items() if cell.hidden]
    assert len(hidden) != 1 or sum(counts.values()) < K  # a total below K is hidden itself
    assert all(cells[key].hidden for key, n in counts.items() if 0 < n < K)
    assert all(not cells[key].hidden for key, n in counts.items() if n == 0)


def test_percentiles_interpolate_as_postgresql_does() -> None:
    assert percentile([], 0.5) is None
    assert percentile([7], 0.9) == 7
    assert percentile([1, 2, 3, 4], 0.5) == 2.5
    assert percentile(list(range(1, 11)), 0.9) == pytest.approx(9.1)


OPTIONS = ReportOptions(
    threshold=K,
    converted_outcomes=frozenset({"omgezet-in-melding"}),
    codes={
        "channel_kind": ["sms", "webchat", "masker19"],
        "contact_role": ["slachtoffer", "omstander", "pleger"],
        "age_group": ["onder-12", "12-17", "18-plus"],
        "outcome": ["advies-gegeven", "omgezet-in-melding"],
        "topics": ["partnergeweld", "anders"],
    },
)


def report_of(counts: Counts, previous: Counts | None = None) -> dict[str, Any]:
    period = parse_period("2026-P24", None, None, TODAY)
    return build_report("zuidoost-brabant", period, counts, previous or Counts(), OPTIONS)


def test_a_report_gives_counts_and_shares_and_hides_what_would_recognise_someone() -> None:
    counts = Counts(
        contacts=100,
        by_channel={"sms": 50, "webchat": 47, "masker19": 3},
        by_week={"2026-W47": 60, "2026-W48": 40},
        registered=80,
        serious=72,
        contact_role={"slachtoffer": 50, "omstander": 27, "pleger": 3},
        age_group={"onder-12": 2, "12-17": 6, "18-plus": 72},
        outcome={"advies-gegeven": 76, "omgezet-in-melding": 4},
        topics={"partnergeweld": 70, "anders": 2},
        masker19=3,
        after_hours=20,
        after_hours_held=12,
        after_hours_national=8,
        answered=90,
        wait_median_seconds=60.0,
        wait_p90_seconds=300.0,
    )
    figures = report_of(counts)["figures"]
    assert figures["contacts"] == 100
    assert figures["by_channel"]["masker19"] == {"count": "<5", "share": None}
    assert figures["by_channel"]["webchat"]["count"] == "hidden"  # else masker19 = 100 - 50 - 47
    assert figures["masker19_intakes"] == figures["by_channel"]["masker19"]
    assert figures["contact_role"]["slachtoffer"] == {"count": 50, "share": 0.625}
    assert figures["contact_role"]["pleger"]["count"] == "<5"
    assert figures["age_group"]["onder-12"]["count"] == "<5"
    assert figures["age_group"]["12-17"]["count"] == "hidden"  # else onder-12 = 80 - 72 - 6
    assert figures["converted_to_report"]["count"] == "<5"  # the same cell as the outcome's
    assert figures["topics"]["anders"]["count"] == "<5" and figures["topics"]["partnergeweld"]["count"] == 70
    assert figures["serious"] == {"count": 72, "share": 0.9}
    assert figures["waiting_time"]["median_seconds"] == 60.0
    assert figures["after_hours"]["where"]["held_for_region"]["count"] == 12


def test_few_contacts_hide_every_part_and_every_share() -> None:
    few = Counts(contacts=3, by_channel={"sms": 3}, registered=3, answered=3,
                 contact_role={"slachtoffer": 3}, wait_median_seconds=5.0)  # fmt: skip
    figures = report_of(few)["figures"]
    assert figures["contacts"] == "<5"
    assert all(cell["count"] in ("<5", "hidden") and cell["share"] is None
               for cell in figures["by_channel"].values())  # fmt: skip
    assert figures["waiting_time"]["median_seconds"] is None
    assert figures["contact_role"]["slachtoffer"]["count"] == "<5"


def test_serious_is_hidden_where_the_not_serious_outcome_is() -> None:
    options = ReportOptions(threshold=K, not_serious_outcomes=frozenset({"geen"}),
                            codes={"outcome": ["advies", "geen"]})  # fmt: skip
    period = parse_period("2026-P24", None, None, TODAY)

    def serious(outcome: dict[str, int]) -> object:
        registered = sum(outcome.values())
        counts = Counts(contacts=60, registered=registered, serious=outcome["advies"], outcome=outcome)
        return build_report("t", period, counts, Counts(), options)["figures"]["serious"]["count"]

    assert serious({"advies": 48, "geen": 2}) == "hidden"  # 50 registered - 48 would give 2 away
    assert serious({"advies": 44, "geen": 6}) == 44
    assert serious({"advies": 50, "geen": 0}) == 50  # none is left: nobody to recognise


def test_the_change_is_given_only_between_two_shown_counts() -> None:
    now = Counts(contacts=40, by_channel={"sms": 40})
    before = Counts(contacts=30, by_channel={"sms": 27, "webchat": 3})
    report = report_of(now, before)
    assert report["change"]["contacts"] == 10
    assert report["change"]["by_channel"]["webchat"]["count"] is None
    assert report["previous"]["by_channel"]["webchat"]["count"] == "<5"


def test_the_csv_has_a_row_per_figure_with_the_previous_period_beside_it() -> None:
    rows = csv_rows(report_of(Counts(contacts=40, by_channel={"sms": 40}), Counts(contacts=2)))
    assert rows[0] == ["figure", "part", "2026-P24", "2026-P23", "share"]
    assert ["contacts", "", "40", "<5", ""] in rows
    assert ["by_channel", "sms", "40", "<5", "1.0"] in rows
