"""Pre-trade risk: buying power, the largest order and position, the price band, and whose limits apply."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from server.brokers.domain import (
    Account,
    AssetClass,
    OrderRequest,
    OrderSide,
    OrderType,
    Position,
    PositionSide,
    Quote,
)
from server.models import User
from server.trading.risk import KILL_SWITCH, Exposure, estimated_notional, limits_for, risk_problems
from server.users.admin import RiskLimits
from server.users.problems import UserProblem

D = Decimal
NOW = datetime(2026, 11, 23, 15, tzinfo=UTC)
BUY, SELL = OrderSide.BUY, OrderSide.SELL
NO_LIMITS = RiskLimits()
PLENTY = D(10) ** 9


def quote(bid: str = "99.90", ask: str = "100.10") -> Quote:  # mid 100
    return Quote("AAPL", D(bid), D(100), D(ask), D(100), NOW)


def account(buying_power: Decimal) -> Account:
    return Account(
        id="acct",
        account_number="PA0001",
        status="ACTIVE",
        currency="USD",
        cash=buying_power,
        buying_power=buying_power,
        equity=buying_power,
        portfolio_value=buying_power,
        long_market_value=D(0),
        short_market_value=D(0),
        realized_pl=D(0),
        unrealized_pl=D(0),
        multiplier=1,
        shorting_enabled=True,
        created_at=NOW,
    )


def position(qty: int, side: PositionSide = PositionSide.LONG) -> Position:
    """`qty` shares held (always positive, as brokers report it; the side says long or short)."""
    value = D(qty) * 100
    market_value = value if side is PositionSide.LONG else -value
    return Position("AAPL", AssetClass.US_EQUITY, D(qty), side, D(100), value, D(100), market_value, D(0), D(0))


def exposure(
    buying_power: Decimal = PLENTY, held: Position | None = None, multiplier: int = 1, the_quote: Quote | None = None
) -> Exposure:
    return Exposure(the_quote or quote(), account(buying_power), held, multiplier)


def order(side: OrderSide = BUY, **fields: Any) -> OrderRequest:
    if "notional" not in fields:
        fields.setdefault("qty", D(10))
    return OrderRequest("AAPL", side, **fields)


def limit(side: OrderSide, qty: int, price: str) -> OrderRequest:
    return order(side, qty=D(qty), type=OrderType.LIMIT, limit_price=D(price))


def codes(request: OrderRequest, the_exposure: Exposure, limits: RiskLimits = NO_LIMITS) -> list[tuple[str, str]]:
    return [(problem.code, problem.field) for problem in risk_problems(request, the_exposure, limits)]


POWER = [("INSUFFICIENT_BUYING_POWER", "qty")]
SHORT = PositionSide.SHORT


@pytest.mark.parametrize(
    ("request_", "the_exposure", "expected"),
    [
        (order(), exposure(D("1001.00")), []),  # 10 at the ask, 100.10
        (order(), exposure(D("1000.99")), POWER),
        (limit(BUY, 10, "50"), exposure(D(500)), []),  # priced at the order's limit
        (limit(BUY, 10, "50"), exposure(D("499.99")), POWER),
        (order(type=OrderType.STOP, stop_price=D(120)), exposure(D("1199.99")), POWER),
        (order(SELL), exposure(D(0), position(10)), []),  # selling what you hold
        (order(SELL, qty=D(4)), exposure(D(0), position(10)), []),
        (order(SELL, qty=D(15)), exposure(D("499.50"), position(10)), []),  # short 5 at the bid, 99.90
        (order(SELL, qty=D(15)), exposure(D("499.49"), position(10)), POWER),
        (order(SELL), exposure(D("998.99")), POWER),  # a short sale from flat
        (order(), exposure(D(0), position(10, SHORT)), []),  # buying to cover
        (order(qty=D(15)), exposure(D("500.50"), position(10, SHORT)), []),  # then long 5 at the ask
        (order(qty=D(15)), exposure(D("500.49"), position(10, SHORT)), POWER),
        (order(SELL), exposure(D("998.99"), position(10, SHORT)), POWER),  # adding to a short
        (limit(BUY, 2, "1.50"), exposure(D(300), multiplier=100), []),  # option contracts: x100
        (limit(BUY, 2, "1.50"), exposure(D("299.99"), multiplier=100), POWER),
        (order(notional=D(500)), exposure(D(500)), []),
        (order(notional=D(500)), exposure(D("499.99")), POWER),
        (order(SELL, notional=D(500)), exposure(D(0), position(10)), []),
    ],
)
def test_buying_power(request_: OrderRequest, the_exposure: Exposure, expected: list[tuple[str, str]]) -> None:
    assert codes(request_, the_exposure) == expected


def test_buying_power_message() -> None:
    assert risk_problems(order(SELL), exposure(D(0)), NO_LIMITS) == [
        UserProblem(
            "INSUFFICIENT_BUYING_POWER", "The order needs about 999.00 of buying power; 0.00 is available.", "qty"
        )
    ]


@pytest.mark.parametrize(
    ("request_", "the_exposure", "expected"),
    [
        (order(), exposure(), D("1001.00")),  # buys at the ask
        (order(SELL), exposure(), D("999.00")),  # sells at the bid
        (order(SELL), exposure(the_quote=quote(bid="0")), D("1001.00")),  # no bid: the ask
        (limit(BUY, 10, "95"), exposure(), D(950)),
        (order(type=OrderType.STOP, stop_price=D(105)), exposure(), D(1050)),
        (order(type=OrderType.STOP_LIMIT, stop_price=D(105), limit_price=D(106)), exposure(), D(1060)),
        (order(notional=D("123.45")), exposure(), D("123.45")),
        (limit(BUY, 3, "2.00"), exposure(multiplier=100), D(600)),
    ],
)
def test_estimated_notional(request_: OrderRequest, the_exposure: Exposure, expected: Decimal) -> None:
    assert estimated_notional(request_, the_exposure) == expected


MAX_ORDER = [("MAX_ORDER_NOTIONAL", "qty")]


@pytest.mark.parametrize(
    ("request_", "multiplier", "expected"),
    [
        (limit(BUY, 10, "100"), 1, []),  # exactly the limit
        (limit(BUY, 10, "100.01"), 1, MAX_ORDER),
        (order(), 1, MAX_ORDER),  # 10 at the ask: 1001
        (order(notional=D(1000)), 1, []),
        (order(notional=D("1000.01")), 1, MAX_ORDER),
        (limit(BUY, 5, "2.00"), 100, []),
        (limit(BUY, 5, "2.01"), 100, MAX_ORDER),  # options, x100: 1005
    ],
)
def test_max_order_notional(request_: OrderRequest, multiplier: int, expected: list[tuple[str, str]]) -> None:
    limits = RiskLimits(max_order_notional=D(1000))
    assert codes(request_, exposure(multiplier=multiplier), limits) == expected


def test_max_order_notional_message() -> None:
    problems = risk_problems(order(), exposure(), RiskLimits(max_order_notional=D(1000)))
    assert [problem.message for problem in problems] == [
        "The order is worth about 1001.00, over your limit of 1000.00."
    ]


MAX_POSITION = [("MAX_POSITION", "qty")]


@pytest.mark.parametrize(
    ("request_", "held", "expected"),
    [
        (limit(BUY, 20, "100"), None, []),  # exactly the limit, 2000
        (limit(BUY, 21, "100"), None, MAX_POSITION),
        (limit(BUY, 5, "100"), position(15), []),
        (limit(BUY, 6, "100"), position(15), MAX_POSITION),
        (limit(BUY, 1, "100"), position(30), MAX_POSITION),  # already over: adding is refused
        (limit(SELL, 5, "100"), position(30), []),  # already over: reducing is allowed
        (limit(SELL, 30, "100"), position(30), []),  # closing
        (limit(SELL, 21, "100"), None, MAX_POSITION),  # short 21
        (limit(SELL, 6, "100"), position(15, SHORT), MAX_POSITION),
        (limit(BUY, 5, "100"), position(30, SHORT), []),  # covering part of a big short
        (limit(SELL, 35, "100"), position(10), MAX_POSITION),  # flips to short 25
        (limit(SELL, 30, "100"), position(10), []),  # flips to short 20
    ],
)
def test_max_position(request_: OrderRequest, held: Position | None, expected: list[tuple[str, str]]) -> None:
    assert codes(request_, exposure(held=held), RiskLimits(max_position_notional=D(2000))) == expected


def test_max_position_message() -> None:
    problems = risk_problems(
        limit(BUY, 6, "100"), exposure(held=position(15)), RiskLimits(max_position_notional=D(2000))
    )
    assert problems == [
        UserProblem("MAX_POSITION", "The position would be worth about 2100.00, over your limit of 2000.00.", "qty")
    ]


BAND = RiskLimits(price_band_percent=D(10))  # mid 100: 90 to 110


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        (limit(BUY, 1, "110"), []),
        (limit(BUY, 1, "90"), []),
        (limit(SELL, 1, "110.01"), [("PRICE_BAND", "limitPrice")]),
        (limit(BUY, 1, "89.99"), [("PRICE_BAND", "limitPrice")]),
        (order(SELL, type=OrderType.STOP, stop_price=D("89.99")), [("PRICE_BAND", "stopPrice")]),
        (order(type=OrderType.STOP, stop_price=D(110)), []),
        (
            order(type=OrderType.STOP_LIMIT, stop_price=D(111), limit_price=D(112)),
            [("PRICE_BAND", "limitPrice"), ("PRICE_BAND", "stopPrice")],
        ),
        (order(), []),  # market orders have no price to check
        (order(type=OrderType.TRAILING_STOP, trail_price=D(50)), []),
    ],
)
def test_price_band(request_: OrderRequest, expected: list[tuple[str, str]]) -> None:
    assert codes(request_, exposure(), BAND) == expected


def test_price_band_message_and_off_switch() -> None:
    assert risk_problems(limit(BUY, 1, "110.01"), exposure(), BAND) == [
        UserProblem("PRICE_BAND", "limitPrice 110.01 is more than 10% away from the market (100.0000).", "limitPrice")
    ]
    assert codes(limit(BUY, 1, "1000"), exposure(), RiskLimits(price_band_percent=None)) == []


def test_price_band_with_no_bid_allows_a_limit_at_the_ask() -> None:
    no_bid = quote(bid="0", ask="0.01")
    assert codes(limit(BUY, 1, "0.01"), exposure(multiplier=100, the_quote=no_bid), BAND) == []


def test_all_problems_are_listed_together() -> None:
    limits = RiskLimits(max_order_notional=D(1000), max_position_notional=D(1000), price_band_percent=D(10))
    assert codes(limit(BUY, 20, "120"), exposure(D(100)), limits) == [
        ("INSUFFICIENT_BUYING_POWER", "qty"),
        ("MAX_ORDER_NOTIONAL", "qty"),
        ("MAX_POSITION", "qty"),
        ("PRICE_BAND", "limitPrice"),
    ]


def test_the_kill_switch_problem() -> None:
    assert (KILL_SWITCH.code, KILL_SWITCH.field) == ("KILL_SWITCH", None)
    assert "kill switch" in KILL_SWITCH.message


DEFAULTS = RiskLimits(max_order_notional=D(1_000_000), max_position_notional=D(5_000_000), price_band_percent=D(10))


def user(**limits: Decimal | None) -> User:
    return User(username="trader", email="trader@example.com", password_hash="x", **limits)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, DEFAULTS),
        (
            {"max_order_notional": D(500), "max_position_notional": D(2500), "price_band_percent": D("2.5")},
            RiskLimits(D(500), D(2500), D("2.5")),
        ),
        ({"max_order_notional": D(500)}, RiskLimits(D(500), D(5_000_000), D(10))),
        ({"max_position_notional": D(2500)}, RiskLimits(D(1_000_000), D(2500), D(10))),
        ({"price_band_percent": D(50)}, RiskLimits(D(1_000_000), D(5_000_000), D(50))),
    ],
)
def test_limits_for_prefers_the_users_own(overrides: dict[str, Decimal], expected: RiskLimits) -> None:
    assert limits_for(user(**overrides), DEFAULTS) == expected


def test_limits_for_keeps_a_default_that_is_none() -> None:
    assert limits_for(user(), RiskLimits(max_order_notional=D(7))) == RiskLimits(D(7), None, None)
