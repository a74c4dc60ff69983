"""Sign-in through an identity provider (gateway/web/oidc.py) against a real OpenID
provider on loopback: panva's oidc-provider run with node, never a mock. An HTTP
client with a cookie jar plays the browser: the desk's login, the provider's sign-in
form, and back to the desk's callback."""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from html import unescape
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from gateway.config.models import ClaimMapping, OidcSettings
from gateway.domain.identity import Identity
from gateway.support.keys import Keyring
from gateway.web.oidc import CALLBACK_PATH, LOGIN_PATH, add_oidc_routes
from tests.conftest import TEST_SECRET, free_port
from tests.helpers.oidc import CLIENT_SECRET, OidcProvider, oidc_provider

SECRET_VARIABLE = "OIDC_TEST_CLIENT_SECRET"
MAPPINGS = [
    ClaimMapping(value="vt-zuidoost-brabant", team="zuidoost-brabant", role="counsellor"),
    ClaimMapping(value="vt-zob-coordinators", team="zuidoost-brabant", role="coordinator"),
    ClaimMapping(value="vt-privacy", team="national", role="privacy-officer"),
]
LOGIN_FORM = re.compile(r'<form method="post" action="([^"]+/login)"')
ABORT_FORM = re.compile(r'<form method="post" action="([^"]+/abort)"')
AUTO_SUBMIT = re.compile(
    r"<title>Submitting Callback</title>.*?<form method=\"post\" action=\"([^\"]+)\"", re.S
)
HIDDEN_INPUT = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)"/>')


@dataclass
class Desk:
    """A small app with only the OIDC routes; it records what the hooks were told."""

    base: str
    provider_issuer: str
    oidc: OidcSettings | None
    secure_cookies: bool = False
    identities: list[Identity] = field(default_factory=list)
    refusals: list[tuple[str, Identity | None]] = field(default_factory=list)

    async def on_identity(self, request: web.Request, identity: Identity) -> web.StreamResponse:
        self.identities.append(identity)
        return web.Response(status=303, headers={"Location": "/desk/"})

    async def on_refused(self, request: web.Request, reason: str, identity: Identity | None) -> None:
        self.refusals.append((reason, identity))


def settings_for(desk_base: str, issuer: str) -> OidcSettings:
    return OidcSettings(
        issuer=issuer,
        client_id="veilig-thuis-desk",
        client_secret="${" + SECRET_VARIABLE + "}",
        public_url=desk_base,
        claim="groups",
        mappings=MAPPINGS,
    )


@contextlib.asynccontextmanager
async def running_desk(port: int, issuer: str) -> AsyncIterator[Desk]:
    base = f"http://127.0.0.1:{port}"
    desk = Desk(base=base, provider_issuer=issuer, oidc=settings_for(base, issuer))
    app = web.Application()
    add_oidc_routes(
        app,
        lambda: desk.oidc,
        Keyring(TEST_SECRET),
        lambda: desk.secure_cookies,
        desk.on_identity,
        desk.on_refused,
    )
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield desk
    finally:
        await runner.cleanup()


@pytest.fixture
async def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[Desk, OidcProvider]]:
    monkeypatch.setenv(SECRET_VARIABLE, CLIENT_SECRET)
    desk_port = free_port()
    callback = f"http://127.0.0.1:{desk_port}{CALLBACK_PATH}"
    async with (
        oidc_provider([callback], tmp_path / "provider.log") as provider,
        running_desk(desk_port, provider.issuer) as desk,
    ):
        yield desk, provider


@pytest.fixture
async def browser() -> AsyncIterator[aiohttp.ClientSession]:
    # unsafe: the jar keeps cookies of an IP address (127.0.0.1) too.
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


async def start_login(http: aiohttp.ClientSession, desk: Desk) -> URL:
    """The desk's login: the provider's authorization address it sends the browser to."""
    answer = await http.get(desk.base + LOGIN_PATH, allow_redirects=False)
    assert answer.status == 302, await answer.text()
    return URL(answer.headers["Location"])


async def provider_page(http: aiohttp.ClientSession, authorize: URL) -> tuple[URL, str]:
    page = await http.get(authorize)
    assert page.status == 200, await page.text()
    return page.url, await page.text()


