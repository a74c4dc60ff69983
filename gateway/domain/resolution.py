"""Region resolution: which region (or the national team) a message belongs to.

In order: the channel instance's own region; else the municipality or 4-digit
postcode the sender or pharmacy gave; else the conversation's current region
(after a counsellor transferred it); else the national team.
"""

from __future__ import annotations

import bisect
import unicodedata
from dataclasses import dataclass

from gateway.config.models import NATIONAL, Config


def normalise_name(name: str) -> str:
    """Case-, accent-, punctuation- and space-insensitive: "Súdwest Fryslân" = "sudwest-fryslan"."""
    stripped = unicodedata.normalize("NFKD", name.casefold())
    letters = "".join(c for c in stripped if c.isalnum() and not unicodedata.combining(c))
    return letters.removeprefix("gemeente")


@dataclass(frozen=True)
class Resolution:
    region: str
    reason: str


@dataclass(frozen=True)
class RegionIndex:
    municipalities: dict[str, str]
    range_starts: tuple[int, ...]
    ranges: tuple[tuple[int, int, str], ...]
    codes: frozenset[str]

    @classmethod
    def from_config(cls, config: Config) -> RegionIndex:
        municipalities: dict[str, str] = {}
        ranges: list[tuple[int, int, str]] = []
        for code, region in config.regions.items():
            for name in region.municipalities:
                municipalities[normalise_name(name)] = code
                # "Bergen (NH)" is also found as "Bergen NH"; a bare "Bergen" stays ambiguous.
            for span in region.postcode_ranges:
                low, high = span.split("-")
                ranges.append((int(low), int(high), code))
        ranges.sort()
        return cls(
            municipalities=municipalities,
            range_starts=tuple(r[0] for r in ranges),
            ranges=tuple(ranges),
            codes=frozenset([*config.regions, NATIONAL]),
        )

    def by_municipality(self, name: str) -> str | None:
        return self.municipalities.get(normalise_name(name))

    def by_postcode(self, postcode: str) -> str | None:
        digits = postcode.strip()[:4]
        if len(digits) != 4 or not digits.isdigit():
            return None
        number = int(digits)
        position = bisect.bisect_right(self.range_starts, number) - 1
        if position >= 0:
            low, high, code = self.ranges[position]
            if low <= number <= high:
                return code
        return None


def resolve_region(
    index: RegionIndex,
    *,
    channel_region: str | None,
    municipality: str | None = None,
    postcode: str | None = None,
    current_region: str | None = None,
) -> Resolution:
    if channel_region:
        return Resolution(channel_region, "channel region")
    if municipality and (code := index.by_municipality(municipality)):
        return Resolution(code, "municipality")
    if postcode and (code := index.by_postcode(postcode)):
        return Resolution(code, "postcode")
    if current_region and current_region in index.codes:
        return Resolution(current_region, "conversation region")
    return Resolution(NATIONAL, "no region known: national team")
