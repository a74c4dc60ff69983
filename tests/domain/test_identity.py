"""The pure side of identity: which role may do what, how an identity provider's claim
becomes a team, and the access log's chain (each break named by its first record)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gateway.domain.identity import (
    AUDIT_FIELDS,
    GENESIS,
    LocalAccount,
    first_break,
    permitted,
    record_digest,
    team_and_role,
)

MAPPINGS = [("vt-zob", "zuidoost-brabant", "counsellor"), ("vt-privacy", "national", "privacy-officer")]


@pytest.mark.parametrize(
    ("claims", "expected"),
    [
        ({"groups": ["vt-zob"]}, ("zuidoost-brabant", "counsellor")),
        ({"groups": "vt-zob"}, ("zuidoost-brabant", "counsellor")),
        ({"groups": ["other", "vt-privacy"]}, ("national", "privacy-officer")),
        ({"groups": ["vt-privacy", "vt-zob"]}, ("zuidoost-brabant", "counsellor")),  # the first mapping wins
        ({"groups": []}, None),
        ({"groups": [1, None, {"x": "vt-zob"}]}, None),
        ({"groups": 7}, None),
        ({}, None),
    ],
)
def test_a_claim_maps_to_a_team_or_to_nothing(claims: dict, expected: tuple[str, str] | None) -> None:
    assert team_and_role(claims, "groups", MAPPINGS) == expected


@pytest.mark.parametrize(
    ("role", "action", "allowed"),
    [
        ("counsellor", "read", True),
        ("coordinator", "transfer", True),
        ("counsellor", "audit_read", False),
        ("privacy-officer", "audit_read", True),
        ("privacy-officer", "read", False),
        ("privacy-officer", "list", False),
        ("pharmacy", "read", False),
        ("", "list", False),
    ],
)
def test_who_may_do_what(role: str, action: str, allowed: bool) -> None:
    assert permitted(role, action) is allowed  # type: ignore[arg-type]


def chain(count: int) -> list[dict]:
    records, previous = [], GENESIS
    start = datetime(2026, 12, 1, 9, tzinfo=UTC)
    for seq in range(1, count + 1):
        record = {
            "seq": seq, "at": start + timedelta(minutes=seq), "account": "anna-zob",
            "method": "password+totp",
            "on_behalf_of": None, "team": "zuidoost-brabant", "action": "read",
            "conversation_id": f"c_{seq}", "result": "ok", "reason": None, "prev_hash": previous,
        }  # fmt: skip
        record["hash"] = previous = record_digest(previous, record)
        records.append(record)
    return records


def test_an_intact_chain_holds_and_retention_may_cut_its_start() -> None:
    records = chain(6)
    head = (6, records[-1]["hash"])
    assert first_break(records, head) is None
    assert first_break(records[2:], head) is None  # the oldest went by retention


@pytest.mark.parametrize("field", [f for f in AUDIT_FIELDS if f != "seq"])
def test_editing_any_field_breaks_that_record(field: str) -> None:
    records = chain(5)
    records[2][field] = "edited" if field != "at" else records[2]["at"] + timedelta(seconds=1)
    broken = first_break(records, (5, records[-1]["hash"]))
    assert broken is not None and broken.seq == 3 and "edited" in broken.problem


def test_a_removed_record_an_inserted_one_and_a_cut_tail_are_found() -> None:
    records = chain(6)
    head = (6, records[-1]["hash"])
    removed = records[:3] + records[4:]
    assert first_break(removed, head).seq == 5  # type: ignore[union-attr]
    forged = dict(records[3], conversation_id="c_forged")
    forged["hash"] = record_digest(forged["prev_hash"], forged)  # consistent in itself
    assert first_break([*records[:3], forged, *records[4:]], head).seq == 5  # type: ignore[union-attr]
    assert first_break(records[:4], head).seq == 5  # type: ignore[union-attr]


def test_an_account_stamp_changes_with_what_the_configuration_decides() -> None:
    account = LocalAccount("desk", "anna-zob", "Anna", "zuidoost-brabant", "counsellor", "scrypt$17$8$1$a$b")
    same = LocalAccount("desk", "anna-zob", "Anna K.", "zuidoost-brabant", "counsellor", "scrypt$17$8$1$a$b")
    assert account.stamp == same.stamp  # a new display name ends nothing
    for changed in (
        LocalAccount("desk", "anna-zob", "Anna", "twente", "counsellor", "scrypt$17$8$1$a$b"),
        LocalAccount("desk", "anna-zob", "Anna", "zuidoost-brabant", "coordinator", "scrypt$17$8$1$a$b"),
        LocalAccount("desk", "anna-zob", "Anna", "zuidoost-brabant", "counsellor", "scrypt$17$8$1$c$d"),
        LocalAccount(
            "desk", "anna-zob", "Anna", "zuidoost-brabant", "counsellor", "scrypt$17$8$1$a$b", disabled=True
        ),
    ):
        assert changed.stamp != account.stamp
