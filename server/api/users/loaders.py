"""Per-operation loader of users by id: a signed-in operation reads its user once."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import bindparam
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from strawberry.dataloader import DataLoader

from server.models import User

UserLoader = DataLoader[str, User | None]
# Built once: every signed-in request runs it.
_BY_IDS = select(User).where(col(User.id).in_(bindparam("ids", expanding=True)))


def user_loader(sessions: async_sessionmaker[AsyncSession]) -> UserLoader:
    async def load(user_ids: list[str]) -> Sequence[User | None]:
        async with sessions() as session:
            rows = await session.exec(_BY_IDS, params={"ids": user_ids})
            found = {user.id: user for user in rows.all()}
        return [found.get(user_id) for user_id in user_ids]

    return DataLoader(load_fn=load)
