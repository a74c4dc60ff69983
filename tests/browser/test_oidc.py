"""Sign-in through the region's identity provider, end to end in Chromium: the desk
(a real `gateway run`) configured with `desk.oidc`, and a real OpenID provider on
loopback (panva's oidc-provider, run with node). The console offers the button, the
provider's sign-in form takes the account, and the desk opens with the team the
account's group maps to; an account of no team gets a refusal page and no desk;
signing out ends the session on the server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml
from playwright.async_api import Browser, BrowserContext, Page, expect
from yarl import URL

import tests.conftest
from gateway.service import load_config
from tests.browser.conftest import OPEN_MONDAY, browser_config, screenshot, serious_accessibility_violations
from tests.conftest import ServiceProcess, clean_state, free_port
from tests.helpers.oidc import CLIENT_ID, CLIENT_SECRET, OidcProvider, oidc_provider

pytestmark = pytest.mark.broker

BUTTON = "Inloggen via je organisatie"  # the default label of desk.oidc
MAPPINGS = [
    {"value": "vt-zuidoost-brabant", "team": "zuidoost-brabant", "role": "counsellor"},
    {"value": "vt-privacy", "team": "national", "role": "privacy-officer"},
]


def with_oidc(root: Path, issuer: str, public_url: str) -> None:
    gateway = root / "gateway.yaml"
    data = yaml.safe_load(gateway.read_text())
    data.setdefault("desk", {})["oidc"] = {
        "issuer": issuer,
        "client_id": CLIENT_ID,
        "client_secret": "${OIDC_CLIENT_SECRET}",
        "public_url": public_url,
        "claim": "groups",
        "mappings": MAPPINGS,
    }
    gateway.write_text(yaml.safe_dump(data, allow_unicode=True))


def desk_on(
    port: int, monkeypatch: pytest.MonkeyPatch, amqp_url: str, log_path: Path, **kwargs
) -> ServiceProcess:
    """A `gateway run` on a port chosen beforehand: the provider has to know the desk's
    callback address, and the desk its own public URL, before either starts.
    ServiceProcess picks its port itself, so it is handed this one."""
    with monkeypatch.context() as patch:
        patch.setattr(tests.conftest, "free_port", lambda: port)
        return ServiceProcess(amqp_url, log_path, **kwargs)


@pytest.fixture
async def world(
    vhost, database_url, tmp_path: Path, example_env, pharmacy_hash, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[ServiceProcess, OidcProvider]]:
    desk_port = free_port()
    public_url = f"http://127.0.0.1:{desk_port}"
    root = browser_config(tmp_path / "config", pharmacy_hash, exit_url="https://www.google.com/")
    async with oidc_provider([public_url + "/api/v1/oidc/callback"], tmp_path / "provider.log") as provider:
        with_oidc(root, provider.issuer, public_url)
        await clean_state(vhost[1], database_url, load_config(root))
        front = desk_on(
            desk_port,
            monkeypatch,
            vhost[1],
            tmp_path / "front.log",
            roles=("ingest", "router", "desk"),
            config_dir=root,
            GATEWAY_DATABASE_URL=database_url,
            GATEWAY_FAKE_TIME=OPEN_MONDAY,
            OIDC_CLIENT_SECRET=CLIENT_SECRET,
        )
        try:
            await front.wait_ready(40)
            assert front.base == public_url
            yield front, provider
        finally:
            front.stop()


@pytest.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    # bypass_csp: axe-core is injected into the refusal page, whose policy allows no script.
    created = await browser.new_context(locale="nl-NL", bypass_csp=True)
    try:
        yield created
    finally:
        await created.close()


async def sign_in_through_provider(page: Page, base: str, provider: OidcProvider, login: str) -> None:
    await page.goto(f"{base}/desk/")
    offer = page.get_by_role("link", name=BUTTON).or_(page.get_by_role("button", name=BUTTON))
    await expect(offer).to_be_visible()
    await screenshot(page, "oidc-01-desk-offers-provider")
    await offer.click()
    await page.wait_for_url(f"{provider.issuer}/interaction/**")
    await page.get_by_label("Gebruikersnaam").fill(login)
    await page.get_by_label("Wachtwoord").fill(provider.password)
    await screenshot(page, f"oidc-02-provider-sign-in-{login}")
    await page.get_by_role("button", name="Inloggen").click()


async def me_status(page: Page, base: str, cookie: str | None = None) -> int:
    """GET /api/v1/me with the context's cookies, or with exactly `cookie` when given."""
    headers = {"Cookie": cookie} if cookie is not None else None
    answer = await page.request.get(f"{base}/api/v1/me", headers=headers)
    return answer.status


