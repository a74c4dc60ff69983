"""`masker19`: the intake form a pharmacy fills in after the code word "Masker 19".

Served under /channels/{id}/: the sign-in form and, once signed in, the intake
form (``/``), ``login``, ``intake`` (the form's POST), ``bevestiging`` (the
confirmation: a short reference, never the details), ``logout`` and the
form's stylesheet and script.

A pharmacy signs in with its own id and password; the configuration holds only
the password's scrypt hash (`gateway hash-password`) and the pharmacy's
municipality, which places the intake in its region. Signing in is the service's
one mechanism, the desk's (`Host.identities`): a server-side session whose random
token is the HttpOnly, SameSite=Strict `__Host-m19-<channel>` cookie (no Max-Age),
ended by "afmelden" on every process, after `idle_minutes` unused and
`session_minutes` after sign-in; sign-ins are limited and recorded in the access
log. Every form carries a CSRF token bound to a cookie of its own. The pages are Jinja2
templates (templates/), autoescaped. The intake becomes one envelope, urgent; acute danger
makes it `acute`, and `routing.yaml` sends acute Masker 19 intakes to the
national team at once. The safe way to make contact travels only sealed (it is
the reply handle's address), never in the envelope's text.

Pages are served with `Cache-Control: no-store` and the form with
autocomplete off, after a POST the browser is redirected (303), so the back
button never shows a filled-in form again.
"""

from __future__ import annotations

import ipaddress
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import jinja2
import structlog
from aiohttp import web
from multidict import MultiDictProxy
from pydantic import BaseModel, ConfigDict, Field

from adapters.base import ChannelKind, Host
from adapters.registry import register
from gateway.config.models import Channel, KindSettings, Region
from gateway.domain.envelope import envelope_id
from gateway.domain.identity import LocalAccount, Session
from gateway.domain.kinds import PageRoutes
from gateway.domain.messages import InboundMessage, PublishError, Rejected
from gateway.domain.resolution import normalise_name
from gateway.support.passwords import is_password_hash
from gateway.support.sessions import CsrfTokens, clear_cookie, cookie_name, demo_password_hash, set_cookie

log = structlog.get_logger("gateway.masker19")

HERE = Path(__file__).resolve().parent
TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
)

SESSION_COOKIE = "m19"  # per channel: __Host-m19-<channel id>
CSRF_COOKIE = "m19_csrf"
DEMO_PHARMACY = "demo-apotheek"
DEMO_PASSWORD = "masker19-demo"  # noqa: S105 - documented, and only with GATEWAY_DEMO_ACCOUNTS=1
MAX_NOTE = 500

WHO = {"persoon": "de persoon zelf", "kinderen": "kinderen", "ander": "iemand anders"}
CONTACT = {
    "telefoon": "bellen",
    "sms": "sms",
    "apotheek": "via de apotheek",
    "geen": "geen contact (niet veilig)",
}


class Pharmacy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str = Field(pattern=r"^[a-z0-9]+(?:-[a-z0-9]+)*$", max_length=80)
    name: str = Field(min_length=1, max_length=120)
    municipality: str = Field(min_length=1, max_length=80, description="Places the intake in its region")
    password_hash: str = Field(description="From `gateway hash-password`; never the password")


@dataclass(frozen=True)
class Intake:
    acute: bool
    who: tuple[str, ...]
    contact: str
    contact_number: str
    contact_time: str
    consent: bool
    note: str

    def summary(self, pharmacy: Pharmacy) -> str:
        """What the counsellor reads; the contact number stays sealed in the reply handle."""
        lines = [
            f"Masker 19-melding van {pharmacy.name} ({pharmacy.municipality}).",
            # Worded so that a "no" never reads as an acute-danger phrase to the router.
            f"Nu acuut volgens de apotheek: {'JA, 112 is gewezen' if self.acute else 'nee'}.",
            f"Betreft: {', '.join(WHO[w] for w in self.who)}.",
            f"Contact: {CONTACT[self.contact]}"
            + (" (nummer in de beveiligde contactgegevens)" if self.contact_number else "")
            + (f", moment: {self.contact_time}" if self.contact_time else "")
            + ".",
            f"Toestemming voor contact: {'ja' if self.consent else 'nee'}.",
        ]
        if self.note:
            lines.append(f"Notitie: {self.note}")
        return "\n".join(lines)


