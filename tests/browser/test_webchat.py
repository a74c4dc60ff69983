"""The web chat in a real browser: open and closed states, a conversation across two
service processes, socket drops in both directions, quick exit, session expiry,
origin checks and bad frames, accessibility and a phone-sized screen."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import aio_pika
import asyncpg
import pytest
from aiohttp import ClientSession, WSMsgType, WSServerHandshakeError, web
from playwright.async_api import Browser, Page, expect

from gateway.domain.envelope import ChannelRef, Envelope, OutboundMessage
from gateway.service import load_config
from tests.browser.conftest import (
    CLOSED_SATURDAY,
    OPEN_MONDAY,
    browser_config,
    screenshot,
    serious_accessibility_violations,
)
from tests.conftest import ServiceProcess, clean_state, drain, inbound_queues, queue_depths, team_queues

pytestmark = pytest.mark.broker

CHANNEL = "webchat-zuidoost-brabant"
REGION_QUEUES = team_queues("zuidoost-brabant")


class Proxy:
    """A TCP forwarder between the browser and the gateway that can cut every connection
    and refuse new ones for a while: a dropped socket, as a train tunnel makes one."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.up = True
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> Proxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.up:
            writer.close()
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, upstream_writer}

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                sink.close()

        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))

    def cut(self) -> None:
        self.up = False
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    def restore(self) -> None:
        self.up = True

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()


NEUTRAL_PAGE = "<title>Weer</title><p>Het weer voor morgen.</p>"


async def neutral_site(gateway: dict[str, int]) -> tuple[web.AppRunner, str]:
    """Where quick exit goes (a page that says nothing about the chat), and, at /regio, a
    region's own site with the widget's one script tag."""

    async def region_site(_: web.Request) -> web.Response:
        widget = f"http://127.0.0.1:{gateway['port']}/channels/{CHANNEL}/widget.js"
        return web.Response(
            text=f'<!doctype html><html lang="nl"><title>Regio</title>'
            f'<main><h1>Veilig Thuis in de regio</h1></main><script src="{widget}" async></script>',
            content_type="text/html",
        )

    app = web.Application()
    app.router.add_get("/", lambda _: web.Response(text=NEUTRAL_PAGE, content_type="text/html"))
    app.router.add_get("/regio", region_site)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/"  # type: ignore[union-attr]


@pytest.fixture
async def chat_world(
    vhost, database_url, tmp_path: Path, example_env, pharmacy_hash, request
) -> AsyncIterator[dict]:
    """Two processes sharing RabbitMQ and PostgreSQL: `front` holds the sockets (ingest,
    router), `back` sends replies (outbound)."""
    clock = request.node.get_closest_marker("clock")
    idle = request.node.get_closest_marker("idle")
    gateway: dict[str, int] = {}
    neutral, exit_url = await neutral_site(gateway)
    root = browser_config(
        tmp_path / "config",
        pharmacy_hash,
        exit_url=exit_url,
        idle_seconds=idle.args[0] if idle else 1800,
        allowed_origins=["https://www.veiligthuiszob.nl", exit_url.rstrip("/")],
    )
    await clean_state(vhost[1], database_url, load_config(root))
    env = {"GATEWAY_DATABASE_URL": database_url, "GATEWAY_FAKE_TIME": clock.args[0] if clock else OPEN_MONDAY}
    front = ServiceProcess(
        vhost[1], tmp_path / "front.log", roles=("ingest", "router"), config_dir=root, **env
    )
    back = ServiceProcess(vhost[1], tmp_path / "back.log", roles=("outbound",), config_dir=root, **env)
    gateway["port"] = front.port
    try:
        await front.wait_ready(40)
        await back.wait_ready(40)
        yield {"front": front, "back": back, "url": vhost[1], "database_url": database_url, "root": root,
               "exit_url": exit_url}  # fmt: skip
    finally:
        front.stop()
        back.stop()
        await neutral.cleanup()


