"""The signed-in user."""

from __future__ import annotations

import strawberry

from server.api.auth import signed_in_user
from server.api.context import Info
from server.api.users.types import User


@strawberry.type
class AccountQuery:
    @strawberry.field(description="The signed-in user; null without a token (an expired or bad token is an error).")
    async def me(self, info: Info) -> User | None:
        auth = info.context.auth
        if auth.claims is None and auth.problem is None:
            return None
        return User.from_row(await signed_in_user(info))
