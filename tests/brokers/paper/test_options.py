from __future__ import annotations

import itertools
import math
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from server.brokers.base import OrderRejectedError
from server.brokers.domain import AssetClass, OptionType, OrderRequest, OrderSide, OrderStatus
from server.brokers.paper import options
from server.brokers.paper.universe import ASSETS_BY_SYMBOL
from tests.utils.paper import PaperWorld, paper_world

D = Decimal
TODAY = date(2026, 11, 23)


def test_occ_symbols_round_trip() -> None:
    symbol = options.occ_symbol("AAPL", date(2026, 12, 18), OptionType.CALL, D("232.5"))
    assert symbol == "AAPL261218C00232500"
    assert options.parse_occ(symbol) == ("AAPL", date(2026, 12, 18), OptionType.CALL, D("232.5"))
    assert options.occ_symbol("BRK.B", date(2026, 12, 18), OptionType.PUT, D(460)) == "BRKB261218P00460000"


@pytest.mark.parametrize("symbol", ["AAPL", "AAPL261318C00232500", "AAPL261218X00232500", "aapl261218C00232500"])
def test_malformed_occ_symbols_are_not_contracts(symbol: str) -> None:
    assert options.parse_occ(symbol) is None


def test_expirations_are_weekly_and_monthly_fridays() -> None:
    days = options.expirations(TODAY)
    assert days[:4] == [date(2026, 11, 27), date(2026, 12, 4), date(2026, 12, 11), date(2026, 12, 18)]
    assert date(2027, 1, 15) in days  # third Friday of January
    assert date(2027, 2, 19) in days
    assert date(2026, 12, 24) in days  # Christmas Friday: the Thursday before
    assert all(day.weekday() in {3, 4} for day in days)
    assert options.is_expiration_day(date(2027, 3, 25))  # Good Friday 2027: Thursday
    assert not options.is_expiration_day(date(2027, 3, 26))


@pytest.mark.parametrize(("price", "step"), [("10", "0.5"), ("57", "1"), ("230", "2.5"), ("420", "5"), ("900", "10")])
def test_strikes_sit_on_the_usual_grid_around_the_price(price: str, step: str) -> None:
    grid = options.strikes(D(price))
    assert all(b - a == D(step) for a, b in itertools.pairwise(grid))
    assert grid[0] >= D(price) * D("0.7")
    assert grid[-1] <= D(price) * D("1.3")
    assert any(abs(strike - D(price)) <= D(step) for strike in grid)


def test_black_scholes_matches_the_textbook_and_parity() -> None:
    call, greeks = options.black_scholes(OptionType.CALL, 100, 100, 1, 0.2, 0.05)
    put, put_greeks = options.black_scholes(OptionType.PUT, 100, 100, 1, 0.2, 0.05)
    assert call == pytest.approx(10.4506, abs=1e-4)
    assert call - put == pytest.approx(100 - 100 * math.exp(-0.05), abs=1e-9)
    assert 0 < greeks.delta < 1
    assert -1 < put_greeks.delta < 0
    assert greeks.gamma == pytest.approx(put_greeks.gamma)
    assert greeks.theta < 0
    assert greeks.vega > 0


def test_the_smile_rises_away_from_the_money() -> None:
    at_the_money = options.implied_volatility(0.25, 100, 100)
    assert options.implied_volatility(0.25, 100, 70) > options.implied_volatility(0.25, 100, 130) > at_the_money


def test_chains_cover_every_expiration_strike_and_type() -> None:
    chain = options.chain(ASSETS_BY_SYMBOL["AAPL"], TODAY)
    expected = len(options.expirations(TODAY)) * len(options.strikes(D("230.00"))) * 2
    assert len(chain) == expected
    assert len({contract.symbol for contract in chain}) == expected


@pytest.fixture
def world() -> PaperWorld:
    return paper_world()


def _contract(world: PaperWorld, option_type: OptionType, strike: str, expiration: date) -> str:
    return options.occ_symbol("AAPL", expiration, option_type, D(strike))


def test_option_quotes_are_priced_from_the_underlying(world: PaperWorld) -> None:
    deep = world.exchange.quote(_contract(world, OptionType.CALL, "200", date(2026, 12, 18)))
    near = world.exchange.quote(_contract(world, OptionType.CALL, "230", date(2026, 12, 18)))
    spot = world.exchange.price_of("AAPL")
    assert deep.bid_price >= spot - 200 - 1  # at least intrinsic, less a spread
    assert D(0) < near.bid_price < near.ask_price < deep.bid_price
    assert near.bid_price % D("0.01") == 0


def test_buying_and_selling_a_call_uses_the_multiplier(world: PaperWorld) -> None:
    symbol = _contract(world, OptionType.CALL, "230", date(2026, 12, 18))
    ask = world.exchange.quote(symbol).ask_price
    order = world.exchange.submit(world.account_id, OrderRequest(symbol, OrderSide.BUY, qty=D(2)))
    assert (order.status, order.asset_class) == (OrderStatus.FILLED, AssetClass.US_OPTION)
    position = world.exchange.position(world.account_id, symbol)
    assert (position.qty, position.cost_basis) == (2, 2 * ask * 100)
    assert world.exchange.account(world.account_id).cash == D(100000) - 2 * ask * 100
    world.exchange.submit(world.account_id, OrderRequest(symbol, OrderSide.SELL, qty=D(2)))
    assert world.exchange.positions(world.account_id) == []


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (OrderRequest("AAPL261218C00230000", OrderSide.SELL, qty=D(1)), "uncovered"),
        (OrderRequest("AAPL261218C00230000", OrderSide.BUY, qty=D("0.5")), "whole contracts"),
        (OrderRequest("AAPL261218C00231000", OrderSide.BUY, qty=D(1)), "not found"),  # off the strike grid
        (OrderRequest("AAPL261217C00230000", OrderSide.BUY, qty=D(1)), "not found"),  # not an expiration day
    ],
)
def test_option_orders_that_are_refused(world: PaperWorld, request_: OrderRequest, message: str) -> None:
    with pytest.raises(OrderRejectedError, match=message):
        world.exchange.submit(world.account_id, request_)


def test_expiry_settles_in_cash_at_intrinsic_value(world: PaperWorld) -> None:
    symbol = _contract(world, OptionType.CALL, "200", date(2026, 11, 27))
    world.exchange.submit(world.account_id, OrderRequest(symbol, OrderSide.BUY, qty=D(1)))
    cash_after_buy = world.exchange.account(world.account_id).cash
    expiry = datetime(2026, 11, 27, 21, tzinfo=UTC)  # 16:00 New York
    world.step((expiry - world.clock.now()).total_seconds() - 60)
    spot = world.exchange.price_of("AAPL")
    world.step(120)
    assert world.exchange.positions(world.account_id) == []
    credited = world.exchange.account(world.account_id).cash - cash_after_buy
    assert credited > 0
    assert abs(credited - (spot - 200) * 100) < 100  # the underlying moved a little in the last two minutes