def chat_url(process: ServiceProcess, port: int | None = None) -> str:
    return f"http://127.0.0.1:{port or process.port}/channels/{CHANNEL}/"


async def open_chat(page: Page, url: str) -> None:
    await page.goto(url)
    await expect(page.locator(".vt-start")).to_be_enabled()
    await page.locator(".vt-start").click()
    await expect(page.locator("#vt-input")).to_be_visible()


async def send(page: Page, text: str) -> None:
    await page.locator("#vt-input").fill(text)
    await page.locator(".vt-form button[type=submit]").click()


async def publish_reply(url: str, envelope: Envelope, text: str) -> None:
    reply = OutboundMessage(
        id=str(uuid.uuid4()),
        conversation_id=envelope.conversation_id,
        channel=ChannelRef(kind="webchat", instance=CHANNEL),
        reply_handle=envelope.reply_handle,
        text=text,
        origin="counsellor",
        created_at=datetime.now(UTC),
    )
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange("gw.outbound", ensure=False)
        await exchange.publish(
            aio_pika.Message(
                reply.to_json(), message_id=reply.id, delivery_mode=aio_pika.DeliveryMode.PERSISTENT
            ),
            f"webchat.{CHANNEL}",
        )
    finally:
        await connection.close()


async def routed(url: str, count: int) -> list[Envelope]:
    found: list[Envelope] = []
    for _ in range(20):
        found += [Envelope.from_json(m.body) for m in await drain(url, REGION_QUEUES, idle=0.7)]
        if len(found) >= count:
            break
    return found


async def test_a_conversation_across_two_processes(browser: Browser, chat_world) -> None:
    front, url = chat_world["front"], chat_world["url"]
    context = await browser.new_context(bypass_csp=True)  # only so axe-core can be injected
    page = await context.new_page()
    await page.goto(chat_url(front))
    await expect(page.locator(".vt-state")).to_have_text("De chat is nu open.")
    await expect(page.get_by_text("Bel gratis 0800-2000")).to_be_visible()
    await expect(page.get_by_text("In acuut gevaar? Bel 112.")).to_be_visible()
    await screenshot(page, "webchat-open")
    assert await serious_accessibility_violations(page) == []

    await open_chat(page, chat_url(front))
    await send(page, "Ik wil iets vertellen over thuis")
    await expect(page.locator("li.vt-mine[data-acked='1']")).to_have_count(1)
    (envelope,) = await routed(url, 1)
    assert envelope.text == "Ik wil iets vertellen over thuis"
    assert envelope.channel == ChannelRef(kind="webchat", instance=CHANNEL)
    assert envelope.route is not None and envelope.route.queue == "gw.region.zuidoost-brabant.normal"

    await publish_reply(url, envelope, "Fijn dat je schrijft. Ben je nu veilig?")
    await expect(page.locator("li.vt-theirs .vt-text")).to_have_text(
        ["Fijn dat je schrijft. Ben je nu veilig?"]
    )
    await screenshot(page, "webchat-conversation")
    assert await serious_accessibility_violations(page) == []

    await page.get_by_role("button", name="Switch to English").click()
    await expect(page.locator(".vt-state")).to_have_text("The chat is open now.")
    await screenshot(page, "webchat-english")

    await page.set_viewport_size({"width": 360, "height": 740})
    await screenshot(page, "webchat-phone")
    assert await page.evaluate("document.documentElement.scrollWidth") <= 360, "wider than a phone"
    await context.close()

    assert chat_world["back"].logs().count("reply_sent") == 1, "the other process sent the reply"
    for process in (front, chat_world["back"]):
        logs = process.logs()
        assert "vertellen over thuis" not in logs and "Ben je nu veilig" not in logs


