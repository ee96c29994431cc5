"""Alpaca's order rules: every rule alone, valid orders of every kind, several problems at once, ticks."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from server.brokers.domain import OrderClass, OrderRequest, OrderSide, OrderType, StopLoss, TakeProfit, TimeInForce
from server.brokers.order_rules import Violation, first_violation, tick_violations, violations

D = Decimal
BUY, SELL = OrderSide.BUY, OrderSide.SELL
MARKET, LIMIT, STOP, STOP_LIMIT, TRAIL = (
    OrderType.MARKET,
    OrderType.LIMIT,
    OrderType.STOP,
    OrderType.STOP_LIMIT,
    OrderType.TRAILING_STOP,
)
DAY, GTC, OPG, CLS, IOC, FOK = (
    TimeInForce.DAY,
    TimeInForce.GTC,
    TimeInForce.OPG,
    TimeInForce.CLS,
    TimeInForce.IOC,
    TimeInForce.FOK,
)
SIMPLE, BRACKET, OCO, OTO = OrderClass.SIMPLE, OrderClass.BRACKET, OrderClass.OCO, OrderClass.OTO
TP, SL = TakeProfit(D(110)), StopLoss(D(90))
EQUITY = {"fractionable": True, "is_option": False}
UNFRACTIONABLE = {"fractionable": False, "is_option": False}
OPTION = {"fractionable": False, "is_option": True}


def order(**fields: Any) -> OrderRequest:
    """A buy of 10 AAPL at market, day, with `fields` changed."""
    return OrderRequest(**{"symbol": "AAPL", "side": BUY, "qty": D(10), **fields})


def found(request: OrderRequest, asset: dict[str, bool] = EQUITY) -> list[tuple[str, str | None]]:
    return [(violation.code, violation.field) for violation in violations(request, **asset)]


VALID = [
    pytest.param(order(), EQUITY, id="market"),
    pytest.param(order(type=LIMIT, time_in_force=GTC, limit_price=D("187.25")), EQUITY, id="limit-gtc"),
    pytest.param(order(side=SELL, type=STOP, stop_price=D(90)), EQUITY, id="stop"),
    pytest.param(order(type=STOP_LIMIT, stop_price=D(110), limit_price=D("110.5")), EQUITY, id="stop-limit"),
    pytest.param(order(side=SELL, type=TRAIL, trail_price=D("2.5")), EQUITY, id="trailing-price"),
    pytest.param(order(side=SELL, type=TRAIL, time_in_force=GTC, trail_percent=D("99.99")), EQUITY, id="trail-pct"),
    *(pytest.param(order(time_in_force=tif), EQUITY, id=f"market-{tif}") for tif in (OPG, CLS, IOC, FOK)),
    *(
        pytest.param(order(type=LIMIT, time_in_force=tif, limit_price=D(5)), EQUITY, id=f"lmt-{tif}")
        for tif in (OPG, IOC)
    ),
    pytest.param(order(type=LIMIT, limit_price=D(100), extended_hours=True), EQUITY, id="extended-hours"),
    pytest.param(order(qty=None, notional=D("500.5")), EQUITY, id="notional"),
    pytest.param(order(qty=D("0.5")), EQUITY, id="fractional"),
    pytest.param(order(qty=D("2.000")), UNFRACTIONABLE, id="whole-qty-written-with-decimals"),
    pytest.param(order(client_order_id="x" * 128), EQUITY, id="client-order-id-128"),
    pytest.param(order(order_class=BRACKET, take_profit=TP, stop_loss=SL), EQUITY, id="bracket-market"),
    pytest.param(
        order(type=LIMIT, limit_price=D(100), time_in_force=GTC, order_class=BRACKET, take_profit=TP, stop_loss=SL),
        EQUITY,
        id="bracket-limit",
    ),
    pytest.param(
        order(
            side=SELL,
            type=LIMIT,
            limit_price=D(100),
            order_class=BRACKET,
            take_profit=TakeProfit(D(90)),
            stop_loss=StopLoss(D(110), D("109.5")),
        ),
        EQUITY,
        id="bracket-sell",
    ),
    pytest.param(
        order(
            side=SELL, type=LIMIT, limit_price=D(110), order_class=OCO, take_profit=TP, stop_loss=StopLoss(D(90), D(89))
        ),
        EQUITY,
        id="oco",
    ),
    pytest.param(order(order_class=OTO, take_profit=TP), EQUITY, id="oto-take-profit"),
    pytest.param(order(type=LIMIT, limit_price=D(100), order_class=OTO, stop_loss=SL), EQUITY, id="oto-stop-loss"),
    pytest.param(order(symbol="AAPL261218C00200000", qty=D(2)), OPTION, id="option-market"),
    pytest.param(order(symbol="AAPL261218C00200000", type=LIMIT, limit_price=D("0.55")), OPTION, id="option-limit"),
]


@pytest.mark.parametrize(("request_", "asset"), VALID)
def test_a_valid_order_breaks_no_rule(request_: OrderRequest, asset: dict[str, bool]) -> None:
    assert violations(request_, **asset) == []
    assert first_violation(request_, **asset) is None
    assert tick_violations(request_, is_option=asset["is_option"]) == []


TIF_ERROR = ("TIME_IN_FORCE_NOT_ALLOWED", "time_in_force")
BROKEN = [
    # amounts
    (order(qty=None), EQUITY, [("QTY_OR_NOTIONAL", "qty")]),
    (order(notional=D(100)), EQUITY, [("QTY_OR_NOTIONAL", "qty")]),
    (order(qty=D(0)), EQUITY, [("NOT_POSITIVE", "qty")]),
    (order(qty=D(-3)), EQUITY, [("NOT_POSITIVE", "qty")]),
    (order(qty=None, notional=D(0)), EQUITY, [("NOT_POSITIVE", "notional")]),
    (order(qty=None, notional=D("-5")), EQUITY, [("NOT_POSITIVE", "notional")]),
    (order(client_order_id=""), EQUITY, [("INVALID_CLIENT_ORDER_ID", "client_order_id")]),
    (order(client_order_id="x" * 129), EQUITY, [("INVALID_CLIENT_ORDER_ID", "client_order_id")]),
    (order(client_order_id="a\tb"), EQUITY, [("INVALID_CLIENT_ORDER_ID", "client_order_id")]),
    (order(client_order_id="café"), EQUITY, [("INVALID_CLIENT_ORDER_ID", "client_order_id")]),
    # limit and stop prices per type
    (order(type=LIMIT), EQUITY, [("LIMIT_PRICE_REQUIRED", "limit_price")]),
    (order(type=STOP_LIMIT, stop_price=D(90)), EQUITY, [("LIMIT_PRICE_REQUIRED", "limit_price")]),
    (order(type=STOP), EQUITY, [("STOP_PRICE_REQUIRED", "stop_price")]),
    (order(type=STOP_LIMIT, limit_price=D(90)), EQUITY, [("STOP_PRICE_REQUIRED", "stop_price")]),
    (order(limit_price=D(100)), EQUITY, [("LIMIT_PRICE_NOT_ALLOWED", "limit_price")]),
    (order(type=STOP, stop_price=D(90), limit_price=D(89)), EQUITY, [("LIMIT_PRICE_NOT_ALLOWED", "limit_price")]),
    (order(stop_price=D(100)), EQUITY, [("STOP_PRICE_NOT_ALLOWED", "stop_price")]),
    (order(type=LIMIT, limit_price=D(100), stop_price=D(99)), EQUITY, [("STOP_PRICE_NOT_ALLOWED", "stop_price")]),
    (order(type=LIMIT, limit_price=D(0)), EQUITY, [("NOT_POSITIVE", "limit_price")]),
    (order(type=STOP, stop_price=D(-1)), EQUITY, [("NOT_POSITIVE", "stop_price")]),
    # trailing stops
    (order(type=TRAIL), EQUITY, [("TRAIL_REQUIRED", "trail_price")]),
    (order(type=TRAIL, trail_price=D(1), trail_percent=D(1)), EQUITY, [("TRAIL_REQUIRED", "trail_price")]),
    (order(type=TRAIL, trail_percent=D(100)), EQUITY, [("TRAIL_PERCENT_TOO_LARGE", "trail_percent")]),
    (order(type=TRAIL, trail_percent=D(0)), EQUITY, [("NOT_POSITIVE", "trail_percent")]),
    (order(type=TRAIL, trail_price=D(-1)), EQUITY, [("NOT_POSITIVE", "trail_price")]),
    (order(trail_price=D(1)), EQUITY, [("TRAIL_NOT_ALLOWED", "trail_price")]),
    (order(type=LIMIT, limit_price=D(9), trail_percent=D(5)), EQUITY, [("TRAIL_NOT_ALLOWED", "trail_price")]),
    # time in force
    (order(type=STOP, stop_price=D(90), time_in_force=OPG), EQUITY, [TIF_ERROR]),
    (order(type=STOP_LIMIT, stop_price=D(9), limit_price=D(9), time_in_force=CLS), EQUITY, [TIF_ERROR]),
    (order(type=STOP, stop_price=D(90), time_in_force=IOC), EQUITY, [TIF_ERROR]),
    (order(type=STOP, stop_price=D(90), time_in_force=FOK), EQUITY, [TIF_ERROR]),
    (order(type=TRAIL, trail_price=D(1), time_in_force=IOC), EQUITY, [TIF_ERROR, TIF_ERROR]),  # two rules
    (order(type=TRAIL, trail_price=D(1), time_in_force=CLS), EQUITY, [TIF_ERROR, TIF_ERROR]),
    (order(extended_hours=True), EQUITY, [("EXTENDED_HOURS_NOT_ALLOWED", "extended_hours")]),
    (
        order(type=LIMIT, limit_price=D(9), time_in_force=GTC, extended_hours=True),
        EQUITY,
        [("EXTENDED_HOURS_NOT_ALLOWED", "extended_hours")],
    ),
    # options
    (order(type=STOP, stop_price=D(1)), OPTION, [("OPTION_ORDER_TYPE", "type")]),
    (order(type=STOP_LIMIT, stop_price=D(1), limit_price=D(1)), OPTION, [("OPTION_ORDER_TYPE", "type")]),
    (order(type=TRAIL, trail_price=D(1)), OPTION, [("OPTION_ORDER_TYPE", "type")]),
    (order(order_class=BRACKET, take_profit=TP, stop_loss=SL), OPTION, [("OPTION_ORDER_TYPE", "type")]),
    (order(type=LIMIT, limit_price=D(1), time_in_force=GTC), OPTION, [TIF_ERROR]),
    (order(time_in_force=IOC), OPTION, [TIF_ERROR]),
    (order(qty=D("1.5")), OPTION, [("WHOLE_CONTRACTS_ONLY", "qty")]),
    (order(qty=None, notional=D(500)), OPTION, [("WHOLE_CONTRACTS_ONLY", "qty")]),
    # fractional and notional
    (order(qty=D("1.5")), UNFRACTIONABLE, [("NOT_FRACTIONABLE", "qty")]),
    (order(qty=None, notional=D(50)), UNFRACTIONABLE, [("NOT_FRACTIONABLE", "qty")]),
    (order(qty=D("1.5"), type=LIMIT, limit_price=D(9)), EQUITY, [("FRACTIONAL_MARKET_DAY_ONLY", "type")]),
    (order(qty=None, notional=D(50), time_in_force=GTC), EQUITY, [("FRACTIONAL_MARKET_DAY_ONLY", "type")]),
    (order(qty=D("0.5"), order_class=OTO, take_profit=TP), EQUITY, [("FRACTIONAL_SIMPLE_ONLY", "order_class")]),
    # order classes
    (order(take_profit=TP), EQUITY, [("LEGS_NOT_ALLOWED", "order_class")]),
    (order(stop_loss=SL), EQUITY, [("LEGS_NOT_ALLOWED", "order_class")]),
    (order(order_class=BRACKET), EQUITY, [("LEGS_REQUIRED", "take_profit")]),
    (order(order_class=BRACKET, take_profit=TP), EQUITY, [("LEGS_REQUIRED", "take_profit")]),
    (order(type=LIMIT, limit_price=D(110), order_class=OCO, stop_loss=SL), EQUITY, [("LEGS_REQUIRED", "take_profit")]),
    (order(order_class=OTO), EQUITY, [("LEGS_REQUIRED", "take_profit")]),
    (order(order_class=OTO, take_profit=TP, stop_loss=SL), EQUITY, [("LEGS_REQUIRED", "take_profit")]),
    (order(order_class=OCO, take_profit=TP, stop_loss=SL), EQUITY, [("ORDER_CLASS_TYPE", "type")]),
    (
        order(type=STOP, stop_price=D(95), order_class=BRACKET, take_profit=TP, stop_loss=SL),
        EQUITY,
        [("ORDER_CLASS_TYPE", "type")],
    ),
    (order(type=TRAIL, trail_price=D(1), order_class=OTO, take_profit=TP), EQUITY, [("ORDER_CLASS_TYPE", "type")]),
    (order(order_class=BRACKET, take_profit=TP, stop_loss=SL, time_in_force=OPG), EQUITY, [TIF_ERROR]),
    (order(order_class=OTO, take_profit=TP, time_in_force=IOC), EQUITY, [TIF_ERROR]),
    (order(order_class=OTO, take_profit=TakeProfit(D(0))), EQUITY, [("NOT_POSITIVE", "take_profit.limit_price")]),
    (order(order_class=OTO, stop_loss=StopLoss(D(-1))), EQUITY, [("NOT_POSITIVE", "stop_loss.stop_price")]),
    (order(order_class=OTO, stop_loss=StopLoss(D(9), D(0))), EQUITY, [("NOT_POSITIVE", "stop_loss.limit_price")]),
]


@pytest.mark.parametrize(("request_", "asset", "expected"), BROKEN)
def test_each_rule_alone(request_: OrderRequest, asset: dict[str, bool], expected: list[tuple[str, str]]) -> None:
    assert found(request_, asset) == expected


def bracket(side: OrderSide, take_profit: int, stop: int, entry: int | None = None) -> OrderRequest:
    return order(
        side=side,
        type=MARKET if entry is None else LIMIT,
        limit_price=None if entry is None else D(entry),
        order_class=BRACKET,
        take_profit=TakeProfit(D(take_profit)),
        stop_loss=StopLoss(D(stop)),
    )


TP_SIDE = ("BRACKET_PRICES", "take_profit.limit_price")
ENTRY = ("BRACKET_PRICES", "limit_price")


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        (bracket(BUY, 90, 110), [TP_SIDE]),
        (bracket(BUY, 100, 100), [TP_SIDE]),
        (bracket(BUY, 110, 90, entry=120), [ENTRY]),
        (bracket(BUY, 110, 90, entry=80), [ENTRY]),
        (bracket(BUY, 110, 90, entry=90), [ENTRY]),
        (bracket(BUY, 110, 90, entry=110), [ENTRY]),
        (bracket(BUY, 90, 110, entry=100), [TP_SIDE, ENTRY]),
        (bracket(SELL, 110, 90), [TP_SIDE]),
        (bracket(SELL, 90, 110, entry=120), [ENTRY]),
        (bracket(SELL, 90, 110, entry=80), [ENTRY]),
        (bracket(SELL, 110, 90, entry=100), [TP_SIDE, ENTRY]),
        pytest.param(bracket(SELL, 100, 100), [TP_SIDE], id="sell-take-profit-equals-stop"),
        pytest.param(bracket(SELL, 90, 110, entry=110), [ENTRY], id="sell-entry-equals-stop"),
        pytest.param(bracket(SELL, 90, 110, entry=90), [ENTRY], id="sell-entry-equals-profit"),
    ],
)
def test_bracket_prices_are_ordered(request_: OrderRequest, expected: list[tuple[str, str]]) -> None:
    assert found(request_) == expected


def test_oco_and_oto_do_not_check_bracket_ordering() -> None:
    upside_down = {"take_profit": TakeProfit(D(90)), "stop_loss": StopLoss(D(110))}
    assert found(order(type=LIMIT, limit_price=D(90), order_class=OCO, **upside_down)) == []
    assert found(order(order_class=OTO, take_profit=TakeProfit(D(1)))) == []


def test_every_problem_is_listed_in_order_and_first_violation_is_the_first() -> None:
    request = order(qty=None, type=STOP, time_in_force=IOC, client_order_id="", extended_hours=True, take_profit=TP)
    assert found(request) == [
        ("QTY_OR_NOTIONAL", "qty"),
        ("INVALID_CLIENT_ORDER_ID", "client_order_id"),
        ("STOP_PRICE_REQUIRED", "stop_price"),
        TIF_ERROR,
        ("EXTENDED_HOURS_NOT_ALLOWED", "extended_hours"),
        ("LEGS_NOT_ALLOWED", "order_class"),
    ]
    assert first_violation(request, **EQUITY) == Violation(
        "QTY_OR_NOTIONAL", "qty or notional is required, but not both", "qty"
    )


def test_messages_name_the_type_and_time_in_force() -> None:
    assert violations(order(type=STOP_LIMIT, stop_price=D(1)), **EQUITY)[0].message == (
        "limit_price is required for stop_limit orders"
    )
    assert violations(order(type=STOP, stop_price=D(1), time_in_force=FOK), **EQUITY)[0].message == (
        "fok orders must be market or limit"
    )


@pytest.mark.parametrize(
    ("request_", "is_option", "expected"),
    [
        (order(limit_price=D("187.25")), False, []),
        (order(limit_price=D("1.00")), False, []),
        (order(limit_price=D("187.255")), False, ["limit_price"]),
        (order(limit_price=D("1.0001")), False, ["limit_price"]),  # at $1 the tick is a cent
        (order(limit_price=D("0.9999")), False, []),  # below $1 it is 0.0001
        (order(limit_price=D("0.00015")), False, ["limit_price"]),
        (order(limit_price=D("0.55")), True, []),
        (order(limit_price=D("0.555")), True, ["limit_price"]),  # options: cents even below $1
        (order(stop_price=D("10.001")), False, ["stop_price"]),
        (order(trail_price=D("0.12345")), False, ["trail_price"]),
        (order(trail_percent=D("1.2345")), False, []),  # a percentage, not a price
        (order(take_profit=TakeProfit(D("110.001"))), False, ["take_profit.limit_price"]),
        (order(stop_loss=StopLoss(D("90.001"))), False, ["stop_loss.stop_price"]),
        (order(stop_loss=StopLoss(D(90), D("89.999"))), False, ["stop_loss.limit_price"]),
        (order(limit_price=D("-1.001"), stop_price=D(0)), False, []),  # NOT_POSITIVE's business
        (
            order(
                limit_price=D("1.001"),
                stop_price=D("2.002"),
                trail_price=D("3.003"),
                take_profit=TakeProfit(D("4.004")),
                stop_loss=StopLoss(D("5.005"), D("6.006")),
            ),
            False,
            [
                "limit_price",
                "stop_price",
                "trail_price",
                "take_profit.limit_price",
                "stop_loss.stop_price",
                "stop_loss.limit_price",
            ],
        ),
    ],
)
def test_tick_grid(request_: OrderRequest, is_option: bool, expected: list[str]) -> None:
    found_ticks = tick_violations(request_, is_option=is_option)
    assert [violation.field for violation in found_ticks] == expected
    assert {violation.code for violation in found_ticks} <= {"PRICE_TICK"}


def test_tick_message_names_the_tick() -> None:
    assert tick_violations(order(limit_price=D("0.00015")), is_option=False)[0].message == (
        "limit_price must be a multiple of 0.0001 at this price"
    )


def test_a_huge_price_on_the_grid_is_not_a_crash() -> None:
    assert tick_violations(order(limit_price=D("1e30")), is_option=False) == []


@pytest.mark.parametrize(
    "request_",
    [
        order(type=TRAIL, trail_percent=D("NaN")),
        order(order_class=BRACKET, take_profit=TakeProfit(D("NaN")), stop_loss=SL),
    ],
)
def test_nan_is_reported_not_raised(request_: OrderRequest) -> None:
    assert "NOT_POSITIVE" in {code for code, _ in found(request_)}
