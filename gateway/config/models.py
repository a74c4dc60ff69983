"""The configuration's types: regions, schedules, channel instances and service
settings, as validated pydantic models. Pure data, no I/O: `loader` reads them
from a configuration directory, `live` keeps the one in force.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Annotated, Any, ClassVar, Generic, Literal, Protocol, TypeVar, get_args

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

CODE_PATTERN = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"  # region codes, channel ids, counsellor ids
NATIONAL = "national"
ENV_REF = re.compile(r"^\$\{([A-Z][A-Z0-9_]*)\}$")
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = get_args(Weekday)
HolidayName = Literal[
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
]
HOLIDAYS: tuple[HolidayName, ...] = get_args(HolidayName)
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
WeeklyHours = dict[Weekday, list[Hours]]


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
    closed_holidays: list[HolidayName] | None = None
    exceptions: list[ScheduleException] = Field(default_factory=list)


class SchedulesFile(_Model):
    schedules: dict[Code, Schedule]


Policy = Literal["hold", "overflow"]
_HOLD_BY_DEFAULT: dict[str, Policy] = {"default": "hold"}


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
    closed_policy: dict[str, Policy] = Field(default_factory=lambda: _HOLD_BY_DEFAULT.copy())
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


Role = Literal["counsellor", "coordinator", "privacy-officer"]


class ClaimMapping(_Model):
    """One value of the identity provider's claim (a group, say) and what it makes of a user."""

    value: str = Field(min_length=1, max_length=200, description="A value of the claim, e.g. a group")
    team: Code = Field(description="A region code, or national")
    role: Role = "counsellor"


class OidcSettings(_Model):
    """Sign-in through the region's identity provider (OpenID Connect, code flow with PKCE)."""

    issuer: str = Field(pattern=r"^https?://", max_length=300, description="The provider's issuer URL")
    client_id: str = Field(min_length=1, max_length=200)
    client_secret: SecretRef = Field(description="An environment reference like ${OIDC_CLIENT_SECRET}")
    public_url: str = Field(
        pattern=r"^https?://[^/]+$",
        description="The desk's own origin as the browser sees it; the callback is "
        "<public_url>/api/v1/oidc/callback",
    )
    claim: str = Field(default="groups", min_length=1, max_length=100, description="Claim mapped to team")
    mappings: list[ClaimMapping] = Field(min_length=1)
    scopes: list[str] = Field(default_factory=lambda: ["openid", "profile", "email"])
    label: str = Field(default="Inloggen via je organisatie", max_length=80, description="The button")


class DeskSettings(_Model):
    retention_hours: float = Field(
        default=720,
        gt=0,
        le=24 * 366,
        description="A conversation quiet this long is deleted, transcript and all",
    )
    session_minutes: int = Field(
        default=600, ge=5, le=1440, description="A session ends this long after sign-in, whatever happens"
    )
    idle_minutes: int = Field(default=20, ge=1, le=1440, description="A session unused this long ends")
    second_factor: bool = Field(
        default=True, description="TOTP for local accounts; false only with a loud warning at start"
    )
    sign_ins_per_minute: int = Field(default=10, ge=1, le=10_000, description="Per client address")
    sign_ins_per_account_per_hour: int = Field(default=20, ge=1, le=10_000, description="Per account")
    audit_retention_days: int = Field(
        default=730, ge=30, le=3650, description="Access-log records are kept this long (NEN 7513)"
    )
    secure_cookies: bool = Field(default=True, description="false only for plain-HTTP trials")
    oidc: OidcSettings | None = None


class Counsellor(_Model):
    id: Code
    name: str = Field(min_length=1, max_length=120)
    team: Code = Field(description="A region code, or national")
    role: Role = "counsellor"
    password_hash: str = Field(description="From `gateway hash-password`")
    disabled: bool = Field(default=False, description="true ends the account's sessions and sign-ins")


class CounsellorsFile(_Model):
    counsellors: list[Counsellor] = Field(default_factory=list)


class WrapUpOption(_Model):
    code: Code = Field(description="What the registration stores; stable across label changes")
    nl: str = Field(min_length=1, max_length=80)
    en: str = Field(min_length=1, max_length=80)
    serious: bool = Field(default=True, description="outcome only: false for 'no serious conversation'")
    converted: bool = Field(
        default=False, description="outcome only: true for 'converted into a report' (the reports' figure)"
    )


def _options(*rows: tuple[str, str, str]) -> list[WrapUpOption]:
    return [WrapUpOption(code=code, nl=nl, en=en) for code, nl, en in rows]