async def test_socket_drops_lose_nothing_and_repeat_nothing(browser: Browser, chat_world) -> None:
    front, url = chat_world["front"], chat_world["url"]
    proxy = await Proxy(front.port).start()
    page = await browser.new_page()
    try:
        await open_chat(page, chat_url(front, proxy.port))
        await send(page, "een")
        await expect(page.locator("li.vt-mine[data-acked='1']")).to_have_count(1)
        (first,) = await routed(url, 1)

        proxy.cut()  # both directions in flight while the socket is gone
        await send(page, "twee")
        await send(page, "drie")
        await publish_reply(url, first, "antwoord terwijl je weg was")
        await asyncio.sleep(2.5)
        await expect(page.locator("li.vt-mine[data-acked='1']")).to_have_count(1)
        proxy.restore()

        await expect(page.locator("li.vt-mine[data-acked='1']")).to_have_count(3, timeout=15000)
        await expect(page.locator("li.vt-theirs")).to_have_count(1)
        proxy.cut()  # and once more, right after: nothing may come twice
        await asyncio.sleep(1)
        proxy.restore()
        await send(page, "vier")
        await expect(page.locator("li.vt-mine[data-acked='1']")).to_have_count(4, timeout=15000)
        await asyncio.sleep(1.5)
        await expect(page.locator("li.vt-theirs")).to_have_count(1)
        texts = sorted(e.text for e in await routed(url, 3))
        assert texts == ["drie", "twee", "vier"], "a message was lost or published twice"
    finally:
        await page.close()
        await proxy.stop()


@pytest.mark.parametrize("how", ["button", "escape", "shift three times"])
async def test_quick_exit_ends_the_session_and_leaves_nothing(browser: Browser, chat_world, how: str) -> None:
    front = chat_world["front"]
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(f"http://127.0.0.1:{front.port}/")  # where the person came from
    await open_chat(page, chat_url(front))
    await send(page, "hallo")
    await expect(page.locator("li.vt-mine[data-acked='1']")).to_have_count(1)
    kept = await page.evaluate(
        "async () => [localStorage.length, sessionStorage.length, document.cookie.length,"
        " (await indexedDB.databases()).length]"
    )
    assert kept == [0, 0, 0, 0], "the chat keeps something on the device"
    await screenshot(page, f"webchat-before-quick-exit-{how.replace(' ', '-')}")
    if how == "button":
        await page.get_by_role("button", name="Snel weg").click()
    elif how == "escape":
        await page.keyboard.press("Escape")
    else:
        await page.locator("#vt-input").click()
        for _ in range(3):
            await page.keyboard.press("Shift")
    await page.wait_for_url(chat_world["exit_url"])
    await expect(page.get_by_text("Het weer voor morgen.")).to_be_visible()
    await page.go_back()
    assert "/channels/" not in page.url, "the chat is one back-button press away"
    state = await context.storage_state()
    assert state["cookies"] == [] and all(not o.get("localStorage") for o in state["origins"])
    connection = await asyncpg.connect(chat_world["database_url"])
    try:
        ended = await connection.fetchval("SELECT count(*) FROM webchat_sessions WHERE ended_at IS NOT NULL")
        open_ = await connection.fetchval("SELECT count(*) FROM webchat_sessions WHERE ended_at IS NULL")
    finally:
        await connection.close()
    assert (ended, open_) == (1, 0), "the server did not end the session"
    await context.close()


@pytest.mark.clock(CLOSED_SATURDAY)
async def test_closed_outside_hours_with_the_next_opening(browser: Browser, chat_world) -> None:
    page = await browser.new_page()
    await page.goto(chat_url(chat_world["front"]))
    await expect(page.locator(".vt-state")).to_have_text(
        "De chat is nu gesloten. We zijn er weer op maandag 24 november om 09:00."
    )
    await expect(page.get_by_text("Bel gratis 0800-2000")).to_be_visible()
    await expect(page.get_by_text("In acuut gevaar? Bel 112.")).to_be_visible()
    await screenshot(page, "webchat-closed")
    await page.close()


