"""Every HTTP entry point fed generated malformed and hostile input (hypothesis): each channel
kind's webhook, the web chat's socket frames, the Masker 19 intake form and the desk API.

For every input: no 5xx and no crash; a refused request publishes nothing (the gateway's
own publish counter does not move, and at the end the real RabbitMQ holds exactly what the
accepted requests published); memory stays within a bound; and no generated text reaches
the logs (each carries a canary that is looked for in the log output of the whole run).

The number of inputs: FUZZ_BUDGET below, about 100,000 in all; GATEWAY_FUZZ_SCALE scales it
(0.1 for a quick run by hand). The inputs are seeded (GATEWAY_FUZZ_SEED, default 2026), so a
run is reproducible; another seed explores other inputs. An input that once broke an entry point is kept in
tests/fuzz/corpus/ and replayed by test_the_corpus_of_inputs_that_once_failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import io
import itertools
import json
import logging
import os
import shutil
import uuid
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

import pytest
import yaml
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator

from adapters.http_json.cases import TEST_TOKEN
from adapters.telegram.cases import TELEGRAM_SECRET
from adapters.twilio.cases import TWILIO_AUTH_TOKEN
from gateway.domain.envelope import ChannelRef, Envelope
from gateway.service import build_service, load_config, topology_for
from gateway.support.logs import configure_logging
from gateway.support.passwords import hash_password
from tests.conftest import (
    EXAMPLE_CONFIG,
    EXAMPLE_SECRETS,
    purge_all,
    queue_depths,
    settings_for,
)
from tests.helpers.desk import Counsellors

pytestmark = pytest.mark.broker

SCALE = float(os.environ.get("GATEWAY_FUZZ_SCALE", "1"))
SEED = int(os.environ.get("GATEWAY_FUZZ_SEED", "2026"))  # another value explores other inputs
FUZZ_BUDGET = {"webhooks": 60_000, "webchat_frames": 15_000, "intake": 12_000, "desk_api": 15_000}
CORPUS = Path(__file__).parent / "corpus"
CANARY = "qz" + uuid.uuid4().hex[:12]  # in every generated text; must never reach the logs
RSS_GROWTH_LIMIT_MB = 64
CHUNK = 2_500
PASSWORD = "fuzz-password-2026"
PHARMACY = "apotheek-fuzz"
COUNSELLOR = "fuzz-zob"
CHANNEL_IDS = [
    "http-json-zuidoost-brabant", "sms-zuidoost-brabant", "whatsapp-rotterdam-rijnmond",
    "telegram-amsterdam-amstelland", "webchat-zuidoost-brabant", "masker19",
]  # fmt: skip
PUBLIC = "https://gateway.veiligthuis.example/channels/{}/webhook"
TWILIO_FIELDS = ["MessageSid", "AccountSid", "From", "To", "Body", "NumMedia", "MediaUrl0",
                 "MediaContentType0", "ProfileName", "WaId", "MessageStatus", "ErrorCode"]  # fmt: skip
CONTENT_TYPES = ["application/json", "application/x-www-form-urlencoded", "text/plain", "multipart/form-data",
                 "application/json; charset=latin-1", "", "application/xml", "x/\u00e9"]  # fmt: skip
SETTINGS = dict(
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


# -- what is generated ------------------------------------------------------------------


# Strings are made from one block of random bytes each (one draw, not one per character:
# hypothesis spends its time per draw), decoded three ways for ASCII, any code point below
# 256, and anything UTF-16 can say, lone surrogates included.
def _decoded(raw: bytes, how: int) -> str:
    if how == 0:
        return raw.decode("ascii", "replace")
    if how == 1:
        return raw.decode("latin-1")
    return raw[: len(raw) // 2 * 2].decode("utf-16-le", "surrogatepass")


header_text = st.binary(max_size=60).map(lambda raw: "".join(chr(0x20 + b % 0x5F) for b in raw))
hostile_text = st.one_of(
    st.builds(_decoded, st.binary(max_size=80), st.integers(0, 2)),
    st.sampled_from(
        ["", " ", "\x00", "\u202e", "null", "{", "%00", "../../etc/passwd", "<script>", "ﷺ" * 40, "x" * 5000]
    ),
)
canary_text = st.builds(lambda a, b: f"{a}{CANARY}{b}", hostile_text, hostile_text)
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False), canary_text,
)  # fmt: skip
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(hostile_text, inner, max_size=4),
    max_leaves=8,
)


def shaped(
    required: dict[str, st.SearchStrategy], optional: dict[str, st.SearchStrategy]
) -> st.SearchStrategy:
    """A dict that looks like the provider's, with any field possibly of the wrong kind."""
    return st.fixed_dictionaries(
        {k: v | json_values for k, v in required.items()},
        optional={k: v | json_values for k, v in optional.items()},
    )