async def follow_to_desk(http: aiohttp.ClientSession, answer: aiohttp.ClientResponse, desk: Desk) -> URL:
    """Follows the provider's redirects, stopping at the desk's callback address. A page
    that submits itself (the provider ends the previous account's session so) is
    submitted as a browser's script would."""
    while True:
        if answer.status == 200 and (form := AUTO_SUBMIT.search(html := await answer.text())):
            fields = dict(HIDDEN_INPUT.findall(html))
            answer = await http.post(
                answer.url.join(URL(unescape(form[1]))), data=fields, allow_redirects=False
            )
            continue
        assert answer.status in (302, 303), (answer.status, await answer.text())
        target = answer.url.join(URL(answer.headers["Location"]))
        if str(target).startswith(desk.base + CALLBACK_PATH):
            return target
        answer = await http.get(target, allow_redirects=False)


async def sign_in_at_provider(
    http: aiohttp.ClientSession, desk: Desk, provider: OidcProvider, login: str, authorize: URL | None = None
) -> URL:
    """From the desk's login to the callback address, signing in at the provider's form."""
    page_url, html = await provider_page(http, authorize or await start_login(http, desk))
    action = LOGIN_FORM.search(html)
    assert action, html
    answer = await http.post(
        page_url.join(URL(action[1])),
        data={"login": login, "password": provider.password},
        allow_redirects=False,
    )
    return await follow_to_desk(http, answer, desk)


async def callback(http: aiohttp.ClientSession, address: URL) -> aiohttp.ClientResponse:
    return await http.get(address, allow_redirects=False, params=None)


def oidc_events(caplog: pytest.LogCaptureFixture, event: str | None = None) -> list[dict]:
    """The structured events of gateway.oidc (structlog hands logging its event dicts)."""
    return [
        r.msg
        for r in caplog.records
        if r.name == "gateway.oidc" and isinstance(r.msg, dict) and event in (None, r.msg.get("event"))
    ]


def pending_cookies(answer: aiohttp.ClientResponse) -> list[str]:
    return [c for c in answer.headers.getall("Set-Cookie", []) if "desk_oidc=" in c]


async def test_a_counsellor_signs_in_with_the_team_and_role_of_their_group(world, browser) -> None:
    desk, provider = world
    authorize = await start_login(browser, desk)
    query = authorize.query
    assert str(authorize).startswith(provider.issuer + "/auth?")
    assert query["response_type"] == "code" and query["client_id"] == "veilig-thuis-desk"
    assert query["redirect_uri"] == desk.base + CALLBACK_PATH
    assert query["scope"] == "openid profile email"
    assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43
    assert len(query["state"]) >= 32 and len(query["nonce"]) >= 32 and query["state"] != query["nonce"]

    address = await sign_in_at_provider(browser, desk, provider, "zob-counsellor", authorize)
    assert address.query["state"] == query["state"] and "code" in address.query
    answer = await callback(browser, address)

    assert answer.status == 303 and answer.headers["Location"] == "/desk/"
    # groups come only from the userinfo endpoint here (the provider keeps them out of the ID token)
    assert desk.identities == [
        Identity(
            realm="desk",
            account="oidc:zob-counsellor",
            name="Zoë Counsellor",
            team="zuidoost-brabant",
            role="counsellor",
            method="oidc",
        )
    ]
    assert desk.refusals == []
    [cleared] = pending_cookies(answer)
    assert "Max-Age=0" in cleared or "expires=Thu, 01 Jan 1970" in cleared

    # The same callback once more (a replayed address): the pending login is gone.
    again = await callback(browser, address)
    assert again.status == 400
    assert desk.refusals == [("state_mismatch", None)] and len(desk.identities) == 1


@pytest.mark.parametrize(
    ("login", "team", "role"),
    [
        ("zob-coordinator", "zuidoost-brabant", "coordinator"),
        ("national-officer", "national", "privacy-officer"),
    ],
)
async def test_a_mapping_gives_coordinator_or_privacy_officer(world, browser, login, team, role) -> None:
    desk, provider = world
    answer = await callback(browser, await sign_in_at_provider(browser, desk, provider, login))
    assert answer.status == 303
    [identity] = desk.identities
    assert identity.account == f"oidc:{login}" and identity.method == "oidc"
    assert (identity.team, identity.role) == (team, role)


