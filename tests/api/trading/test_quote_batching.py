"""Every `quote` field of one request goes through one batched quote call, whatever its shape."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest
from starlette.applications import Starlette

from server.brokers.domain import OrderRequest, OrderSide
from server.brokers.paper.universe import UNIVERSE
from tests.api.test_quotes import CountingQuoteSource, replace_quote_source
from tests.utils.accounts import as_user, register

pytestmark = pytest.mark.anyio


async def _counting(app: Starlette) -> CountingQuoteSource:
    counting = CountingQuoteSource(app.state.services.quote_source)
    replace_quote_source(app, counting)
    return counting


async def test_fifty_positions_with_quotes_make_one_quote_call(client: httpx.AsyncClient, app: Starlette) -> None:
    ada = await register(client, "ada")
    services = app.state.services
    connection = await services.trading.connection(ada.user_id)
    account_id = services.trading.broker(connection).account_id
    symbols = [spec.symbol for spec in UNIVERSE[:50]]
    for symbol in symbols:
        services.exchange.submit(account_id, OrderRequest(symbol=symbol, side=OrderSide.BUY, qty=Decimal(1)))
    counting = await _counting(app)

    result = await as_user(client, ada.access_token, "{ positions { symbol quote { symbol bidPrice } } }")

    positions = result["data"]["positions"]
    assert len(positions) == 50
    assert all(p["quote"]["symbol"] == p["symbol"] for p in positions)
    assert len(counting.calls) == 1
    assert sorted(counting.calls[0]) == sorted(symbols)


async def test_aliased_quotes_and_quotes_on_orders_and_contracts_share_one_call(
    client: httpx.AsyncClient, app: Starlette
) -> None:
    ada = await register(client, "ada")
    query = "mutation($i: PlaceOrderInput!) { placeOrder(input: $i) { order { id } } }"
    await as_user(client, ada.access_token, query, {"i": {"symbol": "NVDA", "side": "BUY", "qty": "1"}})
    counting = await _counting(app)

    result = await as_user(
        client,
        ada.access_token,
        """{
          a: quote(symbol: "AAPL") { askPrice }
          b: quote(symbol: "MSFT") { askPrice }
          orders(status: ALL) { nodes { symbol quote { symbol } } }
          positions { quote { symbol } }
          optionChain(underlying: "AAPL", type: CALL, minStrike: "230", maxStrike: "230") { symbol quote { symbol } }
        }""",
    )

    assert "errors" not in result, result
    contracts = result["data"]["optionChain"]
    assert contracts
    assert len(counting.calls) == 1
    assert set(counting.calls[0]) == {"AAPL", "MSFT", "NVDA"} | {c["symbol"] for c in contracts}
