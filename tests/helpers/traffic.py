"""Mixed webhook traffic as the providers send it, in conversations, and what came of it.

Used by the soak benchmark and the cluster fault tests. Every conversation is one person
on one channel writing message after message, each sent only after the previous one was
answered, so the order within a conversation is defined. Every text carries a marker
(run, conversation, sequence number) by which the desk's store is checked afterwards:
which acknowledged message arrived, in which team, in which order, how often.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlencode

import aiohttp
import asyncpg
from twilio.request_validator import RequestValidator

HTTP_JSON_TOKEN = "traffic-token-0123456789abcdef"
TWILIO_SID, TWILIO_TOKEN = "AC" + "1" * 32, "traffic-auth-token-0123456789ab"
TELEGRAM_BOT_TOKEN = "7000000002:AAH" + "c" * 32
TELEGRAM_SECRET = "traffic-secret_" + "t" * 16
# The credentials of the example channels, as the gateway under load must be given them.
SECRETS = {
    "GW_HTTP_JSON_ZUIDOOST_BRABANT_TOKEN": HTTP_JSON_TOKEN,
    "GW_SMS_ZUIDOOST_BRABANT_ACCOUNT_SID": TWILIO_SID,
    "GW_SMS_ZUIDOOST_BRABANT_AUTH_TOKEN": TWILIO_TOKEN,
    "GW_WHATSAPP_ROTTERDAM_RIJNMOND_ACCOUNT_SID": TWILIO_SID,
    "GW_WHATSAPP_ROTTERDAM_RIJNMOND_AUTH_TOKEN": TWILIO_TOKEN,
    "GW_TELEGRAM_AMSTERDAM_AMSTELLAND_BOT_TOKEN": TELEGRAM_BOT_TOKEN,
    "GW_TELEGRAM_AMSTERDAM_AMSTELLAND_SECRET_TOKEN": TELEGRAM_SECRET,
}
PUBLIC_BASE = "https://gateway.veiligthuis.example"


@dataclass(frozen=True)
class Channel:
    kind: str
    id: str
    region: str


CHANNELS = (
    Channel("http-json", "http-json-zuidoost-brabant", "zuidoost-brabant"),
    Channel("sms", "sms-zuidoost-brabant", "zuidoost-brabant"),
    Channel("whatsapp", "whatsapp-rotterdam-rijnmond", "rotterdam-rijnmond"),
    Channel("telegram", "telegram-amsterdam-amstelland", "amsterdam-amstelland"),
)
MARKER = re.compile(r"\[(?P<run>[0-9a-f]{8}) c(?P<conversation>\d+) n(?P<seq>\d+)\]")


@dataclass
class Outcome:
    conversation: int
    seq: int
    status: int  # 0: no answer (connection error or client timeout)
    sent_at: float  # loop time
    answered_at: float

    @property
    def acknowledged(self) -> bool:
        return 200 <= self.status < 300


class MixedTraffic:
    """Builds request number `seq` of conversation `n`; channels take turns by conversation."""

    def __init__(self, conversations: int) -> None:
        self.run = uuid.uuid4().hex[:8]
        self.conversations = conversations
        self._validator = RequestValidator(TWILIO_TOKEN)
        self._chat_base = 5_000_000_000 + int(self.run[:6], 16)
        self._update = 0

    def channel(self, conversation: int) -> Channel:
        return CHANNELS[conversation % len(CHANNELS)]

    def text(self, conversation: int, seq: int) -> str:
        return f"Ik wil met iemand praten over thuis. [{self.run} c{conversation} n{seq}]"

    def request(self, conversation: int, seq: int) -> tuple[str, bytes, dict[str, str]]:
        """Path, body and headers, exactly as the channel's provider would post them."""
        channel = self.channel(conversation)
        path = f"/channels/{channel.id}/webhook"
        text = self.text(conversation, seq)
        if channel.kind == "http-json":
            body = json.dumps(
                {
                    "message_id": f"{self.run}-{conversation}-{seq}",
                    "sender": f"p-{self.run}-{conversation}",
                    "text": text,
                }
            ).encode()
            return (
                path,
                body,
                {"Authorization": f"Bearer {HTTP_JSON_TOKEN}", "Content-Type": "application/json"},
            )
        if channel.kind in ("sms", "whatsapp"):
            number = f"+316{int(self.run[:5], 16) % 100:02d}{conversation:06d}"
            fields = {
                "MessageSid": f"SM{uuid.uuid4().hex}",
                "AccountSid": TWILIO_SID,
                "From": number if channel.kind == "sms" else f"whatsapp:{number}",
                "To": "+3197010580001" if channel.kind == "sms" else "whatsapp:+3197010580002",
                "Body": text,
                "NumMedia": "0",
                "ApiVersion": "2010-04-01",
            }
            signature = self._validator.compute_signature(PUBLIC_BASE + path, fields)
            headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature}
            return path, urlencode(fields).encode(), headers
        self._update += 1
        chat = {"id": self._chat_base + conversation, "first_name": "P", "type": "private"}
        person = {"id": chat["id"], "is_bot": False, "first_name": "P"}
        update = {
            "update_id": self._update,
            "message": {
                "message_id": seq + 1,
                "from": person,
                "chat": chat,
                "date": int(time.time()),
                "text": text,
            },
        }
        headers = {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET}
        return path, json.dumps(update).encode(), headers


