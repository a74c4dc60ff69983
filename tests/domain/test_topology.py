from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from gateway.domain.topology import inbound_shard
from gateway.service import topology_for


def test_every_region_and_the_national_team_has_an_urgent_and_a_normal_queue(config) -> None:
    names = set(topology_for(config).queue_names())
    for code in config.team_codes:
        assert {f"gw.region.{code}.urgent", f"gw.region.{code}.normal"} <= names


def test_names_follow_the_contract(config) -> None:
    topology = topology_for(config)
    assert all(e.name.startswith("gw.") for e in topology.exchanges)
    for queue in topology.queues:
        assert re.fullmatch(r"gw\.[a-z0-9.-]+", queue.name), queue.name
        assert queue.arguments.get("x-queue-type") == "quorum"
    work = [q for q in topology.queues if q.name not in ("gw.dead", "gw.unroutable")]
    assert all(q.arguments["x-dead-letter-exchange"] == "gw.dead" for q in work)
    assert all(q.arguments["x-delivery-limit"] == 5 for q in work)
    inbound = [q for q in topology.queues if q.name.startswith("gw.inbound.")]
    assert len(inbound) == 4 and all(q.arguments["x-single-active-consumer"] for q in inbound)


def test_every_queue_is_bound_and_every_binding_names_declared_things(config) -> None:
    topology = topology_for(config)
    exchanges = {e.name for e in topology.exchanges}
    queues = set(topology.queue_names())
    bound = {b.queue for b in topology.bindings}
    assert bound == queues
    assert all(b.exchange in exchanges for b in topology.bindings)


@given(st.text(min_size=1, max_size=64), st.integers(min_value=1, max_value=64))
def test_shard_is_stable_and_in_range(conversation: str, shards: int) -> None:
    shard = inbound_shard(conversation, shards)
    assert 0 <= shard < shards
    assert shard == inbound_shard(conversation, shards)