http_json_body = shaped(
    {"message_id": st.text(max_size=40), "sender": canary_text, "text": canary_text},
    {"attachments": st.lists(st.dictionaries(st.sampled_from(["url", "content_type", "name", "size"]),
                                             json_values), max_size=3),
     "sent_at": st.text(max_size=40), "language": st.text(max_size=5)},
)  # fmt: skip
telegram_chat = shaped(
    {"id": st.integers(), "type": st.sampled_from(["private", "group", "channel", "x"])}, {}
)
telegram_message = shaped(
    {"message_id": st.integers(), "chat": telegram_chat, "date": st.integers()},
    {"text": canary_text, "caption": canary_text, "from": telegram_chat, "photo": st.lists(json_values),
     "document": json_values, "voice": json_values, "edit_date": st.integers()},
)  # fmt: skip
telegram_body = shaped(
    {"update_id": st.integers()},
    {"message": telegram_message, "edited_message": telegram_message, "callback_query": json_values},
)
twilio_form = st.dictionaries(st.sampled_from(TWILIO_FIELDS) | st.text(max_size=20), canary_text, max_size=12)


# Valid requests of each provider, to be spliced: most of what a mutated valid request
# reaches is deeper than what random bytes reach.
TEMPLATES: list[tuple[str, str, bytes]] = [
    ("http-json-zuidoost-brabant", "application/json", json.dumps({
        "message_id": "m-1", "sender": "person-1", "text": f"hallo {CANARY}",
        "sent_at": "2025-11-24T10:00:00Z",
        "attachments": [{"url": "https://example.org/a.jpg", "content_type": "image/jpeg", "size": 1}],
    }).encode()),
    ("telegram-amsterdam-amstelland", "application/json", json.dumps({"update_id": 7, "message": {
        "message_id": 3, "date": 1763900000, "text": f"hallo {CANARY}",
        "chat": {"id": 55, "type": "private", "first_name": "A"},
        "from": {"id": 55, "is_bot": False, "first_name": "A"},
        "photo": [{"file_id": "F", "file_unique_id": "U", "width": 9, "height": 9, "file_size": 99}],
    }}).encode()),
    ("sms-zuidoost-brabant", "application/x-www-form-urlencoded", urlencode({
        "MessageSid": "SM" + "a" * 32, "AccountSid": "AC" + "0123456789abcdef" * 2, "From": "+31612345678",
        "To": "+3197010580001", "Body": f"hallo {CANARY}", "NumMedia": "1",
        "MediaUrl0": "https://api.twilio.com/m/1", "MediaContentType0": "image/jpeg",
    }).encode()),
    ("whatsapp-rotterdam-rijnmond", "application/x-www-form-urlencoded", urlencode({
        "MessageSid": "SM" + "b" * 32, "AccountSid": "AC" + "0123456789abcdef" * 2,
        "From": "whatsapp:+31612345678", "To": "whatsapp:+3197010580002", "Body": f"hallo {CANARY}",
        "NumMedia": "0", "ProfileName": "Anna", "WaId": "31612345678",
    }).encode()),
]  # fmt: skip
HOSTILE_TOKENS = [b'"', b"{", b"}", b"[", b"null", b"\\u0000", b"\\ud800", b"%", b"%ff", b"&", b"=",
                  b"1e999", b"-0", b'"text":', b"\xff\xfe", b"\x00", b"+", b"%0d%0a", b"NumMedia=99",
                  b"MediaUrl0="]  # fmt: skip
