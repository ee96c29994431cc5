"""Reading orders: filters, keyset pages that stay stable while orders arrive, ownership,
sign-in, the order-entry rate limit, and start-up reconciliation of what was left open."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import update
from starlette.applications import Starlette

from server.app import create_app
from server.brokers.domain import OrderRequest, OrderSide
from server.brokers.paper.clock import ManualClock
from server.brokers.registry import ConnectionRef
from server.models import Order as OrderRow
from server.models import User
from server.trading.ledger import placed_row
from tests.utils.accounts import as_user, register
from tests.utils.factories import make_settings
from tests.utils.graphql import error_codes
from tests.utils.trading import (
    CANCEL,
    ORDER,
    PLACE,
    add_paper_connection,
    codes,
    connection_of,
    in_process,
    orders_at_the_exchange,
    place,
)

pytestmark = pytest.mark.anyio

PAGE = """query($first: Int!, $after: String, $status: OrderStatusFilter, $symbols: [String!], $side: OrderSide) {
  orders(first: $first, after: $after, status: $status, symbols: $symbols, side: $side) {
    edges { cursor node { clientOrderId symbol side status } }
    pageInfo { hasNextPage endCursor }
  }
}"""


async def _page(client: httpx.AsyncClient, token: str, **variables: Any) -> dict[str, Any]:
    result = await as_user(client, token, PAGE, {"status": "ALL", **variables})
    assert "errors" not in result, result
    return result["data"]["orders"]


async def _limit_buy(client: httpx.AsyncClient, token: str, cid: str, symbol: str = "KO") -> dict[str, Any]:
    payload = await place(
        client, token, symbol=symbol, side="BUY", type="LIMIT", qty="1", limitPrice="60.00", clientOrderId=cid
    )
    assert payload["userErrors"] == [], payload
    return payload["order"]


async def test_pages_visit_every_order_once_while_new_ones_arrive(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    ada = await register(client, "ada")
    for number in range(7):
        await _limit_buy(client, ada.access_token, f"o{number}")
        clock.advance(1)

    seen: list[str] = []
    page = await _page(client, ada.access_token, first=3)
    seen += [edge["node"]["clientOrderId"] for edge in page["edges"]]
    await _limit_buy(client, ada.access_token, "late")  # arrives between pages: newer than every cursor
    while page["pageInfo"]["hasNextPage"]:
        page = await _page(client, ada.access_token, first=3, after=page["pageInfo"]["endCursor"])
        seen += [edge["node"]["clientOrderId"] for edge in page["edges"]]

    assert seen == [f"o{number}" for number in reversed(range(7))]
    first = await _page(client, ada.access_token, first=50)
    assert first["edges"][0]["node"]["clientOrderId"] == "late"


async def test_filters_by_status_symbol_and_side(client: httpx.AsyncClient) -> None:
    ada = await register(client, "ada")
    resting = await _limit_buy(client, ada.access_token, "rest", "KO")
    await place(client, ada.access_token, symbol="AAPL", side="BUY", qty="2", clientOrderId="filled")
    await place(client, ada.access_token, symbol="AAPL", side="SELL", qty="1", clientOrderId="sold")

    def cids(page: dict[str, Any]) -> set[str]:
        return {edge["node"]["clientOrderId"] for edge in page["edges"]}

    assert cids(await _page(client, ada.access_token, first=10, status="OPEN")) == {"rest"}
    assert cids(await _page(client, ada.access_token, first=10, status="CLOSED")) == {"filled", "sold"}
    assert cids(await _page(client, ada.access_token, first=10, symbols=["aapl"])) == {"filled", "sold"}
    assert cids(await _page(client, ada.access_token, first=10, side="SELL")) == {"sold"}
    by_cid = await as_user(client, ada.access_token, ORDER, {"cid": "rest"})
    assert by_cid["data"]["order"]["id"] == resting["id"]
    dated = "query($s: DateTime, $u: DateTime) { orders(status: ALL, since: $s, until: $u) { nodes { id } } }"
    window = {"s": "2026-11-23T14:59:00+00:00", "u": "2026-11-23T15:01:00+00:00"}
    assert len((await as_user(client, ada.access_token, dated, window))["data"]["orders"]["nodes"]) == 3
    later = {"s": "2026-11-23T15:01:00+00:00", "u": None}
    assert (await as_user(client, ada.access_token, dated, later))["data"]["orders"]["nodes"] == []
    naive = await as_user(client, ada.access_token, dated, {"s": "2026-11-23T15:00:00", "u": None})
    assert error_codes(naive) == ["BAD_USER_INPUT"]


async def test_moments_outside_the_utc_range_are_bad_input(client: httpx.AsyncClient) -> None:
    """Found by the fuzzer: since/until with no UTC equivalent Python can hold failed the query."""
    ada = await register(client, "ada")
    dated = "query($s: DateTime, $u: DateTime) { orders(status: ALL, since: $s, until: $u) { nodes { id } } }"
    for window in ({"s": "0001-01-01T00:00:00+14:00", "u": None}, {"s": None, "u": "9999-12-31T23:59:59-12:00"}):
        result = await as_user(client, ada.access_token, dated, window)
        assert error_codes(result) == ["BAD_USER_INPUT"], window


async def test_bad_cursors_and_page_sizes_are_bad_input(client: httpx.AsyncClient) -> None:
    ada = await register(client, "ada")
    for variables in ({"first": 3, "after": "bm90LWEtY3Vyc29y"}, {"first": 3, "after": "%%%"}, {"first": 0}):
        result = await as_user(client, ada.access_token, PAGE, {"status": "ALL", **variables})
        assert error_codes(result) == ["BAD_USER_INPUT"], variables


async def test_orders_belong_to_their_user_only(client: httpx.AsyncClient) -> None:
    ada = await register(client, "ada")
    bob = await register(client, "bob")
    order = await _limit_buy(client, ada.access_token, "shared-cid")

    assert (await as_user(client, bob.access_token, ORDER, {"id": order["id"]}))["data"]["order"] is None
    assert (await as_user(client, bob.access_token, ORDER, {"cid": "shared-cid"}))["data"]["order"] is None
    cancel = (await as_user(client, bob.access_token, CANCEL, {"id": order["id"]}))["data"]["cancelOrder"]
    assert codes(cancel) == ["ORDER_NOT_FOUND"]
    assert (await _page(client, bob.access_token, first=10))["edges"] == []
    # The same clientOrderId is bob's own to use.
    assert (await _limit_buy(client, bob.access_token, "shared-cid"))["id"] != order["id"]


async def test_trading_needs_a_signed_in_user(client: httpx.AsyncClient) -> None:
    variables = {"input": {"symbol": "AAPL", "side": "BUY", "qty": "1"}}
    response = await client.post("/graphql", json={"query": PLACE, "variables": variables})
    assert error_codes(response.json()) == ["UNAUTHENTICATED"]
    response = await client.post("/graphql", json={"query": "{ account { cash } }"})
    assert error_codes(response.json()) == ["UNAUTHENTICATED"]
    ada = await register(client, "ada")
    elsewhere = await as_user(client, ada.access_token, '{ account(connectionId: "nope") { cash } }')
    assert error_codes(elsewhere) == ["NOT_FOUND"]
    public = await client.post("/graphql", json={"query": '{ asset(symbol: "msft") { symbol fractionable } }'})
    assert public.json()["data"]["asset"] == {"symbol": "MSFT", "fractionable": True}
    response = await client.post("/graphql", json={"query": '{ clock { isOpen } assets(search: "apple") { symbol } }'})
    assert response.json()["data"]["assets"] == [{"symbol": "AAPL"}]


ORDERS_OF = "query($c: ID) { orders(status: ALL, first: 10, connectionId: $c) { nodes { clientOrderId } } }"


async def _client_order_ids(client: httpx.AsyncClient, token: str, connection_id: str | None = None) -> set[str]:
    result = await as_user(client, token, ORDERS_OF, {"c": connection_id})
    assert "errors" not in result, result
    return {node["clientOrderId"] for node in result["data"]["orders"]["nodes"]}


async def test_an_order_goes_through_the_connection_asked_for_else_the_default(client: httpx.AsyncClient) -> None:
    ada = await register(client, "ada")
    spare = await add_paper_connection(client, ada.access_token)
    chosen = await place(
        client, ada.access_token, symbol="AAPL", side="BUY", qty="1", clientOrderId="c", connectionId=spare
    )
    default = await place(client, ada.access_token, symbol="AAPL", side="BUY", qty="1", clientOrderId="d")
    assert chosen["userErrors"] == default["userErrors"] == []
    assert await _client_order_ids(client, ada.access_token, spare) == {"c"}
    assert await _client_order_ids(client, ada.access_token) == {"c", "d"}  # every connection's
    assert await connection_of(client, ada.access_token, "d") != spare


async def test_an_order_through_someone_elses_connection_is_not_found_and_not_placed(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    ada, bob = await register(client, "ada"), await register(client, "bob")
    bobs = await add_paper_connection(client, bob.access_token)
    order = {"symbol": "AAPL", "side": "BUY", "qty": "1", "connectionId": bobs}
    for token in (ada.access_token, ada.access_token):  # the second time, as a retry of the first
        answer = await as_user(client, token, PLACE, {"input": {**order, "clientOrderId": "x"}})
        assert error_codes(answer) == ["NOT_FOUND"]
        assert answer["errors"][0]["message"] == "Broker connection not found."
    assert orders_at_the_exchange(app.state.services) == []
    assert await _client_order_ids(client, ada.access_token) == set()
    assert await _client_order_ids(client, bob.access_token, bobs) == set()


async def test_a_client_order_id_retried_through_another_connection_is_refused(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    ada = await register(client, "ada")
    spare = await add_paper_connection(client, ada.access_token)
    first = await place(client, ada.access_token, symbol="AAPL", side="BUY", qty="1", clientOrderId="once")
    again = await place(
        client, ada.access_token, symbol="AAPL", side="BUY", qty="1", clientOrderId="once", connectionId=spare
    )
    assert codes(again) == ["CLIENT_ORDER_ID_REUSED"]
    assert again["order"]["id"] == first["order"]["id"]
    assert len(orders_at_the_exchange(app.state.services)) == 1
    assert await _client_order_ids(client, ada.access_token, spare) == set()


async def test_an_order_left_in_flight_is_settled_through_its_own_connection_after_the_default_changes(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    ada = await register(client, "ada")
    services = app.state.services
    first_default = await services.trading.connection(ada.user_id)
    request = OrderRequest(symbol="AAPL", side=OrderSide.BUY, qty=Decimal(1), client_order_id="lost-answer")
    ref = ConnectionRef(ada.user_id, first_default.id)
    await services.trading._insert(placed_row(ref, request, "lost-answer", "us_equity", services.clock.now()))
    await add_paper_connection(client, ada.access_token, make_default=True)

    retried = await place(client, ada.access_token, symbol="AAPL", side="BUY", qty="1", clientOrderId="lost-answer")
    assert retried["userErrors"] == []
    assert await connection_of(client, ada.access_token, "lost-answer") == first_default.id
    held_there = await services.trading.broker(first_default).list_orders(open_only=False)
    assert [order.client_order_id for order in held_there] == ["lost-answer"]
    assert len(orders_at_the_exchange(services)) == 1


async def test_an_order_placed_while_the_server_shuts_down_is_refused_with_a_retry(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    ada = await register(client, "ada")
    await app.state.services.trading._ledger.stop()  # what shutting down does first with the ledger
    order = {"symbol": "AAPL", "side": "BUY", "qty": "1", "clientOrderId": "late"}
    async with asyncio.timeout(5):
        answer = await as_user(client, ada.access_token, PLACE, {"input": order})
    assert error_codes(answer) == ["RATE_LIMITED"]
    assert answer["errors"][0]["extensions"]["retryAfter"] == 1
    assert orders_at_the_exchange(app.state.services) == []


async def test_signed_in_reads_answer_while_a_write_holds_the_database(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    """On SQLite the one writing connection is taken in turn; what only reads does not wait for it."""
    ada = await register(client, "ada")
    await place(client, ada.access_token, symbol="AAPL", side="BUY", qty="1", clientOrderId="first")
    async with app.state.services.sessions() as session:
        await session.connection()  # the writer's connection, held
        async with asyncio.timeout(5):
            answer = await as_user(
                client, ada.access_token, "{ me { id } orders(status: ALL, first: 5) { nodes { clientOrderId } } }"
            )
    assert answer["data"] == {"me": {"id": ada.user_id}, "orders": {"nodes": [{"clientOrderId": "first"}]}}


@pytest.fixture
async def limited(tmp_path: Path, clock: ManualClock) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(make_settings(tmp_path / "data", rate_limit_orders_per_minute=2), clock=clock)
    async with in_process(app) as http:
        yield http


async def test_order_entry_has_its_own_rate_limit(limited: httpx.AsyncClient) -> None:
    ada = await register(limited, "ada")
    variables = {"input": {"symbol": "AAPL", "side": "BUY", "qty": "1"}}
    results = [await as_user(limited, ada.access_token, PLACE, variables) for _ in range(3)]
    assert [error_codes(result) for result in results] == [[], [], ["RATE_LIMITED"]]
    assert results[2]["errors"][0]["extensions"]["retryAfter"] > 0
    assert "errors" not in await as_user(limited, ada.access_token, "{ account { cash } }")


async def test_a_disabled_user_is_refused_before_the_order_rate_limit_counts(
    tmp_path: Path, clock: ManualClock
) -> None:
    app = create_app(make_settings(tmp_path / "data", rate_limit_orders_per_minute=2), clock=clock)
    async with in_process(app) as http:
        ada = await register(http, "ada")
        async with app.state.services.sessions() as session:
            await session.exec(update(User).where(User.id == ada.user_id).values(is_active=False))  # type: ignore[arg-type]
            await session.commit()
        variables = {"input": {"symbol": "AAPL", "side": "BUY", "qty": "1"}}
        results = [await as_user(http, ada.access_token, PLACE, variables) for _ in range(3)]
    assert [error_codes(result) for result in results] == [["UNAUTHENTICATED"]] * 3


async def test_start_up_reconciles_orders_left_in_flight_or_unknown_to_the_broker(
    tmp_path: Path, clock: ManualClock
) -> None:
    settings = make_settings(tmp_path / "data")
    app = create_app(settings, clock=clock)
    async with in_process(app) as http:
        ada = await register(http, "ada")
        resting = await _limit_buy(http, ada.access_token, "resting")
        connection = await app.state.services.trading.connection(ada.user_id)
        async with app.state.services.sessions() as session:  # a row written, then the process died
            session.add(
                OrderRow(
                    user_id=ada.user_id,
                    connection_id=connection.id,
                    client_order_id="in-flight",
                    symbol="KO",
                    asset_class="us_equity",
                    side="buy",
                    order_type="market",
                    time_in_force="day",
                    qty=Decimal(1),
                    status="pending_new",
                )
            )
            await session.commit()

    restarted = create_app(settings, clock=clock)  # a new paper exchange: it knows none of these
    async with in_process(restarted) as http:
        rows = {
            edge["node"]["clientOrderId"]: edge["node"]
            for edge in (await _page(http, ada.access_token, first=10))["edges"]
        }
        assert rows["in-flight"]["status"] == "REJECTED"
        assert rows["resting"]["status"] == "CANCELED"
        lost = await as_user(
            http, ada.access_token, "query($id: ID) { order(id: $id) { rejectCode } }", {"id": resting["id"]}
        )
        assert lost["data"]["order"]["rejectCode"] == "BROKER_LOST"

        retried = await place(http, ada.access_token, symbol="KO", side="BUY", qty="1", clientOrderId="in-flight")
        assert retried["userErrors"] == []
        assert retried["order"]["status"] == "FILLED"
