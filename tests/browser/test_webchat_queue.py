"""The person's place in the queue in the web chat, in a real browser: three people of
one team write, a counsellor takes "volgende" through the desk API of another process,
and each page's place moves as others are taken, and goes away when a counsellor has
their own conversation. The sockets live in the ingest process, the queue in the desk
process; RabbitMQ and PostgreSQL are real."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml
from aiohttp import ClientSession
from playwright.async_api import Browser, BrowserContext, Locator, Page, expect

from gateway.service import load_config
from gateway.support.passwords import hash_password
from tests.browser.conftest import OPEN_MONDAY, browser_config, screenshot, serious_accessibility_violations
from tests.browser.test_webchat import chat_url, neutral_site, open_chat, send
from tests.conftest import ServiceProcess, clean_state
from tests.helpers.desk import Counsellors
from tests.integration.conftest import call, listed

pytestmark = pytest.mark.broker

COUNSELLOR, TEAM = "anna-zob", "zuidoost-brabant"
PASSWORD = "counsellor-password-2026"


@pytest.fixture(scope="module")
def counsellor_hash() -> str:
    return hash_password(PASSWORD)


@pytest.fixture
async def queue_world(
    vhost, database_url, tmp_path: Path, example_env, pharmacy_hash, counsellor_hash
) -> AsyncIterator[dict]:
    """`front` holds the sockets (ingest, router), `desk` the counsellors' API (desk);
    one counsellor of the team signed in, second factor and all."""
    gateway: dict[str, int] = {}
    neutral, exit_url = await neutral_site(gateway)
    root = browser_config(tmp_path / "config", pharmacy_hash, exit_url=exit_url)
    account = {"id": COUNSELLOR, "name": "Anna", "team": TEAM, "password_hash": counsellor_hash}
    (root / "counsellors.yaml").write_text(yaml.safe_dump({"counsellors": [account]}))
    await clean_state(vhost[1], database_url, load_config(root))
    env = {"GATEWAY_DATABASE_URL": database_url, "GATEWAY_FAKE_TIME": OPEN_MONDAY}
    front = ServiceProcess(
        vhost[1], tmp_path / "front.log", roles=("ingest", "router"), config_dir=root, **env
    )
    desk = ServiceProcess(vhost[1], tmp_path / "desk.log", roles=("desk",), config_dir=root, **env)
    gateway["port"] = front.port
    try:
        await front.wait_ready(40)
        await desk.wait_ready(40)
        async with ClientSession() as session:
            signed_in = await Counsellors(PASSWORD).sign_in(session, desk.base, COUNSELLOR)
        yield {"front": front, "desk": desk, "token": signed_in["token"]}
    finally:
        front.stop()
        desk.stop()
        await neutral.cleanup()


class Person:
    """One person's page, and every queue frame their socket was sent."""

    def __init__(self, context: BrowserContext, page: Page) -> None:
        self.context, self.page = context, page
        self.frames: list[dict] = []
        page.on("websocket", lambda ws: ws.on("framereceived", self._received))

    def _received(self, payload: str | bytes) -> None:
        frame = json.loads(payload)
        if frame.get("type") == "queue":
            self.frames.append(frame)

    @property
    def place(self) -> Locator:
        return self.page.locator(".vt-place")

    @property
    def places(self) -> list[int | None]:
        return [frame["place"] for frame in self.frames]


async def waiting_at_the_desk(world: dict, count: int) -> list[dict]:
    conversations = await listed({"b": world["desk"], "tokens": {COUNSELLOR: world["token"]}},
                                 COUNSELLOR, count=count)  # fmt: skip
    assert len(conversations) == count
    return conversations


async def volgende(world: dict) -> str:
    status, answer = await call(world["desk"].base, "POST", "/api/v1/queue/next", world["token"])
    assert status == 200, answer
    return answer["conversation_id"]


async def test_the_place_in_the_queue_moves_as_others_are_taken(browser: Browser, queue_world) -> None:
    front = queue_world["front"]
    people: list[Person] = []
    for number in range(1, 4):  # one after the other, each in the desk's queue before the next writes
        context = await browser.new_context(bypass_csp=True)  # only so axe-core can be injected
        person = Person(context, await context.new_page())
        await open_chat(person.page, chat_url(front))
        await expect(person.place).to_have_attribute("aria-live", "polite")
        await expect(person.place).to_be_empty()  # no place before the first message is queued
        await send(person.page, f"Bericht van persoon {number}")
        await expect(person.page.locator("li.vt-mine[data-acked='1']")).to_have_count(1)
        await waiting_at_the_desk(queue_world, number)
        people.append(person)
    first, second, third = people

    await expect(first.place).to_have_text("Je bent nummer 1 in de rij.")
    await expect(second.place).to_have_text("Je bent nummer 2 in de rij.")
    await expect(third.place).to_have_text("Je bent nummer 3 in de rij.")
    await screenshot(third.page, "webchat-queue-place")
    assert await serious_accessibility_violations(third.page) == []
    await third.page.get_by_role("button", name="Switch to English").click()
    await expect(third.place).to_have_text("You are number 3 in the queue.")
    await third.page.get_by_role("button", name="Schakel naar Nederlands").click()

    await volgende(queue_world)
    await expect(first.place).to_be_empty()  # a counsellor has the first person's conversation
    await expect(second.place).to_have_text("Je bent nummer 1 in de rij.")
    await expect(third.place).to_have_text("Je bent nummer 2 in de rij.")

    await volgende(queue_world)
    await expect(second.place).to_be_empty()
    await expect(third.place).to_have_text("Je bent nummer 1 in de rij.")

    taken = await volgende(queue_world)
    await expect(third.place).to_be_empty()
    await screenshot(third.page, "webchat-queue-taken")
    (own,) = [c for c in await waiting_at_the_desk(queue_world, 3) if c["conversation_id"] == taken]
    assert own["status"] == "claimed" and own["preview"] == "Bericht van persoon 3"

    assert first.places == [1, None]
    assert second.places == [2, 1, None]
    assert third.places == [3, 2, 1, None], "a place was skipped, repeated or went the wrong way"
    for person in people:
        assert all(set(frame) == {"type", "place"} for frame in person.frames), "more than the number"
        await person.context.close()
    logs = front.logs()
    assert "Bericht van persoon" not in logs and "webchat_queue_places_failed" not in logs
