"""Settings from the environment (the contract documented in README.md)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from gateway.support.proxies import Network, parse_networks

REDIS_SCHEMES = ("redis", "rediss", "unix")


@dataclass(frozen=True)
class Settings:
    amqp_url: str | None
    config_dir: str
    http_port: int
    http_host: str
    secret_key: str | None
    log_level: str
    database_url: str | None = None
    fake_time: datetime | None = None
    admin_token: str | None = None
    demo_accounts: bool = False
    declare_topology: bool = True
    desk_teams: tuple[str, ...] = ()
    metrics_token: str | None = None  # GATEWAY_METRICS_TOKEN: the bearer that may read /metrics
    data_keys: str | None = None  # GATEWAY_DATA_KEYS: the keyring for the desk's transcripts, at rest
    channel_data_keys: str | None = None  # GATEWAY_CHANNEL_DATA_KEYS: for the kinds' tables (web chat)
    # A key per purpose (gateway/support/keys.py; `gateway keys generate`), each held only
    # by the roles that need it; without any, GATEWAY_SECRET_KEY derives them all (try-out).
    pseudonym_key: str | None = None  # GATEWAY_PSEUDONYM_KEY
    seal_public_key: str | None = None  # GATEWAY_SEAL_PUBLIC_KEY
    seal_private_key: str | None = None  # GATEWAY_SEAL_PRIVATE_KEY
    desk_session_key: str | None = None  # GATEWAY_DESK_SESSION_KEY
    pages_key: str | None = None  # GATEWAY_PAGES_KEY
    # GATEWAY_TRUSTED_PROXIES: the peers whose X-Forwarded-For/-Proto are believed (none: nobody's)
    trusted_proxies: tuple[Network, ...] = ()
    redis_url: str | None = None  # GATEWAY_REDIS_URL: the rate limits shared by every process

    @property
    def specific_keys(self) -> dict[str, str]:
        """The specific keys given, by variable name."""
        given = {
            "GATEWAY_PSEUDONYM_KEY": self.pseudonym_key,
            "GATEWAY_SEAL_PUBLIC_KEY": self.seal_public_key,
            "GATEWAY_SEAL_PRIVATE_KEY": self.seal_private_key,
            "GATEWAY_DESK_SESSION_KEY": self.desk_session_key,
            "GATEWAY_PAGES_KEY": self.pages_key,
        }
        return {name: value for name, value in given.items() if value}

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        port = env.get("GATEWAY_HTTP_PORT", "8080")
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("GATEWAY_HTTP_PORT must be a port number (1-65535)")
        fake_time = None
        if env.get("GATEWAY_FAKE_TIME"):
            try:
                fake_time = datetime.fromisoformat(env["GATEWAY_FAKE_TIME"])
            except ValueError:
                raise ValueError("GATEWAY_FAKE_TIME must be an ISO 8601 time with an offset") from None
            if fake_time.tzinfo is None:
                raise ValueError("GATEWAY_FAKE_TIME must carry an offset, e.g. 2025-11-21T18:00:00+01:00")
        return cls(
            trusted_proxies=parse_networks(env.get("GATEWAY_TRUSTED_PROXIES", "")),
            redis_url=_redis_url(env.get("GATEWAY_REDIS_URL", "")),
            database_url=env.get("GATEWAY_DATABASE_URL") or None,
            admin_token=env.get("GATEWAY_ADMIN_TOKEN") or None,
            demo_accounts=env.get("GATEWAY_DEMO_ACCOUNTS", "").lower() in ("1", "true", "yes"),
            declare_topology=env.get("GATEWAY_DECLARE_TOPOLOGY", "1").lower() not in ("0", "false", "no"),
            data_keys=env.get("GATEWAY_DATA_KEYS") or None,
            channel_data_keys=env.get("GATEWAY_CHANNEL_DATA_KEYS") or None,
            metrics_token=env.get("GATEWAY_METRICS_TOKEN") or None,
            pseudonym_key=env.get("GATEWAY_PSEUDONYM_KEY") or None,
            seal_public_key=env.get("GATEWAY_SEAL_PUBLIC_KEY") or None,
            seal_private_key=env.get("GATEWAY_SEAL_PRIVATE_KEY") or None,
            desk_session_key=env.get("GATEWAY_DESK_SESSION_KEY") or None,
            pages_key=env.get("GATEWAY_PAGES_KEY") or None,
            desk_teams=tuple(t.strip() for t in env.get("GATEWAY_DESK_TEAMS", "").split(",") if t.strip()),
            fake_time=fake_time,
            amqp_url=env.get("GATEWAY_AMQP_URL") or None,
            config_dir=env.get("GATEWAY_CONFIG", "config/"),
            http_port=int(port),
            http_host=env.get("GATEWAY_HTTP_HOST", "127.0.0.1"),
            secret_key=env.get("GATEWAY_SECRET_KEY") or None,
            log_level=env.get("GATEWAY_LOG_LEVEL", "INFO"),
        )


def _redis_url(value: str) -> str | None:
    """Checked for form only; the URL itself is never echoed (it may hold a password)."""
    value = value.strip()
    if not value:
        return None
    problem = "GATEWAY_REDIS_URL must look like redis://host:6379/0 (or rediss://, unix://)"
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises for a port that is not a number (0-65535)
    except ValueError:
        raise ValueError(problem + ": it could not be read, or its port is not a number") from None
    if parts.scheme not in REDIS_SCHEMES:
        raise ValueError(problem + ": the scheme is not one of " + ", ".join(REDIS_SCHEMES))
    if parts.scheme != "unix" and not parts.hostname:
        raise ValueError(problem + ": it names no host")
    database = parts.path.strip("/")
    if parts.scheme != "unix" and database and not database.isdigit():
        raise ValueError(problem + ": the database after the host is not a number")
    return value