async def test_an_account_of_no_team_gets_a_refusal_page_and_no_desk(world, browser) -> None:
    desk, provider = world
    answer = await callback(browser, await sign_in_at_provider(browser, desk, provider, "no-team"))
    page = await answer.text()
    assert answer.status == 403
    assert answer.content_type == "text/html"
    assert "Geen toegang tot de desk: je account hoort bij geen team. Vraag je beheerder" in page
    assert "No access to the desk: your account belongs to no team." in page
    assert page.index("Geen toegang") < page.index("No access")
    assert answer.headers["Cache-Control"] == "no-store"
    assert answer.headers["Content-Security-Policy"].startswith("default-src 'none'; style-src 'self'")
    assert "Niels" not in page and "niels@" not in page
    assert desk.identities == []
    [(reason, tried)] = desk.refusals
    assert reason == "no_team" and tried is not None  # who tried, for the access log
    assert (tried.account, tried.team, tried.role) == ("oidc:no-team", "", "")
    assert pending_cookies(answer), "the pending login is cleared on a refusal too"


@pytest.mark.parametrize("tampering", ["changed_state", "no_state", "no_cookie", "forged_cookie"])
async def test_a_callback_whose_state_does_not_match_the_pending_login_is_refused(
    world, browser, tampering
) -> None:
    desk, provider = world
    address = await sign_in_at_provider(browser, desk, provider, "zob-counsellor")
    if tampering == "changed_state":
        address = address.update_query(state=address.query["state"][:-2] + "xx")
    elif tampering == "no_state":
        address = address.without_query_params("state")
    elif tampering == "no_cookie":
        browser.cookie_jar.clear(lambda cookie: cookie.key == "desk_oidc")
    else:
        browser.cookie_jar.update_cookies({"desk_oidc": "g1.AAAA" + "x" * 120}, URL(desk.base))
    answer = await callback(browser, address)
    page = await answer.text()
    assert answer.status == 400
    assert 'href="/desk/"' in page and "Inloggen niet gelukt" in page
    assert desk.identities == [] and desk.refusals == [("state_mismatch", None)]


async def test_the_provider_requires_pkce_and_a_code_is_useless_without_its_verifier(world) -> None:
    desk, provider = world
    async with (
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as victim,
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as attacker,
    ):
        # Without a code challenge the provider refuses the authorization request.
        authorize = await start_login(victim, desk)
        stripped = authorize.without_query_params("code_challenge", "code_challenge_method")
        answer = await victim.get(stripped, allow_redirects=False)
        refused = answer.url.join(URL(answer.headers["Location"]))
        assert refused.query["error"] == "invalid_request"
        assert "PKCE" in refused.query["error_description"]

        # The attacker's own code, slipped into the victim's callback under the victim's
        # state: the victim's verifier does not fit the attacker's code challenge.
        stolen = (await sign_in_at_provider(attacker, desk, provider, "national-officer")).query["code"]
        victims = await sign_in_at_provider(victim, desk, provider, "zob-counsellor", authorize)
        answer = await callback(victim, victims.update_query(code=stolen))
        assert answer.status == 400
        assert desk.identities == [] and desk.refusals == [("provider_error", None)]


async def test_cancelling_at_the_provider_is_refused_as_provider_denied(world, browser) -> None:
    desk, _ = world
    page_url, html = await provider_page(browser, await start_login(browser, desk))
    action = ABORT_FORM.search(html)
    assert action, html
    answer = await browser.post(page_url.join(URL(action[1])), allow_redirects=False)
    address = await follow_to_desk(browser, answer, desk)
    assert address.query["error"] == "access_denied"
    answer = await callback(browser, address)
    assert answer.status == 403
    assert "afgebroken of geweigerd" in await answer.text()
    assert desk.identities == [] and desk.refusals == [("provider_denied", None)]


async def test_a_callback_naming_another_issuer_is_refused(world, browser) -> None:
    desk, provider = world
    address = await sign_in_at_provider(browser, desk, provider, "zob-counsellor")
    assert address.query["iss"] == provider.issuer  # RFC 9207
    answer = await callback(browser, address.update_query(iss="http://127.0.0.1:1/"))
    assert answer.status == 400
    assert desk.identities == [] and desk.refusals == [("provider_error", None)]