splice = st.tuples(
    st.integers(min_value=0, max_value=10_000), st.integers(min_value=0, max_value=8),
    st.binary(max_size=12) | st.sampled_from(HOSTILE_TOKENS),
)  # fmt: skip


def spliced(body: bytes, edits: list[tuple[int, int, bytes]]) -> bytes:
    for position, cut, insert in edits:
        at = position % (len(body) + 1)
        body = body[:at] + insert + body[at + cut :]
    return body


def twilio_signature(channel: str, body: bytes) -> str:
    """Signed as Twilio signs: over the fields as the form parser will read them."""
    fields = dict(parse_qsl(body.decode("utf-8", "surrogateescape"), keep_blank_values=True))
    return RequestValidator(TWILIO_AUTH_TOKEN).compute_signature(PUBLIC.format(channel), fields)


@dataclass
class WebhookInput:
    method: str
    channel: str
    body: bytes
    headers: dict[str, str]


@st.composite
def webhook_inputs(draw: st.DrawFn) -> WebhookInput:
    channel = draw(st.sampled_from(CHANNEL_IDS) | st.text(max_size=30))
    headers: dict[str, str] = {}
    shape = draw(
        st.sampled_from(["splice"] * 6 + ["http-json", "telegram", "twilio", "json", "bytes", "huge"])
    )
    if shape == "splice":
        channel, content_type, template = draw(st.sampled_from(TEMPLATES))
        body = spliced(template, draw(st.lists(splice, min_size=1, max_size=3)))
        headers = {"Content-Type": content_type, "Authorization": f"Bearer {TEST_TOKEN}",
                   "X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET}  # fmt: skip
        with contextlib.suppress(UnicodeError):
            headers["X-Twilio-Signature"] = twilio_signature(channel, body)
        return WebhookInput("POST", channel, body, headers)
    if shape == "twilio":
        form = draw(twilio_form)
        body = urlencode(form, errors="surrogatepass").encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        headers["X-Twilio-Signature"] = draw(header_text)
        if draw(st.booleans()):  # correctly signed: the fields themselves are the attack
            with contextlib.suppress(UnicodeEncodeError):  # lone surrogates can't be signed
                headers["X-Twilio-Signature"] = RequestValidator(TWILIO_AUTH_TOKEN).compute_signature(
                    PUBLIC.format(channel), form
                )
    elif shape in ("http-json", "telegram", "json"):
        value = draw({"http-json": http_json_body, "telegram": telegram_body, "json": json_values}[shape])
        body = json.dumps(value).encode()
        headers["Content-Type"] = "application/json"
    elif shape == "bytes":
        body = draw(st.binary(max_size=200)) + CANARY.encode()
    else:
        body = CANARY.encode() * draw(st.integers(min_value=4500, max_value=9000))  # beyond max_body_bytes
    if draw(st.booleans()):
        headers["Content-Type"] = draw(st.sampled_from(CONTENT_TYPES))
    authorization = draw(st.sampled_from(["valid", "wrong", "none"]))
    if authorization == "valid":
        headers["Authorization"] = f"Bearer {TEST_TOKEN}"
        headers["X-Telegram-Bot-Api-Secret-Token"] = TELEGRAM_SECRET
    elif authorization == "wrong":
        headers["Authorization"] = draw(header_text)
        headers["X-Telegram-Bot-Api-Secret-Token"] = draw(header_text)
    method = draw(st.sampled_from(["POST"] * 8 + ["GET", "PUT", "DELETE", "PATCH"]))
    return WebhookInput(method, channel, body, headers)


# -- the service under test --------------------------------------------------------------


@dataclass
class Target:
    """The service in this process (ingest and desk roles, the real RabbitMQ), driven from a
    synchronous test so hypothesis can run each example to completion."""

    loop: asyncio.AbstractEventLoop
    client: TestClient
    service: Any
    amqp_url: str
    logs: CanaryWatch
    counts: dict[str, int] = field(default_factory=dict)
    desk_token: str | None = None

    def http(self, method: str, path: str, **kwargs: Any) -> Any:
        """A request on the client's session, not through TestClient.request, which keeps
        every response until the end (100,000 of them would be the test's memory growth)."""
        return self.client.session.request(method, self.client.make_url(path), **kwargs)

    def run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)

    def published(self) -> float:
        return sum(
            sample.value
            for metric in self.service.metrics.published.collect()
            for sample in metric.samples
            if sample.name.endswith("_total")
        )

    def count(self, entry: str) -> None:
        self.counts[entry] = self.counts.get(entry, 0) + 1


