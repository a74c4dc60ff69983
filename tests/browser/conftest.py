"""Browser tests: Playwright for Python driving Debian's Chromium (never a
downloaded browser) against real `gateway run` processes, the real RabbitMQ and
PostgreSQL. Screenshots of every page and state go to test-output/screenshots/."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml
from playwright.async_api import Browser, Page, async_playwright

from tests.conftest import EXAMPLE_CONFIG, ROOT, broker_required

CHROMIUM = os.environ.get("GATEWAY_TEST_CHROMIUM", "/usr/bin/chromium")
AXE = os.environ.get(
    "GATEWAY_TEST_AXE", str(ROOT / ".cache/axe-core-4.14.1/node_modules/axe-core/axe.min.js")
)
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
SCREENSHOTS = ROOT / "test-output" / "screenshots"
PHARMACY_ID = "apotheek-de-linde"
PHARMACY_PASSWORD = "linde-wachtwoord-2026"
OPEN_MONDAY = "2025-11-24T10:00:00+01:00"
CLOSED_SATURDAY = "2025-11-22T12:00:00+01:00"


def _require(path: str, what: str) -> None:
    if not Path(path).exists():
        message = f"{what} is missing at {path} (scripts/test installs it)"
        if broker_required():
            pytest.fail(message + ": browser tests may not skip here", pytrace=False)
        pytest.skip(message)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    _require(CHROMIUM, "Chromium")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            yield launched
        finally:
            await launched.close()


def hash_password(password: str) -> str:
    """Through the documented command, as an operator would."""
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "hash-password"],
        input=password + "\n",
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return result.stdout.strip()


@pytest.fixture(scope="session")
def pharmacy_hash() -> str:
    return hash_password(PHARMACY_PASSWORD)


def browser_config(
    root: Path,
    pharmacy_hash: str,
    *,
    exit_url: str,
    idle_seconds: int = 1800,
    allowed_origins: list[str] | None = None,
) -> Path:
    """The example configuration with a configured pharmacy and a local neutral site."""
    shutil.copytree(EXAMPLE_CONFIG, root)
    webchat = root / "channels" / "webchat-zuidoost-brabant.yaml"
    data = yaml.safe_load(webchat.read_text())
    data["settings"].update(exit_url=exit_url, session_idle_seconds=idle_seconds)
    if allowed_origins is not None:
        data["settings"]["allowed_origins"] = allowed_origins
    webchat.write_text(yaml.safe_dump(data, allow_unicode=True))
    masker = root / "channels" / "masker19.yaml"
    data = yaml.safe_load(masker.read_text())
    data["settings"]["pharmacies"] = [
        {
            "id": PHARMACY_ID,
            "name": "Apotheek De Linde",
            "municipality": "Eindhoven",
            "password_hash": pharmacy_hash,
        }
    ]
    masker.write_text(yaml.safe_dump(data, allow_unicode=True))
    return root


async def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


async def serious_accessibility_violations(page: Page) -> list[dict]:
    """axe-core in the page (the context must bypass CSP to inject it); serious and
    critical violations only."""
    _require(AXE, "axe-core")
    await page.add_script_tag(path=AXE)
    result = await page.evaluate("async () => JSON.stringify(await axe.run(document))")
    violations = json.loads(result)["violations"]
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:3]}
        for v in violations
        if v["impact"] in ("serious", "critical")
    ]
