from __future__ import annotations

import dataclasses
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import create_async_engine
from starlette.applications import Starlette

from server.brokers.base import BrokerUnavailableError

pytestmark = pytest.mark.anyio


async def test_healthz_is_alive(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_checks_database_and_broker(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"database": "ok", "broker": "ok"}}


async def test_readyz_is_503_when_the_database_cannot_be_reached(
    client: httpx.AsyncClient, app: Starlette, tmp_path: Path
) -> None:
    # A directory is not a database file: every connection attempt fails.
    unreachable = create_async_engine(f"sqlite+aiosqlite:///{tmp_path}")
    app.state.services = dataclasses.replace(app.state.services, engine=unreachable)
    try:
        response = await client.get("/readyz")
    finally:
        await unreachable.dispose()

    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "checks": {"database": "failing", "broker": "ok"}}


async def test_request_id_is_echoed_or_made(client: httpx.AsyncClient) -> None:
    given = await client.get("/healthz", headers={"x-request-id": "abc-123"})
    made = await client.get("/healthz")
    hostile = await client.get("/healthz", headers={"x-request-id": "a b\tc" * 20})

    assert given.headers["x-request-id"] == "abc-123"
    assert len(made.headers["x-request-id"]) == 32
    assert hostile.headers["x-request-id"] != "a b\tc" * 20
    assert len(hostile.headers["x-request-id"]) == 32


async def test_graphiql_is_served_to_browsers(client: httpx.AsyncClient) -> None:
    response = await client.get("/graphql", headers={"accept": "text/html"})
    assert response.status_code == 200
    assert "graphiql" in response.text.lower()


async def test_readyz_is_503_when_the_broker_cannot_answer(client: httpx.AsyncClient, app: Starlette) -> None:
    class DeadSource:
        async def get_quotes(self, symbols: object) -> object:
            raise BrokerUnavailableError

        async def ping(self) -> None:
            raise BrokerUnavailableError

    app.state.services = dataclasses.replace(app.state.services, quote_source=DeadSource())
    response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "ok", "broker": "failing"}
