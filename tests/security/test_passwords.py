from __future__ import annotations

import asyncio
import time

import pytest

from server.security.passwords import (
    HashingParameters,
    PasswordHashTimeoutError,
    PasswordService,
    check_password_policy,
)

pytestmark = pytest.mark.anyio
FAST = HashingParameters(time_cost=1, memory_cost=8 * 1024, parallelism=1)


@pytest.fixture
def passwords() -> PasswordService:
    return PasswordService(FAST)


async def test_hashes_are_argon2id_and_verify(passwords: PasswordService) -> None:
    hashed = await passwords.hash("correct horse battery staple")
    assert hashed.startswith("$argon2id$")
    assert "correct horse" not in hashed
    assert await passwords.verify(hashed, "correct horse battery staple")
    assert not await passwords.verify(hashed, "correct horse battery stapler")


async def test_unknown_users_cost_a_real_check(passwords: PasswordService) -> None:
    assert not await passwords.verify(None, "anything at all")
    assert not await passwords.verify("not-a-hash", "anything at all")


async def test_new_parameters_ask_for_a_rehash(passwords: PasswordService) -> None:
    hashed = await passwords.hash("correct horse battery staple")
    assert not passwords.needs_rehash(hashed)
    stronger = PasswordService(HashingParameters(time_cost=2, memory_cost=8 * 1024))
    assert stronger.needs_rehash(hashed)
    assert await stronger.verify(hashed, "correct horse battery staple")


async def test_hashing_leaves_the_event_loop_free() -> None:
    slow = PasswordService(HashingParameters(time_cost=3, memory_cost=64 * 1024), max_concurrent=2)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.005)
            ticks += 1

    task = asyncio.create_task(ticker())
    started = time.perf_counter()
    await asyncio.gather(*(slow.hash(f"password number {i}!") for i in range(4)))
    elapsed = time.perf_counter() - started
    task.cancel()
    # The loop kept ticking while the hashes ran in threads (a blocked loop would not tick).
    assert ticks >= 0.3 * elapsed / 0.005


async def test_a_backlog_of_hashes_is_refused_in_time() -> None:
    slow = PasswordService(
        HashingParameters(time_cost=3, memory_cost=64 * 1024), max_concurrent=1, timeout_seconds=0.05
    )
    results = await asyncio.gather(*(slow.hash(f"password number {i}!") for i in range(3)), return_exceptions=True)
    assert all(isinstance(result, PasswordHashTimeoutError) for result in results[1:])


@pytest.mark.parametrize(
    ("password", "code"),
    [
        ("short", "PASSWORD_TOO_SHORT"),
        ("x" * 300, "PASSWORD_TOO_LONG"),
        ("ada-lovelace-1815", "PASSWORD_CONTAINS_USERNAME"),
        ("my.mailbox.name!!", "PASSWORD_CONTAINS_EMAIL"),
        ("password123", "PASSWORD_TOO_COMMON"),
        ("abababababab", "PASSWORD_TOO_COMMON"),
    ],
)
def test_policy_names_each_problem(password: str, code: str) -> None:
    codes = [p.code for p in check_password_policy(password, username="lovelace", email="mailbox@example.com")]
    assert code in codes


def test_a_good_password_passes() -> None:
    assert check_password_policy("tidal-Orbit-57-marmalade", username="ada", email="ada@example.com") == []
