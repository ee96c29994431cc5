"""Signing users up and in through the API, for tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import update
from starlette.applications import Starlette

from server.models import User
from tests.utils.graphql import execute

PASSWORD = "tidal-Orbit-57-marmalade"
SESSION_FIELDS = "accessToken refreshToken expiresIn user { id username role } userErrors { field message code }"
REGISTER = f"mutation($input: RegisterInput!) {{ register(input: $input) {{ {SESSION_FIELDS} }} }}"
LOGIN = f"mutation($input: LoginInput!) {{ login(input: $input) {{ {SESSION_FIELDS} }} }}"


@dataclass(frozen=True, slots=True)
class SignedIn:
    user_id: str
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.access_token)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def as_user(
    client: httpx.AsyncClient, token: str, query: str, variables: dict[str, Any] | None = None
) -> dict[str, Any]:
    response = await client.post("/graphql", json={"query": query, "variables": variables or {}}, headers=bearer(token))
    assert response.status_code == 200, response.text
    return response.json()


def _session(payload: dict[str, Any]) -> SignedIn:
    assert payload["userErrors"] == [], payload["userErrors"]
    return SignedIn(payload["user"]["id"], payload["accessToken"], payload["refreshToken"])


async def register(client: httpx.AsyncClient, username: str, **extra: Any) -> SignedIn:
    variables = {"input": {"username": username, "email": f"{username}@example.com", "password": PASSWORD, **extra}}
    result = await execute(client, REGISTER, variables)
    return _session(result["data"]["register"])


async def login(client: httpx.AsyncClient, username: str, password: str = PASSWORD) -> dict[str, Any]:
    return await execute(client, LOGIN, {"input": {"username": username, "password": password}})


async def make_admin(app: Starlette, user_id: str) -> None:
    """Admins are made by the operator, in the database (no API grants the role)."""
    async with app.state.services.sessions() as session:
        await session.exec(update(User).where(User.id == user_id).values(role="admin"))  # type: ignore[arg-type]
        await session.commit()
