"""A three-node RabbitMQ cluster of the tests' own (scripts/rabbitmq_cluster.py), started
once per session beside the system broker, and the gateway's roles as separate processes
connected to all three nodes."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from scripts.rabbitmq_cluster import RABBITMQ_BIN, Cluster
from tests.conftest import EXAMPLE_CONFIG, broker_required

# Other ports and names than a cluster started by hand (5681, gwcluster*), so both can run.
TEST_CLUSTER_PORT = int(os.environ.get("GATEWAY_TEST_CLUSTER_PORT", "5691"))
PUBLISH_TIMEOUT = 3.0
REPORTS: list[dict[str, object]] = []


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if not (RABBITMQ_BIN / "rabbitmq-server").exists():
        message = f"RabbitMQ's scripts are not in {RABBITMQ_BIN} (Debian's rabbitmq-server package)"
        if broker_required():
            pytest.fail(message + ": cluster tests may not skip here", pytrace=False)
        pytest.skip(message)
    # Node names carry the port: two test sessions on other ports can run side by side.
    prefix = f"gwtest-{TEST_CLUSTER_PORT}-"
    three = Cluster(tmp_path_factory.mktemp("cluster"), base_port=TEST_CLUSTER_PORT, prefix=prefix)
    try:
        three.start()
        yield three
    finally:
        three.stop(wipe=True)


@pytest.fixture
def cluster_vhost(cluster: Cluster) -> Iterator[tuple[str, str]]:
    """A vhost of this test's own on the cluster: (name, comma-separated URLs of all nodes)."""
    for node in cluster.nodes:  # a test that failed half-way may have left a node down or paused
        if cluster.running(node):
            cluster.resume(node.index)
        else:
            cluster.restart(node.index)
    name = f"gw-fault-{uuid.uuid4().hex[:8]}"
    seed = cluster.nodes[0]
    cluster.ctl(seed, "add_vhost", name)
    cluster.ctl(seed, "set_permissions", "-p", name, "guest", ".*", ".*", ".*")
    urls = ",".join(url + name for url in cluster.urls())
    yield name, urls
    for node in cluster.nodes:
        if cluster.running(node):
            cluster.ctl(node, "delete_vhost", name, check=False)
            break


def queue_table(cluster: Cluster, vhost: str) -> list[dict[str, object]]:
    node = next(n for n in cluster.nodes if cluster.running(n))
    columns = ("name", "type", "leader", "members", "online", "durable", "messages")
    listing = cluster.ctl(node, "list_queues", "-p", vhost, *columns, "--formatter", "json")
    return json.loads(listing)


def fault_config(root: Path) -> Path:
    """The example configuration with a shorter publish timeout, so a pause outlasts it quickly."""
    shutil.copytree(EXAMPLE_CONFIG, root)
    service = yaml.safe_load((root / "gateway.yaml").read_text())
    service["broker"]["publish_timeout_seconds"] = PUBLISH_TIMEOUT
    (root / "gateway.yaml").write_text(yaml.safe_dump(service))
    return root


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if REPORTS:
        terminalreporter.section("faults under load")
        for report in REPORTS:
            terminalreporter.line(json.dumps(report))
