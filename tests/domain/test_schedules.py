"""Schedule edge cases, one row each, on the example configuration."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.domain.schedules import ResolvedSchedule, resolve, state_at
from gateway.service import load_config
from tests.conftest import EXAMPLE_CONFIG

NL = ZoneInfo("Europe/Amsterdam")
CONFIG = load_config(EXAMPLE_CONFIG)


def schedule_of(code: str) -> ResolvedSchedule:
    name = CONFIG.national.schedule if code == "national" else CONFIG.regions[code].schedule
    return resolve(name, CONFIG.schedules)


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=NL)


CASES = [
    # (region, local time, open, reason contains, next change in local time or None)
    ("zuidoost-brabant", "2025-11-21 16:59:59", True, "regular hours", "2025-11-21 17:00"),
    ("zuidoost-brabant", "2025-11-21 17:00:00", False, "outside opening hours", "2025-11-24 09:00"),
    ("rotterdam-rijnmond", "2025-11-21 17:00:00", False, "outside opening hours", "2025-11-24 09:00"),
    # spring forward (30 March 2025, 02:00 -> 03:00)
    ("zuidoost-brabant", "2025-03-28 17:00:00", False, "outside", "2025-03-31 09:00"),
    ("zuidoost-brabant", "2025-03-30 03:30:00", False, "outside", "2025-03-31 09:00"),
    ("zuidoost-brabant", "2025-03-31 09:00:00", True, "regular hours", "2025-03-31 17:00"),
    ("zuidoost-brabant", "2025-03-31 08:59:59", False, "outside", "2025-03-31 09:00"),
    # fall back (26 October 2025, 03:00 -> 02:00)
    ("zuidoost-brabant", "2025-10-24 17:00:00", False, "outside", "2025-10-27 09:00"),
    ("zuidoost-brabant", "2025-10-27 09:00:00", True, "regular hours", "2025-10-27 17:00"),
    # King's Day
    ("zuidoost-brabant", "2021-04-27 12:00:00", False, "King's Day", "2021-04-28 09:00"),
    ("zuidoost-brabant", "2025-04-26 12:00:00", False, "King's Day", "2025-04-28 09:00"),
    ("zuidoost-brabant", "2025-04-25 12:00:00", True, "regular hours", "2025-04-25 17:00"),
    # Liberation Day: closed in lustrum years only
    ("zuidoost-brabant", "2025-05-05 10:00:00", False, "Liberation Day", "2025-05-06 09:00"),
    ("zuidoost-brabant", "2023-05-05 10:00:00", True, "regular hours", "2023-05-05 17:00"),
    ("zuidoost-brabant", "2024-05-05 10:00:00", False, "outside", "2024-05-06 09:00"),  # a Sunday
    # Good Friday is an ordinary day; Easter Monday is not
    ("zuidoost-brabant", "2025-04-18 12:00:00", True, "regular hours", "2025-04-18 17:00"),
    ("zuidoost-brabant", "2025-04-21 12:00:00", False, "Easter Monday", "2025-04-22 09:00"),
    ("zuidoost-brabant", "2025-05-29 12:00:00", False, "Ascension Day", "2025-05-30 09:00"),
    ("zuidoost-brabant", "2025-06-09 12:00:00", False, "Whit Monday", "2025-06-10 09:00"),
    ("zuidoost-brabant", "2025-12-24 17:00:00", False, "outside", "2025-12-29 09:00"),
    ("zuidoost-brabant", "2026-01-01 12:00:00", False, "New Year's Day", "2026-01-02 09:00"),
    # the 2021 curfew: chat until 22:00 from 23 January to 28 April inclusive
    ("zuidoost-brabant", "2021-02-10 21:30:00", True, "avondklok", "2021-02-10 22:00"),
    ("zuidoost-brabant", "2021-02-10 22:00:00", False, "outside", "2021-02-11 09:00"),
    ("zuidoost-brabant", "2021-04-28 21:30:00", True, "avondklok", "2021-04-28 22:00"),
    ("zuidoost-brabant", "2021-05-12 21:30:00", False, "outside", "2021-05-14 09:00"),  # 13th: Ascension
    ("zuidoost-brabant", "2021-01-22 17:30:00", False, "outside", "2021-01-25 09:00"),
    ("rotterdam-rijnmond", "2021-02-10 21:30:00", True, "avondklok", "2021-02-10 22:00"),
    # a region with its own override: Thursday until 21:00
    ("utrecht", "2025-11-20 20:00:00", True, "regular hours", "2025-11-20 21:00"),
    ("zuidoost-brabant", "2025-11-20 20:00:00", False, "outside", "2025-11-21 09:00"),
    ("utrecht", "2025-11-21 20:00:00", False, "outside", "2025-11-24 09:00"),
    # the national team never closes
    ("national", "2025-12-25 03:00:00", True, "always open", None),
]


@pytest.mark.parametrize(
    ("region", "when", "is_open", "reason", "next_change"), CASES, ids=[f"{c[0]} {c[1]}" for c in CASES]
)
def test_schedule_at_the_edges(
    region: str, when: str, is_open: bool, reason: str, next_change: str | None
) -> None:
    state = state_at(schedule_of(region), local(when))
    assert state.open is is_open
    assert reason in state.reason
    expected = local(next_change) if next_change else None
    assert state.next_change == expected
    if state.next_change is not None:
        assert state.next_change.tzinfo is not None


def test_equal_schedules_hash_alike_and_different_ones_differ() -> None:
    """The per-day caches are keyed on the schedule by value (its hash is computed once)."""
    brabant, rotterdam = schedule_of("zuidoost-brabant"), schedule_of("rotterdam-rijnmond")
    national = schedule_of("national")
    assert brabant is not rotterdam  # both follow the national default, each resolved on its own
    assert brabant == rotterdam and hash(brabant) == hash(rotterdam)
    assert brabant != national and hash(brabant) != hash(national)


def test_naive_instants_are_refused() -> None:
    with pytest.raises(ValueError):
        state_at(schedule_of("utrecht"), datetime(2025, 1, 1, 12))


INSTANTS = st.datetimes(
    min_value=datetime(2019, 1, 1), max_value=datetime(2028, 12, 31), timezones=st.just(UTC)
)
REGIONS = st.sampled_from([*CONFIG.regions, "national"])


@settings(max_examples=300, deadline=None)
@given(instant=INSTANTS, region=REGIONS, fraction=st.floats(min_value=0, max_value=1))
def test_next_change_is_in_the_future_and_the_state_flips_there_and_not_before(
    instant: datetime, region: str, fraction: float
) -> None:
    schedule = schedule_of(region)
    state = state_at(schedule, instant)
    if state.next_change is None:
        assert region == "national" and state.open
        return
    assert state.next_change > instant
    assert state_at(schedule, state.next_change).open is not state.open
    just_before = state.next_change - timedelta(microseconds=1)
    assert state_at(schedule, just_before).open is state.open
    between = instant + (state.next_change - instant) * fraction
    if between < state.next_change:
        assert state_at(schedule, between).open is state.open


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["zuidoost-brabant", "--at", "2025-11-21T16:59:59+01:00"],
            {"open": True, "next_change": "2025-11-21T17:00:00+01:00"},
        ),
        (
            ["zuidoost-brabant", "--at", "2025-11-21T17:00:00+01:00"],
            {"open": False, "next_change": "2025-11-24T09:00:00+01:00"},
        ),
        (["utrecht", "--at", "2025-03-31 09:00"], {"open": True, "next_change": "2025-03-31T17:00:00+02:00"}),
        (["national"], {"open": True, "next_change": None}),
    ],
)
def test_schedule_command_prints_one_json_object(capsys, argv: list[str], expected: dict) -> None:
    import json

    from gateway.cli import main

    assert main(["schedule", *argv, "--json", "--config", str(EXAMPLE_CONFIG)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["region"] == argv[0] and result["reason"]
    assert {k: result[k] for k in expected} == expected


def test_schedule_command_refuses_an_unknown_region(capsys) -> None:
    from gateway.cli import main

    assert main(["schedule", "atlantis", "--config", str(EXAMPLE_CONFIG)]) == 2
    assert "unknown region" in capsys.readouterr().err