@pytest.mark.idle(5)
async def test_an_idle_session_expires_and_the_page_says_so(browser: Browser, chat_world) -> None:
    page = await browser.new_page()
    await open_chat(page, chat_url(chat_world["front"]))
    await send(page, "hallo")
    await expect(page.locator(".vt-notice")).to_contain_text("omdat het een tijd stil was", timeout=20000)
    await expect(page.locator(".vt-start")).to_be_visible()
    await screenshot(page, "webchat-expired")
    await page.close()


async def socket(front: ServiceProcess, origin: str | None):  # type: ignore[no-untyped-def]
    session = ClientSession()
    headers = {"Origin": origin} if origin else {}
    try:
        return session, await session.ws_connect(
            f"ws://127.0.0.1:{front.port}/channels/{CHANNEL}/socket", headers=headers
        )
    except WSServerHandshakeError:
        await session.close()
        raise


@pytest.mark.parametrize("origin", ["https://evil.example", None, "null"])
async def test_an_origin_that_is_not_configured_is_refused(chat_world, origin) -> None:
    with pytest.raises(WSServerHandshakeError) as refused:
        await socket(chat_world["front"], origin)
    assert refused.value.status == 403


async def test_a_configured_region_site_may_open_a_socket(chat_world) -> None:
    session, ws = await socket(chat_world["front"], "https://www.veiligthuiszob.nl")
    try:
        await ws.send_str(json.dumps({"type": "start"}))
        assert (await ws.receive_json())["type"] == "started"
    finally:
        await ws.close()
        await session.close()


BAD_FRAMES = [
    ("not json", "hallo", "bad_frame"),
    ("json but not an object", "[1, 2]", "bad_frame"),
    ("unknown type", json.dumps({"type": "hack"}), "bad_frame"),
    ("no seq", json.dumps({"type": "message", "text": "x"}), "bad_frame"),
    ("seq not a number", json.dumps({"type": "message", "seq": "1", "text": "x"}), "bad_frame"),
    ("empty text", json.dumps({"type": "message", "seq": 1, "text": "   "}), "bad_frame"),
    ("text too long", json.dumps({"type": "message", "seq": 1, "text": "x" * 2001}), "too_large"),
    (
        "resume with a made-up token",
        json.dumps({"type": "resume", "session": "abc", "last_reply": 0}),
        "unknown_session",
    ),
]


@pytest.mark.parametrize(("name", "frame", "error"), BAD_FRAMES, ids=[b[0] for b in BAD_FRAMES])
async def test_a_bad_frame_gets_an_error_frame_and_nothing_is_published(
    chat_world, name, frame, error
) -> None:
    front, url = chat_world["front"], chat_world["url"]
    session, ws = await socket(front, f"http://127.0.0.1:{front.port}")
    try:
        if not name.startswith("resume"):
            await ws.send_str(json.dumps({"type": "start"}))
            assert (await ws.receive_json())["type"] == "started"
        await ws.send_str(frame)
        answer = await ws.receive_json(timeout=5)
        assert answer["type"] == "error" and answer["error"] == error
        await ws.send_str(json.dumps({"type": "ping"}))
        assert (await ws.receive_json(timeout=5))["type"] == "pong", "the socket did not survive a bad frame"
    finally:
        await ws.close()
        await session.close()
    config = load_config(chat_world["root"])
    await asyncio.sleep(0.5)
    assert sum((await queue_depths(url, inbound_queues(config) + REGION_QUEUES)).values()) == 0


async def test_an_oversized_frame_closes_the_socket_and_publishes_nothing(chat_world) -> None:
    front = chat_world["front"]
    session, ws = await socket(front, f"http://127.0.0.1:{front.port}")
    try:
        await ws.send_str(json.dumps({"type": "start"}))
        await ws.receive_json()
        await ws.send_str(json.dumps({"type": "message", "seq": 1, "text": "x" * 40_000}))
        closing = await ws.receive(timeout=5)
        assert closing.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING)
        assert ws.close_code == 1009
    finally:
        await session.close()
    config = load_config(chat_world["root"])
    assert sum((await queue_depths(chat_world["url"], inbound_queues(config))).values()) == 0