class CanaryWatch(io.TextIOBase):
    """The service's log stream: every line is looked at for the canary as it is written, and
    not kept (100,000 requests' DEBUG lines would be memory growth of the test's own)."""

    def __init__(self) -> None:
        self.written = 0
        self.leaks: list[str] = []

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.written += len(text)
        if CANARY in text and len(self.leaks) < 10:
            self.leaks.append(text[:500])
        return len(text)


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def fuzz_config(root: Path) -> Path:
    shutil.copytree(EXAMPLE_CONFIG, root)
    hashed = hash_password(PASSWORD)
    masker = yaml.safe_load((root / "channels" / "masker19.yaml").read_text())
    masker["settings"]["pharmacies"] = [
        {"id": PHARMACY, "name": "Apotheek Fuzz", "municipality": "Eindhoven", "password_hash": hashed}
    ]
    masker["settings"]["secure_cookies"] = False
    masker["settings"]["sign_ins_per_minute"] = 1000
    (root / "channels" / "masker19.yaml").write_text(yaml.safe_dump(masker))
    accounts = [{"id": COUNSELLOR, "name": "Fuzz", "team": "zuidoost-brabant", "password_hash": hashed}]
    (root / "counsellors.yaml").write_text(yaml.safe_dump({"counsellors": accounts}))
    service = yaml.safe_load((root / "gateway.yaml").read_text())
    service["desk"] = {"secure_cookies": False}
    (root / "gateway.yaml").write_text(yaml.safe_dump(service))
    return root


@pytest.fixture(scope="module")
def target(
    vhost: tuple[str, str], database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Target]:
    for name, value in EXAMPLE_SECRETS.items():
        os.environ[name] = value
    config = load_config(fuzz_config(tmp_path_factory.mktemp("fuzz") / "config"))
    logs = CanaryWatch()
    configure_logging("DEBUG", stream=logs)  # the real pipeline, at its most talkative
    loop = asyncio.new_event_loop()
    loop.run_until_complete(purge_all(vhost[1], config))
    service = build_service(settings_for(vhost[1], database_url), config, roles=frozenset({"ingest", "desk"}))
    client = TestClient(TestServer(service.app), loop=loop)
    loop.run_until_complete(client.start_server())
    assert loop.run_until_complete(service.broker.wait_ready(20))
    target = Target(loop, client, service, vhost[1], logs)
    try:
        yield target
    finally:
        loop.run_until_complete(client.close())
        loop.run_until_complete(purge_all(vhost[1], config))
        loop.close()
        configure_logging("INFO")
        counted = ", ".join(f"{k}: {v}" for k, v in target.counts.items())
        print(f"\nfuzzed inputs: {sum(target.counts.values())} ({counted})")
        assert logs.written > 0, "the service logged nothing: the check would prove nothing"
        assert logs.leaks == [], f"a generated input reached the logs: {logs.leaks[:3]}"


