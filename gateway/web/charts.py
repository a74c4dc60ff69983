"""The reports' charts, as SVG made on the gateway: no charting code in the browser and
no third-party request (docs/reports.md, "In the console").

Each chart draws figures of one report exactly as the report shows them: a count is a
bar as long as its share of the largest shown count, labelled with the count; "<5" and
"hidden" ("verborgen") are drawn as text only, with no bar, so no length gives a hidden
count away. The SVG is `role="img"` with a `<title>` and a `<desc>` that lists every
value, for screen readers and for anyone who opens it on its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).resolve().parent / "static" / "charts"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
)
CHARTS = ("trend", "channels", "age", "roles")
HIDDEN = "hidden"
WIDTH = 360  # about as wide as it is shown on a phone, so its text is about 1rem
FONT = 16
LEFT = 8
THICKNESS = 18
VALUE_ROOM = 120  # beside the longest bar: "1.292 · 100,0%"
CHART_HEIGHT = 180  # the vertical chart's tallest bar
MAX_COLUMNS = 9  # more weeks than this (a long range): one bar a row instead
CHANNELS = {  # the kinds' own labels (adapters/*/kind.py), as the console shows them
    "sms": "SMS",
    "whatsapp": "WhatsApp",
    "telegram": "Telegram",
    "webchat": "Webchat",
    "masker19": "Apotheek (Masker 19)",
    "http-json": "Eigen systeem van de regio",
}


@dataclass(frozen=True)
class Bar:
    label: str
    value: int | str  # as the report shows it: a count, "<5" or "hidden"
    share: float | None = None
    short: str = ""  # under a column of a vertical chart

    @property
    def hidden(self) -> bool:
        return isinstance(self.value, str)


@dataclass(frozen=True)
class Labels:
    """The names people read for the codes a report uses."""

    codes: Mapping[str, Mapping[str, str]]  # field (contact_role, age_group) -> code -> Dutch
    teams: Mapping[str, str]


def number(value: int | str) -> str:
    """A count as the report shows it, in Dutch: 1.292, "<5", "verborgen"."""
    if isinstance(value, str):
        return "verborgen" if value == HIDDEN else value
    return f"{value:,}".replace(",", ".")


def percent(share: float) -> str:
    return f"{share * 100:.1f}%".replace(".", ",")


def value_text(bar: Bar) -> str:
    text = number(bar.value)
    return f"{text} · {percent(bar.share)}" if bar.share is not None else text


def bars_svg(title: str, bars: Sequence[Bar], *, vertical: bool = False, note: str = "") -> str:
    """Bars, horizontal (a label above each) or vertical (columns with a short label)."""
    vertical = vertical and 0 < len(bars) <= MAX_COLUMNS
    shown = [b.value for b in bars if isinstance(b.value, int)]
    largest = max(shown, default=0)
    listed = "; ".join(f"{b.label}: {value_text(b)}" for b in bars) or "geen cijfers"
    hidden_note = (
        " Kleine aantallen staan als <5 of verborgen, zodat niemand te herkennen is."
        if any(b.hidden for b in bars)
        else ""
    )
    desc = f"{listed}.{hidden_note}{' ' + note if note else ''}"
    drawn: list[dict[str, Any]] = []
    if vertical:
        gap = 24.0 if len(bars) <= 4 else 6.0
        column = min(72.0, (WIDTH - 2 * LEFT - gap * (len(bars) - 1)) / len(bars))
        start = (WIDTH - len(bars) * column - (len(bars) - 1) * gap) / 2  # centred
        top = FONT + 12  # room for the tallest bar's value
        base = top + CHART_HEIGHT
        height = base + FONT + 14
        for n, bar in enumerate(bars):
            length = None if bar.hidden else _length(bar.value, largest, CHART_HEIGHT)
            x = start + n * (column + gap)
            short = bar.short if column >= 60 else bar.short.rpartition(" ")[2]  # "week 48", or "48"
            drawn.append({**_common(bar, length), "x": round(x, 1), "short": short})
    else:
        column, base = 0.0, 0
        row = FONT + 6 + THICKNESS + 12
        height = max(1, len(bars)) * row
        for n, bar in enumerate(bars):
            length = None if bar.hidden else _length(bar.value, largest, WIDTH - LEFT - VALUE_ROOM)
            drawn.append({**_common(bar, length), "y": n * row})
    return TEMPLATES.get_template("bars.svg.j2").render(
        title=title, desc=desc, bars=drawn, vertical=vertical, width=WIDTH, height=height, font=FONT,
        left=LEFT, thickness=THICKNESS, column=round(column, 1), base=base,
    )  # fmt: skip


def _length(value: int | str, largest: int, room: int) -> float:
    assert isinstance(value, int)
    return 0.0 if largest == 0 else round(room * value / largest, 1)


def _common(bar: Bar, length: float | None) -> dict[str, Any]:
    return {
        "label": bar.label,
        "value": bar.value,
        "short": bar.short or bar.label,
        "text": value_text(bar),
        "length": length,
        "hidden": bar.hidden,
    }


def _table(figure: Mapping[str, Any], names: Mapping[str, str], shares: bool) -> list[Bar]:
    return [
        Bar(names.get(code, code), cell["count"], cell.get("share") if shares else None)
        for code, cell in figure.items()
    ]


def _ordered(figure: Mapping[str, Any], order: Sequence[str]) -> dict[str, Any]:
    """The codes in the configuration's order, then any others (codes no longer configured)."""
    known = [code for code in order if code in figure]
    return {code: figure[code] for code in [*known, *sorted(set(figure) - set(known))]}


def chart(report: Mapping[str, Any], name: str, labels: Labels) -> str:
    """One of CHARTS for a report as `Reports.report` gives it."""
    figures = report["figures"]
    scope = report["scope"]
    who = "het hele land" if scope == "all" else labels.teams.get(scope, scope)
    period = report["period"]
    when = f"{period['label']} ({period['from']} t/m {period['to']})"
    if name == "trend":
        weeks = figures["by_week"]
        bars = [Bar(week, c["count"], short="week " + week.rpartition("W")[2]) for week, c in weeks.items()]
        return bars_svg(f"Contacten per week, {who}, {when}", bars, vertical=True)
    if name == "channels":
        bars = _table(figures["by_channel"], CHANNELS, shares=False)
        return bars_svg(f"Contacten per kanaal, {who}, {when}", bars)
    of_registered = "Aandelen van de geregistreerde contacten."
    if name == "age":
        ages = labels.codes.get("age_group", {})
        bars = _table(_ordered(figures["age_group"], list(ages)), ages, shares=True)
        return bars_svg(f"Leeftijd, {who}, {when}", bars, note=of_registered)
    if name == "roles":
        roles = labels.codes.get("contact_role", {})
        bars = _table(_ordered(figures["contact_role"], list(roles)), roles, shares=True)
        return bars_svg(f"Wie schreef, {who}, {when}", bars, note=of_registered)
    raise ValueError(f"no chart {name!r}")
