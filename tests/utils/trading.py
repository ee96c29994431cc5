"""Order entry through the API, for tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from gql import Client, GraphQLRequest
from gql.client import AsyncClientSession
from gql.transport.httpx import HTTPXAsyncTransport
from starlette.applications import Starlette

from server.brokers.domain import Order
from server.brokers.paper.clock import ManualClock
from server.services import Services
from tests.utils.accounts import as_user, bearer, register
from tests.utils.live import live_server

ORDER_FIELDS = (
    "id clientOrderId brokerOrderId symbol assetClass side type timeInForce orderClass qty notional "
    "limitPrice stopPrice status filledQty filledAvgPrice rejectCode rejectReason createdAt updatedAt"
)
USER_ERRORS = "userErrors { field message code }"
PLACE = f"""mutation($input: PlaceOrderInput!) {{
  placeOrder(input: $input) {{ order {{ {ORDER_FIELDS} }} {USER_ERRORS} }}
}}"""
CANCEL = f"mutation($id: ID!) {{ cancelOrder(id: $id) {{ order {{ {ORDER_FIELDS} }} {USER_ERRORS} }} }}"
REPLACE = f"""mutation($id: ID!, $input: ReplaceOrderInput!) {{
  replaceOrder(id: $id, input: $input) {{ order {{ {ORDER_FIELDS} replacesOrderId }} {USER_ERRORS} }}
}}"""
ORDER = f"query($id: ID, $cid: String) {{ order(id: $id, clientOrderId: $cid) {{ {ORDER_FIELDS} }} }}"


async def place(client: httpx.AsyncClient, token: str, **order: Any) -> dict[str, Any]:
    """placeOrder's payload (asserting the request itself raised no GraphQL error)."""
    result = await as_user(client, token, PLACE, {"input": order})
    assert "errors" not in result, result
    return result["data"]["placeOrder"]


async def order_by_id(client: httpx.AsyncClient, token: str, order_id: str) -> dict[str, Any]:
    result = await as_user(client, token, ORDER, {"id": order_id})
    assert "errors" not in result, result
    return result["data"]["order"]


ADD_PAPER_CONNECTION = """mutation($default: Boolean!) {
  connectBroker(input: {kind: PAPER, label: "spare", makeDefault: $default}) { connection { id } userErrors { code } }
}"""
CONNECTION_OF = "query($cid: String) { order(clientOrderId: $cid) { connectionId } }"


async def add_paper_connection(client: httpx.AsyncClient, token: str, *, make_default: bool = False) -> str:
    """A further paper connection of the signed-in user; its id."""
    added = (await as_user(client, token, ADD_PAPER_CONNECTION, {"default": make_default}))["data"]["connectBroker"]
    assert added["userErrors"] == []
    return str(added["connection"]["id"])


async def connection_of(client: httpx.AsyncClient, token: str, client_order_id: str) -> str:
    """The connection the order holding `client_order_id` was placed through."""
    answer = await as_user(client, token, CONNECTION_OF, {"cid": client_order_id})
    assert "errors" not in answer, answer
    return str(answer["data"]["order"]["connectionId"])


def codes(payload: dict[str, Any]) -> list[str]:
    return [error["code"] for error in payload["userErrors"]]


class LiveTrader:
    """A signed-in user talking to a real uvicorn server through gql, with the market's
    clock in the test's hands."""

    def __init__(self, app: Starlette, clock: ManualClock, session: AsyncClientSession, user_id: str) -> None:
        self.app = app
        self.clock = clock
        self.session = session
        self.user_id = user_id

    @property
    def services(self) -> Services:
        return self.app.state.services

    async def run(self, query: str, **variables: Any) -> dict[str, Any]:
        """The data of a query or mutation; a GraphQL error fails the test."""
        return await self.session.execute(GraphQLRequest(query, variable_values=variables))

    async def place(self, **order: Any) -> dict[str, Any]:
        return (await self.run(PLACE, input=order))["placeOrder"]

    async def order(self, order_id: str) -> dict[str, Any]:
        await self.settle()
        return (await self.run(ORDER, id=order_id))["order"]

    async def settle(self) -> None:
        """Let the ledger writer apply every trade update reported so far."""
        await self.services.trading.flush()

    def step(self, seconds: float = 1, times: int = 1) -> None:
        for _ in range(times):
            self.clock.advance(seconds)
            self.services.exchange.advance()

    async def step_until_status(self, order_id: str, statuses: set[str], *, limit: int) -> dict[str, Any]:
        """Step the market one second at a time until the order's status is one of `statuses`."""
        for _ in range(limit):
            self.step()
            order = await self.order(order_id)
            if order["status"] in statuses:
                return order
        raise AssertionError(f"order {order_id} not in {statuses} after {limit} steps")


@asynccontextmanager
async def live_trader(app: Starlette, clock: ManualClock, username: str = "ada") -> AsyncIterator[LiveTrader]:
    async with live_server(app) as address:
        url = f"http://{address}/graphql"
        async with httpx.AsyncClient(base_url=f"http://{address}") as http:
            signed_in = await register(http, username)
        transport = HTTPXAsyncTransport(url=url, headers=bearer(signed_in.access_token), timeout=10)
        async with Client(transport=transport, fetch_schema_from_transport=False) as session:
            yield LiveTrader(app, clock, session, signed_in.user_id)


def accepted(payload: dict[str, Any], status: str | None = None) -> dict[str, Any]:
    """The order of a payload without userErrors (and in `status`, when given)."""
    assert payload["userErrors"] == [], payload
    assert payload["order"] is not None, payload
    if status is not None:
        assert payload["order"]["status"] == status, payload
    return payload["order"]


@asynccontextmanager
async def in_process(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan running, and an httpx client calling it in process."""
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        yield http


def orders_at_the_exchange(services: Services) -> list[Order]:
    """Every order the paper exchange holds, whoever placed it: what reached the broker."""
    exchange = services.exchange
    return [order for account in list(exchange._accounts) for order in exchange.list_orders(account)]