def fuzz(target: Target, entry: str, inputs: st.SearchStrategy, check: Callable[[Any], None]) -> None:
    """Feed `check` the entry's budget of generated inputs, in runs of at most CHUNK (hypothesis
    keeps every example of a run in memory), and bound this process's memory growth: sampled
    after each run, the last sample may exceed the first by at most RSS_GROWTH_LIMIT_MB."""
    total = max(1, int(FUZZ_BUDGET[entry] * SCALE))
    samples: list[float] = []
    with records_not_kept_by_pytest():
        fuzz_in_runs(target, entry, inputs, check, total, samples)
    print(f"{entry}: RSS after each run of at most {CHUNK} inputs, MB: {[round(x) for x in samples]}")
    assert samples[-1] - samples[0] < RSS_GROWTH_LIMIT_MB, f"memory grew: {samples}"


@contextlib.contextmanager
def records_not_kept_by_pytest() -> Iterator[None]:
    """pytest keeps every log record of a test in memory for its report: for 100,000 requests
    that is memory growth of the test runner's, which the bound would blame on the service.
    Its handlers take only warnings meanwhile; the service's own log output (and the canary
    check on it) is unchanged."""
    handlers = [h for h in logging.getLogger().handlers if type(h).__module__.startswith("_pytest")]
    levels = [h.level for h in handlers]
    for handler in handlers:
        handler.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for handler, level in zip(handlers, levels, strict=True):
            handler.setLevel(level)


def fuzz_in_runs(
    target: Target,
    entry: str,
    inputs: st.SearchStrategy,
    check: Callable[[Any], None],
    total: int,
    samples: list[float],
) -> None:
    for run in itertools.count():
        if target.counts.get(entry, 0) >= total:
            break
        runs = min(CHUNK, total - target.counts.get(entry, 0))

        # Seeded: a run is reproducible (and CI sees what a developer saw); each chunk its own.
        @seed(SEED * 1_000_000 + zlib.crc32(entry.encode()) % 1000 * 1000 + run)
        @settings(max_examples=runs, **SETTINGS)
        @given(item=inputs)
        def one(item: Any) -> None:
            check(item)
            target.count(entry)

        one()
        gc.collect()
        samples.append(rss_mb())


async def queued_messages(url: str, queues: list[str]) -> int:
    return sum((await queue_depths(url, queues)).values())


def inbound_queue_names(target: Target) -> list[str]:
    return [q for q in topology_for(target.service.config).queue_names() if q.startswith("gw.inbound.")]


# -- the entry points --------------------------------------------------------------------


def send_webhook(target: Target, item: WebhookInput) -> int:
    async def go() -> int:
        path = f"/channels/{quote(item.channel, safe='')}/webhook"
        async with target.http(item.method, path, data=item.body, headers=item.headers) as r:
            await r.read()
            return r.status

    before = target.published()
    status = target.run(go())
    assert status < 500, (status, item)
    if status >= 300:
        assert target.published() == before, f"a refused request ({status}) published: {item}"
    return status


def test_webhooks_of_every_channel_kind(target: Target) -> None:
    queued_before = target.run(queued_messages(target.amqp_url, inbound_queue_names(target)))
    published_before = target.published()
    fuzz(target, "webhooks", webhook_inputs(), lambda item: send_webhook(target, item))
    published = target.published() - published_before
    queued = target.run(queued_messages(target.amqp_url, inbound_queue_names(target))) - queued_before
    assert queued == published, "the broker holds other than what accepted requests published"


webchat_frames = st.one_of(
    st.builds(lambda v: json.dumps(v), json_values),
    st.builds(
        lambda seq, text, extra: json.dumps({"type": "message", "seq": seq, "text": text, **extra}),
        st.integers(min_value=-5, max_value=2**64) | json_values,
        canary_text | json_values,
        st.dictionaries(st.text(max_size=8), json_values, max_size=3),
    ),
    st.builds(lambda token: json.dumps({"type": "resume", "session": token}), canary_text | json_values),
    st.sampled_from(["", "{", "[]", "null", '{"type": null}', '{"type": "end"}', '{"type": "start"}']),
    st.text(max_size=200).map(lambda s: s + CANARY),
    st.binary(max_size=200),
)


