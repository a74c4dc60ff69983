"""Faults under load against a real three-node RabbitMQ cluster.

Each test runs the gateway as three processes (ingest, router, desk: one role each, all
given every node's URL), sends a steady stream of webhooks from four channel kinds (as the
providers send them, one sender per conversation, each message after the previous one was
answered), injects one fault, and then checks the desk's store in PostgreSQL: every message
that got a 2xx is in its region's conversation exactly once and in order, nothing was
acknowledged that no broker could confirm, /readyz told the truth, and the service recovered
by itself. The figures of each run are printed in the terminal summary ("faults under load").
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gateway.service import load_config, topology_for
from scripts.rabbitmq_cluster import Cluster
from tests.cluster.conftest import PUBLISH_TIMEOUT, REPORTS, fault_config, queue_table
from tests.cluster.diagnosis import explain_missing, roles_view
from tests.conftest import TEST_SECRET, ServiceProcess, clean_state
from tests.helpers.harness import metric_total
from tests.helpers.traffic import (
    SECRETS,
    Load,
    MixedTraffic,
    Readiness,
    desk_rows,
    drive,
    parse_arrivals,
    recovery_seconds,
    tally,
    watch_readiness,
)

pytestmark = [pytest.mark.broker, pytest.mark.cluster]

OPEN_MONDAY = "2025-11-24T10:00:00+01:00"  # every region open: all traffic goes to region queues
RATE = 40.0  # webhooks per second, all conversations together
CONVERSATIONS = 12  # three per channel kind
WARMUP = 3.0
AFTER_FAULT = 8.0  # load keeps running this long after the fault has been undone
BUSY_QUEUES = (
    "gw.inbound.0", "gw.inbound.1", "gw.inbound.2", "gw.inbound.3",
    "gw.region.zuidoost-brabant.normal", "gw.region.rotterdam-rijnmond.normal",
    "gw.region.amsterdam-amstelland.normal",
)  # fmt: skip


@dataclass
class Gateway:
    """The service as one process per role; a killed role is replaced by `respawn`."""

    urls: str
    database_url: str
    config: Path
    logs: Path
    processes: dict[str, ServiceProcess] = field(default_factory=dict)
    spawned: Counter[str] = field(default_factory=Counter)

    def spawn(self, role: str) -> ServiceProcess:
        self.spawned[role] += 1
        process = ServiceProcess(
            self.urls,
            self.logs / f"{role}-{self.spawned[role]}.log",
            roles=(role,),
            config_dir=self.config,
            GATEWAY_DATABASE_URL=self.database_url,
            GATEWAY_FAKE_TIME=OPEN_MONDAY,
            **SECRETS,
        )
        self.processes[role] = process
        return process

    async def start(self) -> None:
        for role in ("desk", "router", "ingest"):
            self.spawn(role)
        for process in self.processes.values():
            await process.wait_ready(60)

    async def respawn(self, role: str) -> None:
        await self.spawn(role).wait_ready(60)

    def kill(self, role: str) -> None:
        victim = self.processes[role].process
        victim.kill()
        victim.wait()

    @property
    def ingest(self) -> ServiceProcess:
        return self.processes["ingest"]

    def stop(self) -> None:
        for process in self.processes.values():
            process.stop()

    def all_alive(self) -> bool:
        return all(p.process.poll() is None for p in self.processes.values())


@dataclass
class Window:
    """When the fault began and when it was undone (loop time)."""

    began: float = 0.0
    undone: float = 0.0


Fault = Callable[[Gateway, Window], Awaitable[None]]


async def run_under_load(
    name: str,
    cluster: Cluster,
    cluster_vhost: tuple[str, str],
    database_url: str,
    tmp_path: Path,
    fault: Fault,
) -> tuple[dict[str, object], Load, Readiness, Window, Gateway]:
    config = fault_config(tmp_path / "config")
    vhost_urls = cluster_vhost[1]
    await clean_state(vhost_urls.split(",")[0], database_url, load_config(config))
    gateway = Gateway(vhost_urls, database_url, config, tmp_path)
    traffic, load, readiness, window = MixedTraffic(CONVERSATIONS), Load(), Readiness(), Window()
    stop_load, stop_watching = asyncio.Event(), asyncio.Event()
    try:
        await gateway.start()
        loop = asyncio.get_running_loop()
        driver = asyncio.create_task(
            drive(gateway.ingest.base, traffic, rate=RATE, stop=stop_load, load=load)
        )
        watcher = asyncio.create_task(watch_readiness(gateway.ingest.base, readiness, stop_watching))
        await asyncio.sleep(WARMUP)
        window.began = loop.time()
        await fault(gateway, window)
        window.undone = window.undone or loop.time()
        await asyncio.sleep(AFTER_FAULT)
        stop_load.set()
        await driver
        # The queues drain into the desk; wait until every acknowledged message is there.
        acknowledged = sum(len(seqs) for seqs in load.acknowledged().values())
        deadline = loop.time() + 90
        while loop.time() < deadline:
            rows = await desk_rows(database_url, TEST_SECRET)
            result = tally(traffic, load, parse_arrivals(traffic.run, rows))
            if result.delivered >= acknowledged:
                break
            await asyncio.sleep(0.5)
        await asyncio.sleep(2.0)  # a late duplicate would have arrived by now
        stop_watching.set()
        await watcher
        rows = await desk_rows(database_url, TEST_SECRET)
        result = tally(traffic, load, parse_arrivals(traffic.run, rows))
        alive = gateway.all_alive()
        report = {
            "fault": name,
            **result.summary(),
            "answered_503": load.statuses()[503],
            "slowest_answer_during_fault_ms": round(
                max(
                    (o.answered_at - o.sent_at for o in load.outcomes if o.sent_at >= window.began - 1),
                    default=0.0,
                )
                * 1000
            ),
            "not_ready_seconds": round(0.1 * sum(1 for _, status in readiness.samples if status != 200), 1),
            "recovery_seconds": round(recovery_seconds(load, window.began), 2),
            "processes_alive": alive,
        }
        REPORTS.append(report)
        print(report)
        assert result.acknowledged > 0.5 * result.sent, f"too little got through to prove anything: {report}"
        if result.lost:
            where = await explain_missing(
                cluster,
                cluster_vhost[0],
                vhost_urls.split(","),
                {role: process.base for role, process in gateway.processes.items()},
                gateway.stop,
                traffic.run,
                result.lost,
                tmp_path / "missing.json",
            )
            pytest.fail(f"acknowledged but never reached the desk: {result.lost[:10]} {report} {where}")
        assert result.duplicated == [], f"stored twice at the desk: {result.duplicated[:10]}"
        assert result.out_of_order == [], f"conversations out of order: {result.out_of_order}"
        assert result.wrong_team == [], f"in another team's queue: {result.wrong_team[:10]}"
        assert alive, "a gateway process died instead of recovering by itself"
        statuses = set(load.statuses())
        assert statuses <= {200, 202, 503}, f"unexpected answers under a broker fault: {load.statuses()}"
        assert readiness.samples and readiness.samples[-1][1] == 200, "not ready again after the fault"
        views = await roles_view({role: process.base for role, process in gateway.processes.items()})
        idle = {
            role: [queue for queue, state in view.get("consumers", {}).items() if not state["consuming"]]
            for role, view in views.items()
            if isinstance(view, dict)
        }
        assert all(isinstance(view, dict) and view["http_status"] == 200 for view in views.values()), views
        assert not any(idle.values()), f"a role did not resume every queue it consumed: {idle}"
        assert views["router"]["consumers"] and views["desk"]["consumers"], views  # type: ignore[index]
        after = [o for o in load.outcomes if o.sent_at > window.undone + AFTER_FAULT / 2]
        assert after and all(o.acknowledged for o in after), "still refusing webhooks after recovery"
        return report, load, readiness, window, gateway
    finally:
        stop_load.set()
        stop_watching.set()
        gateway.stop()
        await asyncio.sleep(0)


def leader_of_busiest(cluster: Cluster, vhost: str) -> int:
    leaders = Counter(str(row["leader"]) for row in queue_table(cluster, vhost) if row["name"] in BUSY_QUEUES)
    busiest = leaders.most_common(1)[0][0]
    return next(node.index for node in cluster.nodes if node.name == busiest)


async def test_every_work_queue_is_a_quorum_queue_on_all_three_nodes(
    cluster, cluster_vhost, database_url, tmp_path
) -> None:
    config = fault_config(tmp_path / "config")
    gateway = Gateway(cluster_vhost[1], database_url, config, tmp_path)
    try:
        await gateway.start()
    finally:
        gateway.stop()
    queues = {str(row["name"]): row for row in queue_table(cluster, cluster_vhost[0])}
    expected = set(topology_for(load_config(config)).queue_names())
    assert {"gw.outbound", "gw.dead", *BUSY_QUEUES} <= expected
    assert expected <= set(queues), sorted(expected - set(queues))
    every_node = sorted(node.name for node in cluster.nodes)
    for name, row in queues.items():
        if not row["durable"]:
            continue  # a process's own wake-up queue, deleted with its connection
        assert row["type"] == "quorum", name
        assert sorted(row["members"]) == every_node, (name, row["members"])  # type: ignore[arg-type]
    region_queues = [name for name in queues if name.startswith("gw.region.")]
    assert len(region_queues) == 2 * 27, "an urgent and a normal queue for 26 regions and the national team"


async def test_the_node_leading_the_busiest_queues_is_killed_and_restarted(
    cluster, cluster_vhost, database_url, tmp_path
) -> None:
    async def kill_leader(gateway: Gateway, window: Window) -> None:
        # rabbitmqctl runs in a thread: on this loop it would stop the load generator too (with
        # a member down, list_queues took 21 s on a busy machine), and the requests waiting
        # meanwhile would look slow or unanswered although the gateway had answered them.
        victim = await asyncio.to_thread(leader_of_busiest, cluster, cluster_vhost[0])
        killed.append(cluster.node(victim).name)
        cluster.kill(victim)
        assert not cluster.running(cluster.node(victim))
        await asyncio.sleep(6)
        rows = await asyncio.to_thread(queue_table, cluster, cluster_vhost[0])
        leaders_meanwhile.update(str(row["leader"]) for row in rows if row["name"] in BUSY_QUEUES)
        await asyncio.to_thread(cluster.restart, victim)
        window.undone = asyncio.get_running_loop().time()

    killed: list[str] = []
    leaders_meanwhile: set[str] = set()
    report, *_ = await run_under_load(
        "kill -9 the leader node", cluster, cluster_vhost, database_url, tmp_path, kill_leader
    )
    assert killed and killed[0] not in leaders_meanwhile, "the busy queues' leaders did not move"
    assert report["recovery_seconds"] < 30
    # The restarted node is a member again: every busy queue has all three members online.
    for _ in range(60):
        rows = [row for row in queue_table(cluster, cluster_vhost[0]) if row["name"] in BUSY_QUEUES]
        if all(len(row.get("online", [])) == 3 for row in rows):  # type: ignore[arg-type]
            break
        await asyncio.sleep(0.5)
    else:
        pytest.fail(f"the restarted node did not rejoin the busy queues: {rows}")


async def test_connections_closed_by_the_broker(cluster, cluster_vhost, database_url, tmp_path) -> None:
    reconnected: dict[str, bool] = {}

    async def close_connections(gateway: Gateway, window: Window) -> None:
        before = {
            role: await metric_total(process.port, "gateway_broker_reconnects")
            for role, process in gateway.processes.items()
        }
        for node in cluster.nodes:
            await asyncio.to_thread(
                cluster.ctl, node, "close_all_connections", "--vhost", cluster_vhost[0], "fault test"
            )
        for _ in range(100):
            for role, process in gateway.processes.items():
                now = await metric_total(process.port, "gateway_broker_reconnects")
                reconnected[role] = now > before[role]
            if all(reconnected.values()):
                break
            await asyncio.sleep(0.1)

    report, *_ = await run_under_load(
        "connections closed by the broker", cluster, cluster_vhost, database_url, tmp_path, close_connections
    )
    assert reconnected == {"ingest": True, "router": True, "desk": True}, "a connection was never closed"
    assert report["recovery_seconds"] < 15


async def test_router_and_desk_killed_mid_batch(cluster, cluster_vhost, database_url, tmp_path) -> None:
    async def kill_workers(gateway: Gateway, window: Window) -> None:
        gateway.kill("router")
        await asyncio.sleep(1.5)  # messages pile up in the inbound queues meanwhile
        await gateway.respawn("router")
        await asyncio.sleep(1.0)
        gateway.kill("desk")
        await asyncio.sleep(1.5)
        await gateway.respawn("desk")

    report, *_ = await run_under_load(
        "router and desk killed (SIGKILL)", cluster, cluster_vhost, database_url, tmp_path, kill_workers
    )
    assert report["answered_503"] == 0, "ingest does not depend on the router or the desk"


async def test_the_broker_paused_longer_than_the_publish_timeout(
    cluster, cluster_vhost, database_url, tmp_path
) -> None:
    pause = PUBLISH_TIMEOUT + 5

    async def pause_broker(gateway: Gateway, window: Window) -> None:
        for node in cluster.nodes:
            cluster.pause(node.index)
        try:
            await asyncio.sleep(pause)
        finally:
            for node in cluster.nodes:
                cluster.resume(node.index)
        window.undone = asyncio.get_running_loop().time()

    report, load, readiness, window, _ = await run_under_load(
        "broker paused (SIGSTOP)", cluster, cluster_vhost, database_url, tmp_path, pause_broker
    )
    inside = [o for o in load.outcomes if o.sent_at > window.began + 0.2 and o.answered_at < window.undone]
    assert inside, "no request was made during the pause"
    assert all(o.status == 503 for o in inside), Counter(o.status for o in inside)
    # Not ready once a confirm is overdue, until the broker answers again.
    overdue = readiness.states_between(window.began + PUBLISH_TIMEOUT + 1.5, window.undone)
    assert overdue and 200 not in overdue, Counter(overdue)
    assert report["answered_503"] > 0
