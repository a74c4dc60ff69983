"""Conversations both ways through a real `gateway run` process, the real RabbitMQ
and PostgreSQL, and local fakes of the Twilio and Telegram APIs driven by the
real client libraries: inbound webhook, region queue, a reply published to
gw.outbound as the desk does, and the exact API call the provider receives.
Then the provider's failures: 5xx, 4xx, 429, no answer at all."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import aio_pika
import pytest
import yaml
from aiohttp import ClientSession
from twilio.request_validator import RequestValidator

from adapters.telegram.cases import TELEGRAM_BOT_TOKEN, TELEGRAM_CHANNEL, TELEGRAM_SECRET
from adapters.twilio.cases import SMS_CHANNEL, TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, WHATSAPP_CHANNEL
from gateway.domain.envelope import Envelope, OutboundMessage
from gateway.service import load_config
from gateway.support.keys import Keyring
from tests.conftest import (
    EXAMPLE_CONFIG,
    TEST_SECRET,
    ServiceProcess,
    clean_state,
    drain,
    team_queues,
)
from tests.fakes import FakeProvider

pytestmark = pytest.mark.broker

PERSON = "+31687654321"
CHAT_ID = 5550009876
REPLY = "Dag, je spreekt met Veilig Thuis. Ben je nu veilig?"
TWILIO_AUTH = "Basic " + base64.b64encode(f"{TWILIO_ACCOUNT_SID}:{TWILIO_AUTH_TOKEN}".encode()).decode()
MESSAGES_PATH = f"/2010-04-01/Accounts/{TWILIO_ACCOUNT_SID}/Messages.json"
PUBLIC = "https://gateway.veiligthuis.example/channels/{channel}/webhook"
REGION = {
    SMS_CHANNEL: "zuidoost-brabant",
    WHATSAPP_CHANNEL: "rotterdam-rijnmond",
    TELEGRAM_CHANNEL: "amsterdam-amstelland",
}
OPEN_MONDAY = "2025-11-24T10:00:00+01:00"


def provider_config(root: Path, twilio: FakeProvider, telegram: FakeProvider) -> Path:
    """The example configuration with the providers' API base URLs on the fakes and short
    timeouts, so failures show within a test's patience."""
    shutil.copytree(EXAMPLE_CONFIG, root)
    for channel, base in ((SMS_CHANNEL, twilio), (WHATSAPP_CHANNEL, twilio), (TELEGRAM_CHANNEL, telegram)):
        path = root / "channels" / f"{channel}.yaml"
        data = yaml.safe_load(path.read_text())
        data["settings"]["api_base_url"] = base.base_url
        path.write_text(yaml.safe_dump(data, allow_unicode=True))
    service = yaml.safe_load((root / "gateway.yaml").read_text())
    service["outbound"] = {"send_timeout_seconds": 0.5, "attempts": 3, "max_backoff_seconds": 0.2}
    (root / "gateway.yaml").write_text(yaml.safe_dump(service))
    return root


@pytest.fixture
async def world(vhost, database_url, tmp_path, example_env) -> AsyncIterator[dict]:
    twilio = await FakeProvider("twilio").start()
    telegram = await FakeProvider("telegram").start()
    root = provider_config(tmp_path / "config", twilio, telegram)
    await clean_state(vhost[1], database_url, load_config(root))
    process = ServiceProcess(
        vhost[1],
        tmp_path / "gateway.log",
        roles=("ingest", "router", "outbound"),  # no desk: the tests read the region queues
        config_dir=root,
        GATEWAY_DATABASE_URL=database_url,
        GATEWAY_FAKE_TIME=OPEN_MONDAY,
    )
    try:
        await process.wait_ready(40)
        yield {"twilio": twilio, "telegram": telegram, "process": process, "url": vhost[1]}
    finally:
        process.stop()
        await twilio.stop()
        await telegram.stop()


def twilio_inbound(channel: str, sid: str) -> tuple[bytes, dict[str, str]]:
    prefix = "whatsapp:" if channel == WHATSAPP_CHANNEL else ""
    number = "+3197010580002" if prefix else "+3197010580001"
    fields = {
        "MessageSid": sid, "SmsMessageSid": sid, "AccountSid": TWILIO_ACCOUNT_SID, "From": prefix + PERSON,
        "To": prefix + number, "Body": "Ik durf niet naar huis", "NumMedia": "0", "ApiVersion": "2010-04-01",
    }  # fmt: skip
    signature = RequestValidator(TWILIO_AUTH_TOKEN).compute_signature(PUBLIC.format(channel=channel), fields)
    headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature}
    return urlencode(fields).encode(), headers


