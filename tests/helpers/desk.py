"""Signing in to the desk as a counsellor does, second factor and all: the first time
through enrolment (a code made from the secret the desk hands out), later with a
current code. Shared by the integration, fuzz and browser tests."""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import urlencode

import pyotp
from aiohttp import ClientSession
from twilio.request_validator import RequestValidator

from adapters.twilio.cases import PUBLIC, TWILIO_AUTH_TOKEN, sms


@dataclass
class Counsellors:
    """The TOTP secrets of the accounts enrolled so far, per account."""

    password: str
    secrets: dict[str, str] = field(default_factory=dict)
    used_steps: dict[str, int] = field(default_factory=dict)

    async def code(self, account: str) -> str:
        """A code the desk takes: each works once, so a later step's when this one's was
        used (the desk accepts the next step for clock drift), waiting when need be."""
        totp = pyotp.TOTP(self.secrets[account])
        step = int(time.time()) // totp.interval
        wanted = max(step, self.used_steps.get(account, -1) + 1)
        if wanted > step + 1:
            await asyncio.sleep(totp.interval - time.time() % totp.interval + 0.1)
        self.used_steps[account] = wanted
        return totp.generate_otp(wanted)

    async def sign_in(self, session: ClientSession, base: str, account: str) -> dict:
        """A full session's sign-in answer (token, csrf_token, ...), enrolling the account's
        second factor the first time."""
        body: dict[str, str] = {"counsellor": account, "password": self.password}
        if account in self.secrets:
            body["code"] = await self.code(account)
        async with session.post(f"{base}/api/v1/session", json=body) as r:
            answer = await r.json()
            assert r.status == 200, answer
        if answer["second_factor"] != "enrol":
            return answer
        headers = {"Authorization": f"Bearer {answer['token']}"}
        async with session.post(f"{base}/api/v1/second-factor", headers=headers) as r:
            assert r.status == 200, await r.text()
            secret = (await r.json())["secret"]
        self.secrets[account] = secret
        code = {"code": await self.code(account)}
        async with session.post(f"{base}/api/v1/second-factor/confirm", json=code, headers=headers) as r:
            confirmed = await r.json()
            assert r.status == 200, confirmed
        return confirmed


SMS_CHANNEL = "sms-zuidoost-brabant"


async def person_texts(base: str, sender: str, text: str) -> None:
    """An SMS to the Zuidoost-Brabant number, signed as Twilio signs it (a channel that
    carries replies, so counsellors can answer); `sender` picks the phone number."""
    number = "+3161" + f"{int(hashlib.sha256(sender.encode()).hexdigest(), 16) % 10**7:07d}"
    sid = f"SM{uuid.uuid4().hex}"
    fields = sms(Body=text, From=number, MessageSid=sid, SmsSid=sid, SmsMessageSid=sid)
    url = PUBLIC.format(channel=SMS_CHANNEL)
    signature = RequestValidator(TWILIO_AUTH_TOKEN).compute_signature(url, fields)
    headers = {"X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded"}
    async with (
        ClientSession() as session,
        session.post(f"{base}/channels/{SMS_CHANNEL}/webhook", data=urlencode(fields), headers=headers) as r,
    ):
        assert r.status == 200, await r.text()
