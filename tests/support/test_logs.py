from __future__ import annotations

import io
import json
import logging

import pytest
import structlog

from gateway.support.logs import REDACTED, configure_logging, scrub


@pytest.mark.parametrize(
    "secret",
    [
        "+31612345678",
        "+31 6 1234 5678",
        "0612345678",
        "06-12345678",
        "0031612345678",
        "whatsapp:+31612345678",
        "iemand@example.nl",
        "@geheimehandle",
    ],
)
def test_scrub_removes_addresses(secret: str) -> None:
    assert secret not in scrub(f"before {secret} after")
    assert REDACTED in scrub(secret)


@pytest.mark.parametrize(
    "harmless",
    [
        "d910c60a-b057-5812-b8b1-801bb598c19d",
        "2026-11-23T01:03:45Z",
        "gw.region.utrecht.urgent",
        "status 202 in 12.5 ms",
        "12345678-1234-5678-1234-567812345678",
    ],
)
def test_scrub_keeps_ids_and_times(harmless: str) -> None:
    assert scrub(harmless) == harmless


def test_logs_carry_no_content_keys_nor_exception_messages() -> None:
    stream = io.StringIO()
    configure_logging("DEBUG", stream)
    log = structlog.get_logger("gateway.test")
    log.info("event", text="Mijn man slaat me", body=b"raw", profile_name="Anna", channel="sms-x")
    try:
        raise ValueError("input was: Mijn man slaat me, bel 0612345678")
    except ValueError:
        log.exception("failed")
    logging.getLogger("aiohttp.server").error("Error handling request %s", "0612345678 secret body")
    output = stream.getvalue()
    for leaked in ("Mijn man slaat me", "0612345678", "Anna", "secret body"):
        assert leaked not in output
    records = [json.loads(line) for line in output.splitlines()]
    assert records[0]["channel"] == "sms-x" and records[0]["text"] == REDACTED
    assert records[1]["exc_type"] == "ValueError" and records[1]["stack"]
    assert records[2]["event"] == "Error handling request %s"
