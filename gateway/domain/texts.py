"""Words the gateway says to people and operators: days, months, holiday names."""

from __future__ import annotations

from datetime import datetime

from gateway.config.models import HolidayName

HOLIDAY_LABELS: dict[HolidayName, str] = {
    "new_years_day": "New Year's Day",
    "good_friday": "Good Friday",
    "easter_sunday": "Easter Sunday",
    "easter_monday": "Easter Monday",
    "kings_day": "King's Day",
    "liberation_day": "Liberation Day",
    "liberation_day_lustrum": "Liberation Day (lustrum year)",
    "ascension_day": "Ascension Day",
    "whit_sunday": "Whit Sunday",
    "whit_monday": "Whit Monday",
    "christmas_day": "Christmas Day",
    "boxing_day": "Boxing Day",
}


_DAYS = {
    "nl": ("maandag", "dinsdag", "woensdag", "donderdag", "vrijdag", "zaterdag", "zondag"),
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
}
_MONTHS = {
    "nl": (
        "januari",
        "februari",
        "maart",
        "april",
        "mei",
        "juni",
        "juli",
        "augustus",
        "september",
        "oktober",
        "november",
        "december",
    ),
    "en": (
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ),
}


def format_local(moment: datetime, language: str) -> str:
    lang = "en" if language == "en" else "nl"
    day = _DAYS[lang][moment.weekday()]
    month = _MONTHS[lang][moment.month - 1]
    if lang == "nl":
        return f"{day} {moment.day} {month} om {moment:%H:%M}"
    return f"{day} {moment.day} {month} at {moment:%H:%M}"