def validate_intake(form: MultiDictProxy[Any]) -> tuple[Intake | None, dict[str, str]]:
    """The intake, or the problems per field in plain Dutch."""
    problems: dict[str, str] = {}
    acute = form.get("acuut")
    if acute not in ("ja", "nee"):
        problems["acuut"] = "Geef aan of iemand nu in acuut gevaar is."
    who = tuple(w for w in form.getall("wie", []) if w in WHO)
    if not who or len(who) != len(form.getall("wie", [])):
        problems["wie"] = "Kies wie er in gevaar is (een of meer)."
    contact = form.get("contact", "")
    if contact not in CONTACT:
        problems["contact"] = "Kies een veilige manier van contact, of 'geen'."
    number = "".join(form.get("nummer", "").split())
    if contact in ("telefoon", "sms"):
        if not (number.startswith(("0", "+")) and number[1:].isdigit() and 10 <= len(number) <= 15):
            problems["nummer"] = "Vul een geldig telefoonnummer in, bijvoorbeeld 0612345678."
    else:
        number = ""
    moment = form.get("moment", "").strip()
    if len(moment) > 100:
        problems["moment"] = "Houd het moment kort (hoogstens 100 tekens)."
    consent = form.get("toestemming")
    if consent not in ("ja", "nee"):
        problems["toestemming"] = "Geef aan of de persoon toestemming geeft voor contact."
    note = form.get("notitie", "").strip()
    if len(note) > MAX_NOTE:
        problems["notitie"] = f"De notitie mag hoogstens {MAX_NOTE} tekens hebben."
    if problems:
        return None, problems
    return Intake(acute == "ja", who, contact, number, moment, consent == "ja", note), {}


class Masker19Settings(KindSettings):
    pharmacies: list[Pharmacy] = Field(default_factory=list)
    session_minutes: int = Field(
        default=480, ge=5, le=1440, description="A session ends this long after sign-in"
    )
    idle_minutes: int = Field(default=30, ge=1, le=1440, description="A session unused this long ends")
    secure_cookies: bool = Field(default=True, description="false only for plain-HTTP trials")
    sign_ins_per_minute: int = Field(default=10, ge=1, le=1000, description="Per client address")
    sign_ins_per_account_per_hour: int = Field(default=20, ge=1, le=10_000, description="Per pharmacy")


M19Channel = Channel[Masker19Settings]
PLAIN_HTTP_COOKIE = (
    "Aanmelden lukt niet via gewoon http op dit adres: de browser bewaart de beveiligde "
    "cookies van dit formulier alleen via https (of op localhost). Gebruik https, of zet voor "
    "een proef secure_cookies: false in de instellingen van dit kanaal."
)


def _cookies_dropped(channel: M19Channel, request: web.Request) -> bool:
    """Secure cookies over plain http (after the trusted proxies) to a host that is not
    loopback: the browser drops them, so the form's CSRF cookie and the session never return."""
    if not channel.settings.secure_cookies or request.secure:
        return False
    host = (request.url.host or "").strip("[]").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True

HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