@dataclass
class Load:
    """The record of one run of `drive`."""

    outcomes: list[Outcome] = field(default_factory=list)

    def acknowledged(self) -> dict[int, list[int]]:
        """Per conversation, the sequence numbers that got a 2xx, in sending order."""
        acked: dict[int, list[int]] = {}
        for outcome in self.outcomes:
            if outcome.acknowledged:
                acked.setdefault(outcome.conversation, []).append(outcome.seq)
        return acked

    def statuses(self) -> Counter[int]:
        return Counter(outcome.status for outcome in self.outcomes)


async def drive(
    base_url: str,
    traffic: MixedTraffic,
    *,
    rate: float,
    stop: asyncio.Event,
    load: Load,
    request_timeout: float = 15.0,
) -> None:
    """Every conversation writes its next message when the previous one is answered, paced
    so that all together send about `rate` requests per second, until `stop` is set."""
    loop = asyncio.get_running_loop()
    interval = traffic.conversations / rate
    connector = aiohttp.TCPConnector(limit=traffic.conversations)
    async with aiohttp.ClientSession(
        base_url, connector=connector, timeout=aiohttp.ClientTimeout(total=request_timeout)
    ) as session:

        async def conversation(n: int) -> None:
            await asyncio.sleep(interval * n / traffic.conversations)  # spread the starts
            seq = 0
            while not stop.is_set():
                began = loop.time()
                path, body, headers = traffic.request(n, seq)
                try:
                    async with session.post(path, data=body, headers=headers) as response:
                        await response.read()
                        status = response.status
                except (aiohttp.ClientError, TimeoutError):
                    status = 0
                load.outcomes.append(Outcome(n, seq, status, began, loop.time()))
                seq += 1
                await asyncio.sleep(max(0.0, interval - (loop.time() - began)))

        await asyncio.gather(*(conversation(n) for n in range(traffic.conversations)))


@dataclass
class Readiness:
    """/readyz as seen from outside: (loop time, HTTP status or 0) every `every` seconds."""

    samples: list[tuple[float, int]] = field(default_factory=list)

    def states_between(self, start: float, end: float) -> list[int]:
        return [status for at, status in self.samples if start <= at <= end]


async def watch_readiness(
    base_url: str, readiness: Readiness, stop: asyncio.Event, every: float = 0.1
) -> None:
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession(base_url, timeout=aiohttp.ClientTimeout(total=2)) as session:
        while not stop.is_set():
            at = loop.time()
            try:
                async with session.get("/readyz") as response:
                    status = response.status
            except (aiohttp.ClientError, TimeoutError):
                status = 0
            readiness.samples.append((at, status))
            await asyncio.sleep(every)


