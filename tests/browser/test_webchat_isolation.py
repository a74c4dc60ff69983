"""The web chat isolated from the region's own page, in a real browser: the host page is
served from another origin than the gateway and runs a script as analytics or session
replay would (it walks the whole DOM, shadow roots too, even closed ones, tries the
iframe's document, listens for keys and input on window and document, and observes every
mutation), and finds nothing of the conversation. Quick exit from inside the frame leaves
the host site's tab on the exit page; an origin that is not the channel's cannot frame
the chat; every chat asset is no-store and ending sends Clear-Site-Data; a new chat
refused by the limit gets the calm page with 0800-2000 and 112."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import pytest
import yaml
from aiohttp import ClientSession, web
from playwright.async_api import Browser, FrameLocator, Page, Request, expect

from gateway.service import load_config
from tests.browser.conftest import OPEN_MONDAY, browser_config, screenshot, serious_accessibility_violations
from tests.browser.test_webchat import CHANNEL, NEUTRAL_PAGE, publish_reply, routed
from tests.conftest import ServiceProcess, clean_state

pytestmark = pytest.mark.broker

MARKER = "kwartelkoning"  # what the person types
REPLY_MARKER = "reigerbos"  # what the counsellor answers
SANDBOX = "allow-scripts allow-same-origin allow-forms allow-top-navigation-by-user-activation"
EXIT_RED = "rgb(164, 0, 29)"  # --vt-exit: the colour of quick exit and of errors

# The host page's own script, as an analytics or session-replay script would be: it
# records every key and input event it can see, every mutation (in every shadow root,
# closed ones too, by wrapping attachShadow before the widget runs), and can walk
# everything it can reach.
SPY = """
<script>
(function () {
  var spy = window.__spy = { events: [], mutations: [], roots: [] };
  var attach = Element.prototype.attachShadow;
  function observe(target) {
    new MutationObserver(function (records) {
      records.forEach(function (record) {
        if (record.type === "characterData") { spy.mutations.push(record.target.data); }
        if (record.type === "attributes") {
          spy.mutations.push(String(record.target.getAttribute(record.attributeName)));
        }
        record.addedNodes.forEach(function (node) { spy.mutations.push(node.textContent || ""); });
      });
    }).observe(target, { subtree: true, childList: true, characterData: true, attributes: true });
  }
  Element.prototype.attachShadow = function (init) {
    var root = attach.call(this, init);
    spy.roots.push(root);
    observe(root);
    return root;
  };
  ["keydown", "keypress", "keyup", "beforeinput", "input", "change", "paste", "compositionend",
   "submit", "focusin"].forEach(function (type) {
    [[window, "window"], [document, "document"]].forEach(function (listener) {
      listener[0].addEventListener(type, function (event) {
        var source = event.composedPath ? event.composedPath()[0] : event.target;
        spy.events.push([type, listener[1], event.key || "", event.data || "",
                         (source && typeof source.value === "string") ? source.value : ""].join("|"));
      }, true);
    });
  });
  observe(document);
  window.__walk = function () {
    var seen = [], readable = 0;
    function walk(node) {
      if (!node) { return; }
      if (node.nodeType === 3) { seen.push(node.data); return; }
      if (node.nodeType === 1) {
        Array.prototype.forEach.call(node.attributes, function (a) { seen.push(a.value); });
        if (typeof node.value === "string") { seen.push(node.value); }
        if (node.shadowRoot) { walk(node.shadowRoot); }
        if (node.tagName === "IFRAME") {
          var inner = null;
          try { inner = node.contentDocument; } catch (error) { inner = null; }
          if (inner) { readable += 1; walk(inner.documentElement); }
        }
      }
      Array.prototype.forEach.call(node.childNodes, walk);
    }
    walk(document.documentElement);
    spy.roots.forEach(walk);
    return { text: seen.join("\\n"), readable: readable, roots: spy.roots.length,
             events: spy.events, mutations: spy.mutations.join("\\n") };
  };
})();
</script>
"""


async def host_site(gateway: dict[str, int]) -> tuple[web.AppRunner, str]:
    """A region's own site on an origin of its own: `/` is the neutral page quick exit goes
    to, `/voor` where the person was before, `/regio` the region's page with the spy and
    the widget's one tag, `/kader` a page that frames the chat directly."""

    def base() -> str:
        return f"http://127.0.0.1:{gateway['port']}/channels/{CHANNEL}/"

    def html(body: str) -> web.Response:
        return web.Response(text=f'<!doctype html><html lang="nl"><head><title>Regio</title>{body}',
                            content_type="text/html")  # fmt: skip

    async def region(_: web.Request) -> web.Response:
        return html(f'{SPY}</head><body><main><h1>Veilig Thuis in de regio</h1></main>'
                    f'<script src="{base()}widget.js" async></script></body></html>')  # fmt: skip

    async def framing(_: web.Request) -> web.Response:
        return html(
            '</head><body><h1>Kader</h1><iframe title="chat" width="420" height="640"'
            f' sandbox="{SANDBOX}" src="{base()}frame">'
            "</iframe></body></html>"
        )

    app = web.Application()
    app.router.add_get("/", lambda _: web.Response(text=NEUTRAL_PAGE, content_type="text/html"))
    app.router.add_get("/voor", lambda _: html("</head><body><p>Een andere site.</p></body></html>"))
    app.router.add_get("/regio", region)
    app.router.add_get("/kader", framing)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/"  # type: ignore[union-attr]


