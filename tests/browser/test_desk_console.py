"""The counsellor console end to end in Chromium: a person writes in the web chat; a
counsellor of that region sees it appear live, claims and replies; the person sees
the reply; the counsellor adds an internal note (shown apart from the messages, never
sent to the person) and transfers it with a handover note; a counsellor of the other
region sees it with the handover banner and the note, and the first no longer does;
the person writes on and gets that counsellor's reply, and no second greeting or
auto-reply.
Closing asks for the registration (the problems shown beside the fields when it is
incomplete, and the conversation stays open); the claiming counsellor can export it; a
Masker 19 intake carries no replies and is called back after giving a reason.
Signing in asks for the code from an authenticator app (set up at the first sign-in,
with ten single-use recovery codes); "Afmelden" and "Beëindigen" end a session on the
server; only the privacy officer sees the access log."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp
import asyncpg
import pyotp
import pytest
import yaml
from playwright.async_api import Browser, BrowserContext, Locator, Page, expect

from adapters.http_json.cases import HTTP_JSON_CHANNEL, TEST_TOKEN
from gateway.service import load_config
from tests.browser.conftest import (
    OPEN_MONDAY,
    PHARMACY_ID,
    PHARMACY_PASSWORD,
    browser_config,
    screenshot,
    serious_accessibility_violations,
)
from tests.browser.test_masker19 import NUMBER, fill_intake
from tests.conftest import ServiceProcess, clean_state

pytestmark = pytest.mark.broker

PASSWORD = "console-password-2026"
CHAT = "/channels/webchat-zuidoost-brabant/"
WRONG_CODE = (
    "De code klopt niet of is verlopen. Gebruik de huidige code uit je app, of een ongebruikte herstelcode."
)
SESSION_COOKIE = "__Host-desk_session"


class Phone:
    """A counsellor's authenticator app: the secret read at enrolment. The server takes
    each time step's code once (and one step of clock drift either way), so a second
    sign-in within the same 30 seconds uses the next step's code, and a third waits."""

    def __init__(self, secret: str) -> None:
        self.totp = pyotp.TOTP(secret)
        self.used = -1

    async def code(self) -> str:
        while True:
            now = time.time()
            step = self.totp.timecode(now)
            if self.used < step:
                self.used = step
                return self.totp.at(now)  # what pyotp.TOTP(secret).now() shows
            if self.used == step:
                self.used = step + 1
                return self.totp.at(now + self.totp.interval)
            await asyncio.sleep((step + 1) * self.totp.interval - now + 0.2)

    def wrong_code(self) -> str:
        now = time.time()
        valid = {self.totp.at(now + offset * self.totp.interval) for offset in (-1, 0, 1, 2)}
        return next(c for c in (f"{n:06d}" for n in range(123456, 999999, 7919)) if c not in valid)


