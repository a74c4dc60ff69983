"""`sms` and `whatsapp`: Twilio Programmable Messaging, both ways.

Inbound: Twilio POSTs a form to /channels/{id}/webhook, signed in
`X-Twilio-Signature` over the URL it called and the form fields. The signature
is checked with twilio's own `RequestValidator` against the channel's
`public_url` (required: the service sits behind a proxy, and the Host header is the
client's choice). The answer is TwiML: empty, or the channel's `texts.immediate_reply`.
A form carrying `MessageStatus` is a delivery status callback: counted, never
published.

Outbound: the `twilio` REST client on its aiohttp-based async HTTP client, with
the API base URL configurable (`api_base_url`) so tests talk to a local fake.
WhatsApp allows a free-form reply only within 24 hours of the person's last
message; outside it the channel's `template_content_sid` is sent instead, or the
send fails with `whatsapp_window_closed`.
"""

from __future__ import annotations

import contextvars
import math
import re
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Generic, TypeVar

import aiohttp
from pydantic import Field
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response
from twilio.request_validator import SIGNATURE_SETTINGS_HEADER, RequestValidator, get_signature_algorithm
from twilio.rest import Client
from twilio.twiml.messaging_response import MessagingResponse
from yarl import URL

from adapters.base import ChannelKind
from adapters.registry import register
from gateway.config.models import Channel, KindSettings, SecretRef
from gateway.domain.envelope import MAX_ATTACHMENTS, MAX_TEXT_CHARS
from gateway.domain.messages import (
    MAX_FORM_FIELDS,
    Accepted,
    InboundAttachment,
    InboundMessage,
    MediaSource,
    Outgoing,
    Rejected,
    Reply,
    SendFailed,
    WebhookRequest,
)

E164 = r"^\+[1-9][0-9]{6,14}$"
MESSAGE_SID = re.compile(r"^[A-Z]{2}[0-9a-fA-F]{32}$")
WHATSAPP_PREFIX = "whatsapp:"
WHATSAPP_WINDOW = timedelta(hours=24)
MEDIA_KEY = re.compile(r"^Media(?:Url|ContentType)([0-9]{1,3})$")
CONTENT_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$")
LOCATION_KEYS = ("Latitude", "Longitude", "Address", "Label")
UNREADABLE_MEDIA = "[bijlage die niet te openen was]"
TRUNCATED = "[bericht ingekort]"
# Where Twilio keeps media: the REST API's URL, which redirects to its CDN.
MEDIA_HOSTS = ("api.twilio.com", "media.twiliocdn.com", "*.twiliocdn.com")
DELIVERY_STATUSES = frozenset(
    {"accepted", "scheduled", "queued", "sending", "sent", "delivered", "undelivered", "failed", "read",
     "canceled", "receiving", "received", "partially_delivered"}
)  # fmt: skip
# The Retry-After of a 429, carried from the HTTP client to the caller in the same task.
_retry_after: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "twilio_retry_after", default=None
)


class _HttpClient(AsyncTwilioHttpClient):
    """twilio's async client, remembering a 429's Retry-After for the task that asked."""

    async def request(self, *args: Any, **kwargs: Any) -> Response:
        response = await super().request(*args, **kwargs)
        if response.status_code == 429:
            _retry_after.set(_seconds(response.headers.get("Retry-After")))
        return response


def _seconds(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _fetchable(url: str, api: URL) -> bool:
    if not url or len(url) > 2048:
        return False
    try:
        parsed = URL(url)
    except ValueError:
        return False
    if not parsed.is_absolute() or not parsed.host:
        return False
    return parsed.scheme in ("https", api.scheme)  # http only beside an http api_base_url (a fake)


def _coordinate(value: str, limit: float) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) and -limit <= number <= limit else None


def _location(form: Any) -> list[str]:
    """A shared location (WhatsApp: `Latitude`, `Longitude`, and `Label`, `Address` for a
    place), as the Telegram kind writes it."""
    if not any(form.get(key, "").strip() for key in LOCATION_KEYS):
        return []
    lat = _coordinate(form.get("Latitude", "").strip(), 90)
    lon = _coordinate(form.get("Longitude", "").strip(), 180)
    lines = [f"[locatie gedeeld: {lat}, {lon}]" if lat is not None and lon is not None
             else "[locatie gedeeld, maar niet te lezen]"]  # fmt: skip
    place = ", ".join(v for key in ("Label", "Address") if (v := form.get(key, "").strip()))
    if place:
        lines.append(place)
    return lines


