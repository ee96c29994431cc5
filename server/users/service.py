"""Accounts here: registration, sign-in, refresh-token rotation, sign-out, password change.

Expected refusals (a taken username, a wrong password) come back as `UserProblem`s for
the API to turn into userErrors; nothing here knows GraphQL. Refresh tokens rotate on
every use: presenting one that was already used revokes its whole family (the sign of a
stolen token) and is audited.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, or_, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.models import BrokerConnection, RefreshToken, User, new_id
from server.security.passwords import PasswordService, check_password_policy
from server.security.ratelimit import KeyedLimiter
from server.security.tokens import AccessTokens, IssuedToken, hash_refresh_token, new_refresh_token
from server.users.audit import Actor, record
from server.users.brokers import PreparedConnection, add_connection
from server.users.problems import UserProblem

__all__ = ["Session", "UserProblem", "UserService"]

USERNAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{2,31}$")
EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")
MAX_EMAIL_LENGTH = 254
INVALID_REFRESH_TOKEN = UserProblem("INVALID_REFRESH_TOKEN", "This refresh token is not valid.", "refreshToken")


@dataclass(frozen=True, slots=True)
class Session:
    """What a successful sign-in hands the client."""

    user: User
    access: IssuedToken
    refresh_token: str


class UserService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        passwords: PasswordService,
        tokens: AccessTokens,
        *,
        failures: KeyedLimiter,
        refresh_lifetime: timedelta,
        now: Callable[[], datetime],
    ) -> None:
        self._sessions = sessions
        self._passwords = passwords
        self._tokens = tokens
        self._failures = failures  # wrong passwords per user
        self._refresh_lifetime = refresh_lifetime
        self._now = now

    # ----- registration ---------------------------------------------------------------

    async def register(
        self, username: str, email: str, password: str, actor: Actor, *, broker: PreparedConnection | None = None
    ) -> Session | list[UserProblem]:
        """A new user with a default paper connection; `broker`, already checked with the
        broker, is added too and becomes the default."""
        username, email = username.strip().lower(), email.strip().lower()
        problems = registration_problems(username, email, password)
        if problems:
            return problems
        password_hash = await self._passwords.hash(password)
        async with self._sessions() as session:
            user = User(username=username, email=email, password_hash=password_hash)
            session.add(user)
            try:
                await session.flush()
            except IntegrityError:
                await session.rollback()
                return [await self._which_is_taken(username, email)]
            session.add(BrokerConnection(user_id=user.id, kind="PAPER", label="paper", is_default=broker is None))
            if broker is not None:
                await add_connection(session, user.id, broker, make_default=True)
            record(session, "register", "success", Actor(actor.ip, user.id), username=username)
            issued = await self._start_session(session, user, actor, family_id=new_id())
            await session.commit()
        return issued.session

    async def _which_is_taken(self, username: str, email: str) -> UserProblem:
        async with self._sessions() as session:
            taken = (await session.exec(select(User).where(User.username == username))).first()
        if taken is not None:
            return UserProblem("USERNAME_TAKEN", "That username is taken.", "username")
        return UserProblem("EMAIL_TAKEN", "That email address is already registered.", "email")

    # ----- sign in and out ------------------------------------------------------------

    async def login(self, login: str, password: str, actor: Actor) -> Session | list[UserProblem]:
        """Sign in. Wrong passwords count per user (whichever name they typed), and the
        database is not held while the password is checked."""
        key = login.strip().lower()[:MAX_EMAIL_LENGTH]
        async with self._sessions() as session:
            found = (await session.exec(select(User).where(or_(User.username == key, User.email == key)))).first()
        async with self._failures.attempt(found.id if found else f"login:{key}") as attempt:
            good = await self._passwords.verify(found.password_hash if found else None, password)
            attempt.failed = not good
        rehashed = await self._passwords.hash(password) if found and good and self._needs_rehash(found) else None
        async with self._sessions() as session:
            user = await session.get(User, found.id) if found and good else None
            if user is None:
                record(session, "login", "failure", Actor(actor.ip, found.id if found else None), login=key[:64])
                await session.commit()
                return [UserProblem("INVALID_CREDENTIALS", "Wrong username or password.")]
            if not user.is_active:
                record(session, "login", "refused", Actor(actor.ip, user.id), reason="disabled")
                await session.commit()
                return [UserProblem("ACCOUNT_DISABLED", "This account is disabled.")]
            if rehashed is not None:
                user.password_hash, user.updated_at = rehashed, self._now()
            record(session, "login", "success", Actor(actor.ip, user.id))
            issued = await self._start_session(session, user, actor, family_id=new_id())
            await session.commit()
        return issued.session

    def _needs_rehash(self, user: User) -> bool:
        return self._passwords.needs_rehash(user.password_hash)

    async def refresh(self, token: str, actor: Actor) -> Session | list[UserProblem]:
        now = self._now()
        async with self._sessions() as session:
            stored = await _find_refresh_token(session, token)
            if stored is None:
                return [INVALID_REFRESH_TOKEN]
            user = await session.get(User, stored.user_id)
            # Claim the token atomically: of two racing refreshes, one wins and the other is a reuse.
            claimed = await session.exec(  # type: ignore[call-overload]
                update(RefreshToken)
                .where(
                    col(RefreshToken.id) == stored.id,
                    col(RefreshToken.used_at).is_(None),
                    col(RefreshToken.revoked_at).is_(None),
                )
                .values(used_at=now)
            )
            if claimed.rowcount != 1 and stored.used_at is None and stored.revoked_at is not None:
                return [INVALID_REFRESH_TOKEN]  # signed out (or disabled), not reused
            if claimed.rowcount != 1:
                await revoke_refresh_tokens(session, col(RefreshToken.family_id) == stored.family_id, now)
                record(session, "refresh_reuse", "revoked", Actor(actor.ip, stored.user_id), family=stored.family_id)
                await session.commit()
                return [
                    UserProblem(
                        "REFRESH_TOKEN_REUSED", "This refresh token was already used; sign in again.", "refreshToken"
                    )
                ]
            if stored.expires_at <= now or user is None or not user.is_active:
                await session.commit()
                return [INVALID_REFRESH_TOKEN]
            issued = await self._start_session(session, user, actor, family_id=stored.family_id)
            await session.exec(  # type: ignore[call-overload]
                update(RefreshToken).where(col(RefreshToken.id) == stored.id).values(replaced_by_id=issued.refresh_id)
            )
            record(session, "refresh", "success", Actor(actor.ip, user.id))
            await session.commit()
        return issued.session

    async def logout(self, token: str, actor: Actor) -> bool:
        """Revoke the family of `token`; True when there was one to revoke."""
        async with self._sessions() as session:
            stored = await _find_refresh_token(session, token)
            if stored is None:
                return False
            await revoke_refresh_tokens(session, col(RefreshToken.family_id) == stored.family_id, self._now())
            record(session, "logout", "success", Actor(actor.ip, stored.user_id))
            await session.commit()
        return True

    async def change_password(self, user_id: str, current: str, new: str, actor: Actor) -> list[UserProblem]:
        """Wrong current passwords count against the same allowance as sign-ins."""
        async with self._sessions() as session:
            found = await session.get(User, user_id)
        async with self._failures.attempt(user_id) as attempt:
            good = found is not None and await self._passwords.verify(found.password_hash, current)
            attempt.failed = not good
        if found is None or not good:
            async with self._sessions() as session:
                record(session, "change_password", "failure", Actor(actor.ip, user_id))
                await session.commit()
            return [UserProblem("INVALID_CREDENTIALS", "The current password is wrong.", "currentPassword")]
        problems = password_problems(new, username=found.username, email=found.email, field="newPassword")
        if problems:
            return problems
        new_hash = await self._passwords.hash(new)
        async with self._sessions() as session:
            user = await session.get(User, user_id)
            if user is None:
                return [UserProblem("INVALID_CREDENTIALS", "The current password is wrong.", "currentPassword")]
            user.password_hash, user.updated_at = new_hash, self._now()
            # Every session signed in with the old password ends.
            await revoke_refresh_tokens(session, col(RefreshToken.user_id) == user_id, self._now())
            record(session, "change_password", "success", Actor(actor.ip, user_id))
            await session.commit()
        return []

    # ----- internals ------------------------------------------------------------------

    async def _start_session(self, session: AsyncSession, user: User, actor: Actor, *, family_id: str) -> _Issued:
        now = self._now()
        token, token_hash = new_refresh_token()
        stored = RefreshToken(
            user_id=user.id,
            family_id=family_id,
            token_hash=token_hash,
            expires_at=now + self._refresh_lifetime,
            created_ip=actor.ip,
        )
        session.add(stored)
        await session.flush()
        return _Issued(Session(user, self._tokens.issue(user.id, user.role, now), token), stored.id)


async def revoke_refresh_tokens(session: AsyncSession, which: ColumnElement[bool], now: datetime) -> None:
    """Revoke the still-live refresh tokens matching `which` (a family, or all of a user's)."""
    await session.exec(  # type: ignore[call-overload]
        update(RefreshToken).where(which, col(RefreshToken.revoked_at).is_(None)).values(revoked_at=now)
    )


@dataclass(frozen=True, slots=True)
class _Issued:
    session: Session
    refresh_id: str


async def _find_refresh_token(session: AsyncSession, token: str) -> RefreshToken | None:
    return (
        await session.exec(select(RefreshToken).where(RefreshToken.token_hash == hash_refresh_token(token)))
    ).first()


def registration_problems(username: str, email: str, password: str) -> list[UserProblem]:
    """Everything wrong with a sign-up that can be told without the database."""
    username, email = username.strip().lower(), email.strip().lower()
    return _check_identity(username, email) + password_problems(password, username=username, email=email)


def password_problems(password: str, *, username: str, email: str, field: str = "password") -> list[UserProblem]:
    return [
        UserProblem(v.code, v.message, field) for v in check_password_policy(password, username=username, email=email)
    ]


def _check_identity(username: str, email: str) -> list[UserProblem]:
    problems = []
    if not USERNAME.match(username):
        problems.append(
            UserProblem(
                "INVALID_USERNAME", "Usernames are 3-32 characters: letters, digits, '.', '_' or '-'.", "username"
            )
        )
    if len(email) > MAX_EMAIL_LENGTH or not EMAIL.match(email):
        problems.append(UserProblem("INVALID_EMAIL", "That does not look like an email address.", "email"))
    return problems
