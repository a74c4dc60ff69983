"""Region resolution, urgency and the routing decision: tables, one row per rule."""

from __future__ import annotations

import unicodedata
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.domain.envelope import Urgency
from gateway.domain.resolution import RegionIndex, Resolution, resolve_region
from gateway.domain.routing import answered_by_transfer, auto_reply_text, closed_policy, decide
from gateway.domain.schedules import ScheduleState
from gateway.domain.urgency import AcuteDanger, classify, fold
from gateway.service import load_config
from tests.conftest import EXAMPLE_CONFIG

CONFIG = load_config(EXAMPLE_CONFIG)
INDEX = RegionIndex.from_config(CONFIG)
ACUTE = AcuteDanger(CONFIG.routing.acute_phrases)
NL = ZoneInfo("Europe/Amsterdam")
MONDAY_9 = datetime(2025, 11, 24, 9, 0, tzinfo=NL)

RESOLUTION = [
    # (channel region, municipality, postcode, current region, expected region, reason)
    ("utrecht", "Eindhoven", "3011", "zeeland", "utrecht", "channel region"),
    (None, "Eindhoven", None, None, "zuidoost-brabant", "municipality"),
    (None, "EINDHOVEN", None, None, "zuidoost-brabant", "municipality"),
    (None, "Sudwest Fryslan", None, None, "friesland", "municipality"),
    (None, "gemeente 's-Hertogenbosch", None, None, "brabant-noordoost", "municipality"),
    (None, "Bergen (L)", None, None, "limburg-noord", "municipality"),
    (None, "Nergenshuizen", "3011", None, "rotterdam-rijnmond", "postcode"),
    (None, None, "1012 AB", None, "amsterdam-amstelland", "postcode"),
    (None, None, "5611", None, "zuidoost-brabant", "postcode"),
    (None, None, "9999", "zeeland", "zeeland", "conversation region"),
    (None, "Nergenshuizen", None, "utrecht", "utrecht", "conversation region"),
    (None, None, None, "national", "national", "conversation region"),
    (None, None, None, "atlantis", "national", "national team"),
    (None, None, None, None, "national", "national team"),
]


@pytest.mark.parametrize(("channel", "municipality", "postcode", "current", "region", "reason"), RESOLUTION)
def test_region_resolution(channel, municipality, postcode, current, region, reason) -> None:
    found = resolve_region(
        INDEX, channel_region=channel, municipality=municipality, postcode=postcode, current_region=current
    )
    assert found.region == region
    assert reason in found.reason


URGENCY = [
    # (arrived as, text, expected)
    (Urgency.NORMAL, "Ik wil iets vragen over mijn buren", Urgency.NORMAL),
    (Urgency.NORMAL, "Ik ben in gevaar, help", Urgency.ACUTE),
    (Urgency.NORMAL, "IK BEN IN GEVAAR", Urgency.ACUTE),
    (Urgency.NORMAL, "ik ben in   gevaar", Urgency.ACUTE),
    (Urgency.NORMAL, "hij slaat me nu", Urgency.ACUTE),
    (Urgency.NORMAL, "Ik ben bang voor mijn léven", Urgency.ACUTE),
    (Urgency.NORMAL, "He has a KNIFE!", Urgency.ACUTE),
    (Urgency.NORMAL, "levensgevaarlijk is het niet", Urgency.NORMAL),
    (Urgency.NORMAL, "ongevaarlijk", Urgency.NORMAL),
    (Urgency.NORMAL, "helpnu", Urgency.NORMAL),
    (Urgency.NORMAL, "", Urgency.NORMAL),
    (Urgency.HIGH, "een intake uit de apotheek", Urgency.HIGH),
    (Urgency.HIGH, "zij is in gevaar", Urgency.ACUTE),
    (Urgency.ACUTE, "", Urgency.ACUTE),
]


@pytest.mark.parametrize(("arrived", "text", "expected"), URGENCY)
def test_urgency(arrived: Urgency, text: str, expected: Urgency) -> None:
    assert classify(arrived, text, ACUTE) is expected


# Texts of any kind, ASCII ones, and characters that casefold turns into ASCII.
TEXTS = (
    st.text() | st.text(alphabet=st.characters(max_codepoint=0x7F)) | st.sampled_from(["\u1e9e", "\u212a"])
)


