"""`gateway schedule` reads the same clock as the running service, GATEWAY_FAKE_TIME included."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import EXAMPLE_CONFIG, EXAMPLE_SECRETS, ROOT

OPEN_MONDAY = "2025-11-24T10:00:00+01:00"
CLOSED_SATURDAY = "2025-11-22T12:00:00+01:00"


def schedule(*args: str, fake_time: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update(EXAMPLE_SECRETS, GATEWAY_CONFIG=str(EXAMPLE_CONFIG))
    if fake_time:
        env["GATEWAY_FAKE_TIME"] = fake_time
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", "schedule", *args],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_schedule_follows_gateway_fake_time() -> None:
    opened = json.loads(schedule("utrecht", "--json", fake_time=OPEN_MONDAY).stdout)
    closed = json.loads(schedule("utrecht", "--json", fake_time=CLOSED_SATURDAY).stdout)
    assert opened["open"] is True and closed["open"] is False
    assert opened["at"].startswith("2025-11-24T10:0") and closed["at"].startswith("2025-11-22T12:0")
    assert opened["fake_time"] is True
    # The same answer as asking for that moment outright.
    asked = json.loads(schedule("utrecht", "--json", "--at", OPEN_MONDAY).stdout)
    assert (asked["open"], asked["reason"], asked["fake_time"]) == (True, opened["reason"], False)


def test_schedule_says_when_its_time_is_shifted() -> None:
    shifted = schedule("utrecht", fake_time=CLOSED_SATURDAY)
    assert shifted.returncode == 0, shifted.stderr
    assert "CLOSED" in shifted.stdout and "GATEWAY_FAKE_TIME" in shifted.stdout
    real = schedule("utrecht")
    assert real.returncode == 0, real.stderr
    assert "GATEWAY_FAKE_TIME" not in real.stdout
