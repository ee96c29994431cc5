"""What only an admin may do: see every user, disable one, set per-user risk limits and the kill switch.

Each change is audited with the admin as the actor. Disabling a user also ends every
session they have (their refresh tokens are revoked; their access tokens are refused
from the next request on, since every signed-in request checks the user is active).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from decimal import Decimal

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.models import RefreshToken, User
from server.users.audit import Actor, record
from server.users.problems import UserProblem
from server.users.service import revoke_refresh_tokens

MAX_PAGE = 200
MAX_NOTIONAL = Decimal(10) ** 12
USER_NOT_FOUND = UserProblem("USER_NOT_FOUND", "No user has that id.", "userId")
Outcome = User | list[UserProblem]


@dataclass(frozen=True, slots=True)
class RiskLimits:
    """Per-user overrides of the server's risk defaults; None keeps the default."""

    max_order_notional: Decimal | None = None
    max_position_notional: Decimal | None = None
    price_band_percent: Decimal | None = None

    def problems(self) -> list[UserProblem]:
        problems = []
        for name, value in (
            ("maxOrderNotional", self.max_order_notional),
            ("maxPositionNotional", self.max_position_notional),
        ):
            if value is not None and not 0 < value <= MAX_NOTIONAL:
                problems.append(UserProblem("INVALID_LIMIT", f"{name} must be positive and at most 10^12.", name))
        band = self.price_band_percent
        if band is not None and not 0 < band <= 100:
            message = "priceBandPercent must be above 0 and at most 100."
            problems.append(UserProblem("INVALID_LIMIT", message, "priceBandPercent"))
        return problems


class UserAdmin:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, now: Callable[[], datetime]) -> None:
        self._sessions = sessions
        self._now = now

    async def list_users(self, *, first: int, after: str | None) -> list[User]:
        """Users in username order, `first` at most, after the username `after`."""
        async with self._sessions() as session:
            query = select(User).order_by(col(User.username)).limit(max(1, min(first, MAX_PAGE)))
            if after is not None:
                query = query.where(col(User.username) > after)
            return list((await session.exec(query)).all())

    async def set_active(self, user_id: str, active: bool, actor: Actor) -> Outcome:
        async def change(session: AsyncSession, user: User) -> _Audit:
            user.is_active = active
            if not active:
                await revoke_refresh_tokens(session, col(RefreshToken.user_id) == user.id, self._now())
            return _Audit("enable_user" if active else "disable_user", "success")

        return await self._change(user_id, change, actor)

    async def set_risk_limits(self, user_id: str, limits: RiskLimits, actor: Actor) -> Outcome:
        problems = limits.problems()
        if problems:
            return problems

        async def change(_session: AsyncSession, user: User) -> _Audit:
            user.max_order_notional = limits.max_order_notional
            user.max_position_notional = limits.max_position_notional
            user.price_band_percent = limits.price_band_percent
            return _Audit("set_risk_limits", "success", {k: str(v) for k, v in asdict(limits).items() if v is not None})

        return await self._change(user_id, change, actor)

    async def set_kill_switch(self, user_id: str, engaged: bool, actor: Actor) -> Outcome:
        async def change(_session: AsyncSession, user: User) -> _Audit:
            user.kill_switch = engaged
            return _Audit("kill_switch", "engaged" if engaged else "released")

        return await self._change(user_id, change, actor)

    async def _change(
        self, user_id: str, change: Callable[[AsyncSession, User], Awaitable[_Audit]], actor: Actor
    ) -> Outcome:
        """Load the user, apply `change`, audit it in the same transaction."""
        async with self._sessions() as session:
            user = await session.get(User, user_id)
            if user is None:
                return [USER_NOT_FOUND]
            audit = await change(session, user)
            user.updated_at = self._now()
            record(session, audit.action, audit.outcome, actor, target=user_id, **audit.detail)
            await session.commit()
            await session.refresh(user)
            return user


@dataclass(frozen=True, slots=True)
class _Audit:
    action: str
    outcome: str
    detail: dict[str, str] = field(default_factory=dict)


async def grant_admin(sessions: async_sessionmaker[AsyncSession], username: str) -> bool:
    """The operator's way to make an admin (`python -m server grant-admin NAME`); audited."""
    async with sessions() as session:
        user = (await session.exec(select(User).where(User.username == username.strip().lower()))).first()
        if user is None:
            return False
        user.role = "admin"
        record(session, "grant_admin", "success", Actor(), target=user.id)
        await session.commit()
    return True
