"""Rate limits: sliding windows of events per key.

`Limiter` is what the service lends the kinds and the sign-in checks: `allow(scope, key,
limit, seconds)` counts one event for `key` within `scope` and says whether it is within
`limit` events per `seconds`; refused events do not count. `LocalLimiter` keeps the
windows in this process, so several processes each keep their own; `RedisLimiter` keeps
them in Redis (GATEWAY_REDIS_URL), one window for every process, and falls back to its
own process's windows for any call Redis does not answer: a person is never refused
because Redis is down.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

import redis.asyncio as redis
import structlog
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

log = structlog.get_logger("gateway.ratelimit")


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


# One sliding window per key, a sorted set of event times (Redis's own clock, so every
# process agrees): drop what left the window, refuse at the limit, else add this event and
# let the key expire a window after its last event. One script: atomic across processes.
SLIDING_WINDOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local window = tonumber(ARGV[1]) * 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]) * 1000)
return 1
"""


class RedisLimiter:
    """The windows in Redis, shared by every process given the same URL. A key in Redis
    is `prefix` + SHA-256 of scope and key: never an address or a session id as such.

    When Redis does not answer a call (within `timeout` seconds), that call is decided by
    this process's own windows, `on_fallback` is called (a metric) and the first such call
    of an outage logs a warning; for `pause` seconds after a failure Redis is not tried,
    so an outage does not slow every request by the timeout."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "gw:rl:",
        timeout: float = 0.5,
        pause: float = 1.0,
        on_fallback: Callable[[], None] = lambda: None,
    ) -> None:
        self._client = redis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
        )
        self._script = self._client.register_script(SLIDING_WINDOW)
        self._prefix = prefix
        self._pause = pause
        self._on_fallback = on_fallback
        self._local = LocalLimiter()
        self._down_since: float | None = None
        self._retry_at = 0.0

    def key_for(self, scope: str, key: str) -> str:
        named = f"{len(scope)}|{scope}|{key}"  # the length: no two (scope, key) are one text
        return self._prefix + hashlib.sha256(named.encode()).hexdigest()

    async def allow(self, scope: str, key: str, limit: int, seconds: int) -> bool:
        if self._down_since is None or time.monotonic() >= self._retry_at:
            try:
                member = secrets.token_hex(8)
                allowed = await self._script(keys=[self.key_for(scope, key)], args=[seconds, limit, member])
            except (RedisError, OSError) as exc:
                self._failed(exc)
            else:
                if self._down_since is not None:
                    down = round(time.monotonic() - self._down_since)
                    log.info("rate_limits_shared_again", seconds_down=down)
                    self._down_since = None
                return bool(allowed)
        self._on_fallback()
        return await self._local.allow(scope, key, limit, seconds)

    def _failed(self, exc: Exception) -> None:
        now = time.monotonic()
        self._retry_at = now + self._pause
        if self._down_since is None:
            self._down_since = now
            log.warning(
                "rate_limits_redis_unavailable",
                error=type(exc).__name__,
                detail="Redis (GATEWAY_REDIS_URL) did not answer: rate limits are kept per process "
                "until it does; nobody is refused for it",
            )

    async def aclose(self) -> None:
        await self._client.aclose()