@asynccontextmanager
async def world(
    vhost, database_url: str, tmp_path: Path, pharmacy_hash: str, *, sessions_per_hour: int = 30
) -> AsyncIterator[dict]:
    """One service process (ingest, router, outbound) and the region's site, whose origin
    (and only that, besides the gateway) is in the channel's allowed_origins."""
    gateway: dict[str, int] = {}
    site, exit_url = await host_site(gateway)
    root = browser_config(
        tmp_path / "config", pharmacy_hash, exit_url=exit_url, allowed_origins=[exit_url.rstrip("/")]
    )
    channel_file = root / "channels" / f"{CHANNEL}.yaml"
    data = yaml.safe_load(channel_file.read_text())
    data["settings"]["address_sessions_per_hour"] = sessions_per_hour
    channel_file.write_text(yaml.safe_dump(data, allow_unicode=True))
    await clean_state(vhost[1], database_url, load_config(root))
    process = ServiceProcess(
        vhost[1],
        tmp_path / "gateway.log",
        roles=("ingest", "router", "outbound"),
        config_dir=root,
        GATEWAY_DATABASE_URL=database_url,
        GATEWAY_FAKE_TIME=OPEN_MONDAY,
    )
    gateway["port"] = process.port
    try:
        await process.wait_ready(40)
        yield {"gateway": process, "url": vhost[1], "database_url": database_url, "site": exit_url,
               "chat": f"{process.base}/channels/{CHANNEL}/"}  # fmt: skip
    finally:
        process.stop()
        await site.cleanup()


@pytest.fixture
async def iso_world(vhost, database_url, tmp_path: Path, example_env, pharmacy_hash) -> AsyncIterator[dict]:
    async with world(vhost, database_url, tmp_path, pharmacy_hash) as opened:
        yield opened


@pytest.fixture
async def busy_world(vhost, database_url, tmp_path: Path, example_env, pharmacy_hash) -> AsyncIterator[dict]:
    async with world(vhost, database_url, tmp_path, pharmacy_hash, sessions_per_hour=1) as opened:
        yield opened


async def open_widget(page: Page, site: str) -> FrameLocator:
    await page.goto(site + "regio")
    await page.get_by_role("button", name="Chat met Veilig Thuis").click()
    chat = page.frame_locator("iframe.vt-frame")
    await expect(chat.get_by_role("button", name="Snel weg")).to_be_focused()
    return chat


async def start_and_send(page: Page, chat: FrameLocator, text: str) -> None:
    await chat.get_by_role("button", name="Start de chat").click()
    await chat.get_by_label("Jouw bericht").click()
    await page.keyboard.type(text)  # real key events, where the focus is
    await page.keyboard.press("Enter")
    await expect(chat.locator("li.vt-mine[data-acked='1']")).to_have_count(1)


async def sessions(database_url: str) -> tuple[int, int]:
    connection = await asyncpg.connect(database_url)
    try:
        ended = await connection.fetchval("SELECT count(*) FROM webchat_sessions WHERE ended_at IS NOT NULL")
        open_ = await connection.fetchval("SELECT count(*) FROM webchat_sessions WHERE ended_at IS NULL")
    finally:
        await connection.close()
    return ended, open_


