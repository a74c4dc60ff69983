"""Sliding-window rate limits, kept in this process (several processes each keep their own)."""

from __future__ import annotations

import time
from collections import deque


class Window:
    """At most `limit` events per `seconds` for each key; refused events do not count."""

    MAX_KEYS = 100_000

    def __init__(self, limit: int, seconds: float) -> None:
        self.limit = limit
        self.seconds = seconds
        self._events: dict[str, deque[float]] = {}

    def allow(self, key: str) -> bool:
        now = time.monotonic()
        events = self._events.setdefault(key, deque())
        while events and events[0] <= now - self.seconds:
            events.popleft()
        if len(events) >= self.limit:
            return False
        events.append(now)
        if len(self._events) > self.MAX_KEYS:  # bounded: forget every key quiet for a whole window
            cutoff = now - self.seconds
            self._events = {k: v for k, v in self._events.items() if v and v[-1] > cutoff}
        return True