@dataclass(frozen=True)
class Arrival:
    team: str
    conversation: int
    seq: int


@dataclass
class Tally:
    """What a load's acknowledged messages became at the desk."""

    sent: int
    acknowledged: int
    delivered: int
    lost: list[tuple[int, int]]
    duplicated: list[tuple[int, int]]
    out_of_order: list[int]
    wrong_team: list[tuple[int, str]]
    unacknowledged_delivered: int

    def summary(self) -> dict[str, object]:
        return {
            "sent": self.sent,
            "acknowledged": self.acknowledged,
            "delivered": self.delivered,
            "lost": len(self.lost),
            "duplicated": len(self.duplicated),
            "out_of_order_conversations": len(self.out_of_order),
            "wrong_team": len(self.wrong_team),
            "unacknowledged_but_delivered": self.unacknowledged_delivered,
        }


async def desk_rows(database_url: str, secret_key: str) -> list[tuple[str, str]]:
    """(team, text) of every inbound message in the desk's store, in the order the desk shows
    them: per conversation, by arrival at the gateway. The texts are stored encrypted, under
    the data key a try-out derives from `secret_key` (the processes' GATEWAY_SECRET_KEY)."""
    from gateway.support.fieldcrypt import FieldCipher

    cipher = FieldCipher.derived(secret_key)
    db = await asyncpg.connect(database_url)
    try:
        rows = await db.fetch(
            "SELECT c.team, m.message_id, m.text, m.key_id FROM desk_messages m"
            " JOIN desk_conversations c USING (conversation_id)"
            " WHERE m.direction = 'in' ORDER BY m.conversation_id, m.at, m.message_id"
        )
    finally:
        await db.close()
    return [
        (row["team"], cipher.decrypt_text(row["key_id"], row["text"], f"desk_messages:{row['message_id']}"))
        for row in rows
    ]


def parse_arrivals(run: str, rows: list[tuple[str, str]]) -> list[Arrival]:
    """(team, text) rows of the desk's inbound messages, in the desk's order, to arrivals."""
    arrivals = []
    for team, text in rows:
        found = MARKER.search(text)
        if found and found["run"] == run:
            arrivals.append(Arrival(team, int(found["conversation"]), int(found["seq"])))
    return arrivals


def tally(traffic: MixedTraffic, load: Load, arrivals: list[Arrival]) -> Tally:
    acked = load.acknowledged()
    seen: dict[int, list[int]] = {}
    wrong_team: list[tuple[int, str]] = []
    for arrival in arrivals:
        seen.setdefault(arrival.conversation, []).append(arrival.seq)
        if arrival.team != traffic.channel(arrival.conversation).region:
            wrong_team.append((arrival.conversation, arrival.team))
    counts = Counter((a.conversation, a.seq) for a in arrivals)
    acked_keys = {(n, seq) for n, seqs in acked.items() for seq in seqs}
    return Tally(
        sent=len(load.outcomes),
        acknowledged=len(acked_keys),
        delivered=sum(1 for key in acked_keys if counts[key] > 0),
        lost=sorted(key for key in acked_keys if counts[key] == 0),
        duplicated=sorted(key for key, count in counts.items() if count > 1),
        out_of_order=sorted(n for n, seqs in seen.items() if seqs != sorted(seqs)),
        wrong_team=wrong_team,
        unacknowledged_delivered=sum(1 for key in counts if key not in acked_keys),
    )


def recovery_seconds(load: Load, fault_at: float) -> float:
    """From the fault until the first acknowledged request sent after the last failed one
    (0 when nothing failed)."""
    failed = [o.sent_at for o in load.outcomes if not o.acknowledged and o.sent_at >= fault_at - 1]
    if not failed:
        return 0.0
    last_failure = max(failed)
    after = [o.answered_at for o in load.outcomes if o.acknowledged and o.sent_at > last_failure]
    return (min(after) - fault_at) if after else float("inf")
