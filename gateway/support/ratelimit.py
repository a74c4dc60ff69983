"""Rate limits: sliding windows of events per key.

`Limiter` is what the service lends the kinds and the sign-in checks: `allow(scope, key,
limit, seconds)` counts one event for `key` within `scope` and says whether it is within
`limit` events per `seconds`; refused events do not count. `LocalLimiter` keeps the
windows in this process, so several processes each keep their own.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Protocol


class Limiter(Protocol):
    async def allow(self, scope: str, key: str, limit: int, seconds: int) -> bool: ...


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


class LocalLimiter:
    """The windows kept in this process, one per scope; a changed limit starts its scope afresh."""

    def __init__(self) -> None:
        self._windows: dict[str, Window] = {}

    async def allow(self, scope: str, key: str, limit: int, seconds: int) -> bool:
        window = self._windows.get(scope)
        if window is None or window.limit != limit or window.seconds != seconds:
            window = self._windows[scope] = Window(limit, seconds)
        return window.allow(key)
