from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from adapters.http_json.cases import TEST_TOKEN, TOKEN_ENV
from gateway.cli import main
from gateway.config.live import LiveConfig
from gateway.config.loader import ConfigError
from gateway.service import kinds, load_config
from tests.conftest import (
    EXAMPLE_CONFIG,
)

REQUIRED_CODES = {"zuidoost-brabant", "rotterdam-rijnmond", "amsterdam-amstelland"}


def test_example_configuration_has_all_26_regions(config) -> None:
    assert len(config.regions) == 26
    assert set(config.regions) >= REQUIRED_CODES
    assert "national" not in config.regions
    assert config.team_codes[-1] == "national"
    assert config.national.schedule == "always-open"
    for code, region in config.regions.items():
        assert code == code.lower() and code.isascii()
        assert region.name.startswith("Veilig Thuis")
        assert region.municipalities, code
    all_municipalities = [m for r in config.regions.values() for m in r.municipalities]
    assert len(all_municipalities) == len(set(all_municipalities)) == 342
    assert "Eindhoven" in config.regions["zuidoost-brabant"].municipalities
    assert "Rotterdam" in config.regions["rotterdam-rijnmond"].municipalities
    assert "Amsterdam" in config.regions["amsterdam-amstelland"].municipalities


def test_example_channel_resolves_its_secret_from_the_environment(config) -> None:
    channel = config.channels["http-json-zuidoost-brabant"]
    assert channel.kind == "http-json" and channel.region == "zuidoost-brabant"
    assert channel.usable and channel.secrets["token"] == TEST_TOKEN
    assert config.warnings == ()


def test_missing_secret_makes_the_channel_unusable_with_a_warning(monkeypatch) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    config = load_config(EXAMPLE_CONFIG)
    assert not config.channels["http-json-zuidoost-brabant"].usable
    assert any(TOKEN_ENV in w for w in config.warnings)


def _edit_yaml(name: str, change: Callable[[dict], None]) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        path = root / name
        data = yaml.safe_load(path.read_text())
        change(data)
        path.write_text(yaml.safe_dump(data, allow_unicode=True))

    return apply


def _write(name: str, text: str) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        (root / name).write_text(text)

    return apply


CHANNEL = "channels/http-json-zuidoost-brabant.yaml"
LITERAL_SECRET = "sup3r-s3cret-value"