async def test_messages_beyond_the_rate_limit_are_refused(chat_world) -> None:
    front = chat_world["front"]
    session, ws = await socket(front, f"http://127.0.0.1:{front.port}")
    answers = []
    try:
        await ws.send_str(json.dumps({"type": "start"}))
        await ws.receive_json()
        for seq in range(1, 24):
            await ws.send_str(json.dumps({"type": "message", "seq": seq, "text": f"bericht {seq}"}))
            answers.append(await ws.receive_json(timeout=5))
    finally:
        await ws.close()
        await session.close()
    assert [a["type"] for a in answers[:20]] == ["ack"] * 20
    assert all(
        a == {"type": "error", "error": "rate_limited", "detail": a["detail"], "seq": a["seq"]}
        for a in answers[20:]
    )
    assert len(await routed(chat_world["url"], 20)) == 20


async def test_the_widget_on_a_region_site_with_one_script_tag(browser: Browser, chat_world) -> None:
    page = await browser.new_page()
    await page.goto(chat_world["exit_url"] + "regio")  # an allowed origin
    launcher = page.get_by_role("button", name="Chat met Veilig Thuis")
    await launcher.click()
    await expect(launcher).to_have_attribute("aria-expanded", "true")
    chat = page.frame_locator("iframe.vt-frame")  # the chat, from the gateway's own origin
    await expect(chat.get_by_role("button", name="Snel weg")).to_be_focused()
    await chat.get_by_role("button", name="Start de chat").click()
    await chat.get_by_label("Jouw bericht").fill("via de site van de regio")
    await chat.get_by_role("button", name="Verstuur").click()
    await expect(chat.locator("li.vt-mine[data-acked='1']")).to_have_count(1)
    await screenshot(page, "webchat-widget-on-region-site")
    assert [e.text for e in await routed(chat_world["url"], 1)] == ["via de site van de regio"]

    other = await browser.new_page()  # the same page from an origin nobody configured
    await other.goto(chat_world["exit_url"].replace("127.0.0.1", "localhost") + "regio")
    await other.get_by_role("button", name="Chat met Veilig Thuis").click()
    await expect(other.get_by_text("Bel gratis 0800-2000 (24/7)")).to_be_visible()  # the numbers, always
    await expect(other.get_by_text("In acuut gevaar: bel 112.")).to_be_visible()
    assert await other.locator("iframe").count() == 0  # the gateway answers this origin no status: no chat
    await screenshot(other, "webchat-widget-on-unconfigured-site")
    assert await routed(chat_world["url"], 0) == []


async def test_keyboard_only_and_a_strict_content_security_policy(browser: Browser, chat_world) -> None:
    front = chat_world["front"]
    page = await browser.new_page()
    response = await page.goto(chat_url(front))
    assert response is not None
    csp = response.headers["content-security-policy"]
    for directive in (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "frame-ancestors 'none'",
    ):
        assert directive in csp
    await expect(page.locator(".vt-start")).to_be_enabled()
    for _ in range(6):  # Tab through the bar (quick exit comes first) to the start button
        await page.keyboard.press("Tab")
        if await page.evaluate("document.activeElement.classList.contains('vt-start')"):
            break
    else:
        raise AssertionError("the start button cannot be reached with Tab")
    assert await page.evaluate("getComputedStyle(document.activeElement).outlineStyle") == "solid"
    await page.keyboard.press("Enter")
    await expect(page.locator("#vt-input")).to_be_focused()
    await page.keyboard.type("alleen met het toetsenbord")
    await page.keyboard.press("Enter")
    await expect(page.locator("li.vt-mine[data-acked='1']")).to_have_count(1)
    assert [e.text for e in await routed(chat_world["url"], 1)] == ["alleen met het toetsenbord"]
    await page.close()