class WrapUpField(_Model):
    nl: str = Field(min_length=1, max_length=80, description="The question, in Dutch")
    en: str = Field(min_length=1, max_length=80)
    required: bool = True
    multiple: bool = Field(default=False, description="Several options may be chosen")
    options: list[WrapUpOption] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_codes(self) -> WrapUpField:
        codes = [o.code for o in self.options]
        if len(codes) != len(set(codes)):
            raise ValueError("option codes must be unique")
        return self


class WrapUp(_Model):
    """The registration a counsellor makes at close: the figures the network reports
    come from it, so it holds nothing that identifies a person."""

    contact_role: WrapUpField = WrapUpField(
        nl="Wie schreef", en="Who wrote",
        options=_options(
            ("slachtoffer", "slachtoffer", "victim"), ("omstander", "omstander", "bystander"),
            ("pleger", "pleger", "perpetrator"), ("professional", "professional", "professional"),
            ("onbekend", "onbekend", "unknown"),
        ),
    )  # fmt: skip
    age_group: WrapUpField = WrapUpField(
        nl="Leeftijd", en="Age group",
        options=_options(
            ("onder-12", "onder 12", "under 12"), ("12-17", "12-17", "12-17"),
            ("18-plus", "18 of ouder", "18 or older"), ("onbekend", "onbekend", "unknown"),
        ),
    )  # fmt: skip
    topics: WrapUpField = WrapUpField(
        nl="Onderwerpen", en="Topics", multiple=True,
        options=_options(
            ("partnergeweld", "partnergeweld", "partner violence"),
            ("kindermishandeling", "kindermishandeling", "child abuse"),
            ("ouderenmishandeling", "ouderenmishandeling", "elder abuse"),
            ("seksueel-geweld", "seksueel geweld", "sexual violence"),
            ("eergerelateerd-geweld", "eergerelateerd geweld", "honour-based violence"),
            ("anders", "anders", "other"),
        ),
    )  # fmt: skip
    outcome: WrapUpField = WrapUpField(
        nl="Uitkomst", en="Outcome",
        options=[
            *_options(
                ("advies-gegeven", "advies gegeven", "advice given"),
                ("melding-geadviseerd", "melding geadviseerd", "report advised"),
            ),
            WrapUpOption(code="omgezet-in-melding", nl="omgezet in melding", en="converted into a report",
                         converted=True),
            *_options(
                ("doorverwezen", "doorverwezen", "referred"),
                ("acuut-112", "acuut / 112 ingeschakeld", "acute / 112 called"),
            ),
            WrapUpOption(code="geen-serieus-gesprek", nl="geen serieus gesprek", en="no serious conversation",
                         serious=False),
        ],
    )  # fmt: skip
    note_max_chars: int = Field(
        default=500, ge=0, le=2000, description="Optional note: kept with the conversation, not the figures"
    )

    def fields(self) -> dict[str, WrapUpField]:
        return {
            "contact_role": self.contact_role,
            "age_group": self.age_group,
            "topics": self.topics,
            "outcome": self.outcome,
        }


class Capacity(_Model):
    """How many conversations a counsellor has at once, and how long a claim may stay
    unanswered before it goes back to the queue."""

    per_counsellor: int = Field(default=3, ge=1, le=50)
    per_team: dict[Code, int] = Field(default_factory=dict, description="A team's own limit")
    unanswered_claim_minutes: float = Field(default=5, gt=0, le=240)

    def limit(self, team: str) -> int:
        return self.per_team.get(team, self.per_counsellor)


ANSWER_PLACEHOLDERS = ("next_open", "phone", "team")


