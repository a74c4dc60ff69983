"""What ops deploy parses, fits together, and names only metrics the service exports."""

from __future__ import annotations

import json
import re

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from yarl import URL

from gateway.broker.permissions import role_permissions
from gateway.service import load_config
from tests.conftest import EXAMPLE_CONFIG, ROOT

DEPLOY = ROOT / "deploy"
ROLES = ("ingest", "router", "outbound", "desk")
METRIC = re.compile(r"\bgateway_[a-z_]+")
SUFFIXES = ("_total", "_bucket", "_sum", "_count")


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def alert_rules() -> list[dict]:
    groups = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def dashboard_expressions() -> list[str]:
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "gateway.json").read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def family(name: str) -> str:
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


async def test_alerts_and_dashboard_name_only_metrics_the_service_exports(embedded_service) -> None:
    _, client = embedded_service
    response = await client.get("/metrics")
    exported = {metric.name for metric in text_string_to_metric_families(await response.text())}
    expressions = [rule["expr"] for rule in alert_rules()] + dashboard_expressions()
    named = {family(name) for expr in expressions for name in METRIC.findall(expr)}
    assert len(named) >= 10, "the alerts and the dashboard cover the service's main metrics"
    assert named <= exported, f"not exported by the service: {sorted(named - exported)}"


def test_every_alert_asked_for_exists_and_says_what_to_do() -> None:
    rules = {rule["alert"]: rule for rule in alert_rules()}
    watched = {
        "broker link down": "gateway_broker_connected",
        "publish latency": "gateway_publish_latency_seconds_bucket",
        "dead-letter growth": 'gateway_queue_messages{queue="gw.dead"}',
        "queue waiting time per region": "gateway_desk_oldest_waiting_seconds",
    }
    for what, metric in watched.items():
        assert any(metric in rule["expr"] for rule in rules.values()), what
    for name, rule in rules.items():
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name
        assert rule["labels"]["severity"] in ("page", "warn"), name
        assert rule["expr"].count("(") == rule["expr"].count(")"), name


def test_compose_runs_one_role_per_process_against_three_nodes() -> None:
    services = compose()["services"]
    assert {"rabbit1", "rabbit2", "rabbit3", "postgres", "prometheus", "grafana", *ROLES} <= set(services)
    users = set(role_permissions(load_config(EXAMPLE_CONFIG)))
    for role in ROLES:
        service = services[role]
        assert service["command"] == ["run", "--role", role]
        assert service["deploy"]["replicas"] >= 2, f"{role} is scaled out"
        assert service["environment"]["GATEWAY_DECLARE_TOPOLOGY"] == "0"
        urls = service["environment"]["GATEWAY_AMQP_URL"].split(",")
        assert sorted(URL(url).host for url in urls) == ["rabbit1", "rabbit2", "rabbit3"], role
        assert {URL(url).user for url in urls} <= users, f"{role} signs in as a user the definitions make"
    conf = (DEPLOY / "rabbitmq" / "rabbitmq.conf").read_text()
    assert all(f"rabbit@rabbit{n}" in conf for n in (1, 2, 3))


def test_the_roles_behind_the_load_balancer_share_their_limits_and_trust_only_it() -> None:
    services = compose()["services"]
    assert "redis" in services and "--requirepass" in services["redis"]["command"]
    for role in ("ingest", "desk"):
        environment = services[role]["environment"]
        assert URL(environment["GATEWAY_REDIS_URL"].replace("${REDIS_PASSWORD}", "x")).host == "redis", role
        assert environment["GATEWAY_TRUSTED_PROXIES"].startswith("${GATEWAY_TRUSTED_PROXIES:?"), role
    for role in ("router", "outbound"):  # they limit nothing and face no proxy
        assert not {"GATEWAY_REDIS_URL", "GATEWAY_TRUSTED_PROXIES"} & set(services[role]["environment"]), role


def test_every_variable_compose_needs_is_in_the_example_env() -> None:
    text = (DEPLOY / "compose.yaml").read_text()
    needed = set(re.findall(r"\$\{([A-Z_]+)", text))
    example = {
        line.split("=", 1)[0]
        for line in (DEPLOY / "example.env").read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert needed <= example, sorted(needed - example)
    config_refs = set()
    for channel in (EXAMPLE_CONFIG / "channels").glob("*.yaml"):
        config_refs |= set(re.findall(r"\$\{(GW_[A-Z_]+)\}", channel.read_text()))
    channels = {  # the channels' credentials: the env file every gateway container reads
        line.split("=", 1)[0]
        for line in (DEPLOY / "example.channels.env").read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert config_refs <= channels, sorted(config_refs - channels)
    definitions = compose()["services"]["definitions"]["command"][0]
    for user in ("gw-ingest", "gw-router", "gw-outbound", "gw-desk", "gw-operator"):
        assert user in definitions and f"RABBIT_PASSWORD_{user.upper().replace('-', '_')}" in example


def test_the_container_file_runs_unprivileged_and_copies_what_exists() -> None:
    text = (DEPLOY / "Containerfile").read_text()
    assert re.search(r"^USER gateway$", text, re.M)
    assert 'ENTRYPOINT ["gateway"]' in text
    for source in re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.M):
        for path in source.split():
            assert (ROOT / path).exists(), path


@pytest.mark.parametrize(
    "path", ["prometheus/prometheus.yml", "grafana/provisioning/dashboards/gateway.yml",
             "grafana/provisioning/datasources/prometheus.yml"],
)  # fmt: skip
def test_the_other_files_parse(path: str) -> None:
    assert yaml.safe_load((DEPLOY / path).read_text())
    prometheus = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    for rule_file in prometheus["rule_files"]:
        assert (DEPLOY / "prometheus" / rule_file).exists()