async def test_without_settings_both_routes_answer_404(world, browser) -> None:
    desk, _ = world
    desk.oidc = None
    for path in (LOGIN_PATH, CALLBACK_PATH + "?code=x&state=y"):
        answer = await browser.get(desk.base + path, allow_redirects=False)
        assert answer.status == 404
        assert (await answer.json())["error"] == "oidc_not_configured"
    assert desk.refusals == []


async def test_a_missing_client_secret_is_refused_before_the_provider(
    world, browser, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    desk, _ = world
    monkeypatch.delenv(SECRET_VARIABLE)
    with caplog.at_level(logging.INFO):
        answer = await browser.get(desk.base + LOGIN_PATH, allow_redirects=False)
    assert answer.status == 503 and answer.content_type == "text/html"
    assert desk.refusals == [("provider_error", None)]
    [missing] = oidc_events(caplog, "oidc_client_secret_missing")
    assert missing["variable"] == SECRET_VARIABLE


@pytest.mark.parametrize(("secure", "name"), [(True, "__Host-desk_oidc"), (False, "desk_oidc")])
async def test_the_pending_login_cookie(world, browser, secure, name) -> None:
    desk, _ = world
    desk.secure_cookies = secure
    answer = await browser.get(desk.base + LOGIN_PATH, allow_redirects=False)
    [cookie] = pending_cookies(answer)
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
    assert cookie.startswith(name + "=")
    assert {"httponly", "path", "samesite", "max-age"} <= attributes and "domain" not in attributes
    assert ("secure" in attributes) is secure
    assert "SameSite=Lax" in cookie and "Path=/;" in cookie + ";"
    # Sealed: none of the authorization request's values can be read from it.
    authorize = URL(answer.headers["Location"])
    value = cookie.split(";")[0].split("=", 1)[1]
    assert authorize.query["state"] not in value and authorize.query["nonce"] not in value


async def test_rotated_provider_keys_are_fetched_once_more(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, browser, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(SECRET_VARIABLE, CLIENT_SECRET)
    desk_port, provider_port = free_port(), free_port()
    callback_uri = f"http://127.0.0.1:{desk_port}{CALLBACK_PATH}"
    async with running_desk(desk_port, f"http://127.0.0.1:{provider_port}") as desk:
        for run in range(2):
            # Each run of the provider signs with a new key; the desk keeps its cached JWKS.
            provider_log = tmp_path / "provider.log"
            async with oidc_provider([callback_uri], provider_log, port=provider_port) as provider:
                with caplog.at_level(logging.INFO):
                    address = await sign_in_at_provider(browser, desk, provider, "zob-counsellor")
                    answer = await callback(browser, address)
                assert answer.status == 303, (run, desk.refusals)
    assert len(desk.identities) == 2 and desk.refusals == []
    assert len(oidc_events(caplog, "oidc_jwks_refetched")) == 1


async def test_the_logs_hold_no_code_state_or_person(
    world, browser, caplog: pytest.LogCaptureFixture
) -> None:
    desk, provider = world
    with caplog.at_level(logging.DEBUG):
        authorize = await start_login(browser, desk)
        address = await sign_in_at_provider(browser, desk, provider, "zob-counsellor", authorize)
        assert (await callback(browser, address)).status == 303
        assert (await callback(browser, address)).status == 400  # replayed: refused
        no_team = await sign_in_at_provider(browser, desk, provider, "no-team")
        assert (await callback(browser, no_team)).status == 403
    events = oidc_events(caplog)
    assert {e["event"] for e in events} >= {"oidc_login_started", "oidc_signed_in", "oidc_sign_in_refused"}
    allowed = {"event", "level", "logger", "timestamp", "reason", "error", "endpoint", "status", "variable"}
    assert all(set(e) <= allowed for e in events), events
    text = caplog.text + json.dumps([r.msg for r in caplog.records if isinstance(r.msg, dict)])
    secrets = [
        address.query["code"], authorize.query["state"], authorize.query["nonce"],
        authorize.query["code_challenge"], no_team.query["code"], "Zoë", "zoe@", "niels",
        "zob-counsellor", CLIENT_SECRET,
    ]  # fmt: skip
    assert [s for s in secrets if s.lower() in text.lower()] == []
