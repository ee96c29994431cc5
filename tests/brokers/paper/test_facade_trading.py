"""alpaca-py's TradingClient against the facade over loopback: every answer parses into its models."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import date
from typing import Any, TypeVar

import httpx
import pytest
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import AssetClass, OrderClass, OrderSide, OrderStatus, QueryOrderStatus, TimeInForce
from alpaca.trading.requests import (
    ClosePositionRequest,
    GetOptionContractsRequest,
    GetOrdersRequest,
    LimitOrderRequest,
    MarketOrderRequest,
    ReplaceOrderRequest,
    StopLimitOrderRequest,
    StopLossRequest,
    StopOrderRequest,
    TakeProfitRequest,
    TrailingStopOrderRequest,
)

from tests.utils.facade import KEY_ID, SECRET_KEY, Facade, serve_facade
from tests.utils.paper import paper_world

pytestmark = pytest.mark.anyio
T = TypeVar("T")


@pytest.fixture
async def facade() -> AsyncIterator[Facade]:
    async with serve_facade(paper_world()) as served:
        yield served


@pytest.fixture
def trading(facade: Facade) -> TradingClient:
    return TradingClient(KEY_ID, SECRET_KEY, paper=True, url_override=facade.url)


async def call(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """alpaca-py is blocking: run it off the loop that serves the facade."""
    return await asyncio.wait_for(asyncio.to_thread(function, *args, **kwargs), 30)


async def test_account_and_clock(trading: TradingClient) -> None:
    account = await call(trading.get_account)
    assert account.cash == "100000.00"
    assert account.buying_power == "200000.00"
    assert account.status.value == "ACTIVE"
    clock = await call(trading.get_clock)
    assert clock.is_open
    assert clock.next_close > clock.timestamp


async def test_market_order_fills_and_shows_as_a_position(trading: TradingClient) -> None:
    order = await call(
        trading.submit_order,
        MarketOrderRequest(symbol="AAPL", qty=10, side=OrderSide.BUY, time_in_force=TimeInForce.DAY),
    )
    assert order.status is OrderStatus.FILLED
    assert order.filled_qty == "10"
    [position] = await call(trading.get_all_positions)
    assert (position.symbol, position.qty, position.side.value) == ("AAPL", "10", "long")
    assert (await call(trading.get_open_position, "AAPL")).avg_entry_price == position.avg_entry_price


async def test_every_order_type_parses(trading: TradingClient, facade: Facade) -> None:
    bid = facade.world.exchange.quote("SPY").bid_price
    requests = [
        LimitOrderRequest(
            symbol="SPY", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.GTC, limit_price=float(bid - 5)
        ),
        StopOrderRequest(
            symbol="SPY", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY, stop_price=float(bid + 5)
        ),
        StopLimitOrderRequest(
            symbol="SPY",
            qty=1,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.DAY,
            stop_price=float(bid + 5),
            limit_price=float(bid + 6),
        ),
        MarketOrderRequest(symbol="SPY", notional=500, side=OrderSide.BUY, time_in_force=TimeInForce.DAY),
        TrailingStopOrderRequest(
            symbol="SPY", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.GTC, trail_percent=1.0
        ),
        MarketOrderRequest(
            symbol="MSFT",
            qty=5,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.DAY,
            order_class=OrderClass.BRACKET,
            take_profit=TakeProfitRequest(limit_price=500),
            stop_loss=StopLossRequest(stop_price=300),
        ),
        MarketOrderRequest(
            symbol="KO",
            qty=5,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.DAY,
            order_class=OrderClass.OTO,
            stop_loss=StopLossRequest(stop_price=40, limit_price=39),
        ),
        LimitOrderRequest(
            symbol="MSFT",
            qty=5,
            side=OrderSide.SELL,
            time_in_force=TimeInForce.GTC,
            limit_price=500,
            order_class=OrderClass.OCO,
            take_profit=TakeProfitRequest(limit_price=500),
            stop_loss=StopLossRequest(stop_price=300),
        ),
    ]
    orders = [await call(trading.submit_order, request) for request in requests]
    assert [o.type.value for o in orders] == [
        "limit",
        "stop",
        "stop_limit",
        "market",
        "trailing_stop",
        "market",
        "market",
        "limit",
    ]
    assert orders[3].status is OrderStatus.FILLED
    assert orders[3].qty is not None
    assert orders[5].legs is not None
    assert len(orders[5].legs) == 2
    assert orders[7].order_class is OrderClass.OCO
    listed = await call(trading.get_orders, GetOrdersRequest(status=QueryOrderStatus.ALL, limit=500, nested=True))
    assert {o.id for o in orders} <= {o.id for o in listed}


async def test_get_by_client_id_replace_and_cancel(trading: TradingClient, facade: Facade) -> None:
    bid = facade.world.exchange.quote("SPY").bid_price
    order = await call(
        trading.submit_order,
        LimitOrderRequest(
            symbol="SPY",
            qty=1,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.GTC,
            limit_price=float(bid - 10),
            client_order_id="my-order-1",
        ),
    )
    assert (await call(trading.get_order_by_client_id, "my-order-1")).id == order.id
    replaced = await call(
        trading.replace_order_by_id, order.id, ReplaceOrderRequest(qty=2, limit_price=float(bid - 11))
    )
    assert replaced.replaces == order.id
    assert (await call(trading.get_order_by_id, order.id)).status is OrderStatus.REPLACED
    await call(trading.cancel_order_by_id, replaced.id)
    assert (await call(trading.get_order_by_id, replaced.id)).status is OrderStatus.CANCELED
    open_orders = await call(trading.get_orders, GetOrdersRequest(status=QueryOrderStatus.OPEN))
    assert replaced.id not in {o.id for o in open_orders}


async def test_cancel_all_and_close_positions(trading: TradingClient, facade: Facade) -> None:
    bid = facade.world.exchange.quote("SPY").bid_price
    await call(
        trading.submit_order,
        LimitOrderRequest(
            symbol="SPY", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.GTC, limit_price=float(bid - 10)
        ),
    )
    statuses = await call(trading.cancel_orders)
    assert len(statuses) == 1
    for symbol in ("AAPL", "KO"):
        await call(
            trading.submit_order,
            MarketOrderRequest(symbol=symbol, qty=10, side=OrderSide.BUY, time_in_force=TimeInForce.DAY),
        )
    half = await call(trading.close_position, "AAPL", ClosePositionRequest(percentage="50"))
    assert half.qty == "5"
    closed = await call(trading.close_all_positions, cancel_orders=True)
    assert {c.symbol for c in closed} == {"AAPL", "KO"}
    assert await call(trading.get_all_positions) == []


async def test_assets_and_option_contracts(trading: TradingClient) -> None:
    assets = await call(trading.get_all_assets)
    assert len(assets) >= 50
    aapl = await call(trading.get_asset, "AAPL")
    assert (aapl.symbol, aapl.asset_class) == ("AAPL", AssetClass.US_EQUITY)
    contracts = await call(
        trading.get_option_contracts,
        GetOptionContractsRequest(
            underlying_symbols=["AAPL"],
            expiration_date=date(2026, 12, 18),
            type="call",
            strike_price_gte="220",
            strike_price_lte="240",
            limit=100,
        ),
    )
    strikes = sorted(float(c.strike_price) for c in contracts.option_contracts)
    assert strikes == [220.0, 222.5, 225.0, 227.5, 230.0, 232.5, 235.0, 237.5, 240.0]
    one = await call(trading.get_option_contract, "AAPL261218C00230000")
    assert (one.underlying_symbol, one.type.value) == ("AAPL", "call")


async def test_rejections_carry_alpacas_codes(trading: TradingClient) -> None:
    with pytest.raises(APIError) as too_big:
        await call(
            trading.submit_order,
            MarketOrderRequest(symbol="AAPL", qty=100000, side=OrderSide.BUY, time_in_force=TimeInForce.DAY),
        )
    assert too_big.value.status_code == 403
    assert too_big.value.code == 40310000
    with pytest.raises(APIError) as missing:
        await call(trading.get_open_position, "TSLA")
    assert missing.value.status_code == 404
    assert missing.value.message == "position does not exist"


async def test_wrong_keys_get_401(facade: Facade) -> None:
    stranger = TradingClient("PKWRONG", "nope", paper=True, url_override=facade.url)
    with pytest.raises(APIError) as refused:
        await call(stranger.get_account)
    assert refused.value.status_code == 401


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/v2/orders", b"{not json", 400),
        ("POST", "/v2/orders", b"[]", 400),
        (
            "POST",
            "/v2/orders",
            b'{"symbol": "AAPL", "side": "sideways", "type": "market", "time_in_force": "day", "qty": 1}',
            422,
        ),
        (
            "POST",
            "/v2/orders",
            b'{"symbol": "AAPL", "side": "buy", "type": "market", "time_in_force": "day", "qty": "x"}',
            422,
        ),
        (
            "POST",
            "/v2/orders",
            b'{"symbol": "AAPL", "side": "buy", "type": "market", "time_in_force": "day", "qty": 1, "take_profit": 5}',
            422,
        ),
        ("GET", "/v2/orders?status=maybe", b"", 422),
        ("GET", "/v2/orders?limit=0", b"", 422),
        ("GET", "/v2/orders?after=yesterday", b"", 422),
        ("GET", "/v2/orders/not-an-id", b"", 404),
        ("DELETE", "/v2/orders/not-an-id", b"", 404),
        ("GET", "/v2/assets/NOPE", b"", 404),
        ("GET", "/v2/stocks/bars?symbols=AAPL&timeframe=7Min", b"", 400),
        ("GET", "/v2/stocks/quotes/latest", b"", 400),
    ],
)
async def test_malformed_requests_get_alpacas_error_bodies(
    facade: Facade, method: str, path: str, body: bytes, status: int
) -> None:
    headers = {"APCA-API-KEY-ID": KEY_ID, "APCA-API-SECRET-KEY": SECRET_KEY, "content-type": "application/json"}
    async with httpx.AsyncClient(base_url=facade.url, headers=headers, timeout=10) as http:
        response = await http.request(method, path, content=body)
    assert response.status_code == status
    error = response.json()
    assert set(error) == {"code", "message"}
    assert isinstance(error["code"], int)
    assert len(str(error["code"])) == 8
    account = facade.world.exchange.account(facade.world.account_id)
    assert account.cash == 100000
