"""The counsellor console end to end in Chromium: a person writes in the web chat; a
counsellor of that region sees it appear live, claims and replies; the person sees
the reply; the counsellor transfers it; a counsellor of the other region sees it
and the first no longer does."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml
from playwright.async_api import Browser, Page, expect

from gateway.service import load_config
from tests.browser.conftest import OPEN_MONDAY, browser_config, screenshot, serious_accessibility_violations
from tests.conftest import ServiceProcess, clean_state

pytestmark = pytest.mark.broker

PASSWORD = "console-password-2026"
CHAT = "/channels/webchat-zuidoost-brabant/"


@pytest.fixture
async def world(vhost, database_url, tmp_path: Path, example_env, pharmacy_hash) -> AsyncIterator[dict]:
    from tests.browser.conftest import hash_password

    root = browser_config(tmp_path / "config", pharmacy_hash, exit_url="https://www.google.com/")
    shared = hash_password(PASSWORD)
    accounts = [
        {"id": "anna-zob", "name": "Anna", "team": "zuidoost-brabant", "password_hash": shared},
        {"id": "carla-rr", "name": "Carla", "team": "rotterdam-rijnmond", "password_hash": shared},
    ]
    (root / "counsellors.yaml").write_text(yaml.safe_dump({"counsellors": accounts}))
    await clean_state(vhost[1], database_url, load_config(root))
    env = {"GATEWAY_DATABASE_URL": database_url, "GATEWAY_FAKE_TIME": OPEN_MONDAY}
    front = ServiceProcess(
        vhost[1], tmp_path / "front.log", roles=("ingest", "router", "desk"), config_dir=root, **env
    )
    back = ServiceProcess(vhost[1], tmp_path / "back.log", roles=("outbound",), config_dir=root, **env)
    try:
        await front.wait_ready(40)
        await back.wait_ready(40)
        yield {"front": front, "back": back}
    finally:
        front.stop()
        back.stop()


async def sign_in(page: Page, base: str, counsellor: str) -> None:
    await page.goto(f"{base}/desk/")
    await page.get_by_label("Gebruikersnaam").fill(counsellor)
    await page.get_by_label("Wachtwoord").fill(PASSWORD)
    await page.get_by_role("button", name="Aanmelden").click()
    await expect(page.get_by_role("heading", name="Wachtrij")).to_be_visible()


async def test_from_web_chat_to_counsellor_and_back_then_transfer(browser: Browser, world) -> None:
    base = world["front"].base
    anna_context = await browser.new_context(bypass_csp=True)  # only so axe-core can be injected
    anna = await anna_context.new_page()
    await sign_in(anna, base, "anna-zob")
    await expect(anna.locator("#queue-empty")).to_be_visible()

    person = await browser.new_page()
    await person.goto(base + CHAT)
    await person.locator(".vt-start").click()
    await person.locator("#vt-input").fill("Mijn vader is boos, ik durf niet naar huis")
    await person.locator(".vt-form button[type=submit]").click()

    row = anna.locator("#queue-rows tr")
    await expect(row).to_have_count(1, timeout=15000)  # appeared without a reload
    await expect(row).to_contain_text("webchat")
    await screenshot(anna, "desk-queue")
    assert await serious_accessibility_violations(anna) == []
    await row.get_by_role("button").click()
    await expect(anna.locator("#transcript")).to_contain_text("ik durf niet naar huis")
    await anna.get_by_role("button", name="Oppakken").click()
    await expect(anna.locator("#conversation-state")).to_have_text("Opgepakt door anna-zob")
    await anna.get_by_label("Antwoord").fill("Wat goed dat je schrijft. Ben je nu veilig?")
    await anna.get_by_role("button", name="Versturen").click()
    await expect(person.locator("li.vt-theirs .vt-text")).to_have_text(
        ["Wat goed dat je schrijft. Ben je nu veilig?"], timeout=15000
    )
    await expect(anna.locator("#transcript li.d-out")).to_have_count(1)
    await screenshot(anna, "desk-conversation")
    assert await serious_accessibility_violations(anna) == []

    carla = await (await browser.new_context()).new_page()
    await sign_in(carla, base, "carla-rr")
    await expect(carla.locator("#queue-empty")).to_be_visible()

    await anna.get_by_label("Naar team (regiocode of national)").fill("rotterdam-rijnmond")
    await anna.get_by_label("Reden").fill("Woont in Rotterdam")
    await screenshot(anna, "desk-transfer")
    await anna.get_by_role("button", name="Overdragen").click()
    await expect(anna.get_by_role("heading", name="Wachtrij")).to_be_visible()
    await expect(anna.locator("#queue-empty")).to_be_visible()
    await expect(carla.locator("#queue-rows tr")).to_have_count(1, timeout=15000)
    await carla.locator("#queue-rows tr").get_by_role("button").click()
    await expect(carla.locator("#transcript")).to_contain_text(
        "Overgedragen van zuidoost-brabant naar rotterdam-rijnmond"
    )
    await anna_context.close()
