"""The reports' SVG charts (gateway/web/charts.py): a hidden count is text with no bar,
names are escaped, and the title and description give every value."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import date

from gateway.domain.reports import Counts, ReportOptions, build_report, inventory_period
from gateway.web import charts
from gateway.web.charts import Bar, Labels, bars_svg

SVG = "{http://www.w3.org/2000/svg}"


def groups(svg: str) -> dict[str, ET.Element]:
    root = ET.fromstring(svg)  # noqa: S314 - our own output
    return {g.attrib["data-label"]: g for g in root.iter(f"{SVG}g")}


def bar_width(group: ET.Element) -> float | None:
    rects = group.findall(f"{SVG}rect")
    return float(rects[0].attrib["width"]) if rects else None


def texts(group: ET.Element) -> list[str]:
    return [t.text or "" for t in group.findall(f"{SVG}text")]


def test_hidden_counts_are_text_with_no_bar_and_shown_ones_are_proportional() -> None:
    bars = [Bar("sms", 40), Bar("webchat", "hidden"), Bar("masker19", "<5"), Bar("telegram", 20), Bar("x", 0)]
    for vertical in (False, True):
        found = groups(bars_svg("Per kanaal", bars, vertical=vertical))
        assert bar_width(found["webchat"]) is None and "verborgen" in texts(found["webchat"])
        assert bar_width(found["masker19"]) is None and "<5" in texts(found["masker19"])
        if not vertical:
            assert bar_width(found["sms"]) == 2 * bar_width(found["telegram"])  # type: ignore[operator]
            assert bar_width(found["x"]) == 0
        else:
            heights = {k: float(g.find(f"{SVG}rect").attrib["height"]) for k, g in found.items()  # type: ignore[union-attr]
                       if g.find(f"{SVG}rect") is not None}  # fmt: skip
            assert heights["sms"] == 2 * heights["telegram"] and heights["x"] == 0


def test_names_are_escaped() -> None:
    svg = bars_svg("Team <Zuid> & Oost", [Bar("Regio <b>&amp;</b> \"x\"", 7), Bar("</text><script>", "<5")])
    assert "<script>" not in svg and "<b>" not in svg and "<Zuid>" not in svg
    root = ET.fromstring(svg)  # noqa: S314 - it parses: nothing broke out of its element
    assert root.find(f"{SVG}title").text.startswith("Team <Zuid> & Oost")  # type: ignore[union-attr]
    assert set(groups(svg)) == {'Regio <b>&amp;</b> "x"', "</text><script>"}


def test_title_and_description_list_every_value() -> None:
    period = inventory_period(date(2026, 11, 20))
    counts = Counts(
        contacts=45,
        by_channel={"sms": 29, "webchat": 13, "masker19": 3},
        by_week={"2026-W47": 20, "2026-W48": 25},
        registered=45,
        contact_role={"slachtoffer": 25, "omstander": 12, "professional": 8},
        age_group={"12-17": 3, "18-plus": 36, "onbekend": 6},
    )
    options = ReportOptions(codes={"age_group": ["onder-12", "12-17", "18-plus", "onbekend"]})
    report = build_report("zuidoost-brabant", period, counts, Counts(), options)
    ages = {"onder-12": "onder 12", "12-17": "12-17", "18-plus": "18 of ouder", "onbekend": "?"}
    labels = Labels(
        codes={"age_group": ages, "contact_role": {"slachtoffer": "slachtoffer"}},
        teams={"zuidoost-brabant": "Zuidoost & <Brabant>"},
    )
    for name in charts.CHARTS:
        svg = charts.chart(report, name, labels)
        root = ET.fromstring(svg)  # noqa: S314
        assert root.attrib["role"] == "img"
        title = root.find(f"{SVG}title").text or ""  # type: ignore[union-attr]
        desc = root.find(f"{SVG}desc").text or ""  # type: ignore[union-attr]
        assert "Zuidoost & <Brabant>" in title and "2026-P24" in title
        for label, group in groups(svg).items():
            assert f"{label}: {texts(group)[-1 if name != 'trend' else 0]}" in desc, (name, label)
    age = charts.chart(report, "age", labels)
    desc = ET.fromstring(age).find(f"{SVG}desc").text  # type: ignore[union-attr]  # noqa: S314
    assert desc is not None
    assert "onder 12: 0 · 0,0%" in desc and "12-17: <5" in desc and "?: verborgen" in desc
    assert "18 of ouder: 36 · 80,0%" in desc and "zodat niemand te herkennen is" in desc
    trend = ET.fromstring(charts.chart(report, "trend", labels))  # noqa: S314
    assert "2026-W47: 20; 2026-W48: 25." in (trend.find(f"{SVG}desc").text or "")  # type: ignore[union-attr]
    channels = ET.fromstring(charts.chart(report, "channels", labels)).find(f"{SVG}desc").text  # noqa: S314
    assert channels is not None and "SMS: 29" in channels and "Webchat: verborgen" in channels
    assert "Apotheek (Masker 19): <5" in channels
