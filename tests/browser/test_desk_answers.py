"""A coordinator's standard answers in the console, in Chromium, against two desk
processes on one PostgreSQL: the coordinator adds an answer (a wrong placeholder is
named beside its field first), edits it and removes a file answer; a counsellor of the
team, on the other desk process, types "/" in the reply box and finds the new answer
(filled in) and not the removed one. The transfer's target is a list of team names.
Screenshots at 1280 and 360 pixels."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
import yaml
from playwright.async_api import Browser, Page, expect

from gateway.service import load_config
from tests.browser.conftest import OPEN_MONDAY, browser_config, screenshot, serious_accessibility_violations
from tests.browser.test_desk_console import PASSWORD, open_and_claim, person_writes, sign_in
from tests.conftest import ServiceProcess, clean_state

pytestmark = pytest.mark.broker

ZOB = "Veilig Thuis Zuidoost-Brabant"
WIDE = {"width": 1280, "height": 900}
NARROW = {"width": 360, "height": 800}


@pytest.fixture
async def world(vhost, database_url, tmp_path: Path, example_env, pharmacy_hash) -> AsyncIterator[dict]:
    from tests.browser.conftest import hash_password

    root = browser_config(tmp_path / "config", pharmacy_hash, exit_url="https://www.google.com/")
    shared = hash_password(PASSWORD)
    accounts = [
        {"id": "anna-zob", "name": "Anna", "team": "zuidoost-brabant", "password_hash": shared},
        {"id": "cora-zob", "name": "Cora", "team": "zuidoost-brabant", "role": "coordinator",
         "password_hash": shared},
    ]  # fmt: skip
    (root / "counsellors.yaml").write_text(yaml.safe_dump({"counsellors": accounts}))
    await clean_state(vhost[1], database_url, load_config(root))
    env = {"GATEWAY_DATABASE_URL": database_url, "GATEWAY_FAKE_TIME": OPEN_MONDAY}
    front = ServiceProcess(
        vhost[1], tmp_path / "front.log", roles=("ingest", "router", "desk"), config_dir=root, **env
    )
    other = ServiceProcess(vhost[1], tmp_path / "other.log", roles=("desk",), config_dir=root, **env)
    try:
        await front.wait_ready(40)
        await other.wait_ready(40)
        db = await asyncpg.connect(database_url)  # clean_state does not know this table
        try:
            await db.execute("DELETE FROM desk_answers")
        finally:
            await db.close()
        yield {"front": front, "other": other, "phones": {}}
    finally:
        front.stop()
        other.stop()


async def fill_answer(page: Page, *, id: str | None = None, title: str, text: str) -> None:
    form = page.locator("#answer-form")
    if id is not None:
        await form.get_by_label("Korte naam (id)").fill(id)
    await form.get_by_label("Titel", exact=True).fill(title)
    await form.get_by_label("Tekst", exact=True).fill(text)


async def test_a_coordinator_adds_an_answer_and_a_counsellor_finds_it_with_a_slash(
    browser: Browser, world
) -> None:
    base = world["front"].base
    cora_context = await browser.new_context(bypass_csp=True, viewport=WIDE)  # bypass: only for axe-core
    cora = await cora_context.new_page()
    await sign_in(cora, world, "cora-zob")
    await cora.get_by_role("button", name="Standaardantwoorden").click()
    await expect(cora.get_by_role("heading", name="Standaardantwoorden", exact=True)).to_be_focused()
    listed = cora.locator("#answer-list > li")
    await expect(listed).to_have_count(1)
    await expect(listed.first).to_contain_text("Spreekuur Eindhoven")
    await expect(listed.first).to_contain_text("uit het configuratiebestand")
    await expect(cora.get_by_role("heading", name=f"Antwoorden van {ZOB}")).to_be_visible()

    # A new answer: the placeholders are shown; a wrong one is named beside its field.
    await cora.get_by_role("button", name="Nieuw antwoord").click()
    form = cora.locator("#answer-form")
    await expect(form.get_by_label("Korte naam (id)")).to_be_focused()
    await expect(form.locator("#answer-placeholders")).to_contain_text("{next_open}")
    await expect(form.locator("#answer-placeholders")).to_contain_text("{phone}")
    await expect(form.locator("#answer-placeholders")).to_contain_text(
        f"{{team}}: de naam van het team (nu: “{ZOB}”)"
    )
    await fill_answer(cora, id="adres", title="Adres", text="Kom langs bij {team} of bel {telefoon}.")
    await form.get_by_role("button", name="Opslaan").click()
    text_nl = form.get_by_label("Tekst", exact=True)
    await expect(cora.locator("#answer-text-nl-error")).to_contain_text("Onbekende invuller {telefoon}")
    await expect(text_nl).to_have_attribute("aria-invalid", "true")
    await expect(text_nl).to_be_focused()
    await expect(cora.get_by_role("alert")).to_have_text(
        "Het antwoord is niet opgeslagen. Controleer: tekst."
    )
    await screenshot(cora, "desk-answers-error-1280")
    assert await serious_accessibility_violations(cora) == []
    await text_nl.fill("Je kunt ook langskomen bij {team}; bel eerst {phone}.")
    await form.get_by_role("button", name="Opslaan").click()
    await expect(cora.get_by_role("status")).to_contain_text("Standaardantwoord “Adres” toegevoegd.")
    await expect(form).to_be_hidden()
    added = cora.locator('#answer-list > li[data-answer="adres"]')
    await expect(added).to_contain_text("toegevoegd in de console")
    await expect(added).to_contain_text("gewijzigd door Cora")
    await expect(added.get_by_role("button", name="Bewerken")).to_be_focused()

    # Edited: an English version beside the Dutch one.
    await added.get_by_role("button", name="Bewerken").click()
    await expect(form.get_by_role("heading", name="Bewerken: Adres")).to_be_visible()
    await expect(form.get_by_label("Korte naam (id)")).to_have_attribute("readonly", "")
    await form.get_by_label("Titel (Engels)").fill("Address")
    await form.get_by_label("Tekst (Engels)").fill("You can also visit {team}; call {phone} first.")
    await form.get_by_role("button", name="Opslaan").click()
    await expect(cora.get_by_role("status")).to_contain_text("Standaardantwoord “Adres” opgeslagen.")
    await expect(added).to_contain_text("You can also visit {team}")

    # A file answer removed (after saying so), until it is restored from the file.
    spreekuur = cora.locator('#answer-list > li[data-answer="spreekuur"]')
    await spreekuur.get_by_role("button", name="Verwijderen").click()
    confirm = spreekuur.get_by_role("group", name="“Spreekuur Eindhoven” verwijderen?")
    await expect(confirm).to_be_visible()
    await expect(confirm.get_by_role("button", name="Ja, verwijderen")).to_be_focused()
    await screenshot(cora, "desk-answers-1280")
    assert await serious_accessibility_violations(cora) == []
    await confirm.get_by_role("button", name="Ja, verwijderen").click()
    await expect(cora.get_by_role("status")).to_have_text(
        "Standaardantwoord “Spreekuur Eindhoven” verwijderd."
    )
    await expect(spreekuur).to_have_attribute("data-removed", "true")
    await expect(spreekuur.get_by_role("button", name="Terugzetten")).to_be_focused()
    await expect(spreekuur.get_by_role("button", name="Bewerken")).to_have_count(0)

    # At 360 pixels: the list and the form, nothing wider than the screen.
    await cora.set_viewport_size(NARROW)
    await cora.get_by_role("button", name="Nieuw antwoord").click()
    await screenshot(cora, "desk-answers-360")
    wider = await cora.evaluate("() => document.documentElement.scrollWidth")
    assert wider <= NARROW["width"], f"the page is {wider} px wide at 360 px"
    assert await serious_accessibility_violations(cora) == []
    await form.get_by_role("button", name="Annuleren").click()
    await expect(form).to_be_hidden()

    # A counsellor of the team, on the other desk process, finds it in the reply box.
    anna_context = await browser.new_context(bypass_csp=True, viewport=WIDE)
    anna = await anna_context.new_page()
    await sign_in(anna, {**world, "front": world["other"]}, "anna-zob")  # the other desk process
    assert anna.url.startswith(world["other"].base)
    await expect(anna.get_by_role("button", name="Standaardantwoorden")).to_be_hidden()
    await person_writes(browser, base, "Kan ik ook langskomen?")
    await open_and_claim(anna, "anna-zob", "Kan ik ook langskomen?")
    box = anna.get_by_label("Antwoord", exact=True)
    answers = anna.get_by_role("listbox", name="Standaardantwoorden")
    await box.press_sequentially("/")
    await expect(answers).to_be_visible()
    options = answers.get_by_role("option")
    await expect(options.filter(has_text="Adres")).to_have_count(1)
    await expect(options.filter(has_text="Spreekuur Eindhoven")).to_have_count(0)  # removed
    await expect(options.filter(has_text="Liever bellen")).to_have_count(1)  # the national ones stay
    await box.press_sequentially("langs")
    await expect(options).to_have_count(1)
    await expect(options).to_contain_text("Adres")
    await screenshot(anna, "desk-answers-in-the-reply-box")
    await box.press("Enter")
    await expect(box).to_have_value(f"Je kunt ook langskomen bij {ZOB}; bel eerst 0800-2000.")

    # The transfer goes to a team chosen by name, never the own team.
    team = anna.get_by_label("Naar team", exact=True)
    names = await team.locator("option").all_inner_texts()
    assert names[0] == "Kies een team" and names[1].startswith("Landelijk team")
    assert len(names) == 1 + 26 and ZOB not in names and "Veilig Thuis Rotterdam Rijnmond" in names
    await anna.set_viewport_size(NARROW)
    await team.select_option(label="Veilig Thuis Rotterdam Rijnmond")
    await screenshot(anna, "desk-transfer-360")
    wider = await anna.evaluate("() => document.documentElement.scrollWidth")
    assert wider <= NARROW["width"], f"the conversation is {wider} px wide at 360 px"
    await anna.get_by_role("button", name="Overdragen").click()
    await expect(anna.get_by_label("Reden", exact=True)).to_be_focused()  # the reason is asked first
    await expect(anna.get_by_role("alert")).to_have_text(
        "Schrijf waarom je het gesprek overdraagt; het andere team ziet dit."
    )

    # Restored in the console, the file's answer is back in the reply box.
    await cora.set_viewport_size(WIDE)
    await spreekuur.get_by_role("button", name="Terugzetten").click()
    await expect(cora.get_by_role("status")).to_contain_text("staat weer zoals in het configuratiebestand")
    await expect(spreekuur).not_to_have_attribute("data-removed", "true")
    await box.fill("")
    await box.press_sequentially("/spreekuur")
    await expect(options).to_have_count(1)
    await expect(options).to_contain_text("Spreekuur Eindhoven")
    await anna_context.close()
    await cora_context.close()
