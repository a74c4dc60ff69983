"""What a person attaches, in the console, in Chromium: a photo sent by SMS (MMS) is
fetched by the desk from a fake Twilio media server on loopback and shown in the page
under the console's strict CSP; an oversized one and one redirected to a host that is
not Twilio's are not fetched, and the counsellor reads why; the image is served only
to the team's counsellors."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
import pytest
import yaml
from playwright.async_api import Browser, expect
from twilio.request_validator import RequestValidator

from adapters.twilio.cases import PUBLIC, TWILIO_AUTH_TOKEN, sms
from gateway.service import load_config
from tests.browser.conftest import OPEN_MONDAY, browser_config, screenshot, serious_accessibility_violations
from tests.browser.test_desk_console import PASSWORD, sign_in
from tests.conftest import ServiceProcess, clean_state
from tests.helpers.media import CDN_HOST, MediaServer

pytestmark = pytest.mark.broker

SMS_CHANNEL = "sms-zuidoost-brabant"


@pytest.fixture
async def world(vhost, database_url, tmp_path: Path, example_env, pharmacy_hash) -> AsyncIterator[dict]:
    from tests.browser.conftest import hash_password

    media = await MediaServer().start()
    root = browser_config(tmp_path / "config", pharmacy_hash, exit_url="https://www.google.com/")
    shared = hash_password(PASSWORD)
    accounts = [
        {"id": "anna-zob", "name": "Anna", "team": "zuidoost-brabant", "password_hash": shared},
        {"id": "carla-rr", "name": "Carla", "team": "rotterdam-rijnmond", "password_hash": shared},
    ]
    (root / "counsellors.yaml").write_text(yaml.safe_dump({"counsellors": accounts}))
    path = root / "channels" / f"{SMS_CHANNEL}.yaml"
    channel = yaml.safe_load(path.read_text())
    channel["settings"].update(api_base_url=media.base_url, media_hosts=[CDN_HOST])
    path.write_text(yaml.safe_dump(channel))
    await clean_state(vhost[1], database_url, load_config(root))
    env = {"GATEWAY_DATABASE_URL": database_url, "GATEWAY_FAKE_TIME": OPEN_MONDAY}
    front = ServiceProcess(
        vhost[1], tmp_path / "front.log", roles=("ingest", "router", "desk"), config_dir=root, **env
    )
    try:
        await front.wait_ready(40)
        yield {"front": front, "phones": {}, "media": media}
    finally:
        front.stop()
        await media.stop()


async def mms(base: str, media: MediaServer, text: str, names: list[str]) -> None:
    """An SMS with pictures, as Twilio posts it and signs it."""
    sid = f"SM{uuid.uuid4().hex}"
    attached = {}
    for n, name in enumerate(names):
        attached |= {f"MediaUrl{n}": media.twilio_url(name), f"MediaContentType{n}": "image/png"}
    fields = sms(Body=text, From="+31612000222", MessageSid=sid, SmsSid=sid, SmsMessageSid=sid,
                 NumMedia=str(len(names)), **attached)  # fmt: skip
    public = PUBLIC.format(channel=SMS_CHANNEL)
    signature = RequestValidator(TWILIO_AUTH_TOKEN).compute_signature(public, fields)
    headers = {"X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{base}/channels/{SMS_CHANNEL}/webhook", data=urlencode(fields), headers=headers) as r,
    ):
        assert r.status == 200, await r.text()


async def test_a_photo_is_shown_and_refused_ones_say_why(browser: Browser, world) -> None:
    base, media = world["front"].base, world["media"]
    await mms(base, media, "Dit is wat hij deed", ["photo", "oversized", "redirect-elsewhere"])

    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    anna = await context.new_page()
    refused: list[str] = []
    anna.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
    await sign_in(anna, world, "anna-zob")
    row = anna.locator("#queue-rows tr")
    await expect(row).to_have_count(1, timeout=15000)
    await row.get_by_role("button").click()
    await expect(anna.locator("#transcript")).to_contain_text("Dit is wat hij deed")

    # Fetched in the background: the open conversation updates by itself.
    image = anna.get_by_role("img", name="Afbeelding 1 die de persoon stuurde")
    await expect(image).to_be_visible(timeout=20000)
    assert await image.evaluate("img => img.complete && img.naturalWidth") == 160
    source = await image.get_attribute("src")
    assert source is not None and source.startswith("/api/v1/conversations/")  # never the provider's URL
    attachments = anna.locator("#transcript .d-attachment")
    await expect(attachments.nth(1)).to_have_text(
        "Bijlage 2 (image/png) niet opgehaald: te groot", timeout=20000
    )
    await expect(attachments.nth(2)).to_have_text(
        "Bijlage 3 (image/png) niet opgehaald: niet van de server van de aanbieder"
    )
    assert media.paths_on("localhost") == []
    await screenshot(anna, "desk-attachments-1280")
    assert refused == []

    # The same address, in another team's session, is refused.
    carla_context = await browser.new_context()
    carla = await carla_context.new_page()
    await sign_in(carla, world, "carla-rr")
    status = await carla.evaluate("async path => (await fetch(path)).status", source)
    assert status == 403
    await carla_context.close()

    axe_context = await browser.new_context(bypass_csp=True)  # only so axe-core can be injected
    checked = await axe_context.new_page()
    await sign_in(checked, world, "anna-zob")
    await checked.locator("#queue-rows tr").get_by_role("button").click()
    await expect(checked.get_by_role("img", name="Afbeelding 1 die de persoon stuurde")).to_be_visible()
    assert await serious_accessibility_violations(checked) == []
    await axe_context.close()
    await context.close()
