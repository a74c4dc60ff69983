"""`masker19`: the intake form a pharmacy fills in after the code word "Masker 19".

Served under /channels/{id}/: the sign-in form and, once signed in, the intake
form (``/``), ``login``, ``intake`` (the form's POST), ``bevestiging`` (the
confirmation: a short reference, never the details), ``logout`` and the
form's stylesheet and script.

A pharmacy signs in with its own id and password; the configuration holds only
the password's scrypt hash (`gateway hash-password`) and the pharmacy's
municipality, which places the intake in its region. The signed-in state is a
signed, HttpOnly, SameSite=Strict cookie; every form carries a CSRF token bound
to a cookie of its own. The intake becomes one envelope, urgent; acute danger
makes it `acute`, and `routing.yaml` sends acute Masker 19 intakes to the
national team at once. The safe way to make contact travels only sealed (it is
the reply handle's address), never in the envelope's text.

Pages are served with `Cache-Control: no-store` and the form with
autocomplete off, after a POST the browser is redirected (303), so the back
button never shows a filled-in form again.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import secrets
import time
import uuid
from dataclasses import dataclass

import structlog
from aiohttp import web
from multidict import MultiDictProxy
from pydantic import BaseModel, ConfigDict, Field

from adapters.base import ChannelKind, InboundMessage, KindSettings, Rejected, WebhookRequest, asset
from adapters.registry import register
from gateway.broker import PublishError
from gateway.config import Channel, Region
from gateway.envelope import envelope_id
from gateway.keys import same_secret
from gateway.passwords import hash_password, is_password_hash, verify_password
from gateway.ratelimit import Window
from gateway.resolution import normalise_name
from gateway.runtime import Runtime

log = structlog.get_logger("gateway.masker19")

SESSION_COOKIE = "m19_session"
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


def validate_intake(form: MultiDictProxy[str]) -> tuple[Intake | None, dict[str, str]]:
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


@register
class Masker19(ChannelKind):
    name = "masker19"

    class Settings(KindSettings):
        pharmacies: list[Pharmacy] = Field(default_factory=list)
        session_minutes: int = Field(default=480, ge=5, le=1440, description="A signed-in pharmacy stays so")
        secure_cookies: bool = Field(default=True, description="false only for plain-HTTP trials")
        sign_ins_per_minute: int = Field(default=10, ge=1, le=1000, description="Per client address")

    def __init__(self) -> None:
        self._runtime: Runtime | None = None
        self._sign_ins = Window(0, 60)

    def check(self, settings: BaseModel, regions: dict[str, Region]) -> list[tuple[str, str]]:
        known = {normalise_name(m) for region in regions.values() for m in region.municipalities}
        problems = []
        seen: set[str] = set()
        for index, pharmacy in enumerate(settings.pharmacies):  # type: ignore[attr-defined]
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

    async def attach(self, runtime: Runtime) -> None:
        self._runtime = runtime
        if runtime.settings.demo_accounts:
            log.warning(
                "demo_accounts",
                detail="GATEWAY_DEMO_ACCOUNTS is on: the DEMO pharmacy 'demo-apotheek' can sign in with a "
                "published password. Never in production.",
            )

    def verify(self, channel: Channel, request: WebhookRequest) -> None:
        raise Rejected(405, "not_a_webhook_channel", "the intake form is at /channels/{id}/")

    # accounts and tokens

    def _pharmacies(self, channel: Channel) -> dict[str, Pharmacy]:
        found = {p.id: p for p in channel.settings.pharmacies}  # type: ignore[attr-defined]
        if self._need_runtime().settings.demo_accounts:
            found.setdefault(DEMO_PHARMACY, _demo_pharmacy())
        return found

    def _key(self, purpose: str) -> bytes:
        return self._need_runtime().keyring.key_for(f"masker19/{purpose}")

    def _sign(self, value: str) -> str:
        mac = hmac.new(self._key("session"), value.encode(), hashlib.sha256).digest()
        return f"{value}.{base64.urlsafe_b64encode(mac).decode().rstrip('=')}"

    def _signed_in(self, channel: Channel, request: web.Request) -> Pharmacy | None:
        cookie = request.cookies.get(SESSION_COOKIE, "")
        value, _, _ = cookie.rpartition(".")
        if not value or not same_secret(cookie, self._sign(value)):
            return None
        pharmacy_id, _, expires = value.partition("|")
        if not expires.isdigit() or int(expires) < time.time():
            return None
        return self._pharmacies(channel).get(pharmacy_id)

    def _csrf_for(self, nonce: str) -> str:
        return hmac.new(self._key("csrf"), nonce.encode(), hashlib.sha256).hexdigest()

    def _csrf_ok(self, request: web.Request, form: MultiDictProxy[str]) -> bool:
        nonce = request.cookies.get(CSRF_COOKIE, "")
        presented = form.get("csrf", "")
        return bool(nonce) and same_secret(presented, self._csrf_for(nonce))

    # pages

    async def page(self, channel: Channel, request: web.Request, path: str) -> web.StreamResponse:
        if request.method == "GET" and (static := asset(self.name, path)) is not None:
            return static
        if request.method == "GET" and path == "":
            return self._form_page(channel, request)
        if request.method == "GET" and path == "bevestiging":
            return self._confirmation(channel, request)
        if request.method == "POST" and path == "login":
            return await self._login(channel, request)
        if request.method == "POST" and path == "intake":
            return await self._intake(channel, request)
        if request.method == "POST" and path == "logout":
            response = self._redirect(channel)
            response.del_cookie(SESSION_COOKIE, path=f"/channels/{channel.id}/")
            return response
        raise web.HTTPNotFound()

    def _render(
        self, channel: Channel, request: web.Request, title: str, body: str, status: int = 200
    ) -> web.Response:
        nonce = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(24)
        page = (
            '<!doctype html>\n<html lang="nl">\n<head>\n<meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            '<meta name="referrer" content="no-referrer">\n<meta name="robots" content="noindex">\n'
            f"<title>{html.escape(title)} · Masker 19 · Veilig Thuis</title>\n"
            '<link rel="stylesheet" href="masker19.css">\n<script src="masker19.js" defer></script>\n'
            f'</head>\n<body>\n<header class="m19-header"><p class="m19-brand">Veilig Thuis · Masker 19</p>'
            f"</header>\n<main>\n{body.replace('{{csrf}}', self._csrf_for(nonce))}\n</main>\n</body>\n</html>\n"
        )
        response = web.Response(
            text=page,
            status=status,
            content_type="text/html",
            headers={
                "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
                "img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
                "Cache-Control": "no-store",
                "Referrer-Policy": "no-referrer",
                "X-Content-Type-Options": "nosniff",
            },
        )
        if request.cookies.get(CSRF_COOKIE) != nonce:
            self._cookie(channel, request, response, CSRF_COOKIE, nonce, max_age=None)
        return response

    def _cookie(
        self,
        channel: Channel,
        request: web.Request,
        response: web.StreamResponse,
        name: str,
        value: str,
        max_age: int | None,
    ) -> None:
        secure = channel.settings.secure_cookies or request.secure  # type: ignore[attr-defined]
        response.set_cookie(
            name,
            value,
            path=f"/channels/{channel.id}/",
            httponly=True,
            samesite="Strict",
            secure=secure,
            max_age=max_age,
        )

    def _redirect(self, channel: Channel, where: str = "") -> web.Response:
        return web.Response(
            status=303, headers={"Location": f"/channels/{channel.id}/{where}", "Cache-Control": "no-store"}
        )

    def _form_page(self, channel: Channel, request: web.Request) -> web.Response:
        pharmacy = self._signed_in(channel, request)
        if pharmacy is None:
            return self._login_page(channel, request)
        return self._intake_page(channel, request, pharmacy, {}, None)

    def _login_page(
        self, channel: Channel, request: web.Request, error: str = "", status: int = 200
    ) -> web.Response:
        alert = f'<div class="m19-error" role="alert"><p>{html.escape(error)}</p></div>' if error else ""
        body = f"""<h1>Aanmelden als apotheek</h1>
