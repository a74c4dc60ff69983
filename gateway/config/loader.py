"""Loading a configuration directory into a validated `Config`.

Layout of a configuration directory:

    gateway.yaml          service settings (broker topology sizes, limits)
    regions.yaml          the 26 regions and the national team
    routing.yaml          closed-time policies, acute phrases, auto-reply texts
    schedules.yaml        named schedules the regions refer to
    counsellors.yaml      desk accounts (optional)
    desk.yaml             the registration at close (optional; the network's defaults)
    responses/*.yaml      standard answers, one file per team (optional)
    channels/*.yaml       one file per channel instance

The channel kinds are passed in by whoever assembles the service, so validating
YAML imports no provider SDK. Every problem is reported with the file and the
dotted field it concerns, and never with the offending value (it might be a
pasted secret).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from gateway.config.models import (
    ENV_REF,
    NATIONAL,
    Channel,
    ChannelFile,
    Config,
    Counsellor,
    CounsellorsFile,
    DeskFile,
    KindSchema,
    KindSettings,
    NationalTeam,
    Region,
    RegionsFile,
    ResponsesFile,
    RoutingFile,
    Schedule,
    SchedulesFile,
    ServiceSettings,
)
from gateway.support.passwords import is_password_hash

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Problem:
    file: str
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}: {self.field}" if self.field else self.file
        return f"{where}: {self.message}"


class ConfigError(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def _field_path(loc: tuple[Any, ...], prefix: str = "") -> str:
    parts = [prefix] if prefix else []
    for item in loc:
        if isinstance(item, int):
            parts[-1:] = [f"{parts[-1]}[{item}]"] if parts else [f"[{item}]"]
        else:
            parts.append(str(item))
    return ".".join(parts)


def _problems_from(exc: ValidationError, file: str, prefix: str = "") -> list[Problem]:
    return [
        Problem(file, _field_path(err["loc"], prefix), err["msg"])
        for err in exc.errors(include_input=False, include_url=False)
    ]


def _read_yaml(path: Path, root: Path, problems: list[Problem]) -> Any:
    name = str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        problems.append(Problem(name, "", "file is missing"))
        return None
    except (UnicodeDecodeError, OSError) as exc:
        problems.append(Problem(name, "", f"cannot be read ({type(exc).__name__})"))
        return None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else ""
        problems.append(Problem(name, where, "is not valid YAML"))
        return None


def _validate(model: type[M], data: Any, file: str, problems: list[Problem], prefix: str = "") -> M | None:
    try:
        return model.model_validate(data if data is not None else {})
    except ValidationError as exc:
        problems.extend(_problems_from(exc, file, prefix))
        return None


def _load_channel(
    path: Path,
    root: Path,
    regions: dict[str, Region],
    kinds: Mapping[str, KindSchema],
    problems: list[Problem],
) -> Channel[KindSettings] | None:
    name = str(path.relative_to(root))
    raw = _read_yaml(path, root, problems)
    if raw is None and not path.exists():
        return None
    channel = _validate(ChannelFile, raw, name, problems)
    if channel is None:
        return None
    if channel.id != path.stem:
        problems.append(Problem(name, "id", "must equal the file name without .yaml"))
    if channel.region is not None and channel.region not in regions:
        problems.append(Problem(name, "region", "is not a region code from regions.yaml"))
    kind = kinds.get(channel.kind)
    if kind is None:
        known = ", ".join(sorted(kinds))
        problems.append(Problem(name, "kind", f"unknown channel kind (known: {known})"))
        return None
    settings = _validate(kind.settings_model, channel.settings, name, problems, prefix="settings")
    if settings is None:
        return None
    for field_name, message in kind.check(settings, regions):
        problems.append(Problem(name, f"settings.{field_name}", message))
    secrets: dict[str, str] = {}
    missing: list[str] = []
    for field_name, value in settings.model_dump().items():
        if isinstance(value, str) and (match := ENV_REF.match(value)):
            resolved = os.environ.get(match[1])
            if resolved:
                secrets[field_name] = resolved
            else:
                missing.append(match[1])
    return Channel(
        id=channel.id,
        kind=channel.kind,
        region=channel.region,
        language=channel.language,
        texts=channel.texts,
        settings=settings,
        secrets=secrets,
        missing_secrets=tuple(missing),
        source=path,
        auto_reply=channel.auto_reply,
    )


def load_config(directory: str | Path, kinds: Mapping[str, KindSchema]) -> Config:
    """Load and validate a configuration directory, or raise ConfigError naming every problem.
    `kinds`: the channel kinds a channel file may name, by name."""
    root = Path(directory)
    problems: list[Problem] = []
    if not root.is_dir():
        raise ConfigError([Problem(str(root), "", "is not a directory")])

    service_path = root / "gateway.yaml"
    service = (
        _validate(ServiceSettings, _read_yaml(service_path, root, problems), "gateway.yaml", problems)
        if service_path.exists()
        else ServiceSettings()
    )
    regions_file = _validate(
        RegionsFile, _read_yaml(root / "regions.yaml", root, problems), "regions.yaml", problems
    )
    schedules_file = _validate(
        SchedulesFile,
        _read_yaml(root / "schedules.yaml", root, problems),
        "schedules.yaml",
        problems,
    )
    routing = _validate(
        RoutingFile, _read_yaml(root / "routing.yaml", root, problems), "routing.yaml", problems
    )
    policy_keys = {"default", *kinds}
    if routing:
        for key in routing.closed_policy:
            if key not in policy_keys:
                problems.append(Problem("routing.yaml", f"closed_policy.{key}", "not a channel kind"))
        for index, kind in enumerate(routing.acute_always_national):
            if kind not in kinds:
                problems.append(
                    Problem("routing.yaml", f"acute_always_national[{index}]", "not a channel kind")
                )
    schedules = schedules_file.schedules if schedules_file else {}
    for name, schedule in schedules.items():
        if schedule.extends is not None and schedule.extends not in schedules:
            problems.append(Problem("schedules.yaml", f"schedules.{name}.extends", "unknown schedule"))
    if _has_extends_cycle(schedules):
        problems.append(Problem("schedules.yaml", "schedules", "'extends' forms a cycle"))

    regions: dict[str, Region] = {}
    national: NationalTeam | None = regions_file.national if regions_file else None
    if regions_file:
        if national and schedules_file and national.schedule not in schedules:
            problems.append(Problem("regions.yaml", "national.schedule", "unknown schedule"))
        for index, region in enumerate(regions_file.regions):
            where = f"regions[{index}]"
            if region.code == NATIONAL:
                problems.append(Problem("regions.yaml", f"{where}.code", "'national' is reserved"))
            if region.code in regions:
                problems.append(Problem("regions.yaml", f"{where}.code", "duplicate region code"))
            if schedules_file and region.schedule not in schedules:
                problems.append(Problem("regions.yaml", f"{where}.schedule", "unknown schedule"))
            for key in region.closed_policy:
                if key not in policy_keys:
                    problems.append(
                        Problem("regions.yaml", f"{where}.closed_policy.{key}", "not a channel kind")
                    )
            regions[region.code] = region
        seen: dict[str, str] = {}
        for region in regions_file.regions:
            for index, municipality in enumerate(region.municipalities):
                key = municipality.casefold()
                if key in seen and seen[key] != region.code:
                    problems.append(
                        Problem(
                            "regions.yaml",
                            f"regions[{region.code}].municipalities[{index}]",
                            f"already belongs to region {seen[key]}",
                        )
                    )
                seen[key] = region.code

    channels: dict[str, Channel[KindSettings]] = {}
    channel_dir = root / "channels"
    if channel_dir.is_dir():
        for path in sorted(channel_dir.glob("*.yaml")):
            channel = _load_channel(path, root, regions, kinds, problems)
            if channel is None:
                continue
            if channel.id in channels:
                problems.append(Problem(str(path.relative_to(root)), "id", "duplicate channel id"))
            channels[channel.id] = channel

    counsellors: dict[str, Counsellor] = {}
    counsellors_path = root / "counsellors.yaml"
    if counsellors_path.exists():
        loaded = _validate(
            CounsellorsFile, _read_yaml(counsellors_path, root, problems), "counsellors.yaml", problems
        )
        for index, counsellor in enumerate(loaded.counsellors if loaded else []):
            where = f"counsellors[{index}]"
            if counsellor.team != NATIONAL and counsellor.team not in regions:
                problems.append(Problem("counsellors.yaml", f"{where}.team", "not a region code or national"))
            if not is_password_hash(counsellor.password_hash):
                problems.append(
                    Problem(
                        "counsellors.yaml", f"{where}.password_hash", "not a hash from gateway hash-password"
                    )
                )
            if counsellor.id in counsellors:
                problems.append(Problem("counsellors.yaml", f"{where}.id", "duplicate counsellor id"))
            counsellors[counsellor.id] = counsellor

    responses: dict[str, ResponsesFile] = {}
    responses_dir = root / "responses"
    if responses_dir.is_dir():
        for path in sorted(responses_dir.glob("*.yaml")):
            name = str(path.relative_to(root))
            loaded_answers = _validate(ResponsesFile, _read_yaml(path, root, problems), name, problems)
            if loaded_answers is None:
                continue
            if loaded_answers.team != NATIONAL and loaded_answers.team not in regions:
                problems.append(Problem(name, "team", "not a region code or national"))
            elif loaded_answers.team in responses:
                problems.append(Problem(name, "team", "another file holds this team's answers"))
            ids = [a.id for a in loaded_answers.answers]
            if len(ids) != len(set(ids)):
                problems.append(Problem(name, "answers", "answer ids must be unique"))
            responses[loaded_answers.team] = loaded_answers

    desk = DeskFile()
    desk_path = root / "desk.yaml"
    if desk_path.exists():
        desk = _validate(DeskFile, _read_yaml(desk_path, root, problems), "desk.yaml", problems) or desk

    oidc = service.desk.oidc if service is not None else None
    if oidc is not None:
        for index, mapping in enumerate(oidc.mappings):
            if mapping.team != NATIONAL and mapping.team not in regions:
                where = f"desk.oidc.mappings[{index}].team"
                problems.append(Problem("gateway.yaml", where, "not a region code or national"))

    if problems or service is None or national is None or routing is None:
        raise ConfigError(problems)
    warnings = tuple(
        f"channels/{c.source.name}: credentials not set in the environment "
        f"({', '.join(c.missing_secrets)}); the channel refuses requests until they are"
        for c in channels.values()
        if c.missing_secrets
    )
    secret = ENV_REF.match(oidc.client_secret) if oidc is not None else None
    if secret is not None and not os.environ.get(secret[1]):
        warnings += (
            f"gateway.yaml: desk.oidc.client_secret ({secret[1]}) is not set in the environment; "
            "sign-in through the identity provider is refused until it is",
        )
    return Config(
        directory=root,
        service=service,
        national=national,
        regions=regions,
        schedules=dict(schedules),
        channels=channels,
        routing=routing,
        warnings=warnings,
        counsellors=counsellors,
        desk=desk,
        responses=responses,
    )


def _has_extends_cycle(schedules: dict[str, Schedule]) -> bool:
    for start in schedules:
        seen = {start}
        current = schedules[start].extends
        while current is not None and current in schedules:
            if current in seen:
                return True
            seen.add(current)
            current = schedules[current].extends
    return False


def summary(config: Config) -> str:
    """A one-screen overview for `gateway check-config`."""
    by_kind: dict[str, list[str]] = {}
    for channel in config.channels.values():
        by_kind.setdefault(channel.kind, []).append(channel.id)
    with_municipalities = sum(1 for r in config.regions.values() if r.municipalities)
    municipalities = sum(len(r.municipalities) for r in config.regions.values())
    schedule_use: dict[str, int] = {}
    for region in config.regions.values():
        schedule_use[region.schedule] = schedule_use.get(region.schedule, 0) + 1
    schedule_use[config.national.schedule] = schedule_use.get(config.national.schedule, 0) + 1
    lines = [
        f"configuration {config.directory}: OK",
        f"regions: {len(config.regions)} + national team ({config.national.name}); "
        f"{municipalities} municipalities in {with_municipalities} regions",
        f"schedules: {len(config.schedules)}",
    ]
    for name, schedule in sorted(config.schedules.items()):
        detail = schedule.description or ("always open" if schedule.always_open else "")
        lines.append(f"  {name:<24} used by {schedule_use.get(name, 0):>2}  {detail}")
    lines.append(f"channels: {len(config.channels)}")
    for kind, ids in sorted(by_kind.items()):
        lines.append(f"  {kind:<12} {len(ids):>2}  {', '.join(sorted(ids))}")
    lines.append(
        f"broker: {config.service.broker.inbound_shards} inbound shards, "
        f"delivery limit {config.service.broker.delivery_limit}"
    )
    lines.extend(f"warning: {w}" for w in config.warnings)
    return "\n".join(lines)