def telegram_inbound(update_id: int) -> tuple[bytes, dict[str, str]]:
    chat = {"id": CHAT_ID, "type": "private", "first_name": "Sam"}
    body = {
        "update_id": update_id,
        "message": {"message_id": 7, "date": 1763900000, "chat": chat, "from": {**chat, "is_bot": False},
                    "text": "Ik durf niet naar huis"},
    }  # fmt: skip
    headers = {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET}
    return json.dumps(body).encode(), headers


async def inbound(world: dict, channel: str) -> Envelope:
    """A person writes in; returns the envelope as routed to the region queue."""
    if channel == TELEGRAM_CHANNEL:
        body, headers = telegram_inbound(int(uuid.uuid4().int % 10**9))
    else:
        body, headers = twilio_inbound(channel, "SM" + uuid.uuid4().hex)
    async with ClientSession() as session:
        url = f"{world['process'].base}/channels/{channel}/webhook"
        async with session.post(url, data=body, headers=headers) as response:
            assert response.status == 200, await response.text()
    routed = await drain(world["url"], team_queues(REGION[channel]), idle=1.5)
    assert len(routed) == 1
    return Envelope.from_json(routed[0].body)


async def publish_reply(
    url: str, envelope: Envelope, *, reply_id: str | None = None, handle: str | None = None
) -> str:
    """What the desk does: a counsellor's reply to gw.outbound."""
    reply = OutboundMessage(
        id=reply_id or str(uuid.uuid4()),
        conversation_id=envelope.conversation_id,
        channel=envelope.channel,
        reply_handle=handle or envelope.reply_handle,
        text=REPLY,
        origin="counsellor",
        in_reply_to=envelope.id,
        created_at=datetime.now(UTC),
    )
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange("gw.outbound", ensure=False)
        message = aio_pika.Message(
            reply.to_json(),
            message_id=reply.id,
            correlation_id=reply.conversation_id,
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        await exchange.publish(message, f"{envelope.channel.kind}.{envelope.channel.instance}")
    finally:
        await connection.close()
    return reply.id


async def metric(world: dict, line_start: str) -> float:
    async with ClientSession() as session, session.get(f"{world['process'].base}/metrics") as response:
        for line in (await response.text()).splitlines():
            if line.startswith(line_start):
                return float(line.rsplit(" ", 1)[1])
    return 0.0


async def settle(seconds: float = 1.5) -> None:
    """Give the outbound role time to do anything more it would (it must not)."""
    await asyncio.sleep(seconds)


@pytest.mark.parametrize("channel", [SMS_CHANNEL, WHATSAPP_CHANNEL])
async def test_a_twilio_conversation_both_ways(world, channel) -> None:
    twilio: FakeProvider = world["twilio"]
    envelope = await inbound(world, channel)
    await publish_reply(world["url"], envelope)
    calls = await twilio.wait_for_calls(1)
    await settle()
    assert len(calls) == 1
    prefix = "whatsapp:" if channel == WHATSAPP_CHANNEL else ""
    number = "+3197010580002" if prefix else "+3197010580001"
    assert calls[0].path == MESSAGES_PATH
    assert calls[0].fields == {"To": prefix + PERSON, "From": prefix + number, "Body": REPLY}
    assert calls[0].authorization == TWILIO_AUTH
    kind = envelope.channel.kind
    assert (
        await metric(world, f'gateway_outbound_sent_total{{channel_kind="{kind}",origin="counsellor"}}') == 1
    )
    logs = world["process"].logs()
    assert "reply_sent" in logs
    for secret in (PERSON, PERSON[3:], REPLY, "naar huis", TWILIO_AUTH_TOKEN):
        assert secret not in logs, "a number, text or credential reached the logs"


async def test_a_telegram_conversation_both_ways(world) -> None:
    telegram: FakeProvider = world["telegram"]
    envelope = await inbound(world, TELEGRAM_CHANNEL)
    await publish_reply(world["url"], envelope)
    calls = await telegram.wait_for_calls(1)
    await settle()
    assert len(calls) == 1
    assert calls[0].path == f"/bot{TELEGRAM_BOT_TOKEN}/sendMessage"
    assert calls[0].fields == {"chat_id": str(CHAT_ID), "text": REPLY}
    logs = world["process"].logs()
    for secret in (str(CHAT_ID), REPLY, TELEGRAM_BOT_TOKEN, TELEGRAM_SECRET):
        assert secret not in logs, "a chat id, text or credential reached the logs"


async def test_two_server_errors_then_success_is_one_delivery(world) -> None:
    twilio: FakeProvider = world["twilio"].then("500", "500")
    envelope = await inbound(world, SMS_CHANNEL)
    await publish_reply(world["url"], envelope)
    calls = await twilio.wait_for_calls(3)
    await settle()
    assert len(calls) == 3 and all(c.fields["Body"] == REPLY for c in calls)
    assert (
        await metric(world, 'gateway_outbound_retries_total{channel_kind="sms",reason="twilio-http-500"}')
        == 2
    )
    assert await metric(world, 'gateway_outbound_sent_total{channel_kind="sms"') == 1
    assert await drain(world["url"], ["gw.dead"], idle=0.5) == []


async def test_a_refusal_is_dead_lettered_with_the_provider_code(world) -> None:
    twilio: FakeProvider = world["twilio"].then("400")
    envelope = await inbound(world, SMS_CHANNEL)
    reply_id = await publish_reply(world["url"], envelope)
    await twilio.wait_for_calls(1)
    await settle()
    assert len(twilio.calls) == 1, "a 4xx must not be retried"
    dead = await drain(world["url"], ["gw.dead"])
    assert len(dead) == 1 and dead[0].message_id == reply_id
    assert dead[0].headers["x-gateway-reason"] == "twilio-21211"
    assert (
        await metric(world, 'gateway_outbound_failures_total{channel_kind="sms",reason="twilio-21211"}') == 1
    )


async def test_a_provider_that_never_answers_times_out_and_is_retried(world) -> None:
    telegram: FakeProvider = world["telegram"].then("hang", "hang")
    envelope = await inbound(world, TELEGRAM_CHANNEL)
    before_the_reply = asyncio.get_running_loop().time()
    await publish_reply(world["url"], envelope)
    calls = await telegram.wait_for_calls(3)
    await settle()
    assert len(calls) == 3, "two timeouts, then the third attempt got through"
    assert calls[1].at - calls[0].at < 3, "the send timeout (0.5 s) did not fire in time"
    # Not early: the third call can only come after two whole timeouts on the gateway's
    # clock, which started after the reply was published. (The gap between the fake's
    # first two arrivals is no lower bound: a starved gateway may start its timer well
    # before the first request reaches the fake; CI once measured 0.25 s that way.)
    assert calls[2].at - before_the_reply >= 2 * 0.5, "an attempt gave up before its timeout"
    assert (
        await metric(world, 'gateway_outbound_retries_total{channel_kind="telegram",reason="timeout"}') == 2
    )
    assert await metric(world, 'gateway_outbound_sent_total{channel_kind="telegram"') == 1


async def test_retry_after_is_honoured(world) -> None:
    telegram: FakeProvider = world["telegram"].then("429")
    envelope = await inbound(world, TELEGRAM_CHANNEL)
    await publish_reply(world["url"], envelope)
    calls = await telegram.wait_for_calls(2)
    assert len(calls) == 2
    assert calls[1].at - calls[0].at >= 0.95, "retried before the provider's Retry-After (1 s)"


async def test_the_same_reply_twice_is_sent_once(world) -> None:
    twilio: FakeProvider = world["twilio"]
    envelope = await inbound(world, SMS_CHANNEL)
    reply_id = str(uuid.uuid4())
    await publish_reply(world["url"], envelope, reply_id=reply_id)
    await twilio.wait_for_calls(1)
    await publish_reply(world["url"], envelope, reply_id=reply_id)
    await settle(2.0)
    assert len(twilio.calls) == 1
    assert await metric(world, 'gateway_outbound_duplicates_total{channel_kind="sms"}') == 1


async def test_whatsapp_outside_the_24_hour_window_fails_clearly(world) -> None:
    twilio: FakeProvider = world["twilio"]
    envelope = await inbound(world, WHATSAPP_CHANNEL)
    keyring = Keyring(TEST_SECRET)
    handle = keyring.unseal(envelope.reply_handle)
    handle["at"] = (datetime.now(UTC) - timedelta(hours=24, minutes=1)).isoformat()
    reply_id = await publish_reply(world["url"], envelope, handle=keyring.seal(handle))
    dead = await drain(world["url"], ["gw.dead"], idle=2.0)
    assert [m.message_id for m in dead] == [reply_id]
    assert dead[0].headers["x-gateway-reason"] == "whatsapp_window_closed"
    assert twilio.calls == [], "a free-form reply went out after the window closed"


async def test_a_forged_reply_handle_is_dead_lettered_unsent(world) -> None:
    twilio: FakeProvider = world["twilio"]
    envelope = await inbound(world, SMS_CHANNEL)
    forged = Keyring("another-secret-key-" + "z" * 32).seal(
        {"channel": SMS_CHANNEL, "address": "+31600000000"}
    )
    await publish_reply(world["url"], envelope, handle=forged)
    dead = await drain(world["url"], ["gw.dead"], idle=2.0)
    assert [m.headers["x-gateway-reason"] for m in dead] == ["unreadable_handle"]
    assert twilio.calls == []


async def test_telegram_set_webhook_registers_url_and_secret(tmp_path, example_env) -> None:
    twilio, telegram = FakeProvider("twilio"), await FakeProvider("telegram").start()
    try:
        root = provider_config(tmp_path / "config", twilio, telegram)
        command = [sys.executable, "-m", "gateway.cli", "telegram", "set-webhook", TELEGRAM_CHANNEL]
        process = await asyncio.create_subprocess_exec(
            *command, "--config", str(root), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await process.communicate()
        assert process.returncode == 0, err.decode()
        assert json.loads(out) == {
            "channel": TELEGRAM_CHANNEL,
            "url": PUBLIC.format(channel=TELEGRAM_CHANNEL),
            "ok": True,
        }
        (call,) = telegram.calls
        assert call.path == f"/bot{TELEGRAM_BOT_TOKEN}/setWebhook"
        assert call.fields["url"] == PUBLIC.format(channel=TELEGRAM_CHANNEL)
        assert call.fields["secret_token"] == TELEGRAM_SECRET
        assert json.loads(call.fields["allowed_updates"]) == ["message", "edited_message"]

        unknown = await asyncio.create_subprocess_exec(
            *command[:-1], SMS_CHANNEL, "--config", str(root), stderr=asyncio.subprocess.PIPE
        )
        _, err = await unknown.communicate()
        assert unknown.returncode == 2 and b"no telegram channel" in err
    finally:
        await telegram.stop()


async def test_an_unreachable_provider_is_retried_then_parked_by_the_delivery_limit(world) -> None:
    twilio: FakeProvider = world["twilio"]
    envelope = await inbound(world, SMS_CHANNEL)
    await twilio.stop()  # nothing listens there any more: every call is a connection error
    reply_id = await publish_reply(world["url"], envelope)
    dead = await drain(world["url"], ["gw.dead"], idle=3.0, limit=60)
    assert [m.message_id for m in dead] == [reply_id]
    assert dead[0].headers.get("x-first-death-reason") == "delivery_limit"
    retries = await metric(
        world, 'gateway_outbound_retries_total{channel_kind="sms",reason="connection_error"}'
    )
    # 3 attempts per delivery (2 retries each), over the queue's delivery limit of 5 and one more delivery
    assert retries >= 10
    assert await metric(world, 'gateway_outbound_sent_total{channel_kind="sms"') == 0


async def test_whatsapp_outside_the_window_sends_the_configured_template(tmp_path, example_env) -> None:
    from dataclasses import replace

    from adapters.twilio.kind import WhatsApp
    from gateway.domain.messages import Outgoing

    twilio = await FakeProvider("twilio").start()
    adapter = WhatsApp()
    try:
        root = provider_config(tmp_path / "config", twilio, FakeProvider("telegram"))
        channel = load_config(root).channels[WHATSAPP_CHANNEL]
        template = "HX" + "ab" * 16
        channel = replace(
            channel, settings=channel.settings.model_copy(update={"template_content_sid": template})
        )
        old = datetime.now(UTC) - timedelta(hours=30)
        await adapter.send(channel, Outgoing("r-1", f"whatsapp:{PERSON}", REPLY, last_inbound_at=old))
        recent = datetime.now(UTC) - timedelta(hours=23)
        await adapter.send(channel, Outgoing("r-2", f"whatsapp:{PERSON}", REPLY, last_inbound_at=recent))
        assert [c.fields for c in twilio.calls] == [
            {"To": f"whatsapp:{PERSON}", "From": "whatsapp:+3197010580002", "ContentSid": template},
            {"To": f"whatsapp:{PERSON}", "From": "whatsapp:+3197010580002", "Body": REPLY},
        ]
    finally:
        await adapter.close()
        await twilio.stop()
