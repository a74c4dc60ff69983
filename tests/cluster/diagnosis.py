"""Where did a missing message go? A fault test that finds an acknowledged message missing
at the desk calls `explain_missing`: the broker's view of every gateway queue on every
running node (depths, leader, members, consumers and which of them is active), each role's
own view of its consumers (/readyz), and, once the roles are stopped, where each missing
message sits. One that sits in a queue is a stall; one that is nowhere is a loss."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
from collections.abc import Iterable
from pathlib import Path

import aio_pika
import aiohttp

from scripts.rabbitmq_cluster import Cluster, ClusterError
from tests.helpers.traffic import MARKER

QUEUE_COLUMNS = (
    "name", "type", "leader", "members", "online", "messages", "messages_ready",
    "messages_unacknowledged", "consumers", "state",
)  # fmt: skip
CONSUMER_COLUMNS = (
    "queue_name",
    "channel_pid",
    "consumer_tag",
    "active",
    "activity_status",
    "prefetch_count",
)


def broker_view(cluster: Cluster, vhost: str) -> dict[str, object]:
    """Per running node: the gateway's durable queues and their consumers, as that node lists them."""
    view: dict[str, object] = {}
    for node in cluster.nodes:
        if not cluster.running(node):
            view[node.name] = "not running"
            continue
        try:
            queues = json.loads(
                cluster.ctl(
                    node, "list_queues", "-p", vhost, *QUEUE_COLUMNS, "--formatter", "json", timeout=30
                )
            )
            consumers = json.loads(
                cluster.ctl(
                    node, "list_consumers", "-p", vhost, *CONSUMER_COLUMNS, "--formatter", "json", timeout=30
                )
            )
        except (ClusterError, ValueError, subprocess.TimeoutExpired) as exc:
            view[node.name] = f"could not list: {exc}"
            continue
        by_queue: dict[str, list[dict[str, object]]] = {}
        for consumer in consumers:
            by_queue.setdefault(str(consumer["queue_name"]), []).append(consumer)
        view[node.name] = {
            str(q["name"]): {**q, "consumer_list": by_queue.get(str(q["name"]), [])}
            for q in queues
            if str(q["name"]).startswith("gw.")
        }
    return view


async def roles_view(processes: dict[str, str]) -> dict[str, object]:
    """Each role's /readyz: its checks and its own view of the queues it consumes."""
    view: dict[str, object] = {}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        for role, base in processes.items():
            try:
                async with session.get(base + "/readyz") as response:
                    view[role] = {**(await response.json()), "http_status": response.status}
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                view[role] = f"no answer: {type(exc).__name__}"
    return view


async def locate(urls: Iterable[str], queues: Iterable[str], run: str) -> dict[tuple[int, int], list[str]]:
    """(conversation, seq) -> the queues holding a message of this run, read with basic.get and
    given back unacked (the channel closes), so the messages stay where they are. Call it
    only once nothing else consumes these queues."""
    found: dict[tuple[int, int], list[str]] = {}
    for url in urls:
        try:
            connection = await aio_pika.connect(url, timeout=10)
        except Exception:  # noqa: S112 - a node that is down is simply not asked
            continue
        try:
            for name in queues:
                channel = await connection.channel()
                try:
                    queue = await channel.get_queue(name, ensure=False)
                    while (message := await queue.get(no_ack=False, fail=False, timeout=10)) is not None:
                        marker = MARKER.search(message.body.decode("utf-8", "replace"))
                        if marker and marker["run"] == run:
                            key = (int(marker["conversation"]), int(marker["seq"]))
                            found.setdefault(key, []).append(name)
                except aio_pika.exceptions.AMQPError:
                    pass
                finally:
                    with contextlib.suppress(Exception):
                        await channel.close()  # every message read goes back to its queue
            return found
        finally:
            await connection.close()
    return found


def classify(
    missing: list[tuple[int, int]], where: dict[tuple[int, int], list[str]]
) -> tuple[dict[str, list[str]], list[str]]:
    """Missing messages that sit in a queue (stalled: message -> queues) and those that are
    nowhere (lost), each named "c<conversation> n<seq>"."""
    stalled = {f"c{n} n{seq}": where[(n, seq)] for n, seq in missing if (n, seq) in where}
    lost = [f"c{n} n{seq}" for n, seq in missing if (n, seq) not in where]
    return stalled, lost


async def explain_missing(
    cluster: Cluster,
    vhost: str,
    urls: list[str],
    processes: dict[str, str],
    stop_roles: object,
    run: str,
    missing: list[tuple[int, int]],
    report_path: Path,
) -> str:
    """Gather everything, stop the roles (`stop_roles()`), find each missing message; write the
    whole report as JSON to `report_path` and return a short summary for the assertion."""
    roles = await roles_view(processes)
    broker = await asyncio.to_thread(broker_view, cluster, vhost)
    stop_roles()  # type: ignore[operator]
    names = sorted({name for node in broker.values() if isinstance(node, dict) for name in node})
    where = await locate(urls, names, run)
    stalled, lost = classify(missing, where)
    holding = sorted({q for queues in stalled.values() for q in queues})
    report = {"stalled": stalled, "lost": lost, "roles": roles, "broker": broker}
    await asyncio.to_thread(report_path.write_text, json.dumps(report, indent=2, default=str))
    summary = {
        "stalled": len(stalled),
        "in_queues": holding,
        "lost_nowhere": len(lost),
        "queues_holding_them": {q: _queue_line(broker, q) for q in holding},
        "roles_not_consuming": {
            role: sorted(q for q, state in view.get("consumers", {}).items() if not state.get("consuming"))
            for role, view in roles.items()
            if isinstance(view, dict)
        },
        "report": str(report_path),
    }
    return json.dumps(summary, default=str)


def _queue_line(broker: dict[str, object], queue: str) -> dict[str, object]:
    for node, queues in broker.items():
        if isinstance(queues, dict) and queue in queues:
            row = queues[queue]
            return {
                "seen_from": node,
                "leader": row.get("leader"),
                "online": row.get("online"),
                "ready": row.get("messages_ready"),
                "unacked": row.get("messages_unacknowledged"),
                "consumers": [
                    {k: c.get(k) for k in ("channel_pid", "active", "activity_status")}
                    for c in row.get("consumer_list", [])
                ],
            }
    return {}