async def test_the_host_page_sees_nothing_of_the_conversation(browser: Browser, iso_world) -> None:
    page = await browser.new_page()
    chat = await open_widget(page, iso_world["site"])
    await start_and_send(page, chat, f"ik heb een vraag over {MARKER}")
    (envelope,) = await routed(iso_world["url"], 1)
    assert MARKER in envelope.text  # it did reach the gateway
    await publish_reply(iso_world["url"], envelope, f"Dank je, vertel over de {REPLY_MARKER}.")
    await expect(chat.locator("li.vt-theirs .vt-text")).to_have_text(
        [f"Dank je, vertel over de {REPLY_MARKER}."]
    )
    await screenshot(page, "webchat-isolated-on-region-site")

    seen = await page.evaluate("window.__walk()")
    # The spy works: it reaches the host's own text and the launcher inside its shadow root.
    assert "Veilig Thuis in de regio" in seen["text"] and "Chat met Veilig Thuis" in seen["text"]
    assert seen["readable"] == 0, "the host page can read the chat's document"
    for where in ("text", "mutations"):
        assert MARKER not in seen[where] and REPLY_MARKER not in seen[where], (
            f"the host page saw it ({where})"
        )
    for listener in ("window", "document"):
        typed = "".join(e.split("|")[2] for e in seen["events"] if e.startswith(f"keydown|{listener}|"))
        assert MARKER not in typed, f"the host page saw the keystrokes (on {listener})"
    assert not any(MARKER in event or REPLY_MARKER in event for event in seen["events"])
    assert not [e for e in seen["events"] if e.split("|")[0] in ("keydown", "input", "beforeinput")]
    await page.close()


async def test_the_framed_chat_is_accessible_by_keyboard_and_to_axe(browser: Browser, iso_world) -> None:
    context = await browser.new_context(bypass_csp=True)  # only so axe-core can be injected
    page = await context.new_page()
    chat = await open_widget(page, iso_world["site"])  # the launcher hands the focus to quick exit
    for _ in range(6):  # Tab through the frame's bar to the start button
        await page.keyboard.press("Tab")
        if await chat.locator(".vt-start").evaluate("node => node === document.activeElement"):
            break
    else:
        raise AssertionError("the start button cannot be reached with Tab")
    await page.keyboard.press("Enter")
    await expect(chat.locator("#vt-input")).to_be_focused()
    await page.keyboard.type("alleen met het toetsenbord")
    await page.keyboard.press("Enter")
    await expect(chat.locator("li.vt-mine[data-acked='1']")).to_have_count(1)
    frame = next(f for f in page.frames if f.url.endswith("/frame"))
    assert await serious_accessibility_violations(frame) == []  # type: ignore[arg-type]
    assert await serious_accessibility_violations(page) == []
    sandbox = await page.locator("iframe.vt-frame").get_attribute("sandbox")
    assert sorted((sandbox or "").split()) == [
        "allow-forms", "allow-same-origin", "allow-scripts", "allow-top-navigation-by-user-activation"
    ]  # fmt: skip
    await context.close()


@pytest.mark.parametrize(
    "how", ["button", "escape in the chat", "escape on the host page", "button, framed without the launcher"]
)
async def test_quick_exit_in_the_frame_replaces_the_host_page(browser: Browser, iso_world, how: str) -> None:
    site = iso_world["site"]
    page = await browser.new_page()
    await page.goto(site + "voor")  # where the person was before the region's page
    if how.endswith("without the launcher"):  # only the frame's own top navigation can leave
        await page.goto(site + "kader")
        chat = page.frame_locator("iframe")
    else:
        chat = await open_widget(page, site)
    await start_and_send(page, chat, "hallo")
    ends: list[Request] = []  # the one request whose answer carries Clear-Site-Data
    page.on("request", lambda r: ends.append(r) if r.url.endswith("/end") and r.method == "POST" else None)
    if how.startswith("button"):
        await chat.get_by_role("button", name="Snel weg").click()
    elif how == "escape in the chat":
        await chat.locator("#vt-input").click()  # Escape gives no user activation: the launcher leaves
        await page.keyboard.press("Escape")
    else:
        await page.get_by_role("heading", name="Veilig Thuis in de regio").click()
        await page.keyboard.press("Escape")
    await page.wait_for_url(site)
    assert page.url == site
    await expect(page.get_by_text("Het weer voor morgen.")).to_be_visible()
    await page.go_back()
    assert page.url == site + "voor", "the region's page with the chat is one back-button press away"
    assert len(ends) == 1 and ends[0].post_data, "quick exit did not POST end with the token"
    assert await sessions(iso_world["database_url"]) == (1, 0), "the server did not end the session"
    await page.close()


