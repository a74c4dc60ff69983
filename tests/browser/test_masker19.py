"""The Masker 19 intake in a real browser: a configured pharmacy signs in and
submits; the intake lands urgent in its region (acute danger: the national team);
wrong credentials, a missing CSRF token and invalid fields are refused with clear
Dutch messages and nothing published; the back button shows no filled-in form;
after "Afmelden" the old session cookie no longer signs in."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import Browser, Page, expect

from gateway.domain.envelope import Envelope, Urgency
from gateway.service import load_config
from gateway.support.keys import Keyring
from tests.browser.conftest import (
    OPEN_MONDAY,
    PHARMACY_ID,
    PHARMACY_PASSWORD,
    browser_config,
    screenshot,
    serious_accessibility_violations,
)
from tests.conftest import (
    TEST_SECRET,
    ServiceProcess,
    clean_state,
    drain,
    inbound_queues,
    queue_depths,
    team_queues,
)

pytestmark = pytest.mark.broker

NUMBER = "0687651234"
SESSION_COOKIE = "__Host-m19-masker19"  # per channel; Secure, so the __Host- prefix


@pytest.fixture
async def intake_world(
    vhost, database_url, tmp_path: Path, example_env, pharmacy_hash, request
) -> AsyncIterator[dict]:
    demo = request.node.get_closest_marker("demo") is not None
    root = browser_config(tmp_path / "config", pharmacy_hash, exit_url="https://www.google.com/")
    await clean_state(vhost[1], database_url, load_config(root))
    env = {"GATEWAY_DATABASE_URL": database_url, "GATEWAY_FAKE_TIME": OPEN_MONDAY}
    if demo:
        env["GATEWAY_DEMO_ACCOUNTS"] = "1"
    process = ServiceProcess(
        vhost[1], tmp_path / "gateway.log", roles=("ingest", "router"), config_dir=root, **env
    )
    try:
        await process.wait_ready(40)
        yield {"process": process, "url": vhost[1], "config": load_config(root)}
    finally:
        process.stop()


def form_url(world: dict) -> str:
    return f"{world['process'].base}/channels/masker19/"


async def sign_in(
    page: Page, world: dict, pharmacy: str = PHARMACY_ID, password: str = PHARMACY_PASSWORD
) -> None:
    await page.goto(form_url(world))
    await page.get_by_label("Apotheekcode").fill(pharmacy)
    await page.get_by_label("Wachtwoord").fill(password)
    await page.get_by_role("button", name="Aanmelden").click()


async def fill_intake(page: Page, *, acute: bool) -> None:
    await page.locator(f"input[name=acuut][value={'ja' if acute else 'nee'}]").check()
    await page.get_by_role("checkbox", name="kinderen").check()
    await page.get_by_role("checkbox", name="de persoon zelf").check()
    await page.get_by_role("radio", name="Bellen").check()
    await page.get_by_label("Telefoonnummer (bij bellen of sms)").fill(NUMBER)
    await page.get_by_label("Veilig moment voor contact (mag leeg)").fill("dinsdag na 14:00")
    await page.locator("input[name=toestemming][value=ja]").check()
    await page.get_by_label("Korte notitie").fill("Partner controleert telefoon.")


async def nothing_published(world: dict) -> None:
    queues = inbound_queues(world["config"]) + team_queues("zuidoost-brabant", "national")
    assert sum((await queue_depths(world["url"], queues)).values()) == 0, "a refused intake was published"


async def test_a_pharmacy_submits_an_intake_that_lands_urgent_in_its_region(
    browser: Browser, intake_world
) -> None:
    context = await browser.new_context(bypass_csp=True)  # only so axe-core can be injected
    page = await context.new_page()
    await page.goto(form_url(intake_world))
    await screenshot(page, "masker19-sign-in")
    assert await serious_accessibility_violations(page) == []
    await sign_in(page, intake_world)
    await expect(page.get_by_role("heading", name="Masker 19-melding")).to_be_visible()
    await screenshot(page, "masker19-intake")
    assert await serious_accessibility_violations(page) == []
    await fill_intake(page, acute=False)
    await page.get_by_role("button", name="Melding versturen").click()
    await expect(page.get_by_role("heading", name="Melding verstuurd")).to_be_visible()
    reference = await page.locator(".m19-reference").inner_text()
    confirmation = await page.locator("main").inner_text()
    for detail in (NUMBER, "kinderen", "dinsdag", "Partner"):
        assert detail not in confirmation, "the confirmation shows a detail of the intake"
    await screenshot(page, "masker19-confirmation")
    assert await serious_accessibility_violations(page) == []

    (message,) = await drain(intake_world["url"], team_queues("zuidoost-brabant"))
    envelope = Envelope.from_json(message.body)
    assert envelope.route is not None and envelope.route.queue == "gw.region.zuidoost-brabant.urgent"
    assert envelope.urgency is Urgency.HIGH and envelope.channel.kind == "masker19"
    assert envelope.id.replace("-", "")[:8].upper() == reference.replace("-", "")
    assert (
        "kinderen" in envelope.text
        and "dinsdag na 14:00" in envelope.text
        and "Apotheek De Linde" in envelope.text
    )
    assert NUMBER not in message.body.decode(), "the contact number travelled in clear"
    assert Keyring(TEST_SECRET).unseal(envelope.reply_handle)["address"] == NUMBER

    await page.go_back()
    await expect(page.get_by_role("heading", name="Masker 19-melding")).to_be_visible()
    assert await page.get_by_label("Telefoonnummer (bij bellen of sms)").input_value() == ""
    assert await page.get_by_label("Korte notitie").input_value() == ""
    assert not await page.get_by_role("checkbox", name="kinderen").is_checked()
    cookies = {c["name"]: c for c in await context.cookies()}
    session = cookies[SESSION_COOKIE]
    assert session["httpOnly"] and session["secure"] and session["sameSite"] == "Strict"
    assert session["path"] == "/" and session["expires"] == -1, "the session cookie outlives the browser"
    await context.close()
    logs = intake_world["process"].logs()
    for detail in (NUMBER, "Partner controleert", "dinsdag na 14:00", PHARMACY_PASSWORD):
        assert detail not in logs, "an intake detail or the password reached the logs"


async def test_acute_danger_tells_to_call_112_and_goes_to_the_national_team(
    browser: Browser, intake_world
) -> None:
    page = await browser.new_page()
    await sign_in(page, intake_world)
    await page.locator("input[name=acuut][value=ja]").check()
    await expect(page.get_by_text("Bel eerst 112.")).to_be_visible()
    await screenshot(page, "masker19-acute")
    await fill_intake(page, acute=True)
    await page.get_by_role("button", name="Melding versturen").click()
    await expect(page.get_by_text("Bel nu 112.")).to_be_visible()
    (message,) = await drain(intake_world["url"], team_queues("national", "zuidoost-brabant"))
    envelope = Envelope.from_json(message.body)
    assert envelope.urgency is Urgency.ACUTE
    assert envelope.route is not None and envelope.route.queue == "gw.region.national.urgent"
    assert envelope.region == "zuidoost-brabant"
    await page.close()


@pytest.mark.parametrize(
    ("pharmacy", "password"),
    [
        (PHARMACY_ID, "niet-het-wachtwoord"),
        ("apotheek-onbekend", PHARMACY_PASSWORD),
        ("demo-apotheek", "masker19-demo"),
    ],
    ids=["wrong password", "unknown pharmacy", "demo account while demo accounts are off"],
)
async def test_a_wrong_credential_is_refused(
    browser: Browser, intake_world, pharmacy: str, password: str
) -> None:
    page = await browser.new_page()
    await sign_in(page, intake_world, pharmacy, password)
    await expect(page.get_by_role("alert")).to_have_text("Onbekende apotheekcode of verkeerd wachtwoord.")
    await expect(page.get_by_role("heading", name="Aanmelden als apotheek")).to_be_visible()
    await screenshot(page, "masker19-wrong-credential")
    await page.goto(form_url(intake_world))
    await expect(page.get_by_role("heading", name="Aanmelden als apotheek")).to_be_visible()
    await page.close()
    await nothing_published(intake_world)


@pytest.mark.demo
async def test_demo_accounts_exist_only_when_enabled_and_are_warned(browser: Browser, intake_world) -> None:
    page = await browser.new_page()
    await sign_in(page, intake_world, "demo-apotheek", "masker19-demo")
    await expect(page.get_by_role("heading", name="Masker 19-melding")).to_be_visible()
    await page.close()
    assert "GATEWAY_DEMO_ACCOUNTS is on" in intake_world["process"].logs()


async def test_a_missing_csrf_token_is_refused(browser: Browser, intake_world) -> None:
    page = await browser.new_page()
    await sign_in(page, intake_world)
    await fill_intake(page, acute=False)
    await page.evaluate(
        "document.querySelectorAll('form[action=intake] input[name=csrf]').forEach(e => e.remove())"
    )
    await page.get_by_role("button", name="Melding versturen").click()
    await expect(page.get_by_role("alert")).to_contain_text("Het formulier was verlopen.")
    await page.close()
    await nothing_published(intake_world)


async def test_invalid_fields_get_clear_dutch_messages(browser: Browser, intake_world) -> None:
    context = await browser.new_context(bypass_csp=True)
    page = await context.new_page()
    await sign_in(page, intake_world)
    await page.get_by_role("radio", name="Bellen").check()
    await page.get_by_label("Telefoonnummer (bij bellen of sms)").fill("12ab")
    await page.get_by_role("button", name="Melding versturen").click()
    summary = page.locator("#fouten")
    await expect(summary).to_be_focused()
    for message in (
        "Geef aan of iemand nu in acuut gevaar is.",
        "Kies wie er in gevaar is (een of meer).",
        "Vul een geldig telefoonnummer in, bijvoorbeeld 0612345678.",
        "Geef aan of de persoon toestemming geeft voor contact.",
    ):
        await expect(summary).to_contain_text(message)
    await expect(page.locator("#nummer")).to_have_attribute("aria-invalid", "true")
    await screenshot(page, "masker19-invalid")
    assert await serious_accessibility_violations(page) == []
    await context.close()
    await nothing_published(intake_world)


async def test_the_form_on_a_phone(browser: Browser, intake_world) -> None:
    page = await browser.new_page(viewport={"width": 360, "height": 740})
    await sign_in(page, intake_world)
    await screenshot(page, "masker19-phone")
    assert await page.evaluate("document.documentElement.scrollWidth") <= 360
    await page.close()


async def test_after_sign_out_the_old_cookie_no_longer_opens_the_form(browser: Browser, intake_world) -> None:
    context = await browser.new_context()
    page = await context.new_page()
    await sign_in(page, intake_world)
    await expect(page.get_by_role("heading", name="Masker 19-melding")).to_be_visible()
    (session,) = [c for c in await context.cookies() if c["name"] == SESSION_COOKIE]

    # The copied cookie alone opens the form in another browser...
    copy = await browser.new_context()
    await copy.add_cookies([session])
    other = await copy.new_page()
    await other.goto(form_url(intake_world))
    await expect(other.get_by_role("heading", name="Masker 19-melding")).to_be_visible()

    await page.get_by_role("button", name="Afmelden").click()
    await expect(page.get_by_role("heading", name="Aanmelden als apotheek")).to_be_visible()
    assert SESSION_COOKIE not in {c["name"] for c in await context.cookies()}

    # ...and no longer after "Afmelden": the session ended on the server, not only in this browser.
    await other.goto(form_url(intake_world))
    await expect(other.get_by_role("heading", name="Aanmelden als apotheek")).to_be_visible()
    await expect(other.get_by_role("heading", name="Masker 19-melding")).to_have_count(0)
    await screenshot(other, "masker19-old-cookie-after-sign-out")
    async with (
        aiohttp.ClientSession() as client,
        client.get(
            form_url(intake_world), headers={"Cookie": f"{SESSION_COOKIE}={session['value']}"}
        ) as answer,
    ):
        html = await answer.text()
    assert "Aanmelden als apotheek" in html and "Masker 19-melding" not in html
    await copy.close()
    await context.close()