class TwilioSettings(KindSettings):
    account_sid: SecretRef
    auth_token: SecretRef
    number: str = Field(pattern=E164, description="The channel's own number, E.164 (+31...)")
    public_url: str = Field(
        pattern=r"^https?://",
        description="The webhook URL exactly as Twilio calls it: the signature covers it, so without it "
        "the gateway would check the signature against a host the client chose",
    )
    api_base_url: str = Field(default="https://api.twilio.com", pattern=r"^https?://")
    media_hosts: list[str] = Field(
        default_factory=lambda: list(MEDIA_HOSTS),
        description="Hosts a media URL and its redirects may reach ('*.' for subdomains), "
        "beside api_base_url's host",
    )


class WhatsAppSettings(TwilioSettings):
    template_content_sid: str | None = Field(
        default=None,
        pattern=r"^HX[0-9a-fA-F]{32}$",
        description="Approved template sent when the 24-hour window has closed",
    )


T = TypeVar("T", bound=TwilioSettings)


class _Twilio(ChannelKind[T], Generic[T]):
    prefix: ClassVar[str] = ""
    quiet_loggers = ("twilio",)  # it formats request data (numbers, bodies) into its INFO lines
    sensitive_log_keys = frozenset({"profile_name", "wa_id"})

    def __init__(self) -> None:
        self._clients: dict[tuple[str, ...], tuple[Client, _HttpClient]] = {}

    # inbound

    def verify(self, channel: Channel[T], request: WebhookRequest) -> None:
        signature = request.headers.get("X-Twilio-Signature")
        if not signature:
            raise Rejected(403, "missing_signature", "X-Twilio-Signature is required")
        algorithm = get_signature_algorithm(request.headers.get(SIGNATURE_SETTINGS_HEADER))
        validator = RequestValidator(channel.secrets["auth_token"])
        if not validator.validate(self._signed_url(channel, request), request.form, signature, algorithm):
            raise Rejected(403, "wrong_signature", "X-Twilio-Signature does not match")

    @staticmethod
    def _signed_url(channel: Channel[T], request: WebhookRequest) -> str:
        public = channel.settings.public_url
        received = URL(request.url)
        if received.raw_query_string and "?" not in public:
            return f"{public}?{received.raw_query_string}"
        return public

    def parse(self, channel: Channel[T], request: WebhookRequest) -> Accepted:
        form = request.form
        empty = Reply(status=200, body=str(MessagingResponse()).encode(), content_type="text/xml")
        if "MessageStatus" in form:
            status = form["MessageStatus"].lower()
            known = status if status in DELIVERY_STATUSES else "other"
            code = form.get("ErrorCode", "")
            return Accepted(
                (), empty, delivery_status=known,
                delivery_for=form.get("MessageSid") or form.get("SmsSid") or None,
                delivery_reason=f"twilio-{code}"[:60] if code.isdigit() else None,
            )  # fmt: skip
        sid = form.get("MessageSid") or form.get("SmsMessageSid") or form.get("SmsSid") or ""
        sender = form.get("From", "").strip()
        if not MESSAGE_SID.match(sid) or not sender:
            return Accepted((), empty)  # not a message: nothing to publish, nothing to answer
        if sender.startswith(WHATSAPP_PREFIX) != bool(self.prefix):
            if not self.prefix:
                # a WhatsApp sender pointed at an SMS channel: a configuration error, said
                # loudly to Twilio's debugger (a reply by SMS could reach another phone)
                raise Rejected(422, "invalid_message", "a WhatsApp message on an SMS channel",
                               (("From", "not an sms address"),))  # fmt: skip
            sender = self.prefix + sender  # the number, as older forms and some senders give it
        message = InboundMessage(provider_message_id=sid, address=sender, **self._content_of(channel, form))
        immediate = channel.texts.get("immediate_reply")
        if immediate:
            twiml = MessagingResponse()
            twiml.message(immediate)
            return Accepted((message,), Reply(200, str(twiml).encode(), "text/xml"))
        return Accepted((message,), empty)

    def _content_of(self, channel: Channel[T], form: Any) -> dict[str, Any]:
        """What the counsellor sees: the text and attachments that can be read, and a
        Dutch marker for each part that could not; never nothing."""
        body = form.get("Body", "")
        lines = [body] if body.strip() else []
        button = form.get("ButtonText", "").strip()
        if button and button != body.strip():
            lines.append(f"[knop: {button}]")  # ButtonPayload: the template's own id, not shown
        lines.extend(_location(form))
        attachments, unreadable = self._media(channel, form)
        if unreadable == 1:
            lines.append(UNREADABLE_MEDIA)
        elif unreadable:
            lines.append(f"[{unreadable} bijlagen die niet te openen waren]")
        if not lines and not attachments:
            lines.append(f"[onbekend bericht van {self.label}]" if self.prefix else "[onbekend bericht]")
        text = "\n".join(lines)
        if len(text) > MAX_TEXT_CHARS:
            text = text[: MAX_TEXT_CHARS - len(TRUNCATED) - 1] + " " + TRUNCATED
        return {"text": text, "attachments": attachments}

    @staticmethod
    def _media(channel: Channel[T], form: Any) -> tuple[tuple[InboundAttachment, ...], int]:
        """The attachments that can be fetched, and how many entries cannot: a media entry
        without a content type is `application/octet-stream`; one whose URL is not absolute
        https (or http beside an http `api_base_url`, a test's fake) cannot be opened. The
        hosts are enforced where the desk fetches (`media`: a URL elsewhere is shown to the
        counsellor as refused, `host_not_allowed`)."""
        raw = (form.get("NumMedia", "") or "").strip()
        declared = min(int(raw), MAX_FORM_FIELDS) if raw.isascii() and raw.isdigit() else 0
        present = {
            int(match.group(1))
            for key in form
            if (match := MEDIA_KEY.match(key)) is not None and int(match.group(1)) < MAX_FORM_FIELDS
        }
        api = URL(channel.settings.api_base_url)
        media: list[InboundAttachment] = []
        unreadable = 0
        for n in sorted(present | set(range(declared))):
            url = form.get(f"MediaUrl{n}", "").strip()
            content_type = form.get(f"MediaContentType{n}", "").split(";", 1)[0].strip().lower()
            if not _fetchable(url, api) or len(media) >= MAX_ATTACHMENTS:
                unreadable += 1
                continue
            if not CONTENT_TYPE.match(content_type):
                content_type = "application/octet-stream"
            media.append(InboundAttachment(content_type=content_type, url=url))
        return tuple(media), unreadable

    async def media(self, channel: Channel[T], url: str) -> MediaSource:
        """Twilio's media URL, fetched with the account's credentials (HTTP basic), from
        Twilio's hosts only; it redirects to Twilio's CDN."""
        settings = channel.settings
        hosts = {h.lower() for h in settings.media_hosts}
        hosts.add((URL(settings.api_base_url).host or "").lower())
        secrets = channel.secrets
        return MediaSource(url, frozenset(hosts), (secrets["account_sid"], secrets["auth_token"]))

    # outbound

    def _client(self, channel: Channel[T]) -> Client:
        settings = channel.settings
        secrets = channel.secrets
        key = (channel.id, secrets["account_sid"], secrets["auth_token"], settings.api_base_url)
        if key not in self._clients:
            http = _HttpClient()
            client = Client(channel.secrets["account_sid"], channel.secrets["auth_token"], http_client=http)
            client.api.base_url = settings.api_base_url.rstrip("/")
            self._clients[key] = (client, http)
        return self._clients[key][0]

    def _content(self, channel: Channel[T], outgoing: Outgoing) -> dict[str, str]:
        return {"body": outgoing.text}

    async def send(self, channel: Channel[T], outgoing: Outgoing) -> str:
        content = self._content(channel, outgoing)
        sender = self.prefix + channel.settings.number
        _retry_after.set(None)
        try:
            message = await self._client(channel).messages.create_async(
                to=outgoing.address, from_=sender, **content
            )
        except TwilioRestException as exc:
            if exc.status == 429:
                raise SendFailed("twilio-http-429", permanent=False, retry_after=_retry_after.get()) from None
            if exc.status >= 500:
                raise SendFailed(f"twilio-http-{exc.status}", permanent=False) from None
            reason = f"twilio-{exc.code}" if exc.code else f"twilio-http-{exc.status}"
            raise SendFailed(reason, permanent=True) from None
        except (aiohttp.ClientError, ConnectionError):
            raise SendFailed("connection_error", permanent=False) from None
        return str(message.sid)

    async def close(self) -> None:
        clients, self._clients = self._clients, {}
        for _, http in clients.values():
            await http.close()


@register
class Sms(_Twilio[TwilioSettings]):
    name = "sms"
    label = "SMS"
    settings_model = TwilioSettings


@register
class WhatsApp(_Twilio[WhatsAppSettings]):
    name = "whatsapp"
    label = "WhatsApp"
    settings_model = WhatsAppSettings
    prefix = WHATSAPP_PREFIX

    def _content(self, channel: Channel[WhatsAppSettings], outgoing: Outgoing) -> dict[str, str]:
        last = outgoing.last_inbound_at
        if last is not None and datetime.now(UTC) - last <= WHATSAPP_WINDOW:
            return {"body": outgoing.text}
        template = channel.settings.template_content_sid
        if template is None:
            raise SendFailed("whatsapp_window_closed", permanent=True)
        return {"content_sid": template}
