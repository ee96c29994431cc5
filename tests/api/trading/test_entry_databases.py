"""Order entry reads its user, connection and clientOrderId in one statement: the same
answers on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from server.app import create_app
from tests.utils.accounts import as_user, register
from tests.utils.databases import DATABASE_KINDS, throwaway_database
from tests.utils.factories import make_clock, make_settings
from tests.utils.graphql import error_codes
from tests.utils.trading import PLACE, add_paper_connection, connection_of, in_process, orders_at_the_exchange, place

pytestmark = pytest.mark.anyio


@pytest.fixture(params=DATABASE_KINDS)
async def served(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[Starlette, httpx.AsyncClient]]:
    async with throwaway_database(request.param, tmp_path) as url:
        app = create_app(make_settings(tmp_path / "data", database_url=url), clock=make_clock())
        async with in_process(app) as http:
            yield app, http


async def test_order_entry_reads_the_same_on_every_database(served: tuple[Starlette, httpx.AsyncClient]) -> None:
    app, client = served
    ada, bob = await register(client, "ada"), await register(client, "bob")
    spare = await add_paper_connection(client, ada.access_token)
    bobs = await add_paper_connection(client, bob.access_token)
    order = {"symbol": "AAPL", "side": "BUY", "qty": "1"}

    default = await place(client, ada.access_token, **order, clientOrderId="d")
    chosen = await place(client, ada.access_token, **order, clientOrderId="c", connectionId=spare)
    again = await place(client, ada.access_token, **order, clientOrderId="c", connectionId=spare)
    elsewhere = await as_user(client, ada.access_token, PLACE, {"input": {**order, "connectionId": bobs}})

    assert default["userErrors"] == chosen["userErrors"] == again["userErrors"] == []
    assert again["order"] == chosen["order"]
    assert await connection_of(client, ada.access_token, "c") == spare
    assert await connection_of(client, ada.access_token, "d") not in {spare, bobs}
    assert error_codes(elsewhere) == ["NOT_FOUND"]
    assert len(orders_at_the_exchange(app.state.services)) == 2
