"""Urgency: a Masker 19 intake arrives urgent; a message that says someone is in
acute danger becomes acute. Phrases match as whole words, ignoring case and accents."""

from __future__ import annotations

import re
import unicodedata

from gateway.domain.envelope import Urgency

_RANK = {Urgency.NORMAL: 0, Urgency.HIGH: 1, Urgency.ACUTE: 2}


def fold(text: str) -> str:
    """Case- and accent-insensitive form: casefold, decompose (NFKD), drop combining marks."""
    folded = text.casefold()
    if folded.isascii():  # most messages: NFKD changes no ASCII text and there is no mark to drop
        return folded
    decomposed = unicodedata.normalize("NFKD", folded)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


class AcuteDanger:
    def __init__(self, phrases: list[str]) -> None:
        words = sorted({fold(p).strip() for p in phrases if p.strip()}, key=len, reverse=True)
        if words:
            alternatives = "|".join(r"\s+".join(map(re.escape, w.split())) for w in words)
            self._pattern: re.Pattern[str] | None = re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)")
        else:
            self._pattern = None

    def matches(self, text: str) -> bool:
        return bool(self._pattern and text and self._pattern.search(fold(text)))


def classify(arrived_as: Urgency, text: str, acute: AcuteDanger) -> Urgency:
    """The higher of what the channel said and what the text says."""
    detected = Urgency.ACUTE if acute.matches(text) else Urgency.NORMAL
    return arrived_as if _RANK[arrived_as] >= _RANK[detected] else detected


def is_urgent(urgency: Urgency) -> bool:
    return urgency is not Urgency.NORMAL