async def test_a_counsellor_signs_in_through_the_provider_and_out_again(context, world) -> None:
    desk, provider = world
    page = await context.new_page()
    callbacks: list[URL] = []
    page.on("request", lambda r: callbacks.append(URL(r.url)) if "/api/v1/oidc/callback" in r.url else None)
    await sign_in_through_provider(page, desk.base, provider, "zob-counsellor")

    await page.wait_for_url(f"{desk.base}/desk/")
    await expect(page.get_by_role("heading", name="Wachtrij zuidoost-brabant")).to_be_visible()
    await expect(page.locator("#who")).to_contain_text("Zoë Counsellor")
    await expect(page.locator("#who")).to_contain_text("zuidoost-brabant")
    await screenshot(page, "oidc-03-desk-signed-in")
    me = await (await page.request.get(f"{desk.base}/api/v1/me")).json()
    assert (me["counsellor"], me["team"], me["role"], me["method"]) == (
        "oidc:zob-counsellor",
        "zuidoost-brabant",
        "counsellor",
        "oidc",
    )
    session_cookies = [c for c in await context.cookies(desk.base) if c["name"].endswith("desk_session")]
    assert len(session_cookies) == 1
    old_cookie = f"{session_cookies[0]['name']}={session_cookies[0]['value']}"
    assert not [c for c in await context.cookies(desk.base) if c["name"].endswith("desk_oidc")]

    await page.get_by_role("button", name="Afmelden").click()
    await expect(page.get_by_role("heading", name="Aanmelden")).to_be_visible()
    await screenshot(page, "oidc-04-signed-out")
    assert await me_status(page, desk.base) == 401
    # Ended on the server: the cookie the browser had no longer signs anyone in.
    assert await me_status(page, desk.base, cookie=old_cookie) == 401

    [callback] = callbacks
    logs = desk.logs()
    assert "oidc_signed_in" in logs
    secrets = [
        callback.query["code"],
        callback.query["state"],
        session_cookies[0]["value"],
        provider.password,
    ]
    assert [s for s in secrets if s in logs] == []


async def test_an_account_of_no_team_gets_a_refusal_page_and_no_desk(context, world) -> None:
    desk, provider = world
    page = await context.new_page()
    await sign_in_through_provider(page, desk.base, provider, "no-team")

    await page.wait_for_url(f"{desk.base}/api/v1/oidc/callback**")
    await expect(page.get_by_role("heading", name="Geen toegang tot de desk")).to_be_visible()
    await expect(page.get_by_text("je account hoort bij geen team")).to_be_visible()
    await expect(page.get_by_text("your account belongs to no team")).to_be_visible()
    await screenshot(page, "oidc-05-no-team-refused")
    assert await serious_accessibility_violations(page) == []
    assert not [c for c in await context.cookies(desk.base) if c["name"].endswith("desk_session")]
    assert await me_status(page, desk.base) == 401

    await page.goto(f"{desk.base}/desk/")
    await expect(page.get_by_role("heading", name="Aanmelden")).to_be_visible()
    await expect(page.get_by_role("heading", name="Wachtrij zuidoost-brabant")).to_be_hidden()