def test_webchat_socket_frames(target: Target) -> None:
    channel = "webchat-zuidoost-brabant"
    state: dict[str, Any] = {"socket": None}

    async def connect() -> Any:
        socket = await target.client.ws_connect(
            f"/channels/{channel}/socket", headers={"Origin": str(target.client.make_url("")).rstrip("/")}
        )
        await socket.send_str('{"type": "start"}')
        await socket.receive(timeout=10)
        return socket

    async def exchange(frame: str | bytes) -> None:
        if state["socket"] is None or state["socket"].closed:
            state["socket"] = await connect()
        socket = state["socket"]
        if isinstance(frame, bytes):
            await socket.send_bytes(frame)
        else:
            await socket.send_str(frame)
        await socket.send_str('{"type": "ping"}')  # the socket still answers after any frame
        while True:
            reply = await socket.receive(timeout=10)
            if reply.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
                state["socket"] = None
                return
            assert reply.type is WSMsgType.TEXT, reply
            data = json.loads(reply.data)
            assert CANARY not in reply.data or data.get("type") == "reply", "input echoed back"
            if data.get("type") == "pong":
                return

    try:
        fuzz(target, "webchat_frames", webchat_frames, lambda frame: target.run(exchange(frame)))
    finally:
        if state["socket"] is not None:
            target.run(state["socket"].close())


intake_forms = st.dictionaries(
    st.sampled_from(
        ["acuut", "wie", "contact", "nummer", "moment", "toestemming", "notitie", "melding", "csrf"]
    )
    | st.text(max_size=12),
    canary_text | st.sampled_from(["ja", "nee", "kind", "partner", "bellen", "sms", "0612345678", ""]),
    max_size=10,
)


INTAKE = "/channels/masker19/"


async def pharmacy_signs_in(target: Target) -> str:
    """Signs the test pharmacy in (the session cookie stays in the client); returns the CSRF token."""
    async with target.http("GET", INTAKE) as r:
        page = await r.text()
    csrf = page.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    form = {"csrf": csrf, "apotheek": PHARMACY, "wachtwoord": PASSWORD}
    async with target.http("POST", INTAKE + "login", data=form, allow_redirects=False) as r:
        assert r.status == 303, r.status
    return csrf


async def submit_intake(target: Target, form: dict[str, str], csrf: str | None) -> int:
    fields = dict(form)
    if csrf is not None:
        fields["csrf"] = csrf
    body = urlencode(fields, errors="surrogatepass")  # as a browser sends a form
    form_type = {"Content-Type": "application/x-www-form-urlencoded"}
    async with target.http(
        "POST", INTAKE + "intake", data=body, headers=form_type, allow_redirects=False
    ) as r:
        await r.read()
        return r.status


def test_masker19_intake_form(target: Target) -> None:
    csrf = target.run(pharmacy_signs_in(target))

    async def submit(form: dict[str, str], keep_csrf: bool) -> int:
        return await submit_intake(target, form, csrf if keep_csrf else None)

    def one(item: tuple[dict[str, str], bool]) -> None:
        before = target.published()
        status = target.run(submit(*item))
        assert status < 500, (status, item)
        if status != 303:
            assert target.published() == before, f"a refused intake ({status}) published"

    fuzz(target, "intake", st.tuples(intake_forms, st.booleans()), one)


