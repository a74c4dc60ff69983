"""Attachments a person sends, fetched by the desk from fake provider media servers on
loopback (tests/helpers/media.py) and served to the console: real desk processes,
PostgreSQL and RabbitMQ, the real twilio validator and python-telegram-bot's Bot.

The table is the contract: each row is one message as the provider sends it and what
the counsellor must see of its attachment; a new case is one row."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import pytest
import yaml
from aiohttp import ClientSession
from twilio.request_validator import RequestValidator

from adapters.telegram.cases import TELEGRAM_SECRET
from adapters.telegram.cases import message as telegram_message
from adapters.twilio.cases import PUBLIC, TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, sms
from tests.helpers.media import CDN_HOST, IMAGE, PDF, MediaServer
from tests.integration.conftest import call, listed, running_desks

pytestmark = pytest.mark.broker


SMS_CHANNEL = "sms-zuidoost-brabant"
TELEGRAM_CHANNEL = "telegram-amsterdam-amstelland"


@dataclass(frozen=True)
class Row:
    name: str
    channel: str  # "sms" (Twilio) or "telegram"
    media: str  # what the fake media server does (tests/helpers/media.py)
    declared: str  # the content type the provider's message gives
    status: str  # what the desk must end with: stored or refused
    reason: str | None = None
    inline: bool = False
    body: bytes | None = None  # what the console must be served
    elsewhere: bool = False  # the message's own URL is on a host that is not the provider's


ROWS = [
    Row("twilio photo", "sms", "photo", "image/png", "stored", inline=True, body=IMAGE),
    Row("twilio pdf", "sms", "document", "application/pdf", "stored", body=PDF),
    Row("twilio svg sent as png", "sms", "disguised", "image/png", "stored", inline=False),
    Row("twilio oversized, announced", "sms", "oversized", "image/jpeg", "refused", "too_large"),
    Row("twilio oversized, unannounced", "sms", "oversized-unannounced", "image/jpeg", "refused",
        "too_large"),
    Row("twilio wrong content type", "sms", "html", "image/jpeg", "refused", "type_not_allowed"),
    Row("twilio redirect to another host", "sms", "redirect-elsewhere", "image/png", "refused",
        "host_not_allowed"),
    Row("twilio redirect loop", "sms", "redirect-loop", "image/png", "refused", "too_many_redirects"),
    Row("twilio media deleted", "sms", "gone", "image/png", "refused", "provider_404"),
    Row("media url on another host", "sms", "photo", "image/png", "refused", "host_not_allowed",
        elsewhere=True),
    Row("telegram photo", "telegram", "photo", "image/jpeg", "stored", inline=True, body=IMAGE),
    Row("telegram document", "telegram", "document", "application/pdf", "stored", body=PDF),
    Row("telegram unknown file", "telegram", "gone", "image/jpeg", "refused", "telegram_get_file"),
]  # fmt: skip


def point_channels_at(media: MediaServer):
    """The SMS channel's API base and the Telegram bot's are the fake media server; the
    bot's conversations go to Zuidoost-Brabant, where the test's counsellors work."""

    def edit(root: Path) -> None:
        path = root / "channels" / f"{SMS_CHANNEL}.yaml"
        sms_channel = yaml.safe_load(path.read_text())
        sms_channel["settings"]["api_base_url"] = media.base_url
        sms_channel["settings"]["media_hosts"] = [CDN_HOST]
        path.write_text(yaml.safe_dump(sms_channel))
        path = root / "channels" / f"{TELEGRAM_CHANNEL}.yaml"
        bot = yaml.safe_load(path.read_text())
        bot["region"] = "zuidoost-brabant"
        bot["settings"]["api_base_url"] = media.base_url
        path.write_text(yaml.safe_dump(bot))

    return edit


async def send(base: str, media: MediaServer, row: Row, update_id: int) -> None:
    async with ClientSession() as session:
        if row.channel == "sms":
            url = media.twilio_url(row.media)
            if row.elsewhere:
                url = url.replace("127.0.0.1", "localhost")
            sid = f"SM{uuid.uuid4().hex}"
            fields = sms(Body=row.name, From="+31612000111", MessageSid=sid, SmsSid=sid, SmsMessageSid=sid,
                         NumMedia="1", MediaUrl0=url, MediaContentType0=row.declared)  # fmt: skip
            signature = RequestValidator(TWILIO_AUTH_TOKEN).compute_signature(
                PUBLIC.format(channel=SMS_CHANNEL), fields
            )
            headers = {"X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded"}
            target, body = f"{base}/channels/{SMS_CHANNEL}/webhook", urlencode(fields).encode()
        else:
            file = {"file_id": f"BQACAgQ-{row.media}", "file_unique_id": row.media, "file_size": 100}
            content: dict[str, object] = {"caption": row.name}
            if row.declared.startswith("image/"):
                content["photo"] = [{**file, "width": 4, "height": 3}]
            else:
                content["document"] = {**file, "file_name": "brief.pdf", "mime_type": row.declared}
            body = telegram_message(update_id, **content)
            headers = {"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET, "Content-Type": "application/json"}
            target = f"{base}/channels/{TELEGRAM_CHANNEL}/webhook"
        async with session.post(target, data=body, headers=headers) as r:
            assert r.status == 200, (row.name, await r.text())


async def settled(desks: dict, token: str, count: int) -> dict[str, dict]:
    """Each message's first attachment by the message's text, once none is pending."""
    found: dict[str, dict] = {}
    for _ in range(300):
        found = {}
        for summary in (await listed(desks, "anna-zob", via="a"))[:5]:
            status, conversation = await call(
                desks["a"].base, "GET", f"/api/v1/conversations/{summary['conversation_id']}", token
            )
            assert status == 200
            for entry in conversation["transcript"]:
                if entry["attachments"]:  # by the caption, after a mark like "[foto] "
                    found[re.sub(r"^(\[[^\]]*\] )+", "", entry["text"])] = entry["attachments"][0]
        if len(found) == count and all(a["status"] != "pending" for a in found.values()):
            return found
        await asyncio.sleep(0.2)
    raise AssertionError(f"attachments not settled: {json.dumps(found, indent=1)[:2000]}")


def read_logs(*paths: Path) -> str:
    return "".join(Path(p).read_text() for p in paths)


async def fetch_as(base: str, url: str, token: str | None) -> tuple[int, dict[str, str], bytes]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with ClientSession() as session, session.get(base + url, headers=headers) as r:
        return r.status, dict(r.headers), await r.read()


async def test_attachments_are_fetched_within_limits_and_served_only_to_the_team(
    vhost, database_url, tmp_path, example_env, password_hash
):
    media = await MediaServer().start()
    try:
        async with running_desks(
            vhost, database_url, tmp_path, password_hash, edit=point_channels_at(media)
        ) as desks:
            token = desks["tokens"]["anna-zob"]
            for n, row in enumerate(ROWS):
                await send(desks["a"].base, media, row, 300000 + n)
            found = await settled(desks, token, len(ROWS))

            wrong = []
            for row in ROWS:
                got = found[row.name]
                if (got["status"], got["reason"]) != (row.status, row.reason):
                    wanted = f"{row.status}/{row.reason}"
                    wrong.append(f"{row.name}: {got['status']}/{got['reason']}, wanted {wanted}")
                    continue
                if row.status != "stored":
                    assert got["url"] is None, row.name
                    continue
                if got["inline"] != row.inline:
                    wrong.append(f"{row.name}: inline {got['inline']}")
                status, headers, body = await fetch_as(desks["b"].base, got["url"], token)
                assert status == 200, row.name
                if row.body is not None:
                    assert body == row.body, row.name
                assert headers["X-Content-Type-Options"] == "nosniff"
                assert headers["Content-Security-Policy"] == "default-src 'none'; sandbox"
                assert headers["Cache-Control"] == "no-store"
                if row.inline:  # the fake's photo is a PNG, whatever the message said
                    assert headers["Content-Type"] == "image/png", row.name
                    assert "Content-Disposition" not in headers
                else:  # never rendered: a download, whatever the file says it is
                    assert headers["Content-Type"] == "application/octet-stream", row.name
                    assert headers["Content-Disposition"].startswith('attachment; filename="bijlage-1.')
            assert not wrong, "\n".join(wrong)

            # A redirect to another host, or a URL on one, is never requested there.
            assert media.paths_on("localhost") == []
            # Credentials went to Twilio's media URL only, never to the CDN it redirects to.
            assert media.paths_on(CDN_HOST)
            assert all(not s.authorized for s in media.seen if s.host == CDN_HOST)

            photo = found["twilio photo"]
            assert (await fetch_as(desks["a"].base, photo["url"], None))[0] == 401
            other_team = desks["tokens"]["carla-rr"]
            assert (await fetch_as(desks["a"].base, photo["url"], other_team))[0] == 403
            unknown = photo["url"].rsplit("/", 1)[0] + "/" + "0" * 32
            assert (await fetch_as(desks["a"].base, unknown, token))[0] == 404

            # Nothing in the logs says where the provider keeps the files, nor its secrets.
            await asyncio.sleep(0.5)
            logs = read_logs(desks["a"].log_path, desks["b"].log_path)
            assert "attachment_stored" in logs and "attachment_refused" in logs
            for secret in ("/Media/", "/cdn/", "photos/", TWILIO_AUTH_TOKEN, TWILIO_ACCOUNT_SID, "BQACAgQ"):
                assert secret not in logs, secret
    finally:
        await media.stop()