@pytest.fixture
async def world(vhost, database_url, tmp_path: Path, example_env, pharmacy_hash) -> AsyncIterator[dict]:
    from tests.browser.conftest import hash_password

    root = browser_config(tmp_path / "config", pharmacy_hash, exit_url="https://www.google.com/")
    shared = hash_password(PASSWORD)
    accounts = [
        {"id": "anna-zob", "name": "Anna", "team": "zuidoost-brabant", "password_hash": shared},
        {"id": "carla-rr", "name": "Carla", "team": "rotterdam-rijnmond", "password_hash": shared},
        {
            "id": "cora-zob",
            "name": "Cora",
            "team": "zuidoost-brabant",
            "role": "coordinator",
            "password_hash": shared,
        },
        {
            "id": "petra-privacy",
            "name": "Petra",
            "team": "national",
            "role": "privacy-officer",
            "password_hash": shared,
        },
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
        yield {"front": front, "back": back, "phones": {}, "database_url": database_url}
    finally:
        front.stop()
        back.stop()


async def enter_password(page: Page, base: str, counsellor: str) -> None:
    await page.goto(f"{base}/desk/")
    await page.get_by_label("Gebruikersnaam").fill(counsellor)
    await page.get_by_label("Wachtwoord").fill(PASSWORD)
    await page.get_by_role("button", name="Aanmelden").click()


async def enter_code(page: Page, code: str) -> None:
    field = page.locator("#signin").get_by_label("Code uit je app")
    await expect(field).to_be_visible()
    await field.fill(code)
    await page.get_by_role("button", name="Aanmelden").click()


async def enrol(page: Page, world: dict, counsellor: str, *, check: bool = False) -> list[str]:
    """The enrolment view after a first sign-in: scan (here: read the secret), confirm
    with a code, note the recovery codes. `check`: a wrong code first, and axe."""
    await expect(page.get_by_role("heading", name="Tweede stap instellen")).to_be_visible()
    await expect(page.locator("#totp-qr svg")).to_be_visible()
    phone = Phone((await page.locator("#totp-secret").inner_text()).strip())
    field = page.locator("#enrol").get_by_label("Code uit je app")
    if check:
        await screenshot(page, "desk-enrolment")
        assert await serious_accessibility_violations(page) == []
        await field.fill(phone.wrong_code())
        await page.get_by_role("button", name="Bevestigen").click()
        await expect(page.get_by_role("alert")).to_contain_text("De code klopt niet of is verlopen.")
        await expect(page.get_by_role("heading", name="Tweede stap instellen")).to_be_visible()
    await field.fill(await phone.code())
    await page.get_by_role("button", name="Bevestigen").click()
    await expect(page.get_by_role("heading", name="Je herstelcodes")).to_be_visible()
    await expect(
        page.get_by_text("Bewaar deze codes op een veilige plek; elke code werkt één keer")
    ).to_be_visible()
    codes = await page.locator("#recovery-codes li").all_inner_texts()
    assert len(codes) == 10 and len(set(codes)) == 10
    if check:
        await screenshot(page, "desk-recovery-codes")
        assert await serious_accessibility_violations(page) == []
    await page.get_by_role("button", name="Ik heb ze bewaard").click()
    world["phones"][counsellor] = phone
    return codes


async def sign_in(page: Page, world: dict, counsellor: str, landing: str = "Wachtrij") -> None:
    """The first time through enrolment, later with the app's current code. Nothing the
    console does (the QR code made on the server among it) trips its CSP."""
    refused: list[str] = []
    page.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
    await enter_password(page, world["front"].base, counsellor)
    if counsellor in world["phones"]:
        await enter_code(page, await world["phones"][counsellor].code())
    else:
        await enrol(page, world, counsellor)
    await expect(page.get_by_role("heading", name=landing)).to_be_visible()
    assert refused == []


async def sign_out(page: Page) -> None:
    await page.get_by_role("button", name="Afmelden").click()
    await expect(page.get_by_role("heading", name="Aanmelden")).to_be_visible()
    await expect(page.get_by_role("status")).to_have_text("Je bent afgemeld.")


async def session_cookie(context: BrowserContext) -> dict:
    (cookie,) = [c for c in await context.cookies() if c["name"] == SESSION_COOKIE]
    return cookie


async def me_with(base: str, cookie: dict) -> int:
    """GET /api/v1/me with only this cookie, outside the browser."""
    async with (
        aiohttp.ClientSession() as client,
        client.get(f"{base}/api/v1/me", headers={"Cookie": f"{cookie['name']}={cookie['value']}"}) as answer,
    ):
        return answer.status


async def log_shown(page: Page) -> None:
    """The access log has answered (or the console says why not)."""
    try:
        await expect(page.locator("#audit-summary")).to_contain_text("vastgelegde handeling")
    except AssertionError:
        raise AssertionError(f"no access log shown: {await page.locator('#notice').inner_text()!r}") from None


async def fetch_status(page: Page, path: str) -> int:
    return await page.evaluate("async path => (await fetch(path)).status", path)


NOTE = "Overleg met Bram: eerst veiligheid, dan melding"


async def person_writes(browser: Browser, base: str, text: str) -> Page:
    """A person opens the web chat and writes."""
    person = await browser.new_page()
    await person.goto(base + CHAT)
    await person.locator(".vt-start").click()
    await person.locator("#vt-input").fill(text)
    await person.locator(".vt-form button[type=submit]").click()
    return person


async def open_and_claim(page: Page, counsellor: str, text: str) -> str:
    """The counsellor sees the conversation arrive live, opens it and claims it."""
    row = page.locator("#queue-rows tr")
    await expect(row).to_have_count(1, timeout=15000)  # appeared without a reload
    conversation_id = await row.get_attribute("data-conversation")
    assert conversation_id
    await row.get_by_role("button").click()
    await expect(page.locator("#transcript")).to_contain_text(text)
    await page.get_by_role("button", name="Oppakken").click()
    await expect(page.locator("#conversation-state")).to_have_text(f"Opgepakt door {counsellor}")
    return conversation_id


async def add_note(page: Page, text: str) -> None:
    notes = page.get_by_role("region", name="Interne notities (alleen voor het team, niet naar de persoon)")
    await expect(notes).to_be_visible()
    count = await notes.locator("li").count()
    await notes.get_by_label("Nieuwe interne notitie").fill(text)
    await notes.get_by_role("button", name="Notitie toevoegen").click()
    await expect(notes.locator("li")).to_have_count(count + 1)
    await expect(notes.locator("li").last).to_contain_text(text)
    await expect(page.get_by_label("Nieuwe interne notitie")).to_have_value("")


def choice(page: Page, field: str, option: str) -> Locator:
    """One option of the close form's registration, inside its fieldset (by its legend)."""
    return page.locator("#close-form").get_by_role("group", name=field).get_by_label(option, exact=True)


async def queued(page: Page) -> list[dict]:
    """The team's open conversations, as the console's own session sees them."""
    return await page.evaluate(
        "async () => (await (await fetch('/api/v1/conversations')).json()).conversations"
    )


async def registrations(database_url: str, conversation_id: str) -> list[dict]:
    db = await asyncpg.connect(database_url)
    try:
        rows = await db.fetch(
            "SELECT contact_role, age_group, topics, outcome, serious FROM desk_registrations"
            " WHERE conversation_id = $1",
            conversation_id,
        )
        return [{**dict(r), "topics": sorted(json.loads(r["topics"]))} for r in rows]
    finally:
        await db.close()


async def test_from_web_chat_to_counsellor_and_back_then_transfer(browser: Browser, world) -> None:
    base = world["front"].base
    anna_context = await browser.new_context(bypass_csp=True)  # only so axe-core can be injected
    anna = await anna_context.new_page()
    await sign_in(anna, world, "anna-zob")
    await expect(anna.locator("#queue-empty")).to_be_visible()

    person = await browser.new_page()
    await person.goto(base + CHAT)
    await person.locator(".vt-start").click()
    await person.locator("#vt-input").fill("Mijn vader is boos, ik durf niet naar huis")
    await person.locator(".vt-form button[type=submit]").click()

    row = anna.locator("#queue-rows tr")
    await expect(row).to_have_count(1, timeout=15000)  # appeared without a reload
    await expect(row).to_contain_text("Webchat")  # the channel as people call it
    await screenshot(anna, "desk-queue")
    assert await serious_accessibility_violations(anna) == []
    await row.get_by_role("button").click()
    await expect(anna.locator("#transcript")).to_contain_text("ik durf niet naar huis")
    await anna.get_by_role("button", name="Oppakken").click()
    await expect(anna.locator("#conversation-state")).to_have_text("Opgepakt door anna-zob")
    await anna.get_by_label("Antwoord", exact=True).fill("Wat goed dat je schrijft. Ben je nu veilig?")
    await anna.get_by_role("button", name="Versturen").click()
    await expect(person.locator("li.vt-theirs .vt-text")).to_have_text(
        ["Wat goed dat je schrijft. Ben je nu veilig?"], timeout=15000
    )
    await expect(anna.locator("#transcript li.d-out")).to_have_count(1)
    await screenshot(anna, "desk-conversation")
    assert await serious_accessibility_violations(anna) == []

    # An internal note: in its own section, not among the messages, and never sent.
    await add_note(anna, NOTE)
    await expect(anna.locator("#transcript")).not_to_contain_text(NOTE)
    await anna.get_by_label("Antwoord", exact=True).fill("Ik blijf bij je.")
    await anna.get_by_role("button", name="Versturen").click()
    # The later reply arrived, so anything sent before it would have too.
    await expect(person.locator("li.vt-theirs .vt-text")).to_have_text(
        ["Wat goed dat je schrijft. Ben je nu veilig?", "Ik blijf bij je."], timeout=15000
    )
    await expect(person.locator("body")).not_to_contain_text(NOTE)
    await screenshot(anna, "desk-conversation-note")

    carla_context = await browser.new_context(bypass_csp=True)  # only so axe-core can be injected
    carla = await carla_context.new_page()
    await sign_in(carla, world, "carla-rr")
    await expect(carla.locator("#queue-empty")).to_be_visible()

    await anna.get_by_label("Naar team", exact=True).select_option(label="Veilig Thuis Rotterdam Rijnmond")
    await anna.get_by_label("Reden", exact=True).fill("Woont in Rotterdam, vader drinkt")
    await screenshot(anna, "desk-transfer")
    await anna.get_by_role("button", name="Overdragen").click()
    await expect(anna.get_by_role("heading", name="Wachtrij")).to_be_visible()
    await expect(anna.locator("#queue-empty")).to_be_visible()
    await expect(carla.locator("#queue-rows tr")).to_have_count(1, timeout=15000)
    await carla.locator("#queue-rows tr").get_by_role("button").click()
    # The receiving counsellor sees the handover note at the top, and the team's notes.
    banner = carla.locator("#handover")
    await expect(banner).to_have_text(
        "Overgedragen van zuidoost-brabant door anna-zob: Woont in Rotterdam, vader drinkt"
    )
    above = "b => b.compareDocumentPosition(document.getElementById('transcript')) & 4"  # FOLLOWING
    assert await banner.evaluate(above), "the handover banner is not above the conversation"
    await expect(carla.locator("#notes li")).to_have_count(1)
    await expect(carla.locator("#notes li")).to_contain_text(NOTE)
    await expect(carla.locator("#notes li")).to_contain_text("anna-zob")
    await expect(carla.locator("#transcript")).not_to_contain_text("vader drinkt")
    await screenshot(carla, "desk-conversation-handover")
    assert await serious_accessibility_violations(carla) == []
    await expect(person.locator("body")).not_to_contain_text("vader drinkt")

    # The person writes on and the other team answers: no second greeting or auto-reply
    # reached the person because of the transfer. The outbound role sends a
    # conversation's replies in the order they came, so anything the router had sent
    # with the person's message would stand before Carla's reply.
    await person.locator("#vt-input").fill("Ben je er nog?")
    await person.locator(".vt-form button[type=submit]").click()
    await expect(carla.locator("#transcript")).to_contain_text("Ben je er nog?", timeout=15000)
    await carla.get_by_role("button", name="Oppakken").click()
    await expect(carla.locator("#conversation-state")).to_have_text("Opgepakt door carla-rr")
    await carla.get_by_label("Antwoord", exact=True).fill("Ik ben Carla uit Rotterdam, ik help je verder.")
    await carla.get_by_role("button", name="Versturen").click()
    await expect(person.locator("li.vt-theirs .vt-text")).to_have_text(
        [
            "Wat goed dat je schrijft. Ben je nu veilig?",
            "Ik blijf bij je.",
            "Ik ben Carla uit Rotterdam, ik help je verder.",
        ],
        timeout=15000,
    )
    await anna_context.close()
    await carla_context.close()


async def test_enrolment_a_wrong_code_and_a_recovery_code_used_twice(browser: Browser, world) -> None:
    context = await browser.new_context(bypass_csp=True)  # only so axe-core can be injected
    page = await context.new_page()
    await enter_password(page, world["front"].base, "anna-zob")
    codes = await enrol(page, world, "anna-zob", check=True)
    await expect(page.get_by_role("heading", name="Wachtrij")).to_be_visible()
    await expect(page.locator("#who")).to_have_text("Anna · zuidoost-brabant")
    await sign_out(page)

    # With the app: a wrong code is refused with a clear message, the right one works.
    await enter_password(page, world["front"].base, "anna-zob")
    await enter_code(page, world["phones"]["anna-zob"].wrong_code())
    await expect(page.get_by_role("alert")).to_have_text(WRONG_CODE)
    await screenshot(page, "desk-wrong-code")
    assert await serious_accessibility_violations(page) == []
    await enter_code(page, await world["phones"]["anna-zob"].code())
    await expect(page.get_by_role("heading", name="Wachtrij")).to_be_visible()
    await sign_out(page)

    # A recovery code instead of the app's: once.
    await enter_password(page, world["front"].base, "anna-zob")
    await enter_code(page, codes[0])
    await expect(page.get_by_role("heading", name="Wachtrij")).to_be_visible()
    await sign_out(page)
    await enter_password(page, world["front"].base, "anna-zob")
    await enter_code(page, codes[0])
    await expect(page.get_by_role("alert")).to_have_text(WRONG_CODE)
    await expect(page.get_by_role("heading", name="Wachtrij")).to_be_hidden()
    await context.close()
    logs = world["front"].logs()
    for secret in (PASSWORD, codes[0], codes[1]):
        assert secret not in logs, "a password or recovery code reached the logs"


async def test_sign_out_and_ending_a_session_end_it_on_the_server(browser: Browser, world) -> None:
    base = world["front"].base
    context = await browser.new_context(bypass_csp=True)  # only so axe-core can be injected
    page = await context.new_page()
    await sign_in(page, world, "anna-zob")
    cookie = await session_cookie(context)
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/" and cookie["expires"] == -1, "the cookie outlives the browser"
    assert await me_with(base, cookie) == 200

    # A second desk of the same counsellor, ended from the first one's "Sessies".
    other_context = await browser.new_context()
    other = await other_context.new_page()
    await sign_in(other, world, "anna-zob")
    other_cookie = await session_cookie(other_context)
    await page.get_by_role("button", name="Sessies").click()
    await expect(page.get_by_role("heading", name="Sessies")).to_be_visible()
    rows = page.locator("#sessions-rows tr")
    await expect(rows).to_have_count(2)
    await expect(rows.filter(has_text="deze sessie")).to_have_count(1)
    await expect(rows.first).to_contain_text("wachtwoord + code uit app")
    await screenshot(page, "desk-sessions")
    assert await serious_accessibility_violations(page) == []
    await rows.filter(has_not_text="deze sessie").get_by_role("button", name="Beëindigen").click()
    await expect(rows).to_have_count(1)
    assert await me_with(base, other_cookie) == 401
    # The other desk's event stream says so within one keep-alive: back to signing in.
    await expect(other.get_by_role("heading", name="Aanmelden")).to_be_visible(timeout=25000)
    await expect(other.get_by_role("alert")).to_have_text("Je sessie is beëindigd. Meld je opnieuw aan.")
    await other_context.close()

    await sign_out(page)
    assert await me_with(base, cookie) == 401, "the old cookie still works after Afmelden"
    assert SESSION_COOKIE not in {c["name"] for c in await context.cookies()}
    await context.close()


async def test_only_the_privacy_officer_sees_the_access_log(browser: Browser, world) -> None:
    base = world["front"].base
    anna = await (await browser.new_context()).new_page()
    await sign_in(anna, world, "anna-zob")
    person = await browser.new_page()
    await person.goto(base + CHAT)
    await person.locator(".vt-start").click()
    await person.locator("#vt-input").fill("Ik wil iets vertellen")
    await person.locator(".vt-form button[type=submit]").click()
    row = anna.locator("#queue-rows tr")
    await expect(row).to_have_count(1, timeout=15000)
    conversation_id = await row.get_attribute("data-conversation")
    assert conversation_id
    await row.get_by_role("button").click()
    await expect(anna.locator("#transcript")).to_contain_text("Ik wil iets vertellen")
    # A counsellor has no access log: not in the menu, and the API refuses.
    await expect(anna.get_by_role("button", name="Toegangslog")).to_have_count(0)
    assert await fetch_status(anna, "/api/v1/audit") == 403

    context = await browser.new_context(bypass_csp=True)  # only so axe-core can be injected
    petra = await context.new_page()
    await sign_in(petra, world, "petra-privacy", landing="Toegangslog")
    await expect(petra.get_by_role("button", name="Wachtrij")).to_have_count(0)
    assert await fetch_status(petra, "/api/v1/conversations") == 403
    records = petra.locator("#audit-rows tr")
    await log_shown(petra)
    sign_ins = records.filter(has=petra.locator("td", has_text="aangemeld"))
    await expect(sign_ins.filter(has_text="anna-zob")).not_to_have_count(0)
    await expect(sign_ins.filter(has_text="petra-privacy")).not_to_have_count(0)
    read = petra.locator("#audit-rows tr[data-action=read]")
    await expect(read).to_have_count(1)
    await expect(read).to_contain_text("anna-zob")
    await expect(read).to_contain_text(conversation_id)
    await expect(read).to_contain_text("gelukt")
    await screenshot(petra, "desk-access-log")
    assert await serious_accessibility_violations(petra) == []

    # Filtered: one account's reads of one conversation, today.
    await petra.get_by_label("Account").fill("anna-zob")
    await petra.get_by_label("Gesprek (id)").fill(conversation_id)
    await petra.get_by_label("Actie").select_option("read")
    today = datetime.now(ZoneInfo("Europe/Amsterdam")).date().isoformat()  # as the log's readers mean it
    await petra.get_by_label("Vanaf (datum)").fill(today)
    await petra.get_by_label("Tot en met (datum)").fill(today)
    await petra.get_by_role("button", name="Zoeken").click()
    await expect(records).to_have_count(1)
    await expect(records).to_contain_text(conversation_id)
    await expect(petra.locator("#audit-summary")).to_contain_text("1 vastgelegde handeling.")
    # Reading the log is itself recorded.
    await petra.get_by_role("button", name="Wissen").click()
    await expect(petra.locator("#audit-rows tr[data-action=audit_read]")).not_to_have_count(0)
    await context.close()


async def test_closing_asks_for_the_registration_and_the_claimer_can_export(browser: Browser, world) -> None:
    base = world["front"].base
    context = await browser.new_context(bypass_csp=True, accept_downloads=True)  # bypass: axe-core
    anna = await context.new_page()
    await sign_in(anna, world, "anna-zob")
    await person_writes(browser, base, "Mijn moeder wordt geslagen")
    conversation_id = await open_and_claim(anna, "anna-zob", "Mijn moeder wordt geslagen")
    await add_note(anna, NOTE)

    # The export, for the counsellor who has it: the messages, not the team's notes.
    for button, suffix in (("Exporteren (tekst)", ".txt"), ("Exporteren (JSON)", ".json")):
        async with anna.expect_download() as started:
            await anna.get_by_role("button", name=button).click()
        download = await started.value
        assert download.suggested_filename == f"gesprek-{conversation_id}{suffix}"
        exported = await asyncio.to_thread(Path(await download.path()).read_text)
        assert "Mijn moeder wordt geslagen" in exported and NOTE not in exported
        if suffix == ".json":
            document = json.loads(exported)
            assert document["conversation_id"] == conversation_id and "notes" not in document
    await expect(anna.get_by_role("status")).to_have_text("Export gedownload (JSON).")

    await anna.get_by_role("button", name="Afsluiten", exact=True).click()
    form = anna.get_by_role("form", name="Afsluiten: registratie")
    await expect(form).to_be_visible()
    await expect(anna.get_by_role("heading", name="Afsluiten: registratie")).to_be_focused()
    for legend in ("Wie schreef", "Leeftijd", "Onderwerpen", "Uitkomst"):
        await expect(form.get_by_role("group", name=legend)).to_be_visible()
    await expect(form.get_by_role("group", name="Onderwerpen").get_by_role("checkbox")).to_have_count(6)
    await expect(form.get_by_role("group", name="Uitkomst").get_by_role("radio")).to_have_count(6)
    await expect(form.get_by_label("Notitie bij de registratie (mag leeg)")).to_have_attribute(
        "maxlength", "500"
    )
    await screenshot(anna, "desk-close-form")
    assert await serious_accessibility_violations(anna) == []

    # Incomplete: the desk names what is missing, beside each field; nothing closes.
    await choice(anna, "Wie schreef", "omstander").check()
    await form.get_by_role("button", name="Registreren en sluiten").click()
    await expect(anna.get_by_role("alert")).to_have_text(
        "De registratie is nog niet compleet: Leeftijd, Onderwerpen, Uitkomst. Het gesprek is nog open."
    )
    await expect(form.locator("#wrapup-age_group-error")).to_have_text("Kies een antwoord.")
    await expect(form.locator("#wrapup-topics-error")).to_have_text("Kies ten minste één antwoord.")
    await expect(form.locator("#wrapup-outcome-error")).to_have_text("Kies een antwoord.")
    await expect(form.locator("#wrapup-contact_role-error")).to_have_text("")
    await expect(choice(anna, "Leeftijd", "onder 12")).to_be_focused()
    await expect(choice(anna, "Leeftijd", "onder 12")).to_have_attribute("aria-invalid", "true")
    await expect(anna.get_by_role("group", name="Leeftijd")).to_have_accessible_description(
        "Kies één. Kies een antwoord."
    )
    await expect(anna.locator("#conversation-state")).to_have_text("Opgepakt door anna-zob")
    assert [(c["conversation_id"], c["status"]) for c in await queued(anna)] == [(conversation_id, "claimed")]
    assert await registrations(world["database_url"], conversation_id) == []
    await screenshot(anna, "desk-close-form-incomplete")
    assert await serious_accessibility_violations(anna) == []

    # Complete: closed, registered with the options' codes, and out of the queue.
    await choice(anna, "Leeftijd", "12-17").check()
    await choice(anna, "Onderwerpen", "kindermishandeling").check()
    await choice(anna, "Onderwerpen", "partnergeweld").check()
    await choice(anna, "Uitkomst", "melding geadviseerd").check()
    await form.get_by_label("Notitie bij de registratie (mag leeg)").fill("Belt morgen terug")
    await form.get_by_role("button", name="Registreren en sluiten").click()
    await expect(anna.get_by_role("heading", name="Wachtrij")).to_be_visible()
    await expect(anna.get_by_role("status")).to_have_text("Gesprek afgesloten en geregistreerd.")
    await expect(anna.locator("#queue-empty")).to_be_visible()
    await expect(anna.locator("#queue-rows tr")).to_have_count(0)
    assert await queued(anna) == []
    assert await registrations(world["database_url"], conversation_id) == [
        {"contact_role": "omstander", "age_group": "12-17", "topics": ["kindermishandeling", "partnergeweld"],
         "outcome": "melding-geadviseerd", "serious": True}
    ]  # fmt: skip
    await context.close()


async def test_channels_without_replies_are_called_back_with_a_reason(browser: Browser, world) -> None:
    base = world["front"].base
    context = await browser.new_context(bypass_csp=True)  # only so axe-core can be injected
    anna = await context.new_page()
    await sign_in(anna, world, "anna-zob")

    pharmacy = await (await browser.new_context()).new_page()
    await pharmacy.goto(f"{base}/channels/masker19/")
    await pharmacy.get_by_label("Apotheekcode").fill(PHARMACY_ID)
    await pharmacy.get_by_label("Wachtwoord").fill(PHARMACY_PASSWORD)
    await pharmacy.get_by_role("button", name="Aanmelden").click()
    await fill_intake(pharmacy, acute=False)
    await pharmacy.get_by_role("button", name="Melding versturen").click()
    await expect(pharmacy.get_by_role("heading", name="Melding verstuurd")).to_be_visible()

    row = anna.locator("#queue-rows tr")
    await expect(row).to_have_count(1, timeout=15000)
    await expect(row).to_contain_text("Apotheek (Masker 19)")
    await row.get_by_role("button").click()
    await expect(anna.locator("#transcript")).to_contain_text("Apotheek De Linde")
    # No reply form on a channel that carries none; before claiming, no contact either.
    await expect(anna.get_by_text("Dit kanaal kan geen antwoord ontvangen: bel terug.")).to_be_visible()
    await expect(anna.get_by_label("Antwoord", exact=True)).to_be_hidden()
    await expect(anna.get_by_role("button", name="Versturen")).to_be_hidden()
    await expect(anna.get_by_role("button", name="Contactgegevens tonen")).to_be_hidden()
    await expect(anna.get_by_text("Pak het gesprek op om de contactgegevens te zien.")).to_be_visible()
    await expect(anna.locator("main")).not_to_contain_text(NUMBER)

    await anna.get_by_role("button", name="Oppakken").click()
    await expect(anna.locator("#conversation-state")).to_have_text("Opgepakt door anna-zob")
    await anna.get_by_role("button", name="Contactgegevens tonen").click()  # no reason yet
    await expect(anna.get_by_role("alert")).to_have_text("Kies waarom je de contactgegevens wilt zien.")
    await expect(anna.locator("main")).not_to_contain_text(NUMBER)
    await anna.get_by_label("Waarom wil je de contactgegevens zien?").select_option(label="terugbellen")
    await anna.get_by_role("button", name="Contactgegevens tonen").click()
    await expect(anna.locator("#reveal-result")).to_have_text(f"Bel {NUMBER}")
    await screenshot(anna, "desk-masker19-call-back")
    assert await serious_accessibility_violations(anna) == []

    # A region's own system (http-json) carries no replies either: the desk's 409 says so.
    await anna.get_by_role("button", name="Terug naar de wachtrij").click()
    async with (
        aiohttp.ClientSession() as client,
        client.post(
            f"{base}/channels/{HTTP_JSON_CHANNEL}/webhook",
            json={"message_id": "intake-7", "sender": "dossier-7", "text": "Graag contact met de melder"},
            headers={"Authorization": f"Bearer {TEST_TOKEN}"},
        ) as answer,
    ):
        assert answer.status == 202, await answer.text()
    own_system = anna.locator("#queue-rows tr", has_text="Eigen systeem van de regio")
    await expect(own_system).to_have_count(1, timeout=15000)
    own_id = await own_system.get_attribute("data-conversation")
    await own_system.get_by_role("button").click()
    await expect(anna.locator("#transcript")).to_contain_text("Graag contact met de melder")
    await expect(anna.locator("main")).not_to_contain_text(NUMBER)
    await anna.get_by_role("button", name="Oppakken").click()
    await expect(anna.locator("#conversation-state")).to_have_text("Opgepakt door anna-zob")
    # The desk says beforehand (`can_reply: false`): no reply form, the call-back instead;
    # a reply sent anyway is refused with 409 cannot_reply.
    await expect(anna.get_by_text("Dit kanaal kan geen antwoord ontvangen: bel terug.")).to_be_visible()
    await expect(anna.get_by_label("Antwoord", exact=True)).to_be_hidden()
    refused = await anna.evaluate(
        """async id => {
            const me = await (await fetch('/api/v1/me')).json();
            const answer = await fetch('/api/v1/conversations/' + id + '/reply', {
                method: 'POST', headers: {'Content-Type': 'application/json', 'X-CSRF-Token': me.csrf_token},
                body: JSON.stringify({text: 'Wij bellen u terug.'})});
            return [answer.status, (await answer.json()).error];
        }""",
        own_id,
    )
    assert refused == [409, "cannot_reply"]
    await expect(anna.locator("#transcript li.d-out")).to_have_count(0)
    await expect(anna.get_by_role("button", name="Contactgegevens tonen")).to_be_visible()
    await context.close()


async def test_volgende_claims_the_next_waiting_conversation_and_opens_it(browser: Browser, world) -> None:
    base = world["front"].base
    context = await browser.new_context(bypass_csp=True)  # only so axe-core can be injected
    anna = await context.new_page()
    await sign_in(anna, world, "anna-zob")
    await person_writes(browser, base, "Mijn partner dreigt de deur in te trappen")
    row = anna.locator("#queue-rows tr")
    await expect(row).to_have_count(1, timeout=15000)
    conversation_id = await row.get_attribute("data-conversation")
    await expect(row).to_contain_text("Webchat")
    await expect(row.locator(".d-preview")).to_have_text("Mijn partner dreigt de deur in te trappen")
    await expect(row).not_to_contain_text("buiten openingstijd")  # a Monday within opening hours

    await anna.get_by_role("button", name="Volgende").click()
    await expect(anna.get_by_role("heading", name="Gesprek via Webchat")).to_be_visible()
    await expect(anna.get_by_role("heading", name="Gesprek via Webchat")).to_be_focused()
    await expect(anna.locator("#conversation-state")).to_have_text("Opgepakt door anna-zob")
    await expect(anna.locator("#transcript")).to_contain_text("de deur in te trappen")
    assert [(c["conversation_id"], c["status"], c["claimed_by"]) for c in await queued(anna)] == [
        (conversation_id, "claimed", "anna-zob")
    ]

    # Nothing else waits: the second "Volgende" says so, and opens nothing.
    await anna.get_by_role("button", name="Terug naar de wachtrij").click()
    await expect(row).to_contain_text("opgepakt door Anna")  # the counsellor's name, not the account
    await anna.get_by_role("button", name="Volgende").click()
    await expect(anna.get_by_role("status")).to_have_text("Er wacht niemand.")
    await expect(anna.get_by_role("heading", name="Wachtrij")).to_be_visible()
    await expect(anna.locator("#conversation")).to_be_hidden()
    await context.close()


async def test_a_standard_answer_picked_with_a_slash_is_sent(browser: Browser, world) -> None:
    base = world["front"].base
    context = await browser.new_context(bypass_csp=True)  # only so axe-core can be injected
    anna = await context.new_page()
    await sign_in(anna, world, "anna-zob")
    person = await person_writes(browser, base, "Kan ik jullie ook bellen?")
    await open_and_claim(anna, "anna-zob", "Kan ik jullie ook bellen?")

    box = anna.get_by_label("Antwoord", exact=True)
    answers = anna.get_by_role("listbox", name="Standaardantwoorden")
    await expect(answers).to_be_hidden()
    await box.press_sequentially("/")
    await expect(answers).to_be_visible()
    options = answers.get_by_role("option")
    await expect(options).not_to_have_count(0)
    await expect(options.first).to_have_attribute("aria-selected", "true")
    await expect(options.filter(has_text="Spreekuur Eindhoven")).to_have_count(1)  # the team's own
    await expect(options.filter(has_text="Liever bellen")).to_have_count(1)  # and the national ones
    # The arrows move the choice; the focus stays in the reply box.
    await box.press("ArrowDown")
    await expect(options.nth(1)).to_have_attribute("aria-selected", "true")
    await expect(options.first).to_have_attribute("aria-selected", "false")
    await expect(box).to_be_focused()
    second = await options.nth(1).get_attribute("id")
    await expect(box).to_have_attribute("aria-activedescendant", second or "")
    await screenshot(anna, "desk-standard-answers")
    assert await serious_accessibility_violations(anna) == []
    # Escape closes the list and leaves what was typed.
    await box.press("Escape")
    await expect(answers).to_be_hidden()
    await expect(box).to_have_value("/")

    # Searching: what follows the slash filters on title and text.
    await box.fill("")
    await box.press_sequentially("/liever")
    await expect(options).to_have_count(1)
    await expect(options).to_contain_text("Liever bellen")
    await box.press("Enter")
    await expect(answers).to_be_hidden()
    text = "Je kunt ons ook gratis en anoniem bellen op 0800-2000, dag en nacht."
    await expect(box).to_have_value(text)
    await anna.get_by_role("button", name="Versturen").click()
    await expect(person.locator("li.vt-theirs .vt-text")).to_have_text([text], timeout=15000)
    reply = anna.locator("#transcript li.d-out")
    await expect(reply).to_have_count(1)
    await expect(reply).to_contain_text(text)
    await expect(reply.locator(".d-delivery")).to_have_text(re.compile(r"^(in de wachtrij|verstuurd)$"))
    await expect(box).to_have_value("")
    await context.close()


async def test_the_coordinators_wallboard_matches_the_queue(browser: Browser, world) -> None:
    base = world["front"].base
    context = await browser.new_context(bypass_csp=True, viewport={"width": 1280, "height": 800})  # axe-core
    cora = await context.new_page()
    await sign_in(cora, world, "cora-zob")
    await expect(cora.locator("#who")).to_have_text("Cora · zuidoost-brabant · coördinator")
    await person_writes(browser, base, "Mijn buurman slaat zijn kinderen")
    await person_writes(browser, base, "Ik weet niet of dit ergens hoort")
    rows = cora.locator("#queue-rows tr")
    await expect(rows).to_have_count(2, timeout=15000)
    await screenshot(cora, "desk-queue-1280")

    async def waiting() -> tuple[int, int]:
        listed = [c for c in await queued(cora) if c["status"] == "waiting"]
        return sum(1 for c in listed if c["urgent"]), sum(1 for c in listed if not c["urgent"])

    await cora.get_by_role("button", name="Wallboard").click()
    await expect(cora.get_by_role("heading", name="Wallboard")).to_be_visible()
    team = cora.locator('#board-rows tr[data-team="zuidoost-brabant"]')
    await expect(team).to_have_count(1)
    urgent, normal = await waiting()
    assert urgent + normal == 2
    await expect(team.locator('[data-field="waiting_urgent"]')).to_have_text(str(urgent))
    await expect(team.locator('[data-field="waiting_normal"]')).to_have_text(str(normal))
    await expect(team.locator('[data-field="open"]')).to_have_text("open")
    await expect(team.locator('[data-field="counsellors"]')).to_contain_text("Cora (0)")
    await screenshot(cora, "desk-wallboard")
    assert await serious_accessibility_violations(cora) == []

    # Live: one more person writes, and the board follows without a reload.
    await person_writes(browser, base, "Hallo, is daar iemand?")
    await expect(cora.locator("#board-summary")).to_contain_text("3 personen wachten", timeout=15000)
    urgent, normal = await waiting()
    assert urgent + normal == 3
    await expect(team.locator('[data-field="waiting_urgent"]')).to_have_text(str(urgent))
    await expect(team.locator('[data-field="waiting_normal"]')).to_have_text(str(normal))

    # A waiting conversation moved to another (open) team, with the reason as handover note.
    await cora.get_by_role("button", name="Wachtrij").click()
    await cora.locator("#queue-rows tr", has_text="Hallo, is daar iemand?").get_by_role("button").click()
    move = cora.get_by_role("group", name="Verplaatsen naar ander team")
    await expect(move).to_be_visible()
    await move.get_by_label("Naar welk team").select_option("national")
    await move.get_by_label("Waarom verplaatsen").fill("Drukte in de regio")
    await move.get_by_role("button", name="Verplaatsen").click()
    await expect(cora.get_by_role("heading", name="Wachtrij")).to_be_visible()
    await expect(cora.get_by_role("status")).to_have_text("Gesprek verplaatst naar national.")
    await expect(rows).to_have_count(2)
    await context.close()
