"""A region plugs in a channel by configuration: one file added, a reload (SIGHUP or
POST /admin/reload), and the channel takes messages without a restart, while a
steady stream of webhooks on another channel loses nothing. A file that fails
validation is refused, naming the file and the field, and the running
configuration stays in force."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import uuid
from pathlib import Path
from urllib.parse import urlencode

import pytest
from aiohttp import ClientSession
from twilio.request_validator import RequestValidator

from adapters.http_json.cases import HTTP_JSON_CHANNEL, TEST_TOKEN
from gateway.service import load_config
from tests.conftest import (
    EXAMPLE_CONFIG,
    ServiceProcess,
    auth,
    drain,
    inbound_queues,
    purge_all,
)

pytestmark = pytest.mark.broker

NEW_CHANNEL = "sms-haaglanden"
NEW_SID, NEW_AUTH = "AC" + "9" * 32, "haaglanden-auth-token-0123456789"
ADMIN_TOKEN = "admin-token-" + "a" * 24
NEW_FILE = f"""# Added while the service runs.
id: {NEW_CHANNEL}
kind: sms
region: haaglanden
settings:
  account_sid: ${{GW_SMS_HAAGLANDEN_ACCOUNT_SID}}
  auth_token: ${{GW_SMS_HAAGLANDEN_AUTH_TOKEN}}
  number: "+3197010580009"
  public_url: https://gateway.veiligthuis.example/channels/{NEW_CHANNEL}/webhook
"""


class Load:
    """Clients posting unique http-json messages back to back; remembers every envelope id
    the gateway answered 2xx for, and counts anything else."""

    def __init__(self, base: str, clients: int = 8) -> None:
        self.base = base
        self.clients = clients
        self.accepted: list[str] = []
        self.failed = 0
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Load:
        self._session = ClientSession()
        self._tasks = [asyncio.create_task(self._client(n)) for n in range(self.clients)]
        return self

    async def __aexit__(self, *_: object) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)
        await self._session.close()

    async def _client(self, n: int) -> None:
        url = f"{self.base}/channels/{HTTP_JSON_CHANNEL}/webhook"
        while not self._stop.is_set():
            body = {"message_id": uuid.uuid4().hex, "sender": f"person-{n}", "text": "hallo"}
            async with self._session.post(url, data=json.dumps(body), headers=auth()) as response:
                if response.status == 202:
                    self.accepted.extend((await response.json())["ids"])
                else:
                    self.failed += 1


async def post_sms(base: str, channel: str) -> int:
    fields = {"MessageSid": "SM" + uuid.uuid4().hex, "From": "+31611111111", "To": "+3197010580009",
              "Body": "hallo", "NumMedia": "0", "AccountSid": NEW_SID}  # fmt: skip
    url = f"{base}/channels/{channel}/webhook"
    public = f"https://gateway.veiligthuis.example/channels/{channel}/webhook"  # as Twilio calls it
    signature = RequestValidator(NEW_AUTH).compute_signature(public, fields)
    headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature}
    async with ClientSession() as session, session.post(url, data=urlencode(fields), headers=headers) as r:
        return r.status


async def admin_reload(base: str, token: str = ADMIN_TOKEN) -> tuple[int, dict]:
    async with (
        ClientSession() as session,
        session.post(f"{base}/admin/reload", headers={"Authorization": f"Bearer {token}"}) as response,
    ):
        return response.status, await response.json()


async def test_channels_plug_in_by_configuration_under_load(vhost, example_env, tmp_path: Path) -> None:
    root = tmp_path / "config"
    shutil.copytree(EXAMPLE_CONFIG, root)
    await purge_all(vhost[1], load_config(root))
    process = ServiceProcess(
        vhost[1],
        tmp_path / "gateway.log",
        roles=("ingest",),
        config_dir=root,
        GATEWAY_ADMIN_TOKEN=ADMIN_TOKEN,
        GW_SMS_HAAGLANDEN_ACCOUNT_SID=NEW_SID,
        GW_SMS_HAAGLANDEN_AUTH_TOKEN=NEW_AUTH,
    )
    try:
        await process.wait_ready()
        assert await post_sms(process.base, NEW_CHANNEL) == 404
        async with Load(process.base) as load:
            await asyncio.sleep(1.0)
            (root / "channels" / f"{NEW_CHANNEL}.yaml").write_text(NEW_FILE)
            process.process.send_signal(signal.SIGHUP)
            for _ in range(50):
                if await post_sms(process.base, NEW_CHANNEL) == 200:
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("the new channel never took a message after SIGHUP")

            # A broken file: refused with file and field, and nothing changes.
            broken = root / "channels" / "whatsapp-nergens.yaml"
            broken.write_text("id: whatsapp-nergens\nkind: whatsapp\nregion: atlantis\nsettings: {}\n")
            status, answer = await admin_reload(process.base)
            assert status == 422 and answer["error"] == "invalid_configuration"
            fields = {(p["file"], p["field"]) for p in answer["problems"]}
            assert ("channels/whatsapp-nergens.yaml", "region") in fields
            assert ("channels/whatsapp-nergens.yaml", "settings.account_sid") in fields
            assert await post_sms(process.base, NEW_CHANNEL) == 200, "the running configuration was lost"

            broken.unlink()
            (root / "channels" / f"{NEW_CHANNEL}.yaml").unlink()
            status, answer = await admin_reload(process.base)
            assert status == 200 and answer["removed"] == [NEW_CHANNEL]
            assert await post_sms(process.base, NEW_CHANNEL) == 404
            await asyncio.sleep(1.0)
        assert load.failed == 0, "a webhook on another channel failed during the reloads"
        assert len(load.accepted) > 50
        received = await drain(vhost[1], inbound_queues(load_config(root)), idle=1.5)
        ids = [m.message_id for m in received]
        missing = set(load.accepted) - set(ids)
        assert not missing, f"{len(missing)} accepted messages never reached the inbound queues"
        assert len(ids) == len(load.accepted) + 2, "the two SMS, and every accepted webhook once"
        logs = process.logs()
        assert "config_reloaded" in logs and "config_reload_refused" in logs
        assert NEW_AUTH not in logs and TEST_TOKEN not in logs
    finally:
        process.stop()


async def test_the_admin_endpoint_needs_its_token(vhost, example_env, tmp_path: Path) -> None:
    with_token = ServiceProcess(
        vhost[1], tmp_path / "a.log", roles=("ingest",), GATEWAY_ADMIN_TOKEN=ADMIN_TOKEN
    )
    without = ServiceProcess(vhost[1], tmp_path / "b.log", roles=("ingest",))
    try:
        await with_token.wait_ready()
        await without.wait_ready()
        assert (await admin_reload(with_token.base, "wrong"))[0] == 401
        assert (await admin_reload(with_token.base, ""))[0] == 401
        status, answer = await admin_reload(without.base)
        assert status == 404 and answer["error"] == "admin_disabled"
        status, answer = await admin_reload(with_token.base)
        assert status == 200 and answer["added"] == [] and answer["removed"] == []
    finally:
        with_token.stop()
        without.stop()
