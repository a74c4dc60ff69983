"""The migration window at sign-in: a counsellor whose TOTP secret and recovery codes were
made under GATEWAY_SECRET_KEY alone still signs in once the desk has its own key (with
the old secret kept beside it), and the secret is then re-sealed under the desk key, so
it keeps working after the window ends. The embedded store, the real Identities."""

from __future__ import annotations

import hmac
from datetime import UTC, datetime, timedelta

import pyotp
import pytest

from gateway.domain.identity import LocalAccount
from gateway.domain.messages import Rejected
from gateway.roles.identity import Identities
from gateway.service import make_store
from gateway.support import keys
from gateway.support.keys import Keyring
from gateway.support.metrics import Metrics
from gateway.support.passwords import hash_password
from tests.support.test_keys import SECRET, legacy_seal

PASSWORD = "een-lang-wachtwoord-2026"
TOTP = pyotp.random_base32()
RECOVERY = "abcde-fghjk"
LIFETIME = timedelta(hours=8)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


async def test_second_factors_made_before_the_split_work_through_the_window_and_after() -> None:
    store = make_store(None)
    await store.start()
    clock = Clock()
    account = LocalAccount(
        "desk", "c-1", "C", "zuidoost-brabant", "counsellor", hash_password(PASSWORD), True
    )
    legacy_recovery_key = Keyring(SECRET).key_for("identity/recovery-codes")
    old_hash = hmac.new(legacy_recovery_key, f"desk|c-1|{RECOVERY}".encode(), "sha256").hexdigest()
    before = Identities(store, Keyring(SECRET), Metrics(), clock)
    await before.credentials.update(
        "desk", "c-1", totp_sealed=legacy_seal(SECRET, {"totp": TOTP}), recovery_hashes=[old_hash]
    )
    generated = keys.generate()
    desk_keys = {name: generated[name] for name in (keys.SEAL_PRIVATE, keys.DESK_SESSION)}

    async def sign_in(identities: Identities, code: str) -> str:
        signed_in = await identities.sign_in(
            "desk", account, PASSWORD, code, "127.0.0.1", per_minute=100, per_hour=100, lifetime=LIFETIME
        )
        return signed_in.session.identity.method

    window = Identities(store, Keyring.from_env(desk_keys, legacy_secret=SECRET), Metrics(), clock)
    try:
        assert await sign_in(window, pyotp.TOTP(TOTP).at(clock.now)) == "password+totp"
        assert (await window.credentials.of("desk", "c-1")).totp_sealed.startswith("d1.")  # re-sealed
        assert await sign_in(window, RECOVERY) == "password+recovery"

        after = Identities(store, Keyring.from_env(desk_keys), Metrics(), clock)  # the secret removed
        clock.now += timedelta(minutes=2)
        assert await sign_in(after, pyotp.TOTP(TOTP).at(clock.now)) == "password+totp"
        with pytest.raises(Rejected, match="wrong"):
            await sign_in(after, RECOVERY)  # used once already
        after.close()
    finally:
        for identities in (before, window):
            identities.close()
        await store.close()
