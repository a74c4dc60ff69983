"""Signing in, one mechanism for the desk and for Masker 19: the password checked off
the event loop (an unknown account costs the same), limits per address and per
account, the second factor (TOTP, with single-use recovery codes), server-side
sessions that end on sign-out, on idle or absolute timeout and when the account's
credentials or configuration change, and an access-log record for every outcome.

Nothing here logs or raises with a password, code, token or session id in it.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pyotp
import segno
import structlog
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.domain.identity import Identity, LocalAccount, Method, Session, SignedIn
from gateway.domain.messages import Rejected
from gateway.store.database import Store
from gateway.store.identity import AuditEvent, AuditLog, Credentials, Sessions, StoredCredentials
from gateway.support.keys import LEGACY_SEAL_PREFIX, Keyring, SealError
from gateway.support.metrics import Metrics
from gateway.support.passwords import ChecksBusy, PasswordChecks, needs_upgrade
from gateway.support.ratelimit import Limiter, LocalLimiter

log = structlog.get_logger("gateway.identity")

RECOVERY_CODES = 10
RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i to misread
MIN_PASSWORD_CHARS = 12
TOTP_ISSUER = "Veilig Thuis desk"
MAINTAIN_EVERY_SECONDS = 60.0
Lookup = Callable[[str], LocalAccount | None]


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _new_recovery_code() -> str:
    chars = "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(10))
    return f"{chars[:5]}-{chars[5:]}"


class Identities:
    def __init__(
        self,
        store: Store,
        keyring: Keyring,
        metrics: Metrics,
        clock: Callable[[], datetime] | None = None,
        limiter: Limiter | None = None,
    ) -> None:
        """`limiter`: the service's (shared by every process through Redis); by default this
        process's own windows."""
        self._clock = clock or (lambda: datetime.now(UTC))
        self._store = store
        self._keyring = keyring
        self._metrics = metrics
        self._recovery_key: bytes | None = None  # the desk's key: taken when first used
        self.sessions = Sessions(store, self._clock)
        self.credentials = Credentials(store, self._clock)
        self.audit = AuditLog(store, self._clock, self._count)
        self._passwords = PasswordChecks()
        self._limiter = limiter or LocalLimiter()

    def _count(self, event: AuditEvent) -> None:
        self._metrics.audit_events.labels(event.action, event.result).inc()

    def close(self) -> None:
        self._passwords.close()

    # signing in

    async def sign_in(
        self,
        realm: str,
        account: LocalAccount | None,
        password: str,
        code: str | None,
        address: str,
        *,
        per_minute: int,
        per_hour: int,
        lifetime: timedelta,
    ) -> SignedIn:
        """Raises Rejected: 429 too_many_attempts, 401 wrong_credentials,
        second_factor_required or wrong_second_factor, 503 sign_in_busy."""
        who = account.id if account is not None else "unknown"  # never what was typed
        if not await self._allowed(realm, address, who, per_minute, per_hour):
            await self._failed(realm, who, account, "too_many_attempts", "denied")
            raise Rejected(429, "too_many_attempts", "too many sign-ins; wait a while and try again")
        stored = await self.credentials.of(realm, account.id) if account is not None else None
        usable = account is not None and not account.disabled
        current_hash = self._password_hash(account, stored) if usable and account and stored else None
        if not await self._verify(password, current_hash):
            await self._failed(realm, who, account, "wrong_credentials", "failed")
            raise Rejected(401, "wrong_credentials", "unknown account or wrong password")
        assert account is not None and stored is not None and current_hash is not None
        if needs_upgrade(current_hash):
            await self.credentials.update(
                realm,
                account.id,
                password_hash=await self._hash(password),
                replaces_hash=_digest(account.password_hash),
            )
        if not account.second_factor:
            return await self._start(account, "password", "full", "off", lifetime)
        if stored.totp_sealed is None:
            return await self._start(account, "password", "enrol", "enrol", lifetime)
        if not code:
            self._metrics.sign_ins.labels("second_factor_required").inc()
            raise Rejected(
                401, "second_factor_required", "enter the 6-digit code from your authenticator app"
            )
        async with self._store.transaction() as connection:
            method = await self._second_factor(account, stored.totp_sealed, code, connection)
            if method is not None:
                return await self._start(account, method, "full", "ok", lifetime, connection)
        await self._failed(realm, who, account, "wrong_second_factor", "failed")
        raise Rejected(
            401,
            "wrong_second_factor",
            "the code is wrong or has expired: use the current code from your app, "
            "or an unused recovery code",
        )

    async def _verify(self, password: str, stored: str | None) -> bool:
        try:
            return await self._passwords.verify(password, stored)
        except ChecksBusy:
            raise self._busy() from None

    async def _hash(self, password: str) -> str:
        try:
            return await self._passwords.hash(password)
        except ChecksBusy:
            raise self._busy() from None

    def _busy(self) -> Rejected:
        self._metrics.sign_ins.labels("busy").inc()
        detail = "many sign-ins at once; try again in a moment"
        return Rejected(503, "sign_in_busy", detail, headers={"Retry-After": "2"})

    async def _allowed(self, realm: str, address: str, who: str, per_minute: int, per_hour: int) -> bool:
        # Both windows count the attempt, so guessing one account from many addresses stops too.
        by_address = await self._limiter.allow(f"sign_in_address|{realm}", address, per_minute, 60)
        by_account = await self._limiter.allow("sign_in_account", f"{realm}|{who}", per_hour, 3600)
        return by_address and by_account

    @staticmethod
    def _password_hash(account: LocalAccount, stored: StoredCredentials) -> str:
        """The account's own newer hash while the configuration still holds the one it
        replaced; once an administrator sets another hash there (a reset), that one."""
        if stored.password_hash and stored.replaces_hash == _digest(account.password_hash):
            return stored.password_hash
        return account.password_hash

    async def _second_factor(
        self, account: LocalAccount, sealed: str, code: str, connection: AsyncConnection
    ) -> Method | None:
        code = "".join(code.split()).lower()
        if code.isdigit() and len(code) == 6:
            secret = self._unseal(sealed)
            step = self._matching_step(secret, code) if secret else None
            if step is not None and await self.credentials.use_step(
                account.realm, account.id, step, connection
            ):
                if secret and sealed.startswith(LEGACY_SEAL_PREFIX):  # sealed before the key split
                    relocked = self._keyring.lock({"totp": secret})
                    await self.credentials.update(account.realm, account.id, connection, totp_sealed=relocked)
                return "password+totp"
            return None
        if len(code) == 10 and "-" not in code:
            code = f"{code[:5]}-{code[5:]}"
        legacy = self._keyring.legacy_key_for("identity/recovery-codes")
        for key in (self._recovery_key_now(), legacy):
            if key is not None and await self.credentials.use_recovery(
                account.realm, account.id, self._recovery_hash(account, code, key), connection
            ):
                return "password+recovery"
        return None

    def _matching_step(self, secret: str, code: str) -> int | None:
        """The time step (this one or a neighbour: clocks drift) whose code this is."""
        totp = pyotp.TOTP(secret)
        now = self._clock()
        for offset in (0, -1, 1):
            at = now + timedelta(seconds=offset * totp.interval)
            if hmac.compare_digest(totp.at(at), code):
                return totp.timecode(at)
        return None

    def _recovery_key_now(self) -> bytes:
        if self._recovery_key is None:
            self._recovery_key = self._keyring.key_for("identity/recovery-codes")
        return self._recovery_key

    def _recovery_hash(self, account: LocalAccount, code: str, key: bytes | None = None) -> str:
        """Under the desk's key; `key`: another (the legacy one, for codes made before the
        key split)."""
        message = f"{account.realm}|{account.id}|{code}".encode()
        return hmac.new(key or self._recovery_key_now(), message, "sha256").hexdigest()

    def _unseal(self, sealed: str) -> str | None:
        try:
            return self._keyring.unlock(sealed).get("totp")
        except SealError:
            log.error(
                "second_factor_unreadable",
                detail="sealed under another GATEWAY_DESK_SESSION_KEY, or before the key split "
                "while GATEWAY_SECRET_KEY is no longer configured",
            )
            return None

    async def _start(
        self,
        account: LocalAccount,
        method: Method,
        stage: str,
        factor: str,
        lifetime: timedelta,
        connection: AsyncConnection | None = None,
    ) -> SignedIn:
        async def begin(connection: AsyncConnection) -> SignedIn:
            token, session = await self.sessions.start(
                account.identity(method),
                lifetime=lifetime,
                stamp=account.stamp,
                stage=stage,
                connection=connection,
            )
            await self.audit.append(connection, self._event(account, method, "sign_in", "ok"))
            return SignedIn(token, session, factor)  # type: ignore[arg-type]

        if connection is not None:
            signed_in = await begin(connection)
        else:
            async with self._store.transaction() as own:
                signed_in = await begin(own)
        self._metrics.sign_ins.labels("ok").inc()
        return signed_in

    async def _failed(
        self, realm: str, who: str, account: LocalAccount | None, reason: str, result: str
    ) -> None:
        team = account.team if account is not None else None
        await self.refused_sign_in(who, "password", reason, team, result)

    async def refused_sign_in(
        self, account: str, method: str, reason: str, team: str | None, result: str = "denied"
    ) -> None:
        """A sign-in that did not happen; `account` only when it is a known one, never what
        someone typed (it may be a password typed in the wrong field)."""
        self._metrics.sign_ins.labels(reason).inc()
        await self.audit.record(
            AuditEvent(account, method, "sign_in_failed", result, team=team or None, reason=reason)
        )

    async def start_external(self, identity: Identity, lifetime: timedelta) -> SignedIn:
        """A session for someone the identity provider vouched for (its own second factor)."""
        async with self._store.transaction() as connection:
            token, session = await self.sessions.start(
                identity, lifetime=lifetime, stamp=identity.method, connection=connection
            )
            await self.audit.append(
                connection,
                AuditEvent.by(identity, "sign_in"),
            )
        self._metrics.sign_ins.labels("ok").inc()
        return SignedIn(token, session, "off")

    @staticmethod
    def _event(
        account: LocalAccount, method: Method, action: str, result: str, reason: str | None = None
    ) -> AuditEvent:
        return AuditEvent.by(account.identity(method), action, result, reason=reason)

    # a session in use

    async def current(
        self, realm: str, token: str, idle: timedelta, lookup: Lookup, *, touch: bool = True
    ) -> Session | None:
        """The live session of this token; None when it has ended, and it ends here when
        its account is gone, disabled, or changed in the configuration since sign-in.
        `touch`: this is someone's use (not an open stream's re-check) and counts against idle."""
        found = await self.sessions.find(token, realm, idle, touch=touch)
        if found is None:
            return None
        session, stamp = found
        if session.identity.method == "oidc":
            return session
        account = lookup(session.identity.account)
        if account is None or account.disabled or account.stamp != stamp:
            await self.sessions.end(token)
            return None
        return session

    async def sign_out(self, token: str, session: Session) -> None:
        identity = session.identity
        async with self._store.transaction() as connection:
            await self.sessions.end(token, connection)
            await self.audit.append(connection, AuditEvent.by(identity, "sign_out"))

    async def end_one(self, session: Session, public_id: str) -> bool:
        identity = session.identity
        ended = await self.sessions.end_one(identity.realm, identity.account, public_id)
        if ended:
            await self.audit.record(AuditEvent.by(identity, "sign_out", reason="another_session"))
        return ended

    # the second factor and the password, changed by the account itself

    async def begin_enrolment(self, account: LocalAccount) -> tuple[str, str, str]:
        """A new TOTP secret, pending until a code from it is confirmed: the secret, its
        otpauth:// URI and that URI as an inline SVG QR code (made here, no third party)."""
        secret = pyotp.random_base32()
        await self.credentials.update(
            account.realm, account.id, totp_pending_sealed=self._keyring.lock({"totp": secret})
        )
        uri = pyotp.TOTP(secret).provisioning_uri(name=account.id, issuer_name=TOTP_ISSUER)
        svg = segno.make(uri, error="m").svg_inline(scale=4, dark="#000", light="#fff")
        return secret, uri, svg

    async def confirm_enrolment(
        self, session: Session, account: LocalAccount, code: str, lifetime: timedelta
    ) -> tuple[list[str], SignedIn]:
        """Activate the pending secret with a code from it: ten new recovery codes, every
        session of the account ended and a new one started."""
        stored = await self.credentials.of(account.realm, account.id)
        secret = self._unseal(stored.totp_pending_sealed) if stored.totp_pending_sealed else None
        if secret is None:
            raise Rejected(409, "no_enrolment", "start the enrolment first (POST /api/v1/second-factor)")
        step = self._matching_step(secret, "".join(code.split()))
        if step is None:
            self._metrics.sign_ins.labels("wrong_second_factor").inc()
            raise Rejected(
                401, "wrong_second_factor", "the code is wrong or has expired: try the current code"
            )
        codes = [_new_recovery_code() for _ in range(RECOVERY_CODES)]
        async with self._store.transaction() as connection:
            await self.credentials.update(
                account.realm,
                account.id,
                connection,
                totp_sealed=stored.totp_pending_sealed,
                totp_pending_sealed=None,
                totp_last_step=step,
                recovery_hashes=[self._recovery_hash(account, c) for c in codes],
            )
            await self.sessions.end_all(account.realm, account.id, connection)
            await self.audit.append(
                connection, self._event(account, session.identity.method, "second_factor_changed", "ok")
            )
            signed_in = await self._start(account, "password+totp", "full", "ok", lifetime, connection)
        return codes, signed_in

    async def change_password(self, session: Session, account: LocalAccount, current: str, new: str) -> None:
        """Ends every session of the account, this one too."""
        stored = await self.credentials.of(account.realm, account.id)
        if not await self._verify(current, self._password_hash(account, stored)):
            await self.audit.record(
                self._event(account, session.identity.method, "password_changed", "failed", "wrong_password")
            )
            raise Rejected(401, "wrong_credentials", "the current password is wrong")
        if len(new) < MIN_PASSWORD_CHARS:
            raise Rejected(
                422, "weak_password", f"a new password has at least {MIN_PASSWORD_CHARS} characters"
            )
        new_hash = await self._hash(new)
        async with self._store.transaction() as connection:
            await self.credentials.update(
                account.realm, account.id, connection,
                password_hash=new_hash, replaces_hash=_digest(account.password_hash),
            )  # fmt: skip
            await self.sessions.end_all(account.realm, account.id, connection)
            await self.audit.append(
                connection, self._event(account, session.identity.method, "password_changed", "ok")
            )

    async def maintain(self, idle: Callable[[], timedelta], audit_retention: Callable[[], timedelta]) -> None:
        """Forever: delete ended sessions and sample the live ones; apply the access log's
        own retention (years, longer than any transcript's)."""
        while True:
            try:
                self._metrics.sessions_active.set(await self.sessions.forget_ended(idle()))
                gone = await self.audit.forget_before(self._clock() - audit_retention())
                if gone:
                    log.info("audit_retention_deleted", records=gone)
            except Exception as exc:
                log.warning("identity_maintenance_failed", error=type(exc).__name__)
            await asyncio.sleep(MAINTAIN_EVERY_SECONDS)

    async def end_sessions_of(self, realm: str, accounts: list[str]) -> None:
        """The configuration disabled, removed or changed these accounts: their sessions
        end now, on every process (the others may not have reloaded yet)."""
        for account in accounts:
            ended = await self.sessions.end_all(realm, account)
            if ended:
                log.info("sessions_ended_by_configuration", sessions=ended)