@register
class Masker19(ChannelKind[Masker19Settings]):
    name = "masker19"
    label = "Apotheek (Masker 19)"
    settings_model = Masker19Settings
    takes_webhooks = False  # the intake form is at /channels/{id}/
    static = HERE / "static"

    def __init__(self) -> None:
        self._host: Host | None = None
        self._csrf_tokens: CsrfTokens | None = None  # keyed in attach()

    def check(self, settings: Masker19Settings, regions: dict[str, Region]) -> list[tuple[str, str]]:
        known = {normalise_name(m) for region in regions.values() for m in region.municipalities}
        problems = []
        seen: set[str] = set()
        for index, pharmacy in enumerate(settings.pharmacies):
            if normalise_name(pharmacy.municipality) not in known:
                problems.append((f"pharmacies[{index}].municipality", "not a municipality in regions.yaml"))
            if not is_password_hash(pharmacy.password_hash):
                problems.append(
                    (f"pharmacies[{index}].password_hash", "not a hash from gateway hash-password")
                )
            if pharmacy.id in seen:
                problems.append((f"pharmacies[{index}].id", "duplicate pharmacy id"))
            seen.add(pharmacy.id)
        return problems

    async def attach(self, host: Host) -> None:
        self._host = host
        self._csrf_tokens = CsrfTokens(host.key_for("masker19/csrf"))
        if host.demo_accounts:
            demo_password_hash(DEMO_PASSWORD)  # made now, at start, not on the event loop later
            log.warning(
                "demo_accounts",
                detail="GATEWAY_DEMO_ACCOUNTS is on: the DEMO pharmacy 'demo-apotheek' can sign in with a "
                "published password. Never in production.",
            )

    def routes(self) -> PageRoutes:
        return {
            ("GET", ""): self._form_page,
            ("GET", "bevestiging"): self._confirmation,
            ("POST", "login"): self._login,
            ("POST", "intake"): self._intake,
            ("POST", "logout"): self._logout,
        }

    # accounts and tokens

    def _pharmacies(self, channel: M19Channel) -> dict[str, Pharmacy]:
        found = {p.id: p for p in channel.settings.pharmacies}
        if self._need_host().demo_accounts:
            found.setdefault(DEMO_PHARMACY, _demo_pharmacy())
        return found

    @property
    def _csrf(self) -> CsrfTokens:
        if self._csrf_tokens is None:
            raise RuntimeError("the masker19 kind was not attached to a running service")
        return self._csrf_tokens

    @staticmethod
    def _realm(channel: M19Channel) -> str:
        return f"masker19:{channel.id}"

    def _account(self, channel: M19Channel, pharmacy_id: str) -> LocalAccount | None:
        pharmacy = self._pharmacies(channel).get(pharmacy_id)
        if pharmacy is None:
            return None
        return LocalAccount(
            self._realm(channel), pharmacy.id, pharmacy.name, "", "pharmacy", pharmacy.password_hash
        )

    def _session_cookie(self, channel: M19Channel, request: web.Request) -> str:
        secure = channel.settings.secure_cookies or request.secure
        return cookie_name(f"{SESSION_COOKIE}-{channel.id}", secure)

    async def _session(self, channel: M19Channel, request: web.Request) -> tuple[Session, str] | None:
        token = request.cookies.get(self._session_cookie(channel, request), "")
        session = await self._need_host().identities.current(
            self._realm(channel),
            token,
            timedelta(minutes=channel.settings.idle_minutes),
            lambda pharmacy_id: self._account(channel, pharmacy_id),
        )
        return (session, token) if session is not None else None

    async def _signed_in(self, channel: M19Channel, request: web.Request) -> Pharmacy | None:
        found = await self._session(channel, request)
        return self._pharmacies(channel).get(found[0].identity.account) if found else None

    def _csrf_ok(self, request: web.Request, form: MultiDictProxy[Any]) -> bool:
        return self._csrf.csrf_ok(request.cookies.get(CSRF_COOKIE, ""), str(form.get("csrf", "")))

    # pages

    def _render(
        self,
        channel: M19Channel,
        request: web.Request,
        template: str,
        title: str,
        status: int = 200,
        **context: Any,
    ) -> web.Response:
        nonce = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(24)
        page = TEMPLATES.get_template(template).render(
            title=title, csrf=self._csrf.csrf(nonce), **context
        )
        response = web.Response(text=page, status=status, content_type="text/html", headers=HEADERS)
        if request.cookies.get(CSRF_COOKIE) != nonce:
            self._cookie(channel, request, response, CSRF_COOKIE, nonce, max_age=None)
        return response

    def _cookie(
        self,
        channel: M19Channel,
        request: web.Request,
        response: web.StreamResponse,
        name: str,
        value: str,
        max_age: int | None,
    ) -> None:
        secure = channel.settings.secure_cookies or request.secure
        set_cookie(response, name, value, path=f"/channels/{channel.id}/", secure=secure, max_age=max_age)

    def _redirect(self, channel: M19Channel, where: str = "") -> web.Response:
        return web.Response(
            status=303, headers={"Location": f"/channels/{channel.id}/{where}", "Cache-Control": "no-store"}
        )

    async def _form_page(self, channel: M19Channel, request: web.Request) -> web.Response:
        pharmacy = await self._signed_in(channel, request)
        if pharmacy is None:
            error = PLAIN_HTTP_COOKIE if _cookies_dropped(channel, request) else ""
            return self._login_page(channel, request, error)
        return self._intake_page(channel, request, pharmacy, {}, None)

    def _login_page(
        self, channel: M19Channel, request: web.Request, error: str = "", status: int = 200
    ) -> web.Response:
        return self._render(channel, request, "login.html", "Aanmelden", status, error=error)

    async def _login(self, channel: M19Channel, request: web.Request) -> web.Response:
        form = await request.post()
        if not self._csrf_ok(request, form):
            if CSRF_COOKIE not in request.cookies and _cookies_dropped(channel, request):
                log.warning("masker19_cookie_over_plain_http", channel=channel.id)
                return self._login_page(channel, request, PLAIN_HTTP_COOKIE, 403)
            return self._login_page(channel, request, "Het formulier was verlopen. Probeer het opnieuw.", 403)
        host = self._need_host()
        settings = channel.settings
        try:
            signed_in = await host.identities.sign_in(
                self._realm(channel),
                self._account(channel, str(form.get("apotheek", "")).strip()[:80]),
                str(form.get("wachtwoord", ""))[:200],
                None,
                request.remote or "unknown",
                per_minute=settings.sign_ins_per_minute,
                per_hour=settings.sign_ins_per_account_per_hour,
                lifetime=timedelta(minutes=settings.session_minutes),
            )
        except Rejected as refusal:
            host.refused(self.name, refusal.reason)
            if refusal.status == 429:
                return self._login_page(channel, request, "Te veel pogingen. Wacht even.", 429)
            if refusal.status == 503:
                return self._login_page(channel, request, "Het is nu druk. Probeer het zo opnieuw.", 503)
            return self._login_page(channel, request, "Onbekende apotheekcode of verkeerd wachtwoord.", 401)
        response = self._redirect(channel)
        secure = settings.secure_cookies or request.secure
        set_cookie(response, self._session_cookie(channel, request), signed_in.token, path="/", secure=secure)
        log.info("pharmacy_signed_in", channel=channel.id, pharmacy=signed_in.session.identity.account)
        return response

    async def _logout(self, channel: M19Channel, request: web.Request) -> web.Response:
        """Ends the session itself, on every process: the old cookie no longer signs in."""
        # No CSRF check: a forged sign-out only signs someone out, and a session that a
        # pharmacy asked to end must end.
        found = await self._session(channel, request)
        if found is not None:
            session, token = found
            await self._need_host().identities.sign_out(token, session)
        response = self._redirect(channel)
        secure = channel.settings.secure_cookies or request.secure
        clear_cookie(response, self._session_cookie(channel, request), path="/", secure=secure)
        return response

    def _intake_page(
        self,
        channel: M19Channel,
        request: web.Request,
        pharmacy: Pharmacy,
        problems: dict[str, str],
        form: MultiDictProxy[Any] | None,
        status: int = 200,
    ) -> web.Response:
        def value(name: str) -> str:
            return str(form.get(name, "")) if form is not None else ""

        def chosen(name: str) -> list[str]:
            return [str(v) for v in form.getall(name, [])] if form is not None else []

        submission = value("melding") if form is not None else uuid.uuid4().hex
        return self._render(
            channel,
            request,
            "intake.html",
            "Melding",
            status,
            pharmacy=pharmacy,
            problems=problems,
            value=value,
            chosen=chosen,
            submission=submission,
            who=WHO,
            contact=CONTACT,
            max_note=MAX_NOTE,
        )

    async def _intake(self, channel: M19Channel, request: web.Request) -> web.Response:
        host = self._need_host()
        pharmacy = await self._signed_in(channel, request)
        if pharmacy is None:
            host.refused(self.name, "not_signed_in")
            return self._login_page(channel, request, "Meld u eerst aan.", 401)
        form = await request.post()
        if not self._csrf_ok(request, form):
            host.refused(self.name, "csrf")
            problems = {
                "formulier": "Het formulier was verlopen. Controleer de gegevens en verstuur opnieuw."
            }
            return self._intake_page(channel, request, pharmacy, problems, form, 403)
        intake, problems = validate_intake(form)
        submission = str(form.get("melding", ""))
        if len(submission) != 32 or not all(c in "0123456789abcdef" for c in submission):
            problems = {**problems, "formulier": "Het formulier is niet compleet. Laad de pagina opnieuw."}
        if intake is None or problems:
            host.refused(self.name, "invalid_intake")
            return self._intake_page(channel, request, pharmacy, problems, form, 422)
        provider_id = f"{pharmacy.id}:{submission}"
        message = InboundMessage(
            provider_message_id=provider_id,
            # What a counsellor needs to reach the person, sealed; without a number, the pharmacy.
            address=intake.contact_number or f"apotheek:{pharmacy.id}",
            text=intake.summary(pharmacy),
            conversation_key=f"intake:{provider_id}",
            municipality=pharmacy.municipality,
            urgent=True,
            acute=intake.acute,
        )
        try:
            await host.accept(channel, (message,))
        except PublishError:
            problems = {
                "formulier": "De melding kon nu niet worden opgeslagen. Probeer het over een minuut opnieuw."
            }
            return self._intake_page(channel, request, pharmacy, problems, form, 503)
        reference = envelope_id(channel.id, provider_id).replace("-", "")[:8].upper()
        log.info("intake_accepted", channel=channel.id, pharmacy=pharmacy.id, acute=intake.acute)
        response = self._redirect(channel, f"bevestiging?ref={reference[:4]}-{reference[4:]}")
        if intake.acute:
            response.headers["Location"] += "&acuut=1"
        return response

    async def _confirmation(self, channel: M19Channel, request: web.Request) -> web.Response:
        if await self._signed_in(channel, request) is None:
            return self._login_page(channel, request)
        reference = request.query.get("ref", "")
        if len(reference) != 9 or not all(c.isalnum() or c == "-" for c in reference):
            raise web.HTTPNotFound()
        acute = request.query.get("acuut") == "1"
        return self._render(
            channel, request, "confirmation.html", "Verstuurd", reference=reference, acute=acute
        )

    def _need_host(self) -> Host:
        if self._host is None:
            raise RuntimeError("the masker19 kind was not attached to a running service")
        return self._host


def _demo_pharmacy() -> Pharmacy:
    return Pharmacy(
        id=DEMO_PHARMACY,
        name="Demo-apotheek (alleen om te proberen)",
        municipality="Eindhoven",
        password_hash=demo_password_hash(DEMO_PASSWORD),
    )