OIDC = {
    "issuer": "https://idp.example",
    "client_id": "desk",
    "client_secret": "${OIDC_SECRET}",
    "public_url": "https://desk.example",
}
BROKEN = [
    # (what is wrong, edit, file named, field named)
    ("YAML syntax", _write("regions.yaml", "regions: [\n"), "regions.yaml", "line"),
    ("unknown kind", _edit_yaml(CHANNEL, lambda d: d.update(kind="pigeon")), CHANNEL, "kind"),
    (
        "literal secret",
        _edit_yaml(CHANNEL, lambda d: d["settings"].update(token=LITERAL_SECRET)),
        CHANNEL,
        "settings.token",
    ),
    (
        "missing secret field",
        _edit_yaml(CHANNEL, lambda d: d.update(settings={})),
        CHANNEL,
        "settings.token",
    ),
    (
        "unknown region",
        _edit_yaml(CHANNEL, lambda d: d.update(region="atlantis")),
        CHANNEL,
        "region",
    ),
    ("id differs from file", _edit_yaml(CHANNEL, lambda d: d.update(id="other-id")), CHANNEL, "id"),
    (
        "unknown channel field",
        _edit_yaml(CHANNEL, lambda d: d.update(colour="red")),
        CHANNEL,
        "colour",
    ),
    (
        "unknown schedule",
        _edit_yaml("regions.yaml", lambda d: d["regions"][3].update(schedule="nope")),
        "regions.yaml",
        "regions[3].schedule",
    ),
    (
        "bad region code",
        _edit_yaml("regions.yaml", lambda d: d["regions"][0].update(code="Groningen!")),
        "regions.yaml",
        "regions[0].code",
    ),
    (
        "duplicate municipality",
        _edit_yaml("regions.yaml", lambda d: d["regions"][1]["municipalities"].append("Groningen")),
        "regions.yaml",
        "municipalities",
    ),
    (
        "bad hours",
        _edit_yaml(
            "schedules.yaml",
            lambda d: d["schedules"]["national-default"]["weekly"].update(mon=["17:00-09:00"]),
        ),
        "schedules.yaml",
        "schedules.national-default.weekly.mon[0]",
    ),
    (
        "unknown holiday",
        _edit_yaml(
            "schedules.yaml",
            lambda d: d["schedules"]["national-default"]["closed_holidays"].append("sinterklaas"),
        ),
        "schedules.yaml",
        "closed_holidays",
    ),
    (
        "exception ends before it starts",
        _edit_yaml(
            "schedules.yaml",
            lambda d: d["schedules"]["national-default"]["exceptions"][0].update(end="2020-01-01"),
        ),
        "schedules.yaml",
        "exceptions[0]",
    ),
    (
        "broker shards out of range",
        _edit_yaml("gateway.yaml", lambda d: d["broker"].update(inbound_shards=0)),
        "gateway.yaml",
        "broker.inbound_shards",
    ),
    ("missing regions file", lambda root: (root / "regions.yaml").unlink(), "regions.yaml", ""),
    (
        "auto-reply without next opening",
        _edit_yaml("routing.yaml", lambda d: d["auto_reply"].update(nl="Wij zijn gesloten, bel 0800-2000.")),
        "routing.yaml",
        "",
    ),
    (
        "unknown policy",
        _edit_yaml("routing.yaml", lambda d: d["closed_policy"].update(default="drop")),
        "routing.yaml",
        "closed_policy.default",
    ),
    (
        "policy for an unknown kind",
        _edit_yaml("routing.yaml", lambda d: d["closed_policy"].update(pigeon="hold")),
        "routing.yaml",
        "closed_policy.pigeon",
    ),
    (
        "region policy for an unknown kind",
        _edit_yaml("regions.yaml", lambda d: d["regions"][2].update(closed_policy={"fax": "hold"})),
        "regions.yaml",
        "regions[2].closed_policy.fax",
    ),
    (
        "bad postcode range",
        _edit_yaml("regions.yaml", lambda d: d["regions"][2].update(postcode_ranges=["12-34"])),
        "regions.yaml",
        "regions[2].postcode_ranges[0]",
    ),
    (
        "identity provider mapped to an unknown team",
        _edit_yaml(
            "gateway.yaml",
            lambda d: d.update(desk={"oidc": {**OIDC, "mappings": [{"value": "g", "team": "atlantis"}]}}),
        ),
        "gateway.yaml",
        "desk.oidc.mappings[0].team",
    ),
    (
        "identity provider secret as a value",
        _edit_yaml(
            "gateway.yaml",
            lambda d: d.update(
                desk={
                    "oidc": {
                        **OIDC,
                        "client_secret": LITERAL_SECRET,
                        "mappings": [{"value": "g", "team": "national"}],
                    }
                }
            ),
        ),
        "gateway.yaml",
        "desk.oidc.client_secret",
    ),
    (
        "standard answer with an unknown placeholder",
        _write(
            "responses/national.yaml",
            "team: national\nanswers:\n- {id: a, title: {nl: A}, text: {nl: 'Bel {telefoon}'}}\n",
        ),
        "responses/national.yaml",
        "answers[0].text",
    ),
    (
        "a Twilio channel without its public url (the signature covers it)",
        _edit_yaml("channels/sms-zuidoost-brabant.yaml", lambda d: d["settings"].pop("public_url")),
        "channels/sms-zuidoost-brabant.yaml",
        "settings.public_url",
    ),
    (
        "standard answers of an unknown team",
        _write("responses/atlantis.yaml", "team: atlantis\nanswers: []\n"),
        "responses/atlantis.yaml",
        "team",
    ),
    (
        "counsellor with an unknown role",
        _write(
            "counsellors.yaml",
            "counsellors:\n"
            "- {id: a, name: A, team: national, role: admin, password_hash: 'scrypt$17$8$1$a$b'}\n",
        ),
        "counsellors.yaml",
        "counsellors[0].role",
    ),
]


