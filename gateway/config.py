"""Configuration: regions, schedules, channel instances and service settings.

Layout of a configuration directory:

    gateway.yaml          service settings (broker topology sizes, limits)
    regions.yaml          the 26 regions and the national team
    schedules.yaml        named schedules the regions refer to
    channels/*.yaml       one file per channel instance

Every problem is reported with the file and the dotted field it concerns, and
never with the offending value (it might be a pasted secret).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from adapters import registry
from gateway.envelope import CODE_PATTERN
from gateway.passwords import is_password_hash

NATIONAL = "national"
M = TypeVar("M", bound=BaseModel)
ENV_REF = re.compile(r"^\$\{([A-Z][A-Z0-9_]*)\}$")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
HOLIDAYS = (
    "new_years_day",
    "good_friday",
    "easter_sunday",
    "easter_monday",
    "kings_day",
    "liberation_day",
    "liberation_day_lustrum",
    "ascension_day",
    "whit_sunday",
    "whit_monday",
    "christmas_day",
    "boxing_day",
)
HOURS = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])-([01][0-9]|2[0-4]):([0-5][0-9])$")


def _env_reference(value: str) -> str:
    if not ENV_REF.match(value):
        raise ValueError("credentials must be an environment reference like ${NAME}, not a value")
    return value


SecretRef = Annotated[str, AfterValidator(_env_reference)]
Code = Annotated[str, Field(pattern=CODE_PATTERN, max_length=80)]


def _hours(value: str) -> str:
    match = HOURS.match(value)
    if not match:
        raise ValueError("opening hours are written HH:MM-HH:MM, for example 09:00-17:00")
    start = int(match[1]) * 60 + int(match[2])
    end = int(match[3]) * 60 + int(match[4])
    if end > 24 * 60 or end <= start:
        raise ValueError("an opening period must end after it starts, at 24:00 at the latest")
    return value


Hours = Annotated[str, AfterValidator(_hours)]
WeeklyHours = dict[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"], list[Hours]]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ScheduleException(_Model):
    name: str = Field(max_length=80)
    start: date
    end: date = Field(description="inclusive")
    weekly: WeeklyHours | None = Field(
        default=None, description="hours on these days instead; omitted weekdays keep theirs"
    )
    closed: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> ScheduleException:
        if self.end < self.start:
            raise ValueError("end comes before start")
        if self.closed and self.weekly:
            raise ValueError("an exception is either closed or has hours, not both")
        return self


class Schedule(_Model):
    description: str = ""
    extends: str | None = None
    always_open: bool = False
    weekly: WeeklyHours = Field(default_factory=dict)
    closed_holidays: list[Literal[HOLIDAYS]] | None = None  # type: ignore[valid-type]
    exceptions: list[ScheduleException] = Field(default_factory=list)


class SchedulesFile(_Model):
    schedules: dict[Code, Schedule]


Policy = Literal["hold", "overflow"]


class Region(_Model):
    code: Code
    name: str = Field(min_length=1, max_length=120)
    schedule: Code
    closed_policy: dict[str, Policy] = Field(
        default_factory=dict, description="per channel kind, or 'default'; overrides routing.yaml"
    )
    municipalities: list[str] = Field(default_factory=list)
    postcode_ranges: list[Annotated[str, Field(pattern=r"^[1-9][0-9]{3}-[1-9][0-9]{3}$")]] = Field(
        default_factory=list
    )


class NationalTeam(_Model):
    name: str
    schedule: Code


class RegionsFile(_Model):
    national: NationalTeam
    regions: list[Region]


class RoutingFile(_Model):
    closed_policy: dict[str, Policy] = Field(default_factory=lambda: {"default": "hold"})
    acute_phrases: list[Annotated[str, Field(min_length=2, max_length=80)]] = Field(default_factory=list)
    acute_always_national: list[str] = Field(
        default_factory=list, description="Channel kinds whose acute danger goes to the national team at once"
    )
    auto_reply: dict[Literal["nl", "en"], Annotated[str, Field(min_length=10, max_length=1000)]]

    @model_validator(mode="after")
    def _complete(self) -> RoutingFile:
        if "default" not in self.closed_policy:
            raise ValueError("closed_policy needs a 'default'")
        if set(self.auto_reply) != {"nl", "en"}:
            raise ValueError("auto_reply needs both 'nl' and 'en'")
        for language, text in self.auto_reply.items():
            if "{next_open}" not in text:
                raise ValueError(f"auto_reply.{language} must name {{next_open}}")
        return self


class BrokerSettings(_Model):
    inbound_shards: int = Field(default=4, ge=1, le=64)
    delivery_limit: int = Field(default=5, ge=1, le=100)
    publish_timeout_seconds: float = Field(default=5.0, gt=0, le=60)


class HttpSettings(_Model):
    max_body_bytes: int = Field(default=64 * 1024, ge=1024, le=16 * 1024 * 1024)
    shutdown_timeout_seconds: float = Field(default=15.0, gt=0, le=120)


class DeskSettings(_Model):
    retention_hours: float = Field(
        default=720,
        gt=0,
        le=24 * 366,
        description="A conversation quiet this long is deleted, transcript and all",
    )
    session_minutes: int = Field(default=600, ge=5, le=1440, description="A counsellor stays signed in")
    secure_cookies: bool = Field(default=True, description="false only for plain-HTTP trials")


class Counsellor(_Model):
    id: Code
    name: str = Field(min_length=1, max_length=120)
    team: Code = Field(description="A region code, or national")
    password_hash: str = Field(description="From `gateway hash-password`")


class CounsellorsFile(_Model):
    counsellors: list[Counsellor] = Field(default_factory=list)


class OutboundSettings(_Model):
    send_timeout_seconds: float = Field(default=10.0, gt=0, le=120, description="One provider call")
    attempts: int = Field(default=5, ge=1, le=20, description="Provider calls per delivery, at most")
    max_backoff_seconds: float = Field(default=30.0, gt=0, le=600)
    concurrency: int = Field(default=32, ge=1, le=1000, description="Replies in flight per process")


class ServiceSettings(_Model):
    broker: BrokerSettings = Field(default_factory=BrokerSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    outbound: OutboundSettings = Field(default_factory=OutboundSettings)
    desk: DeskSettings = Field(default_factory=DeskSettings)


class ChannelFile(_Model):
    id: Code
    kind: str
    region: Code | None = Field(
        default=None, description="The region this instance serves; null lets the router resolve"
    )
    language: Literal["nl", "en"] = "nl"
    description: str = ""
    auto_reply: bool = Field(
        default=True, description="false: never send an after-hours auto-reply (someone else may read)"
    )
    texts: dict[str, str] = Field(default_factory=dict)
    settings: dict[str, Any] = Field(default_factory=dict)


@dataclass(frozen=True)
class Channel:
    """A channel instance, validated and with its credentials looked up."""

    id: str
    kind: str
    region: str | None
    language: str
    texts: dict[str, str]
    settings: BaseModel
    secrets: dict[str, str]
    missing_secrets: tuple[str, ...]
    source: Path
    auto_reply: bool = True

    @property
    def usable(self) -> bool:
        return not self.missing_secrets


@dataclass(frozen=True)
class Config:
    directory: Path
    service: ServiceSettings
    national: NationalTeam
    regions: dict[str, Region]
    schedules: dict[str, Schedule]
    channels: dict[str, Channel]
    routing: RoutingFile
    warnings: tuple[str, ...] = field(default=())
    counsellors: dict[str, Counsellor] = field(default_factory=dict)

    @property
    def team_codes(self) -> list[str]:
        """Every code that owns region queues: the regions and the national team."""
        return [*self.regions, NATIONAL]


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
    path: Path, root: Path, regions: dict[str, Region], problems: list[Problem]
) -> Channel | None:
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
    kind = registry.find(channel.kind)
    if kind is None:
        known = ", ".join(registry.names())
        problems.append(Problem(name, "kind", f"unknown channel kind (known: {known})"))
        return None
    settings = _validate(kind.Settings, channel.settings, name, problems, prefix="settings")
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


def load_config(directory: str | Path) -> Config:
    """Load and validate a configuration directory, or raise ConfigError naming every problem."""
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
    policy_keys = {"default", *registry.names()}
    if routing:
        for key in routing.closed_policy:
            if key not in policy_keys:
                problems.append(Problem("routing.yaml", f"closed_policy.{key}", "not a channel kind"))
        for index, kind in enumerate(routing.acute_always_national):
            if kind not in registry.names():
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

    channels: dict[str, Channel] = {}
    channel_dir = root / "channels"
    if channel_dir.is_dir():
        for path in sorted(channel_dir.glob("*.yaml")):
            channel = _load_channel(path, root, regions, problems)
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

    if problems or service is None or national is None or routing is None:
        raise ConfigError(problems)
    warnings = tuple(
        f"channels/{c.source.name}: credentials not set in the environment "
        f"({', '.join(c.missing_secrets)}); the channel refuses requests until they are"
        for c in channels.values()
        if c.missing_secrets
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
    )


def restart_needed(running: Config, loaded: Config) -> list[Problem]:
    """What a reload cannot change in a running service: the teams (they own queues) and
    the service settings (topology sizes, limits)."""
    problems = []
    if running.team_codes != loaded.team_codes:
        problems.append(Problem("regions.yaml", "regions", "the set of regions changed; restart to apply"))
    if running.service != loaded.service:
        problems.append(Problem("gateway.yaml", "", "service settings changed; restart to apply"))
    return problems


class LiveConfig:
    """The configuration in force; `reload()` swaps it only for a valid one, and tells
    the subscribers (router, outbound) so they rebuild what they derived from it."""

    def __init__(self, config: Config) -> None:
        self.current = config
        self._subscribers: list[Callable[[Config], None]] = []

    def subscribe(self, callback: Callable[[Config], None]) -> None:
        self._subscribers.append(callback)

    def reload(self) -> tuple[Config | None, list[Problem]]:
        """(the new configuration, []) when applied, or (None, problems) with the running one kept."""
        try:
            loaded = load_config(self.current.directory)
        except ConfigError as exc:
            return None, exc.problems
        problems = restart_needed(self.current, loaded)
        if problems:
            return None, problems
        self.current = loaded
        for callback in self._subscribers:
            callback(loaded)
        return loaded, []


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
