"""Broker users per role with only the permissions that role needs, as RabbitMQ
definitions (`rabbitmqctl import_definitions`).

RabbitMQ permissions are three regular expressions per user and vhost:
configure (declare, delete), write (publish to an exchange, bind a queue) and
read (consume from a queue, bind from an exchange). `amq.gen-...` are the
exclusive server-named queues a process uses for wake-ups (web chat, desk). A
channel kind's own wake-up exchanges (`kind_fanouts`, web chat's gw.webchat) are
written by outbound (a reply was stored) and read by ingest (which holds the
sockets).
The topology itself is declared by an operator (`gateway topology`) and the
role users run with GATEWAY_DECLARE_TOPOLOGY=0.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from typing import Any

from gateway.config.models import Config
from gateway.domain.topology import parking_policy

OWN_QUEUES = r"amq\.gen-.*"


def _any(*names: str) -> str:
    return "^(" + "|".join(names) + ")$"


def role_permissions(config: Config, kind_fanouts: tuple[str, ...] = ()) -> dict[str, dict[str, str]]:
    """user -> {configure, write, read}."""
    fanouts = [re.escape(name) for name in kind_fanouts]
    users = {
        "gw-ingest": {
            "configure": _any(OWN_QUEUES),
            "write": _any(r"gw\.inbound", OWN_QUEUES),
            "read": _any(*fanouts, OWN_QUEUES),
        },
        "gw-router": {
            "configure": "^$",
            "write": _any(r"gw\.region", r"gw\.outbound"),
            "read": r"^gw\.inbound\.[0-9]+$",
        },
        "gw-outbound": {
            "configure": "^$",
            "write": _any(r"gw\.dead", *fanouts),
            "read": _any(r"gw\.outbound"),
        },
    }
    desk_writes = _any(r"gw\.outbound", r"gw\.inbound", r"gw\.desk", OWN_QUEUES)
    # One desk user for every team, for a deployment whose desk processes serve all teams.
    users["gw-desk"] = {
        "configure": _any(OWN_QUEUES),
        "write": desk_writes,
        "read": _any(r"gw\.region\.[a-z0-9-]+\.(urgent|normal)", r"gw\.desk", OWN_QUEUES),
    }
    for team in config.team_codes:
        own = re.escape(f"gw.region.{team}.") + "(urgent|normal)"
        users[f"gw-desk-{team}"] = {
            "configure": _any(OWN_QUEUES),
            "write": desk_writes,
            "read": _any(own, r"gw\.desk", OWN_QUEUES),
        }
    # The operator declares the topology (`gateway topology`) and reads queue depths; no role
    # runs as this user.
    users["gw-operator"] = {"configure": _any(r"gw\..*"), "write": _any(r"gw\..*"), "read": _any(r"gw\..*")}
    return users


def rabbit_password_hash(password: str) -> str:
    """RabbitMQ's rabbit_password_hashing_sha256: base64(salt + sha256(salt + password))."""
    salt = os.urandom(4)
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def definitions(
    config: Config, vhost: str, passwords: dict[str, str], kind_fanouts: tuple[str, ...] = ()
) -> dict[str, Any]:
    permissions = role_permissions(config, kind_fanouts)
    return {
        "users": [
            {
                "name": user,
                "password_hash": rabbit_password_hash(passwords[user]) if user in passwords else "",
                "hashing_algorithm": "rabbit_password_hashing_sha256",
                "tags": [],
            }
            for user in permissions
        ],
        "vhosts": [{"name": vhost}],
        "permissions": [{"user": user, "vhost": vhost, **rights} for user, rights in permissions.items()],
        "policies": [parking_policy(vhost, config.service.desk.retention_hours)],
    }