@given(TEXTS)
def test_fold_is_casefold_nfkd_without_combining_marks(text: str) -> None:
    """The ASCII shortcut in fold must give what the full definition gives, for any text."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    assert fold(text) == "".join(c for c in decomposed if not unicodedata.combining(c))


OPEN = ScheduleState(True, "open: regular hours", datetime(2025, 11, 21, 17, 0, tzinfo=NL))
CLOSED = ScheduleState(False, "closed: outside opening hours", MONDAY_9)
ZOB = Resolution("zuidoost-brabant", "channel region")

DECISIONS = [
    # (state, urgency, policy, auto-reply allowed, team, routing key, after hours, reply)
    (OPEN, Urgency.NORMAL, "hold", True, "zuidoost-brabant", "zuidoost-brabant.normal", False, False),
    (OPEN, Urgency.HIGH, "hold", True, "zuidoost-brabant", "zuidoost-brabant.urgent", False, False),
    (OPEN, Urgency.ACUTE, "overflow", True, "zuidoost-brabant", "zuidoost-brabant.urgent", False, False),
    (CLOSED, Urgency.NORMAL, "hold", True, "zuidoost-brabant", "zuidoost-brabant.normal", True, True),
    (CLOSED, Urgency.HIGH, "hold", True, "zuidoost-brabant", "zuidoost-brabant.urgent", True, True),
    (CLOSED, Urgency.NORMAL, "overflow", True, "national", "national.normal", True, True),
    (CLOSED, Urgency.ACUTE, "hold", True, "national", "national.urgent", True, True),
    (CLOSED, Urgency.ACUTE, "overflow", True, "national", "national.urgent", True, True),
    (CLOSED, Urgency.NORMAL, "hold", False, "zuidoost-brabant", "zuidoost-brabant.normal", True, False),
]


@pytest.mark.parametrize(
    ("state", "urgency", "policy", "allowed", "team", "key", "after", "reply"), DECISIONS
)
def test_routing_decision(state, urgency, policy, allowed, team, key, after, reply) -> None:
    decision = decide(resolution=ZOB, state=state, urgency=urgency, policy=policy, auto_reply_allowed=allowed)
    assert (decision.team, decision.routing_key, decision.after_hours) == (team, key, after)
    assert decision.region == "zuidoost-brabant"
    assert (decision.reply_until == MONDAY_9) is reply
    assert "channel region" in decision.reason and decision.urgency is urgency


@pytest.mark.parametrize(("urgency", "policy"), [(u, p) for u in Urgency for p in ("hold", "overflow")])
def test_a_transfer_to_a_closed_team_answers_the_period_its_next_message_would_claim(urgency, policy) -> None:
    """The router claims this at the transfer without sending, so the person's next
    message to the receiving team in the same closed period brings no auto-reply."""
    transferred = Resolution("rotterdam-rijnmond", "transferred by a counsellor")
    decision = decide(
        resolution=transferred, state=CLOSED, urgency=urgency, policy=policy, auto_reply_allowed=True
    )
    assert answered_by_transfer(CLOSED) == decision.reply_until == MONDAY_9


def test_a_transfer_to_an_open_team_answers_nothing_and_a_later_closed_period_is_another() -> None:
    assert answered_by_transfer(OPEN) is None
    tonight = ScheduleState(False, "closed: outside opening hours", datetime(2025, 11, 25, 9, 0, tzinfo=NL))
    later = decide(
        resolution=ZOB, state=tonight, urgency=Urgency.NORMAL, policy="hold", auto_reply_allowed=True
    )
    assert later.reply_until is not None and later.reply_until != answered_by_transfer(CLOSED)


@pytest.mark.parametrize(
    ("region", "kind", "policy"),
    [
        ("zuidoost-brabant", "http-json", "hold"),  # routing.yaml default
        ("zuid-limburg", "http-json", "overflow"),  # the region's own rule for this kind
        ("zuid-limburg", "sms", "hold"),  # ... and routing.yaml's default for others
        ("amsterdam-amstelland", "http-json", "overflow"),  # the region's own default
        ("national", "sms", "hold"),
    ],
)
def test_closed_policy_lookup(region: str, kind: str, policy: str) -> None:
    assert closed_policy(CONFIG, region, kind) == policy


def test_auto_reply_names_the_helpline_112_and_the_next_opening() -> None:
    dutch = auto_reply_text(CONFIG, "zuidoost-brabant", "nl", MONDAY_9)
    english = auto_reply_text(CONFIG, "zuidoost-brabant", "en", MONDAY_9)
    for text in (dutch, english):
        assert "0800-2000" in text and "112" in text and "Zuidoost-Brabant" in text
    assert "maandag 24 november om 09:00" in dutch
    assert "Monday 24 November at 09:00" in english