def _answer_text(value: dict[str, str]) -> dict[str, str]:
    if "nl" not in value:
        raise ValueError("every standard answer has a Dutch text (nl)")
    for language, text in value.items():
        if language not in ("nl", "en"):
            raise ValueError("languages are nl and en")
        try:
            fields = {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
        except ValueError:
            raise ValueError(f"{language}: a lone {{ or }}; write {{{{ or }}}} for a brace") from None
        unknown = fields - set(ANSWER_PLACEHOLDERS)
        if unknown:
            first = sorted(unknown)[0]
            raise ValueError(f"{language}: unknown placeholder {{{first}}}; use {ANSWER_PLACEHOLDERS}")
    return value


class StandardAnswer(_Model):
    id: Code
    title: Annotated[dict[str, str], AfterValidator(_answer_text)]
    text: Annotated[dict[str, str], AfterValidator(_answer_text)] = Field(
        description="With {next_open}, {phone} and {team} filled in when a counsellor uses it"
    )


class ResponsesFile(_Model):
    """config/responses/<team>.yaml: a team's standard answers (national's are everyone's)."""

    team: Code = Field(description="A region code, or national")
    values: dict[str, str] = Field(default_factory=dict, description="What {phone} says, for instance")
    answers: list[StandardAnswer] = Field(default_factory=list)


WAIT_NOTICE: dict[Literal["nl", "en"], str] = {
    "nl": "Je staat nog in de wachtrij: een hulpverlener komt zo bij je. Ben je nu in gevaar? Bel 112.",
    "en": "You are still in the queue: a counsellor will be with you soon. In danger now? Call 112.",
}


class WaitNotice(_Model):
    """One message to a person who has waited this long for a counsellor, on the channels
    that carry replies, except those with `auto_reply: false` (someone else may read the
    phone)."""

    after_minutes: float = Field(default=10, ge=0, le=240, description="0: never")
    text: dict[Literal["nl", "en"], Annotated[str, Field(min_length=10, max_length=1000)]] = Field(
        default_factory=lambda: dict(WAIT_NOTICE)
    )


ATTACHMENT_TYPES = (
    "image/jpeg", "image/png", "image/gif", "image/webp", "image/heic",
    "application/pdf", "text/plain",
    "audio/ogg", "audio/mpeg", "audio/mp4", "audio/amr", "video/mp4", "video/3gpp",
)  # fmt: skip


class Attachments(_Model):
    """What the desk fetches of what a person sends: from the provider's own hosts only,
    up to this size, of these content types; anything else is refused and shown so."""

    max_bytes: int = Field(default=10 * 1024 * 1024, ge=1024, le=100 * 1024 * 1024)
    content_types: list[Annotated[str, Field(pattern=r"^[a-z0-9.+-]+/[a-z0-9.+-]+$")]] = Field(
        default_factory=lambda: list(ATTACHMENT_TYPES), min_length=1
    )
    fetch_timeout_seconds: float = Field(default=30, gt=0, le=300, description="One whole fetch")
    attempts: int = Field(default=5, ge=1, le=20, description="Fetches of one attachment, at most")


class ReportSettings(_Model):
    """The figures the regions and the network report (docs/reports.md)."""

    min_count: int = Field(
        default=5, ge=2, le=100, description="A count below this is shown as '<N', and shares need it"
    )


class DeskFile(_Model):
    wrap_up: WrapUp = Field(default_factory=WrapUp)
    reports: ReportSettings = Field(default_factory=ReportSettings)
    attachments: Attachments = Field(default_factory=Attachments)
    capacity: Capacity = Field(default_factory=Capacity)
    wait_notice: WaitNotice = Field(default_factory=WaitNotice)


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


class KindSettings(BaseModel):
    """Base for a channel kind's `settings:` block; credentials are `SecretRef` fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)


S = TypeVar("S", bound=KindSettings, covariant=True)


@dataclass(frozen=True)
class Channel(Generic[S]):
    """A channel instance, validated and with its credentials looked up; `settings` is
    its kind's own settings model."""

    id: str
    kind: str
    region: str | None
    language: str
    texts: dict[str, str]
    settings: S
    secrets: dict[str, str]
    missing_secrets: tuple[str, ...]
    source: Path
    auto_reply: bool = True

    @property
    def usable(self) -> bool:
        return not self.missing_secrets


class KindSchema(Protocol):
    """What loading the configuration needs of a channel kind: its name, its settings
    model and the checks that need the rest of the configuration."""

    name: ClassVar[str]
    settings_model: ClassVar[type[KindSettings]]

    def check(self, settings: Any, regions: dict[str, Region]) -> list[tuple[str, str]]: ...


@dataclass(frozen=True)
class Config:
    directory: Path
    service: ServiceSettings
    national: NationalTeam
    regions: dict[str, Region]
    schedules: dict[str, Schedule]
    channels: dict[str, Channel[KindSettings]]
    routing: RoutingFile
    warnings: tuple[str, ...] = field(default=())
    counsellors: dict[str, Counsellor] = field(default_factory=dict)
    desk: DeskFile = field(default_factory=DeskFile)
    responses: dict[str, ResponsesFile] = field(default_factory=dict)  # by team

    @property
    def team_codes(self) -> list[str]:
        """Every code that owns region queues: the regions and the national team."""
        return [*self.regions, NATIONAL]
