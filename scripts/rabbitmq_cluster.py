#!/usr/bin/env python3
"""A three-node RabbitMQ cluster of its own on loopback, beside any broker already running.

Each node has its own name (gwcluster1@localhost, ...), AMQP and distribution ports, data
and log folders, and Erlang cookie (a HOME of the cluster's own), and no plugins, so it
binds nothing the system broker uses. Used by the cluster tests and by hand:

    scripts/rabbitmq_cluster.py start          # start and join the three nodes; prints JSON
    scripts/rabbitmq_cluster.py status         # which nodes run, their URLs
    scripts/rabbitmq_cluster.py kill 2         # SIGKILL node 2;  restart 2 brings it back
    scripts/rabbitmq_cluster.py pause 1        # SIGSTOP node 1;  resume 1 sends SIGCONT
    scripts/rabbitmq_cluster.py stop           # stop every node, keep the data folder
    scripts/rabbitmq_cluster.py stop --wipe    # ... and delete it

Needs RabbitMQ's own scripts (Debian's rabbitmq-server package) and permission to run
them: root, or the user that owns the data folder. Standard library only.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

RABBITMQ_BIN = Path(os.environ.get("RABBITMQ_BIN", "/usr/lib/rabbitmq/bin"))
DEFAULT_DIR = Path(os.environ.get("GATEWAY_CLUSTER_DIR", "/tmp/gateway-rabbitmq-cluster"))
DEFAULT_PORT = int(os.environ.get("GATEWAY_CLUSTER_PORT", "5681"))
DEFAULT_PREFIX = "gwcluster"
HOST = "localhost"


class ClusterError(RuntimeError):
    pass


@dataclass(frozen=True)
class Node:
    index: int  # 1-based, as on the command line
    name: str
    amqp_port: int
    dist_port: int
    directory: Path

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/"

    @property
    def pid_file(self) -> Path:
        return self.directory / "pid"


class Cluster:
    def __init__(
        self,
        directory: Path = DEFAULT_DIR,
        *,
        base_port: int = DEFAULT_PORT,
        prefix: str = DEFAULT_PREFIX,
        size: int = 3,
    ) -> None:
        self.directory = directory
        self.home = directory / "home"  # holds the cluster's own .erlang.cookie
        self.nodes = [
            Node(
                i, f"{prefix}{i}@{HOST}", base_port + i - 1, base_port + 20000 + i - 1, directory / f"node{i}"
            )
            for i in range(1, size + 1)
        ]

    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    def node(self, index: int) -> Node:
        for node in self.nodes:
            if node.index == index:
                return node
        raise ClusterError(f"no node {index}; the cluster has nodes 1-{len(self.nodes)}")

    # -- environment -----------------------------------------------------------------

    def _prepare(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        cookie = self.home / ".erlang.cookie"
        if not cookie.exists():
            cookie.write_text(secrets.token_hex(20))
            cookie.chmod(0o400)
        (self.directory / "enabled_plugins").write_text("[].\n")
        (self.directory / "rabbitmq-env.conf").write_text("# the cluster's own; not /etc/rabbitmq's\n")
        for node in self.nodes:
            (node.directory / "log").mkdir(parents=True, exist_ok=True)
            (node.directory / "rabbitmq.conf").write_text(
                f"listeners.tcp.1 = 127.0.0.1:{node.amqp_port}\n"
                "loopback_users = none\n"
                "cluster_partition_handling = pause_minority\n"
            )

    def _environment(self, node: Node) -> dict[str, str]:
        environ = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
        environ.update(
            HOME=str(self.home),
            RABBITMQ_CONF_ENV_FILE=str(self.directory / "rabbitmq-env.conf"),
            RABBITMQ_NODENAME=node.name,
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(node.amqp_port),
            RABBITMQ_DIST_PORT=str(node.dist_port),
            RABBITMQ_CONFIG_FILE=str(node.directory / "rabbitmq.conf"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.directory / "enabled_plugins"),
            RABBITMQ_MNESIA_BASE=str(node.directory / "data"),
            RABBITMQ_LOG_BASE=str(node.directory / "log"),
            RABBITMQ_PID_FILE=str(node.pid_file),
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}",
            ERL_EPMD_ADDRESS="127.0.0.1",
        )
        return environ

    def ctl(self, node: Node, *args: str, timeout: float = 60.0, check: bool = True) -> str:
        done = subprocess.run(
            [str(RABBITMQ_BIN / "rabbitmqctl"), "-n", node.name, *args],
            env=self._environment(node),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and done.returncode != 0:
            raise ClusterError(f"rabbitmqctl {' '.join(args)} on {node.name} failed: {done.stderr.strip()}")
        return done.stdout

    def queues_cli(self, node: Node, *args: str, timeout: float = 60.0) -> str:
        done = subprocess.run(
            [str(RABBITMQ_BIN / "rabbitmq-queues"), "-n", node.name, *args],
            env=self._environment(node),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise ClusterError(f"rabbitmq-queues {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout

    # -- processes -------------------------------------------------------------------

    def pid(self, node: Node) -> int | None:
        try:
            pid = int(node.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        environ = Path(f"/proc/{pid}/environ")
        with contextlib.suppress(OSError):
            if f"RABBITMQ_NODENAME={node.name}".encode() not in environ.read_bytes().split(b"\0"):
                return None  # the pid was reused by something else
        return pid

    def running(self, node: Node) -> bool:
        return self.pid(node) is not None

    def _launch(self, node: Node) -> None:
        if self.running(node):
            return
        node.pid_file.unlink(missing_ok=True)
        with open(node.directory / "log" / "console.log", "ab") as console:
            subprocess.Popen(
                [str(RABBITMQ_BIN / "rabbitmq-server")],
                env=self._environment(node),
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # outlives this script; not killed with the caller's group
                cwd=node.directory,  # an Erlang crash dump lands beside the node's logs
            )

    def _await_boot(self, node: Node, limit: float = 120.0) -> None:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if node.pid_file.exists():
                if not self.running(node):
                    console = (node.directory / "log" / "console.log").read_text(errors="replace")
                    errors = [line for line in console.splitlines() if "[error]" in line][:5]
                    raise ClusterError(f"{node.name} exited while starting: " + " / ".join(errors))
                try:
                    self.ctl(
                        node, "await_startup", "--timeout", str(int(max(deadline - time.monotonic(), 1)))
                    )
                    return
                except ClusterError:
                    pass
            time.sleep(0.5)
        raise ClusterError(f"{node.name} did not start within {limit:.0f} s; see {node.directory}/log")

    def members(self, node: Node) -> list[str]:
        status = json.loads(self.ctl(node, "cluster_status", "--formatter", "json"))
        return sorted(status.get("running_nodes", []))

    def start(self) -> None:
        """Start every node and join them into one cluster (idempotent)."""
        self._prepare()
        for node in self.nodes:
            self._launch(node)
        for node in self.nodes:
            self._await_boot(node)
        seed = self.nodes[0]
        for node in self.nodes[1:]:
            if seed.name in self.members(node):
                continue
            self.ctl(node, "stop_app")
            self.ctl(node, "reset")
            self.ctl(node, "join_cluster", seed.name)
            self.ctl(node, "start_app")
        expected = sorted(n.name for n in self.nodes)
        if self.members(seed) != expected:
            raise ClusterError(f"cluster did not form: {self.members(seed)}")

    def kill(self, index: int) -> None:
        node = self.node(index)
        pid = self.pid(node)
        if pid is None:
            raise ClusterError(f"{node.name} is not running")
        os.kill(pid, signal.SIGCONT)  # a paused node must die too, not linger stopped
        os.kill(pid, signal.SIGKILL)
        for _ in range(100):
            if not self.running(node):
                return
            time.sleep(0.1)

    def restart(self, index: int) -> None:
        node = self.node(index)
        self._launch(node)
        self._await_boot(node)

    def pause(self, index: int) -> None:
        self._signal(index, signal.SIGSTOP)

    def resume(self, index: int) -> None:
        self._signal(index, signal.SIGCONT)

    def _signal(self, index: int, signum: int) -> None:
        node = self.node(index)
        pid = self.pid(node)
        if pid is None:
            raise ClusterError(f"{node.name} is not running")
        os.kill(pid, signum)

    def stop(self, *, wipe: bool = False) -> None:
        for node in self.nodes:
            pid = self.pid(node)
            if pid is None:
                continue
            os.kill(pid, signal.SIGCONT)
            try:
                self.ctl(node, "stop", timeout=60)
            except (ClusterError, subprocess.TimeoutExpired):
                os.kill(pid, signal.SIGKILL)
            for _ in range(300):
                if not self.running(node):
                    break
                time.sleep(0.1)
            else:
                os.kill(pid, signal.SIGKILL)
        if wipe and self.directory.exists():
            shutil.rmtree(self.directory)

    def status(self) -> dict[str, object]:
        return {
            "directory": str(self.directory),
            "urls": self.urls(),
            "amqp_url": ",".join(self.urls()),
            "nodes": [
                {
                    "index": node.index,
                    "name": node.name,
                    "url": node.url,
                    "running": self.running(node),
                    "pid": self.pid(node),
                }
                for node in self.nodes
            ],
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--dir", type=Path, default=DEFAULT_DIR, help="data, logs and cookie (default %(default)s)"
    )
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="AMQP port of node 1; nodes 2, 3 follow"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("start")
    commands.add_parser("status")
    stop = commands.add_parser("stop")
    stop.add_argument("--wipe", action="store_true", help="also delete the data folder")
    for verb in ("kill", "restart", "pause", "resume"):
        commands.add_parser(verb).add_argument("node", type=int)
    arguments = parser.parse_args(argv)
    cluster = Cluster(arguments.dir, base_port=arguments.port)
    try:
        if arguments.command == "start":
            cluster.start()
        elif arguments.command == "stop":
            cluster.stop(wipe=arguments.wipe)
        elif arguments.command in ("kill", "restart", "pause", "resume"):
            getattr(cluster, arguments.command)(arguments.node)
    except ClusterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(cluster.status(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
