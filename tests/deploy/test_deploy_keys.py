"""compose.yaml gives each role only its own keys and its own database user: the ingest,
on the internet, holds no private seal key, no desk key, no desk data key and no secret
(only the channel data keys, for the web chat replies its sockets deliver)."""

from __future__ import annotations

import re

import pytest
import yaml
from yarl import URL

from gateway.support import keys
from tests.conftest import ROOT

DEPLOY = ROOT / "deploy"
KEYS = {*keys.SPECIFIC, "GATEWAY_DATA_KEYS", "GATEWAY_CHANNEL_DATA_KEYS", "GATEWAY_SECRET_KEY"}
OWN = {
    "ingest": {
        "GATEWAY_PSEUDONYM_KEY",
        "GATEWAY_SEAL_PUBLIC_KEY",
        "GATEWAY_PAGES_KEY",
        "GATEWAY_CHANNEL_DATA_KEYS",
    },
    "router": set(),
    "outbound": {"GATEWAY_SEAL_PRIVATE_KEY", "GATEWAY_CHANNEL_DATA_KEYS", "GATEWAY_SECRET_KEY"},
    "desk": {
        "GATEWAY_SEAL_PRIVATE_KEY",
        "GATEWAY_DESK_SESSION_KEY",
        "GATEWAY_DATA_KEYS",
        "GATEWAY_SECRET_KEY",
    },
}


def services() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]


@pytest.mark.parametrize("role", sorted(OWN))
def test_each_role_is_given_only_the_keys_its_code_needs(role: str) -> None:
    environment = services()[role]["environment"]
    assert set(environment) & KEYS == OWN[role]
    required = {name for name in OWN[role] if name != "GATEWAY_SECRET_KEY"}
    assert required >= {k for k in keys.ROLE_KEYS[role]}, "the role's needs (gateway.support.keys)"
    for name in required:  # compose refuses to start without it, naming it
        assert environment[name].startswith(f"${{{name}:?set {name} "), name
    if "GATEWAY_SECRET_KEY" in environment:  # the legacy key: optional, the migration window
        assert environment["GATEWAY_SECRET_KEY"] == "${GATEWAY_SECRET_KEY:-}"


def test_the_ingest_holds_nothing_that_opens_a_handle_a_session_or_a_transcript() -> None:
    environment = services()["ingest"]["environment"]
    for name in (
        "GATEWAY_SEAL_PRIVATE_KEY",
        "GATEWAY_DESK_SESSION_KEY",
        "GATEWAY_DATA_KEYS",
        "GATEWAY_SECRET_KEY",
    ):
        assert name not in environment


def test_no_env_file_a_container_reads_holds_a_key() -> None:
    files = set()
    for name, service in services().items():
        found = service.get("env_file", [])
        files |= {found} if isinstance(found, str) else set(found)
        assert ".env" not in files, f"{name} reads deploy/.env, which holds every key"
    assert files == {"channels.env"}
    example = (DEPLOY / "example.channels.env").read_text()
    names = {line.split("=", 1)[0] for line in example.splitlines() if line and not line.startswith("#")}
    assert names and all(name.startswith("GW_") for name in names)


def test_each_role_signs_in_to_the_database_as_its_own_user_and_the_owner_migrates() -> None:
    found = services()
    for role in OWN:
        url = URL(found[role]["environment"]["GATEWAY_DATABASE_URL"])
        assert url.user == f"gw_{role}", role
    assert URL(found["migrate"]["environment"]["GATEWAY_DATABASE_URL"]).user == "gateway"
    assert found["migrate"]["command"] == ["db", "migrate"]
    roles = found["db-roles"]
    assert "./postgres/roles.sql:/roles.sql:ro" in roles["volumes"]
    assert roles["depends_on"] == {"migrate": {"condition": "service_completed_successfully"}}
    script = (DEPLOY / "postgres" / "roles.sql").read_text()
    for role in OWN:
        assert f"{role}_password" in roles["command"][0] and f"{role}_password" in script


def test_every_key_in_the_example_env_is_documented_with_its_roles() -> None:
    text = (DEPLOY / "example.env").read_text()
    operations = (ROOT / "docs" / "operations.md").read_text()
    contract = (ROOT / "docs" / "contract.md").read_text()
    for name in KEYS:
        assert re.search(rf"^{name}=", text, re.M), name
        assert name in operations and name in contract, name
