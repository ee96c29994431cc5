from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from server.brokers.paper.clock import ManualClock
from server.db import create_engine, session_factory, upgrade_database
from server.models import AuditEvent, BrokerConnection, RefreshToken, User
from server.security.passwords import HashingParameters, PasswordService
from server.security.ratelimit import KeyedLimiter, Rate, RateLimited
from server.security.tokens import AccessTokens
from server.users.audit import Actor
from server.users.service import Session, UserProblem, UserService

pytestmark = pytest.mark.anyio
PASSWORD = "tidal-Orbit-57-marmalade"
ACTOR = Actor(ip="203.0.113.7")


@pytest.fixture
async def users(tmp_path: Path, clock: ManualClock) -> AsyncIterator[UserService]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'users.db'}"
    await asyncio.to_thread(upgrade_database, url)
    engine = create_engine(url)
    tokens = AccessTokens("t" * 40, issuer="test", audience="test", lifetime=timedelta(minutes=15))
    passwords = PasswordService(HashingParameters(time_cost=1, memory_cost=8 * 1024))
    yield UserService(
        session_factory(engine),
        passwords,
        tokens,
        failures=KeyedLimiter(Rate(5, 900), max_keys=100),
        refresh_lifetime=timedelta(days=30),
        now=clock.now,
    )
    await engine.dispose()


def _ok(result: Session | list[UserProblem]) -> Session:
    assert isinstance(result, Session), result
    return result


def _codes(result: Session | list[UserProblem]) -> list[str]:
    assert isinstance(result, list), result
    return [problem.code for problem in result]


async def test_register_signs_in_and_opens_a_paper_connection(users: UserService) -> None:
    session = _ok(await users.register("Ada", "Ada@Example.com", PASSWORD, ACTOR))
    assert (session.user.username, session.user.email, session.user.role) == ("ada", "ada@example.com", "user")
    assert PASSWORD not in session.user.password_hash
    async with users._sessions() as db:
        [connection] = (await db.exec(select(BrokerConnection))).all()
        [audit] = (await db.exec(select(AuditEvent))).all()
    assert (connection.kind, connection.is_default, connection.user_id) == ("PAPER", True, session.user.id)
    assert (audit.action, audit.outcome, audit.ip) == ("register", "success", "203.0.113.7")


async def test_register_refuses_bad_and_taken_identities(users: UserService) -> None:
    _ok(await users.register("ada", "ada@example.com", PASSWORD, ACTOR))
    assert _codes(await users.register("ADA", "other@example.com", PASSWORD, ACTOR)) == ["USERNAME_TAKEN"]
    assert _codes(await users.register("grace", "ADA@example.com", PASSWORD, ACTOR)) == ["EMAIL_TAKEN"]
    assert _codes(await users.register("x", "nope", "short", ACTOR)) == [
        "INVALID_USERNAME",
        "INVALID_EMAIL",
        "PASSWORD_TOO_SHORT",
    ]


async def test_racing_registrations_make_one_user(users: UserService) -> None:
    results = await asyncio.gather(*(users.register("ada", f"ada{i}@example.com", PASSWORD, ACTOR) for i in range(5)))
    assert sum(isinstance(r, Session) for r in results) == 1
    assert sorted(c for r in results if isinstance(r, list) for c in _codes(r)) == ["USERNAME_TAKEN"] * 4


async def test_login_by_username_or_email_and_failures_are_audited(users: UserService) -> None:
    _ok(await users.register("ada", "ada@example.com", PASSWORD, ACTOR))
    _ok(await users.login("ADA", PASSWORD, ACTOR))
    _ok(await users.login("ada@example.com", PASSWORD, ACTOR))
    assert _codes(await users.login("ada", "wrong password!", ACTOR)) == ["INVALID_CREDENTIALS"]
    assert _codes(await users.login("nobody", "wrong password!", ACTOR)) == ["INVALID_CREDENTIALS"]
    async with users._sessions() as db:
        failures = (await db.exec(select(AuditEvent).where(AuditEvent.outcome == "failure"))).all()
    assert len(failures) == 2
    assert all("wrong password" not in str(f.detail) for f in failures)


async def test_disabled_users_cannot_sign_in_or_refresh(users: UserService) -> None:
    session = _ok(await users.register("ada", "ada@example.com", PASSWORD, ACTOR))
    async with users._sessions() as db:
        user = await db.get(User, session.user.id)
        assert user is not None
        user.is_active = False
        db.add(user)
        await db.commit()
    assert _codes(await users.login("ada", PASSWORD, ACTOR)) == ["ACCOUNT_DISABLED"]
    assert _codes(await users.refresh(session.refresh_token, ACTOR)) == ["INVALID_REFRESH_TOKEN"]


async def test_refresh_rotates_and_reuse_revokes_the_family(users: UserService) -> None:
    first = _ok(await users.register("ada", "ada@example.com", PASSWORD, ACTOR))
    second = _ok(await users.refresh(first.refresh_token, ACTOR))
    assert second.refresh_token != first.refresh_token
    third = _ok(await users.refresh(second.refresh_token, ACTOR))
    # An attacker replays the first token: the whole family dies, the live one included.
    assert _codes(await users.refresh(first.refresh_token, ACTOR)) == ["REFRESH_TOKEN_REUSED"]
    # The live token was revoked, not reused: it is refused as invalid, and no second alarm is raised.
    assert _codes(await users.refresh(third.refresh_token, ACTOR)) == ["INVALID_REFRESH_TOKEN"]
    async with users._sessions() as db:
        tokens = (await db.exec(select(RefreshToken))).all()
        reuse = (await db.exec(select(AuditEvent).where(AuditEvent.action == "refresh_reuse"))).all()
    assert all(t.revoked_at is not None for t in tokens)
    assert all(first.refresh_token not in t.token_hash for t in tokens)
    assert len(reuse) == 1


