"""Password hashes and the bounded pool that checks them off the event loop."""

from __future__ import annotations

import asyncio

import pytest

from gateway.support import passwords
from gateway.support.passwords import (
    ChecksBusy,
    PasswordChecks,
    hash_password,
    needs_upgrade,
    verify_password,
)


def test_new_hashes_cost_2_17_and_older_ones_verify_and_want_an_upgrade(monkeypatch) -> None:
    new = hash_password("een-goed-wachtwoord")
    assert new.startswith("scrypt$17$8$1$") and not needs_upgrade(new)
    monkeypatch.setattr(passwords, "LOG2_N", 15)
    old = hash_password("een-goed-wachtwoord")
    monkeypatch.undo()
    assert verify_password("een-goed-wachtwoord", old) and needs_upgrade(old)
    assert not verify_password("een-ander-wachtwoord", old)
    assert not needs_upgrade("not a hash") and not verify_password("x", "scrypt$99$8$1$a$b")


async def test_an_unknown_account_is_checked_and_refused() -> None:
    checks = PasswordChecks(workers=1)
    try:
        assert await checks.verify("whatever", None) is False
        assert await checks.verify("een-goed-wachtwoord", hash_password("een-goed-wachtwoord")) is True
    finally:
        checks.close()


async def test_the_pool_waits_for_a_few_and_refuses_beyond() -> None:
    checks = PasswordChecks(workers=1, max_waiting=1)
    stored = hash_password("een-goed-wachtwoord")
    try:
        results = await asyncio.gather(
            *(checks.verify("een-goed-wachtwoord", stored) for _ in range(3)), return_exceptions=True
        )
        assert results.count(True) == 2
        assert [type(r) for r in results if not isinstance(r, bool)] == [ChecksBusy]
        assert await checks.verify("een-goed-wachtwoord", stored) is True  # free again afterwards
    finally:
        checks.close()


@pytest.mark.parametrize(("cpus", "workers"), [(1, 1), (2, 1), (3, 2), (16, 2)])
def test_one_core_is_left_to_the_event_loop(monkeypatch, cpus: int, workers: int) -> None:
    monkeypatch.setattr(passwords.os, "cpu_count", lambda: cpus)
    assert passwords.default_workers() == workers