<p>Meld u aan met de gegevens die uw apotheek van Veilig Thuis heeft gekregen.</p>
{alert}
<form method="post" action="login" autocomplete="off" class="m19-form">
<input type="hidden" name="csrf" value="{{{{csrf}}}}">
<p><label for="apotheek">Apotheekcode</label>
<input id="apotheek" name="apotheek" required autocomplete="username" spellcheck="false"></p>
<p><label for="wachtwoord">Wachtwoord</label>
<input id="wachtwoord" name="wachtwoord" type="password" required autocomplete="current-password"></p>
<p><button type="submit">Aanmelden</button></p>
</form>"""
        return self._render(channel, request, "Aanmelden", body, status)

    async def _login(self, channel: Channel, request: web.Request) -> web.Response:
        form = await request.post()
        if not self._csrf_ok(request, form):  # type: ignore[arg-type]
            return self._login_page(channel, request, "Het formulier was verlopen. Probeer het opnieuw.", 403)
        limit = channel.settings.sign_ins_per_minute  # type: ignore[attr-defined]
        if self._sign_ins.limit != limit:  # first use, or changed by a reload
            self._sign_ins = Window(limit, 60)
        if not self._sign_ins.allow(request.remote or "unknown"):
            return self._login_page(channel, request, "Te veel pogingen. Wacht een minuut.", 429)
        pharmacy = self._pharmacies(channel).get(str(form.get("apotheek", "")).strip())
        password = str(form.get("wachtwoord", ""))
        if pharmacy is None or not verify_password(password, pharmacy.password_hash):
            self._need_runtime().metrics.rejected.labels(self.name, "wrong_credentials").inc()
            return self._login_page(channel, request, "Onbekende apotheekcode of verkeerd wachtwoord.", 401)
        minutes = channel.settings.session_minutes  # type: ignore[attr-defined]
        value = self._sign(f"{pharmacy.id}|{int(time.time()) + minutes * 60}")
        response = self._redirect(channel)
        self._cookie(channel, request, response, SESSION_COOKIE, value, max_age=minutes * 60)
        log.info("pharmacy_signed_in", channel=channel.id, pharmacy=pharmacy.id)
        return response

    def _intake_page(
        self,
        channel: Channel,
        request: web.Request,
        pharmacy: Pharmacy,
        problems: dict[str, str],
        form: MultiDictProxy[str] | None,
        status: int = 200,
    ) -> web.Response:
        def value(name: str) -> str:
            return html.escape(form.get(name, "")) if form is not None else ""

        def checked(name: str, option: str) -> str:
            return " checked" if form is not None and option in form.getall(name, []) else ""

        def error(name: str) -> str:
            if name not in problems:
                return ""
            return f'<p class="m19-field-error" id="{name}-fout"><span class="m19-sr">Fout: </span>{html.escape(problems[name])}</p>'

        def described(name: str) -> str:
            return f' aria-describedby="{name}-fout" aria-invalid="true"' if name in problems else ""

        summary = ""
        if problems:
            items = "".join(f'<li><a href="#{n}-veld">{html.escape(m)}</a></li>' for n, m in problems.items())
            summary = (
                '<div class="m19-error" role="alert" tabindex="-1" id="fouten"><h2>Controleer het formulier</h2>'
                f"<ul>{items}</ul></div>"
            )
        who = "".join(
            f'<label class="m19-choice"><input type="checkbox" name="wie" value="{k}"{checked("wie", k)}> {v}</label>'
            for k, v in WHO.items()
        )
        contact = "".join(
            f'<label class="m19-choice"><input type="radio" name="contact" value="{k}"{checked("contact", k)}> '
            f"{v[0].upper() + v[1:]}</label>"
            for k, v in CONTACT.items()
        )
        submission = html.escape(form.get("melding", "")) if form is not None else uuid.uuid4().hex
        body = f"""<h1>Masker 19-melding</h1>
