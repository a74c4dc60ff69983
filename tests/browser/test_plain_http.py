"""A try-out over plain http on a host that is not localhost: the browser drops the Secure
session cookie, and the desk and Masker 19 say so on the page instead of failing silently.
Chromium resolves `desk.test` to 127.0.0.1 (--host-resolver-rules), so it believes it is
on another machine: no secure context, no Secure cookies."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml
from playwright.async_api import Browser, async_playwright, expect

from gateway.service import load_config
from tests.browser.conftest import (
    CHROMIUM,
    FLAGS,
    OPEN_MONDAY,
    PHARMACY_ID,
    PHARMACY_PASSWORD,
    _require,
    browser_config,
    hash_password,
    screenshot,
)
from tests.conftest import ServiceProcess, clean_state

pytestmark = pytest.mark.broker

PASSWORD = "proef-wachtwoord-2026"
HOST = "desk.test"


@pytest.fixture
async def remote_browser() -> AsyncIterator[Browser]:
    _require(CHROMIUM, "Chromium")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=[*FLAGS, f"--host-resolver-rules=MAP {HOST} 127.0.0.1"]
        )
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def trial(vhost, database_url, tmp_path: Path, example_env, pharmacy_hash) -> AsyncIterator[dict]:
    root = browser_config(tmp_path / "config", pharmacy_hash, exit_url="https://www.google.com/")
    account = {"id": "anna-zob", "name": "Anna", "team": "zuidoost-brabant"}
    account["password_hash"] = hash_password(PASSWORD)
    (root / "counsellors.yaml").write_text(yaml.safe_dump({"counsellors": [account]}))
    await clean_state(vhost[1], database_url, load_config(root))
    process = ServiceProcess(
        vhost[1], tmp_path / "gateway.log", roles=("ingest", "router", "desk"), config_dir=root,
        GATEWAY_DATABASE_URL=database_url, GATEWAY_FAKE_TIME=OPEN_MONDAY,
    )  # fmt: skip
    try:
        await process.wait_ready(40)
        yield {"process": process, "base": f"http://{HOST}:{process.port}"}
    finally:
        process.stop()


async def test_the_desk_says_why_signing_in_over_plain_http_fails(remote_browser: Browser, trial) -> None:
    page = await (await remote_browser.new_context()).new_page()
    await page.goto(f"{trial['base']}/desk/")
    assert await page.evaluate("window.isSecureContext") is False
    await page.get_by_label("Gebruikersnaam").fill("anna-zob")
    await page.get_by_label("Wachtwoord").fill(PASSWORD)
    await page.get_by_role("button", name="Aanmelden").click()
    await expect(page.get_by_text("Aanmelden lukt niet via gewoon http op dit adres")).to_be_visible()
    await expect(page.get_by_text("desk.secure_cookies: false")).to_be_visible()
    await expect(page.get_by_role("button", name="Aanmelden")).to_be_visible()
    await screenshot(page, "desk-plain-http")
    assert "desk_cookie_over_plain_http" in trial["process"].logs()


async def test_masker19_says_why_signing_in_over_plain_http_fails(remote_browser: Browser, trial) -> None:
    page = await (await remote_browser.new_context()).new_page()
    await page.goto(f"{trial['base']}/channels/masker19/")
    explanation = page.get_by_role("alert")
    await expect(explanation).to_contain_text("Aanmelden lukt niet via gewoon http op dit adres")
    await page.get_by_label("Apotheekcode").fill(PHARMACY_ID)
    await page.get_by_label("Wachtwoord").fill(PHARMACY_PASSWORD)
    await page.get_by_role("button", name="Aanmelden").click()
    await expect(explanation).to_contain_text("alleen via https (of op localhost)")
    await expect(page.get_by_text("Het formulier was verlopen")).to_have_count(0)
    await screenshot(page, "masker19-plain-http")
    assert "masker19_cookie_over_plain_http" in trial["process"].logs()