@pytest.mark.parametrize(("case", "edit", "file", "field"), BROKEN, ids=[b[0] for b in BROKEN])
def test_every_error_names_the_file_and_the_field(
    tmp_path: Path,
    example_env: None,
    case: str,
    edit: Callable[[Path], None],
    file: str,
    field: str,
) -> None:
    root = tmp_path / "config"
    shutil.copytree(EXAMPLE_CONFIG, root)
    edit(root)
    with pytest.raises(ConfigError) as raised:
        load_config(root)
    assert any(p.file == file and field in p.field for p in raised.value.problems), str(raised.value)
    assert LITERAL_SECRET not in str(raised.value)


def test_check_config_prints_a_summary_and_exits_zero(capsys, example_env) -> None:
    assert main(["check-config", str(EXAMPLE_CONFIG)]) == 0
    out = capsys.readouterr().out
    assert "regions: 26" in out
    assert "http-json" in out and "national-default" in out
    assert len(out.splitlines()) <= 25


def test_check_config_fails_on_an_invalid_directory(tmp_path: Path, capsys) -> None:
    root = tmp_path / "config"
    shutil.copytree(EXAMPLE_CONFIG, root)
    _edit_yaml(CHANNEL, lambda d: d.update(region="atlantis"))(root)
    assert main(["check-config", str(root)]) == 1
    err = capsys.readouterr().err
    assert "channels/http-json-zuidoost-brabant.yaml: region" in err


def test_check_config_on_a_missing_directory(tmp_path: Path, capsys) -> None:
    assert main(["check-config", str(tmp_path / "nope")]) == 1
    assert "is not a directory" in capsys.readouterr().err


def test_the_example_provider_channels_exist_with_their_secrets_as_references(config) -> None:
    expected = {
        "sms-zuidoost-brabant": ("sms", "zuidoost-brabant"),
        "whatsapp-rotterdam-rijnmond": ("whatsapp", "rotterdam-rijnmond"),
        "telegram-amsterdam-amstelland": ("telegram", "amsterdam-amstelland"),
    }
    for channel_id, (kind, region) in expected.items():
        channel = config.channels[channel_id]
        assert (channel.kind, channel.region) == (kind, region) and channel.usable
        raw = yaml.safe_load((EXAMPLE_CONFIG / "channels" / f"{channel_id}.yaml").read_text())
        for name in channel.secrets:
            assert raw["settings"][name].startswith("${"), f"{channel_id}: {name} is not a reference"


def _live(tmp_path: Path) -> tuple[Path, LiveConfig]:
    root = tmp_path / "config"
    shutil.copytree(EXAMPLE_CONFIG, root)
    return root, LiveConfig(load_config(root), kinds())


def test_a_reload_applies_a_valid_directory_and_tells_the_subscribers(tmp_path: Path, example_env) -> None:
    root, live = _live(tmp_path)
    seen: list[object] = []
    live.subscribe(seen.append)
    shutil.copy(root / "channels" / "sms-zuidoost-brabant.yaml", root / "channels" / "sms-twente.yaml")
    _edit_yaml("channels/sms-twente.yaml", lambda d: d.update(id="sms-twente", region="twente"))(root)
    loaded, problems = live.reload()
    assert problems == [] and loaded is live.current and seen == [loaded]
    assert live.current.channels["sms-twente"].region == "twente"


@pytest.mark.parametrize(
    ("change", "file", "field"),
    [
        (
            _write("channels/broken.yaml", "id: broken\nkind: sms\n"),
            "channels/broken.yaml",
            "settings.account_sid",
        ),
        (_edit_yaml("gateway.yaml", lambda d: d["broker"].update(inbound_shards=8)), "gateway.yaml", ""),
        (_edit_yaml("regions.yaml", lambda d: d["regions"].pop()), "regions.yaml", "regions"),
    ],
    ids=["invalid channel file", "service settings changed", "a region removed"],
)
def test_a_reload_refuses_and_keeps_the_running_configuration(
    tmp_path: Path, example_env, change, file: str, field: str
) -> None:
    root, live = _live(tmp_path)
    running = live.current
    seen: list[object] = []
    live.subscribe(seen.append)
    change(root)
    loaded, problems = live.reload()
    assert loaded is None and live.current is running and seen == []
    assert (file, field) in {(p.file, p.field) for p in problems}