desk_bodies = st.one_of(
    json_values,
    shaped({"text": canary_text}, {"to_team": st.text(max_size=30), "seq": st.integers()}),
    shaped({"to_team": st.sampled_from(["national", "rotterdam-rijnmond", "", "zuidoost-brabant"])},
           {"note": canary_text}),
)  # fmt: skip
desk_requests = st.tuples(
    st.sampled_from(["GET", "POST", "PUT", "DELETE"]),
    st.sampled_from(["", "/claim", "/reply", "/transfer", "/close"]),
    st.sampled_from(["known"]) | st.text(max_size=40),
    desk_bodies,
    st.sampled_from(["bearer", "none", "forged"]),
)


def test_desk_api(target: Target) -> None:
    async def prepare() -> tuple[str, str]:
        conversation = f"c_fuzz_{uuid.uuid4().hex[:8]}"
        from datetime import UTC, datetime

        envelope = Envelope(
            id=str(uuid.uuid4()), conversation_id=conversation, region="zuidoost-brabant",
            channel=ChannelRef(kind="http-json", instance="http-json-zuidoost-brabant"),
            received_at=datetime.now(UTC), text="hallo", sender="p", reply_handle="g1.x",
        )  # fmt: skip
        assert (await target.service.desk.store_envelopes([(envelope, "zuidoost-brabant")]))[0]
        return conversation, await counsellor_token(target)

    conversation, token = target.run(prepare())

    async def call(method: str, action: str, which: str, body: Any, auth: str) -> int:
        headers = {"bearer": {"Authorization": f"Bearer {token}"}, "none": {},
                   "forged": {"Authorization": f"Bearer {token[:-4]}AAAA"}}[auth]  # fmt: skip
        conversation_id = conversation if which == "known" else which
        target.client.session.cookie_jar.clear()  # only the header signs in here
        path = f"/api/v1/conversations/{quote(conversation_id, safe='')}{action}"
        async with target.http(method, path, data=json.dumps(body), headers=headers) as r:
            await r.read()
            return r.status

    def one(request: tuple[str, str, str, Any, str]) -> None:
        status = target.run(call(*request))
        assert status < 500, (status, request)
        if request[4] != "bearer":
            assert status in (401, 404, 405), (status, request)  # 404/405: no such route at all

    fuzz(target, "desk_api", desk_requests, one)


# -- the regression corpus ---------------------------------------------------------------


def corpus() -> list[Path]:
    return sorted(CORPUS.glob("*.json"))


async def counsellor_token(target: Target) -> str:
    """COUNSELLOR's session, second factor enrolled on first use, kept for the module."""
    if target.desk_token is None:
        base = str(target.client.make_url("")).rstrip("/")
        answer = await Counsellors(PASSWORD).sign_in(target.client.session, base, COUNSELLOR)
        target.desk_token = answer["token"]
    return target.desk_token


async def desk_call(target: Target, method: str, path: str, body: Any) -> int:
    """As the counsellor COUNSELLOR, signed in by header."""
    token = await counsellor_token(target)
    headers = {"Authorization": f"Bearer {token}"}
    async with target.http(method, path, json=body, headers=headers) as r:
        await r.read()
        return r.status


@pytest.mark.parametrize("case", corpus(), ids=[p.stem for p in corpus()])
def test_the_corpus_of_inputs_that_once_failed(target: Target, case: Path) -> None:
    """Each file says why it is here, which entry point it goes to, and the status expected:
    a webhook ({"channel", "method", "headers", "body"} or "body_hex" for bytes) or an intake
    ({"form", "keep_csrf"}) or a desk API call ({"method", "path", "body"})."""
    item = json.loads(case.read_text())
    if item["entry"] == "desk":
        status = target.run(desk_call(target, item["method"], item["path"], item.get("body")))
    elif item["entry"] == "intake":
        csrf = target.run(pharmacy_signs_in(target))
        status = target.run(submit_intake(target, item["form"], csrf if item["keep_csrf"] else None))
    else:
        body = bytes.fromhex(item["body_hex"]) if "body_hex" in item else item["body"].encode()
        status = send_webhook(target, WebhookInput(item["method"], item["channel"], body, item["headers"]))
    assert status == item["expect_status"], (case.name, status)
