"""Settings from the environment (the contract documented in README.md)."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Settings:
    amqp_url: str | None
    config_dir: str
    http_port: int
    http_host: str
    secret_key: str | None
    log_level: str

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        port = env.get("GATEWAY_HTTP_PORT", "8080")
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("GATEWAY_HTTP_PORT must be a port number (1-65535)")
        return cls(
            amqp_url=env.get("GATEWAY_AMQP_URL") or None,
            config_dir=env.get("GATEWAY_CONFIG", "config/"),
            http_port=int(port),
            http_host=env.get("GATEWAY_HTTP_HOST", "127.0.0.1"),
            secret_key=env.get("GATEWAY_SECRET_KEY") or None,
            log_level=env.get("GATEWAY_LOG_LEVEL", "INFO"),
        )
