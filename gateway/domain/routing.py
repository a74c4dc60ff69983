"""The routing decision, a pure function: region, schedule, policy and urgency in;
the queue, the reason and whether an auto-reply is due out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from gateway.config.models import NATIONAL, Config
from gateway.domain.envelope import Urgency
from gateway.domain.resolution import Resolution
from gateway.domain.schedules import AMSTERDAM, ScheduleState
from gateway.domain.texts import format_local
from gateway.domain.topology import region_routing_key
from gateway.domain.urgency import is_urgent


@dataclass(frozen=True)
class Decision:
    team: str  # the region or "national" whose queue takes the message
    region: str  # the resolved region (kept when overflowing to the national team)
    routing_key: str  # on gw.region
    urgency: Urgency
    after_hours: bool
    reason: str
    reply_until: datetime | None  # set when an auto-reply is due: the closed period's end


def closed_policy(config: Config, region: str, channel_kind: str) -> str:
    own = config.regions[region].closed_policy if region in config.regions else {}
    default = config.routing.closed_policy
    return own.get(channel_kind) or own.get("default") or default.get(channel_kind) or default["default"]


def decide(
    *,
    resolution: Resolution,
    state: ScheduleState,
    urgency: Urgency,
    policy: str,
    auto_reply_allowed: bool,
    acute_always_national: bool = False,
) -> Decision:
    region = resolution.region
    priority = "urgent" if is_urgent(urgency) else "normal"
    if acute_always_national and urgency is Urgency.ACUTE:
        return Decision(
            NATIONAL,
            region,
            region_routing_key(NATIONAL, priority),
            urgency,
            not state.open,
            f"{resolution.reason}; {state.reason}; acute danger from this channel: national team",
            None,
        )
    if state.open:
        return Decision(
            region,
            region,
            region_routing_key(region, priority),
            urgency,
            False,
            f"{resolution.reason}; {state.reason}",
            None,
        )
    reply_until = state.next_change if auto_reply_allowed else None
    if urgency is Urgency.ACUTE:
        team, why = NATIONAL, "acute danger while the region is closed: national team"
    elif policy == "overflow":
        team, why = NATIONAL, "closed: overflow to the national team"
    else:
        team, why = region, "closed: held for the region"
    return Decision(
        team,
        region,
        region_routing_key(team, priority),
        urgency,
        True,
        f"{resolution.reason}; {state.reason}; {why}",
        reply_until,
    )


def answered_by_transfer(state: ScheduleState) -> datetime | None:
    """The closed period a counsellor's transfer counts as already answered: the end of
    the receiving team's current closed period, or None while that team is open.

    The person is in touch with the helpline already; an auto-reply ("we are closed")
    after a transfer would come only because of the transfer (issue 17): the receiving
    team's closed period is another key than the first team's, or the first team was
    open. The router claims this period at the transfer without sending, so the person's
    next message in it finds the claim taken; a later closed period gets its one
    auto-reply as for anyone."""
    return None if state.open else state.next_change


def auto_reply_text(config: Config, region: str, language: str, next_open: datetime | None) -> str:
    template = config.routing.auto_reply["en" if language == "en" else "nl"]
    name = config.regions[region].name.removeprefix("Veilig Thuis ") if region in config.regions else region
    if next_open is None:
        when = "—"
    else:
        local = next_open.astimezone(AMSTERDAM)
        when = format_local(local, language)
    return template.format(region=name, next_open=when)
