"""alpaca-py's data clients against the facade: stocks and options, every answer parsed."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from datetime import date, timedelta

import pytest
from alpaca.data.historical.option import OptionHistoricalDataClient
from alpaca.data.historical.stock import StockHistoricalDataClient
from alpaca.data.requests import (
    OptionChainRequest,
    OptionLatestQuoteRequest,
    OptionSnapshotRequest,
    StockBarsRequest,
    StockLatestBarRequest,
    StockLatestQuoteRequest,
    StockLatestTradeRequest,
    StockSnapshotRequest,
)
from alpaca.data.timeframe import TimeFrame, TimeFrameUnit

from tests.brokers.paper.test_facade_trading import call
from tests.utils.facade import KEY_ID, SECRET_KEY, Facade, serve_facade
from tests.utils.factories import MARKET_OPEN
from tests.utils.paper import paper_world

pytestmark = pytest.mark.anyio
SYMBOLS = ["AAPL", "MSFT", "SPY", "BRK.B", "F"]


@pytest.fixture
async def facade() -> AsyncIterator[Facade]:
    world = paper_world()
    world.step(times=600)  # ten minutes of tape
    async with serve_facade(world) as served:
        yield served


@pytest.fixture
def stocks(facade: Facade) -> StockHistoricalDataClient:
    return StockHistoricalDataClient(KEY_ID, SECRET_KEY, url_override=facade.url)


@pytest.fixture
def option_data(facade: Facade) -> OptionHistoricalDataClient:
    return OptionHistoricalDataClient(KEY_ID, SECRET_KEY, url_override=facade.url)


async def test_latest_quotes_for_many_symbols_in_one_call(stocks: StockHistoricalDataClient, facade: Facade) -> None:
    quotes = await call(stocks.get_stock_latest_quote, StockLatestQuoteRequest(symbol_or_symbols=SYMBOLS, feed="iex"))
    assert set(quotes) == set(SYMBOLS)
    expected = facade.world.exchange.quote("AAPL")
    assert quotes["AAPL"].bid_price == float(expected.bid_price)
    assert quotes["AAPL"].ask_size == float(expected.ask_size)
    assert quotes["AAPL"].timestamp == expected.timestamp


async def test_unknown_symbols_are_left_out(stocks: StockHistoricalDataClient) -> None:
    quotes = await call(stocks.get_stock_latest_quote, StockLatestQuoteRequest(symbol_or_symbols=["AAPL", "ZZZZ"]))
    assert set(quotes) == {"AAPL"}


async def test_latest_trades_and_bars(stocks: StockHistoricalDataClient) -> None:
    trades = await call(stocks.get_stock_latest_trade, StockLatestTradeRequest(symbol_or_symbols=SYMBOLS))
    bars = await call(stocks.get_stock_latest_bar, StockLatestBarRequest(symbol_or_symbols=SYMBOLS))
    assert set(trades) == set(bars) == set(SYMBOLS)
    assert trades["SPY"].price > 0
    assert bars["SPY"].timestamp == MARKET_OPEN + timedelta(minutes=9)


async def test_minute_bars_page_through_history(stocks: StockHistoricalDataClient) -> None:
    request = StockBarsRequest(
        symbol_or_symbols=["AAPL", "MSFT"],
        timeframe=TimeFrame.Minute,
        start=MARKET_OPEN - timedelta(hours=30),
        end=MARKET_OPEN + timedelta(minutes=9),
    )
    bars = await call(stocks.get_stock_bars, request)
    aapl = bars.data["AAPL"]
    assert len(aapl) == 30 * 60 + 10
    assert len(bars.data["MSFT"]) == 30 * 60 + 10  # 3620 rows at 1000 a page: the client followed the tokens
    assert aapl[0].timestamp == MARKET_OPEN - timedelta(hours=30)
    assert all(a.timestamp < b.timestamp for a, b in itertools.pairwise(aapl))


async def test_daily_and_hourly_bars(stocks: StockHistoricalDataClient) -> None:
    daily = await call(
        stocks.get_stock_bars,
        StockBarsRequest(symbol_or_symbols="SPY", timeframe=TimeFrame.Day, start=MARKET_OPEN - timedelta(days=30)),
    )
    assert 29 <= len(daily.data["SPY"]) <= 31
    hourly = await call(
        stocks.get_stock_bars,
        StockBarsRequest(
            symbol_or_symbols="SPY", timeframe=TimeFrame(1, TimeFrameUnit.Hour), start=MARKET_OPEN - timedelta(hours=5)
        ),
    )
    assert [bar.timestamp for bar in hourly.data["SPY"]] == [MARKET_OPEN - timedelta(hours=h) for h in range(5, -1, -1)]


async def test_snapshots(stocks: StockHistoricalDataClient) -> None:
    snapshots = await call(stocks.get_stock_snapshot, StockSnapshotRequest(symbol_or_symbols=SYMBOLS))
    snapshot = snapshots["MSFT"]
    assert snapshot.latest_quote is not None
    assert snapshot.latest_trade is not None
    assert snapshot.minute_bar is not None
    assert snapshot.daily_bar is not None
    assert snapshot.previous_daily_bar is not None
    assert snapshot.daily_bar.timestamp > snapshot.previous_daily_bar.timestamp


async def test_option_quotes_snapshots_and_chains(option_data: OptionHistoricalDataClient) -> None:
    symbols = ["AAPL261218C00230000", "AAPL261218P00230000"]
    quotes = await call(option_data.get_option_latest_quote, OptionLatestQuoteRequest(symbol_or_symbols=symbols))
    assert set(quotes) == set(symbols)
    assert 0 < quotes[symbols[0]].bid_price < quotes[symbols[0]].ask_price
    snapshots = await call(option_data.get_option_snapshot, OptionSnapshotRequest(symbol_or_symbols=symbols))
    call_greeks = snapshots[symbols[0]].greeks
    put_greeks = snapshots[symbols[1]].greeks
    assert call_greeks is not None
    assert put_greeks is not None
    assert 0 < call_greeks.delta < 1
    assert -1 < put_greeks.delta < 0
    assert snapshots[symbols[0]].implied_volatility is not None
    chain = await call(
        option_data.get_option_chain, OptionChainRequest(underlying_symbol="AAPL", expiration_date=date(2026, 12, 18))
    )
    assert symbols[0] in chain
    assert len(chain) == 2 * 55  # calls and puts on every strike of the grid