<p class="m19-signed-in">Aangemeld als <strong>{html.escape(pharmacy.name)}</strong>.</p>
<form method="post" action="logout" class="m19-inline"><input type="hidden" name="csrf" value="{{{{csrf}}}}"><button type="submit" class="m19-secondary">Afmelden</button></form>
{summary}
<form method="post" action="intake" autocomplete="off" class="m19-form" novalidate>
<input type="hidden" name="csrf" value="{{{{csrf}}}}">
<input type="hidden" name="melding" value="{submission}">
<fieldset id="acuut-veld"{described("acuut")}><legend>Is iemand nu in acuut gevaar?</legend>{error("acuut")}
<label class="m19-choice"><input type="radio" name="acuut" value="ja"{checked("acuut", "ja")}> Ja</label>
<label class="m19-choice"><input type="radio" name="acuut" value="nee"{checked("acuut", "nee")}> Nee</label>
</fieldset>
<div class="m19-call112" id="bel112" role="alert" hidden><p><strong>Bel eerst 112.</strong> Vul daarna dit formulier in.</p></div>
<fieldset id="wie-veld"{described("wie")}><legend>Wie is er in gevaar?</legend>{error("wie")}{who}</fieldset>
<fieldset id="contact-veld"{described("contact")}><legend>Hoe kunnen wij veilig contact opnemen?</legend>{error("contact")}{contact}</fieldset>
<p id="nummer-veld"><label for="nummer">Telefoonnummer (bij bellen of sms)</label>{error("nummer")}
<input id="nummer" name="nummer" inputmode="tel" value="{value("nummer")}"{described("nummer")}></p>
<p id="moment-veld"><label for="moment">Veilig moment voor contact (mag leeg)</label>{error("moment")}
<input id="moment" name="moment" maxlength="100" value="{value("moment")}"{described("moment")}></p>
<fieldset id="toestemming-veld"{described("toestemming")}><legend>Geeft de persoon toestemming voor contact?</legend>{error("toestemming")}
<label class="m19-choice"><input type="radio" name="toestemming" value="ja"{checked("toestemming", "ja")}> Ja</label>
<label class="m19-choice"><input type="radio" name="toestemming" value="nee"{checked("toestemming", "nee")}> Nee</label>
</fieldset>
<p id="notitie-veld"><label for="notitie">Korte notitie (mag leeg, hoogstens {MAX_NOTE} tekens)</label>{error("notitie")}
<textarea id="notitie" name="notitie" rows="4" maxlength="{MAX_NOTE}"{described("notitie")}>{value("notitie")}</textarea></p>
<p><button type="submit">Melding versturen</button></p>
</form>"""
        return self._render(channel, request, "Melding", body, status)

    async def _intake(self, channel: Channel, request: web.Request) -> web.Response:
        runtime = self._need_runtime()
        pharmacy = self._signed_in(channel, request)
        if pharmacy is None:
            runtime.metrics.rejected.labels(self.name, "not_signed_in").inc()
            return self._login_page(channel, request, "Meld u eerst aan.", 401)
        form = await request.post()
        if not self._csrf_ok(request, form):  # type: ignore[arg-type]
            runtime.metrics.rejected.labels(self.name, "csrf").inc()
            problems = {
                "formulier": "Het formulier was verlopen. Controleer de gegevens en verstuur opnieuw."
            }
            return self._intake_page(channel, request, pharmacy, problems, form, 403)  # type: ignore[arg-type]
        intake, problems = validate_intake(form)  # type: ignore[arg-type]
        submission = str(form.get("melding", ""))
        if len(submission) != 32 or not all(c in "0123456789abcdef" for c in submission):
            problems = {**problems, "formulier": "Het formulier is niet compleet. Laad de pagina opnieuw."}
        if intake is None or problems:
            runtime.metrics.rejected.labels(self.name, "invalid_intake").inc()
            return self._intake_page(channel, request, pharmacy, problems, form, 422)  # type: ignore[arg-type]
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
        runtime.metrics.received_for(self.name).inc()
        try:
            await runtime.ingest.accept(channel, (message,))
        except PublishError:
            problems = {
                "formulier": "De melding kon nu niet worden opgeslagen. Probeer het over een minuut opnieuw."
            }
            return self._intake_page(channel, request, pharmacy, problems, form, 503)  # type: ignore[arg-type]
        reference = envelope_id(channel.id, provider_id).replace("-", "")[:8].upper()
        log.info("intake_accepted", channel=channel.id, pharmacy=pharmacy.id, acute=intake.acute)
        response = self._redirect(channel, f"bevestiging?ref={reference[:4]}-{reference[4:]}")
        if intake.acute:
            response.headers["Location"] += "&acuut=1"
        return response

    def _confirmation(self, channel: Channel, request: web.Request) -> web.Response:
        if self._signed_in(channel, request) is None:
            return self._login_page(channel, request)
        reference = request.query.get("ref", "")
        if len(reference) != 9 or not all(c.isalnum() or c == "-" for c in reference):
            raise web.HTTPNotFound()
        acute = (
            '<p class="m19-call112"><strong>Is iemand in acuut gevaar en is 112 nog niet gebeld? Bel nu 112.</strong></p>'
            if request.query.get("acuut") == "1"
            else ""
        )
        body = f"""<h1>Melding verstuurd</h1>
{acute}
<p>Veilig Thuis heeft de melding ontvangen en neemt contact op zoals afgesproken.</p>
<p>Referentie: <strong class="m19-reference">{html.escape(reference)}</strong></p>
<p>Noteer alleen deze referentie, geen gegevens van de persoon.</p>
<p><a href="./">Nieuwe melding</a></p>"""
        return self._render(channel, request, "Verstuurd", body)

    def _need_runtime(self) -> Runtime:
        if self._runtime is None:
            raise RuntimeError("the masker19 kind was not attached to a running service")
        return self._runtime


_DEMO: list[Pharmacy] = []


def _demo_pharmacy() -> Pharmacy:
    """Made once per process (hashing is slow on purpose)."""
    if not _DEMO:
        _DEMO.append(
            Pharmacy(
                id=DEMO_PHARMACY,
                name="Demo-apotheek (alleen om te proberen)",
                municipality="Eindhoven",
                password_hash=hash_password(DEMO_PASSWORD),
            )
        )
    return _DEMO[0]