async def test_racing_refreshes_give_one_new_session(users: UserService) -> None:
    first = _ok(await users.register("ada", "ada@example.com", PASSWORD, ACTOR))
    results = await asyncio.gather(*(users.refresh(first.refresh_token, ACTOR) for _ in range(3)))
    assert sum(isinstance(r, Session) for r in results) <= 1
    assert any(isinstance(r, list) and "REFRESH_TOKEN_REUSED" in _codes(r) for r in results)


async def test_expired_refresh_tokens_are_refused(users: UserService, clock: ManualClock) -> None:
    first = _ok(await users.register("ada", "ada@example.com", PASSWORD, ACTOR))
    clock.advance(timedelta(days=31))
    assert _codes(await users.refresh(first.refresh_token, ACTOR)) == ["INVALID_REFRESH_TOKEN"]
    assert _codes(await users.refresh("made-up-token", ACTOR)) == ["INVALID_REFRESH_TOKEN"]


async def test_logout_and_password_change_end_sessions(users: UserService) -> None:
    one = _ok(await users.register("ada", "ada@example.com", PASSWORD, ACTOR))
    assert await users.logout(one.refresh_token, ACTOR)
    assert _codes(await users.refresh(one.refresh_token, ACTOR)) == ["INVALID_REFRESH_TOKEN"]
    two = _ok(await users.login("ada", PASSWORD, ACTOR))
    assert [p.code for p in await users.change_password(two.user.id, "wrong one!!", "x", ACTOR)] == [
        "INVALID_CREDENTIALS"
    ]
    assert [p.code for p in await users.change_password(two.user.id, PASSWORD, "short", ACTOR)] == [
        "PASSWORD_TOO_SHORT"
    ]
    assert await users.change_password(two.user.id, PASSWORD, "another-Long-passphrase-9", ACTOR) == []
    assert _codes(await users.refresh(two.refresh_token, ACTOR)) == ["INVALID_REFRESH_TOKEN"]
    assert _codes(await users.login("ada", PASSWORD, ACTOR)) == ["INVALID_CREDENTIALS"]
    _ok(await users.login("ada", "another-Long-passphrase-9", ACTOR))


class CountingSessions:
    """The session factory, counting the sessions open at any moment."""

    def __init__(self, factory: Any) -> None:
        self._factory = factory
        self.open = 0

    @asynccontextmanager
    async def __call__(self) -> AsyncIterator[Any]:
        self.open += 1
        try:
            async with self._factory() as session:
                yield session
        finally:
            self.open -= 1


async def test_no_database_session_is_held_while_a_password_is_checked(
    users: UserService, monkeypatch: pytest.MonkeyPatch
) -> None:
    ada = _ok(await users.register("ada", "ada@example.com", PASSWORD, ACTOR))
    counting = CountingSessions(users._sessions)
    monkeypatch.setattr(users, "_sessions", counting)
    seen: list[int] = []
    verify, hash_ = users._passwords.verify, users._passwords.hash

    async def watched_verify(*args: Any) -> bool:
        seen.append(counting.open)
        return await verify(*args)

    async def watched_hash(*args: Any) -> str:
        seen.append(counting.open)
        return await hash_(*args)

    monkeypatch.setattr(users._passwords, "verify", watched_verify)
    monkeypatch.setattr(users._passwords, "hash", watched_hash)
    _ok(await users.login("ada", PASSWORD, ACTOR))
    assert _codes(await users.login("ada", "wrong password", ACTOR)) == ["INVALID_CREDENTIALS"]
    assert await users.change_password(ada.user.id, PASSWORD, "another-Long-passphrase-9", ACTOR) == []
    assert seen
    assert set(seen) == {0}


async def test_a_login_rehashes_a_password_made_with_old_parameters(users: UserService) -> None:
    ada = _ok(await users.register("ada", "ada@example.com", PASSWORD, ACTOR))
    stronger = PasswordService(HashingParameters(time_cost=2, memory_cost=8 * 1024))
    users._passwords = stronger
    _ok(await users.login("ada", PASSWORD, ACTOR))
    async with users._sessions() as db:
        stored = await db.get(User, ada.user.id)
    assert stored is not None
    assert stored.password_hash != ada.user.password_hash
    assert not stronger.needs_rehash(stored.password_hash)
    assert await stronger.verify(stored.password_hash, PASSWORD)


async def test_wrong_passwords_count_per_user_whatever_name_is_typed(users: UserService) -> None:
    ada = _ok(await users.register("ada", "ada@example.com", PASSWORD, ACTOR))
    for name in ("ada", "ada@example.com", "ADA", "ada@example.com"):
        assert _codes(await users.login(name, "wrong password", ACTOR)) == ["INVALID_CREDENTIALS"]
    wrong = await users.change_password(ada.user.id, "wrong password", "another-Long-passphrase-9", ACTOR)
    assert [p.code for p in wrong] == ["INVALID_CREDENTIALS"]
    with pytest.raises(RateLimited):  # five wrong tries in all, by any route
        await users.login("ada@example.com", PASSWORD, ACTOR)
    with pytest.raises(RateLimited):
        await users.change_password(ada.user.id, PASSWORD, "another-Long-passphrase-9", ACTOR)
