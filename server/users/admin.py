"""What only an admin may do: see every user, disable one, set per-user risk limits and the kill switch.

Each change is audited with the admin as the actor. Disabling a user also ends every
session they have (their refresh tokens are revoked; their access tokens are refused
from the next request on, since every signed-in request checks the user is active).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import update
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.models import RefreshToken, User
from server.users.audit import Actor, record

MAX_PAGE = 200


@dataclass(frozen=True, slots=True)
class RiskLimits:
    """Per-user overrides of the server's risk defaults; None keeps the default."""

    max_order_notional: Decimal | None = None
    max_position_notional: Decimal | None = None
    price_band_percent: Decimal | None = None


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

    async def set_active(self, user_id: str, active: bool, actor: Actor) -> User | None:
        async with self._sessions() as session:
            user = await session.get(User, user_id)
            if user is None:
                return None
            user.is_active, user.updated_at = active, self._now()
            if not active:
                await session.exec(  # type: ignore[call-overload]
                    update(RefreshToken)
                    .where(col(RefreshToken.user_id) == user_id, col(RefreshToken.revoked_at).is_(None))
                    .values(revoked_at=self._now())
                )
            record(session, "enable_user" if active else "disable_user", "success", actor, target=user_id)
            await session.commit()
            await session.refresh(user)
            return user

    async def set_risk_limits(self, user_id: str, limits: RiskLimits, actor: Actor) -> User | None:
        async with self._sessions() as session:
            user = await session.get(User, user_id)
            if user is None:
                return None
            user.max_order_notional = limits.max_order_notional
            user.max_position_notional = limits.max_position_notional
            user.price_band_percent = limits.price_band_percent
            user.updated_at = self._now()
            record(
                session,
                "set_risk_limits",
                "success",
                actor,
                target=user_id,
                **{name: str(value) for name, value in _fields(limits).items() if value is not None},
            )
            await session.commit()
            await session.refresh(user)
            return user

    async def set_kill_switch(self, user_id: str, engaged: bool, actor: Actor) -> User | None:
        async with self._sessions() as session:
            user = await session.get(User, user_id)
            if user is None:
                return None
            user.kill_switch, user.updated_at = engaged, self._now()
            record(session, "kill_switch", "engaged" if engaged else "released", actor, target=user_id)
            await session.commit()
            await session.refresh(user)
            return user


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


def _fields(limits: RiskLimits) -> dict[str, Decimal | None]:
    return {
        "max_order_notional": limits.max_order_notional,
        "max_position_notional": limits.max_position_notional,
        "price_band_percent": limits.price_band_percent,
    }