async def test_an_origin_that_is_not_allowed_cannot_frame_the_chat(browser: Browser, iso_world) -> None:
    allowed, refused = iso_world["site"], iso_world["site"].replace("127.0.0.1", "localhost")
    page = await browser.new_page()
    await page.goto(allowed + "kader")  # the allowed origin: the frame shows the chat
    await expect(page.frame_locator("iframe").locator(".vt-start")).to_be_enabled()

    other = await browser.new_page()
    messages: list[str] = []
    other.on("console", lambda message: messages.append(message.text))
    await other.goto(refused + "kader")
    await expect(other.get_by_role("heading", name="Kader")).to_be_visible()
    await other.wait_for_timeout(1000)  # the frame's load, refused
    (framed,) = [f for f in other.frames if f != other.main_frame]
    assert await framed.locator(".vt-start").count() == 0, "another origin framed the chat"
    assert any("frame-ancestors" in message for message in messages), messages

    await other.goto(refused + "regio")  # the launcher there: no chat, but the numbers
    await other.get_by_role("button", name="Chat met Veilig Thuis").click()
    await expect(other.get_by_text("Bel gratis 0800-2000 (24/7). In acuut gevaar: bel 112.")).to_be_visible()
    assert await other.locator("iframe").count() == 0
    await screenshot(other, "webchat-launcher-on-unconfigured-site")
    await page.close()
    await other.close()


async def test_no_store_on_every_chat_asset_and_clear_site_data_on_ending(iso_world) -> None:
    chat, site = iso_world["chat"], iso_world["site"].rstrip("/")
    async with ClientSession() as http:
        for name in ("", "frame", "widget.js", "chat.js", "chat.css", "status"):
            async with http.get(chat + name, headers={"Origin": site}) as response:
                assert response.status == 200, name
                assert response.headers["Cache-Control"] == "no-store", name
            if name in ("", "frame"):
                ancestors = response.headers["Content-Security-Policy"].split("frame-ancestors ")[1]
                expected = "'none'" if name == "" else f"'self' {site}"
                assert ancestors.split(";")[0].strip() == expected, name

        origin = iso_world["gateway"].base
        async with http.ws_connect(chat.replace("http", "ws") + "socket", headers={"Origin": origin}) as ws:
            await ws.send_str(json.dumps({"type": "start"}))
            token = (await ws.receive_json(timeout=5))["session"]
            async with http.post(chat + "end", data=token) as ended:  # the socket still open
                assert ended.status == 204
                assert ended.headers["Clear-Site-Data"] == '"cache", "storage"'
                assert ended.headers["Cache-Control"] == "no-store"
            assert (await ws.receive_json(timeout=5)) == {"type": "ended"}
    assert await sessions(iso_world["database_url"]) == (1, 0)


async def test_a_refused_new_chat_gets_the_calm_page(browser: Browser, busy_world) -> None:
    gateway = busy_world["gateway"]
    socket = busy_world["chat"].replace("http", "ws") + "socket"
    async with ClientSession() as http, http.ws_connect(socket, headers={"Origin": gateway.base}) as ws:
        await ws.send_str(json.dumps({"type": "start"}))  # the one new chat this hour from this address
        assert (await ws.receive_json(timeout=5))["type"] == "started"

    context = await browser.new_context(bypass_csp=True)  # only so axe-core can be injected
    page = await context.new_page()
    chat = await open_widget(page, busy_world["site"])
    await chat.get_by_role("button", name="Start de chat").click()
    busy = chat.locator(".vt-busy")
    await expect(busy).to_have_attribute("role", "status")
    await expect(busy).to_have_text(
        "Het is nu erg druk met nieuwe chats vanaf deze verbinding. Probeer het over een tijdje opnieuw, "
        "of bel gratis 0800-2000 (24/7). In acuut gevaar: bel 112."
    )
    await expect(chat.get_by_text("In acuut gevaar? Bel 112.")).to_be_visible()
    await expect(chat.locator(".vt-notice")).to_be_hidden()  # the error's box stays empty
    await expect(chat.locator(".vt-conversation")).to_be_hidden()
    await expect(chat.locator(".vt-start")).to_be_visible()  # to try again later
    colours = await busy.evaluate(
        "node => { const s = getComputedStyle(node);"
        " return [s.color, s.borderLeftColor, s.backgroundColor]; }"
    )
    assert EXIT_RED not in colours and "rgb(255, 244, 244)" not in colours, colours
    assert "rate_limited" not in await chat.locator("body").inner_text()
    await screenshot(page, "webchat-calm-page")
    frame = next(f for f in page.frames if f.url.endswith("/frame"))
    assert await serious_accessibility_violations(frame) == []  # type: ignore[arg-type]

    await chat.get_by_role("button", name="Switch to English").click()
    await expect(busy).to_contain_text("call 0800-2000 free of charge (24/7). In immediate danger: call 112.")
    await context.close()
