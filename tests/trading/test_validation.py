"""Order validation as the API shows it: camelCase fields and messages, symbols, assets, sizes."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from server.brokers.domain import (
    Asset,
    AssetClass,
    OrderClass,
    OrderRequest,
    OrderSide,
    OrderType,
    StopLoss,
    TakeProfit,
    TimeInForce,
)
from server.brokers.order_rules import Violation
from server.trading.validation import as_problem, asset_problems, camel_path, order_problems, symbol_problem
from server.users.problems import UserProblem

D = Decimal
CALL = "AAPL261218C00200000"  # expires Friday 2026-12-18
SNAKE_NAMES = (
    "take_profit",
    "stop_loss",
    "limit_price",
    "stop_price",
    "trail_price",
    "trail_percent",
    "order_class",
    "time_in_force",
    "client_order_id",
    "extended_hours",
)


def asset(symbol: str = "AAPL", **fields: Any) -> Asset:
    values: dict[str, Any] = {
        "symbol": symbol,
        "name": symbol,
        "exchange": "NASDAQ",
        "asset_class": AssetClass.US_EQUITY,
        "tradable": True,
        "shortable": True,
        "easy_to_borrow": True,
        "fractionable": True,
        "status": "active",
    }
    return Asset(**{**values, **fields})


OPTION = asset(CALL, exchange="OPRA", asset_class=AssetClass.US_OPTION, fractionable=False, shortable=False)


def order(**fields: Any) -> OrderRequest:
    return OrderRequest(**{"symbol": "AAPL", "side": OrderSide.BUY, "qty": D(10), **fields})


def pairs(problems: list[UserProblem]) -> list[tuple[str, str | None]]:
    return [(problem.code, problem.field) for problem in problems]


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("qty", "qty"),
        ("client_order_id", "clientOrderId"),
        ("take_profit.limit_price", "takeProfit.limitPrice"),
        ("stop_loss.stop_price", "stopLoss.stopPrice"),
    ],
)
def test_camel_path(field: str, expected: str) -> None:
    assert camel_path(field) == expected


def test_as_problem_renames_the_field_in_field_and_message() -> None:
    violation = Violation("NOT_POSITIVE", "stop_loss.limit_price must be > 0", "stop_loss.limit_price")
    assert as_problem(violation) == UserProblem(
        "NOT_POSITIVE", "stopLoss.limitPrice must be > 0", "stopLoss.limitPrice"
    )
    assert as_problem(Violation("X", "no field here", None)) == UserProblem("X", "no field here", None)


def test_a_valid_order_has_no_problems() -> None:
    assert order_problems(order(type=OrderType.LIMIT, limit_price=D("187.25")), asset()) == []
    assert order_problems(order(qty=D(1), type=OrderType.LIMIT, limit_price=D("0.55")), OPTION) == []


TICK = "must be a multiple of 0.01 at this price"


@pytest.mark.parametrize(
    ("request_", "code", "message", "field"),
    [
        (order(type=OrderType.LIMIT), "LIMIT_PRICE_REQUIRED", "limitPrice is required for limit orders", "limitPrice"),
        (
            order(client_order_id=""),
            "INVALID_CLIENT_ORDER_ID",
            "clientOrderId must be 1 to 128 printable ASCII characters",
            "clientOrderId",
        ),
        (
            order(type=OrderType.TRAILING_STOP, trail_percent=D(100)),
            "TRAIL_PERCENT_TOO_LARGE",
            "trailPercent must be < 100",
            "trailPercent",
        ),
        (
            order(extended_hours=True),
            "EXTENDED_HOURS_NOT_ALLOWED",
            "extended hours orders must be limit day orders",
            "extendedHours",
        ),
        (
            order(order_class=OrderClass.OTO, take_profit=TakeProfit(D(0))),
            "NOT_POSITIVE",
            "takeProfit.limitPrice must be > 0",
            "takeProfit.limitPrice",
        ),
        (
            order(stop_loss=StopLoss(D(90), D("89.999")), order_class=OrderClass.OTO),
            "PRICE_TICK",
            f"stopLoss.limitPrice {TICK}",
            "stopLoss.limitPrice",
        ),
        (order(type=OrderType.LIMIT, limit_price=D("187.255")), "PRICE_TICK", f"limitPrice {TICK}", "limitPrice"),
    ],
)
def test_rule_problems_use_camel_case(request_: OrderRequest, code: str, message: str, field: str) -> None:
    assert order_problems(request_, asset()) == [UserProblem(code, message, field)]


@pytest.mark.parametrize(
    ("request_", "the_asset", "expected"),
    [
        (order(type=OrderType.STOP, stop_price=D(1)), OPTION, [("OPTION_ORDER_TYPE", "type")]),
        (order(time_in_force=TimeInForce.GTC), OPTION, [("TIME_IN_FORCE_NOT_ALLOWED", "timeInForce")]),
        (order(qty=D("1.5")), OPTION, [("WHOLE_CONTRACTS_ONLY", "qty")]),
        (order(type=OrderType.LIMIT, limit_price=D("0.555")), OPTION, [("PRICE_TICK", "limitPrice")]),
        (order(type=OrderType.LIMIT, limit_price=D("0.5555")), asset(), []),  # sub-penny is fine for stocks
        (order(qty=D("1.5")), asset(fractionable=False), [("NOT_FRACTIONABLE", "qty")]),
        (order(qty=D("1.5")), asset(), []),
    ],
)
def test_the_asset_decides_option_and_fractional_rules(
    request_: OrderRequest, the_asset: Asset, expected: list[tuple[str, str]]
) -> None:
    assert pairs(order_problems(request_, the_asset)) == expected


QTY_TOO_LARGE = UserProblem("TOO_LARGE", "qty must be at most 1,000,000,000.", "qty")
QTY_TOO_PRECISE = UserProblem("TOO_PRECISE", "qty takes at most 9 decimals.", "qty")
NOTIONAL_TOO_LARGE = UserProblem("TOO_LARGE", "notional must be at most 10,000,000,000.", "notional")
NOTIONAL_TOO_PRECISE = UserProblem("TOO_PRECISE", "notional takes at most 2 decimals.", "notional")


@pytest.mark.parametrize(
    ("qty", "notional", "expected"),
    [
        (D(10) ** 9, None, []),
        (D(10) ** 9 + 1, None, [QTY_TOO_LARGE]),
        (D("1E+10"), None, [QTY_TOO_LARGE]),
        (D("0.123456789"), None, []),
        (D("1.5000000000000"), None, []),  # trailing zeros are not precision
        (D("0.1234567891"), None, [QTY_TOO_PRECISE]),
        (D("1000000000.0000000001"), None, [QTY_TOO_LARGE, QTY_TOO_PRECISE]),
        (None, D(10) ** 10, []),
        (None, D("10000000000.01"), [NOTIONAL_TOO_LARGE]),
        (None, D("12.34"), []),
        (None, D("12.345"), [NOTIONAL_TOO_PRECISE]),
    ],
)
def test_size_limits(qty: Decimal | None, notional: Decimal | None, expected: list[UserProblem]) -> None:
    assert order_problems(order(qty=qty, notional=notional), asset()) == expected


def test_every_problem_is_listed_once_per_code_and_field() -> None:
    request = order(
        qty=D(0),
        type=OrderType.TRAILING_STOP,
        time_in_force=TimeInForce.IOC,  # breaks two time-in-force rules: shown once
        trail_price=D("0.00001"),
        take_profit=TakeProfit(D("110.001")),
        stop_loss=StopLoss(D("90.001")),
    )
    assert pairs(order_problems(request, asset())) == [
        ("NOT_POSITIVE", "qty"),
        ("TIME_IN_FORCE_NOT_ALLOWED", "timeInForce"),
        ("LEGS_NOT_ALLOWED", "orderClass"),
        ("PRICE_TICK", "trailPrice"),
        ("PRICE_TICK", "takeProfit.limitPrice"),
        ("PRICE_TICK", "stopLoss.stopPrice"),
    ]


@pytest.mark.parametrize(
    "request_",
    [
        pytest.param(order(trail_price=D(1)), id="trail-not-allowed"),
        pytest.param(order(type=OrderType.TRAILING_STOP), id="trail-required"),
        pytest.param(order(take_profit=TakeProfit(D(110))), id="legs-not-allowed"),
        pytest.param(order(order_class=OrderClass.BRACKET, take_profit=TakeProfit(D(110))), id="legs-required"),
        pytest.param(
            order(order_class=OrderClass.BRACKET, take_profit=TakeProfit(D(90)), stop_loss=StopLoss(D(110))),
            id="bracket-take-profit",
        ),
        pytest.param(
            order(
                type=OrderType.LIMIT,
                limit_price=D(120),
                order_class=OrderClass.BRACKET,
                take_profit=TakeProfit(D(110)),
                stop_loss=StopLoss(D(90)),
            ),
            id="bracket-entry",
        ),
    ],
)
def test_messages_name_every_field_in_camel_case(request_: OrderRequest) -> None:
    problems = order_problems(request_, asset())
    assert problems
    assert [name for problem in problems for name in SNAKE_NAMES if name in problem.message] == []


@pytest.mark.parametrize(
    ("raw", "symbol"),
    [
        ("AAPL", "AAPL"),
        ("BRK.B", "BRK.B"),
        ("aapl", "AAPL"),
        ("  msft\t", "MSFT"),
        ("F", "F"),
        (CALL, CALL),
        ("spy261218p00450000", "SPY261218P00450000"),
        ("BRKB280229C00500000", "BRKB280229C00500000"),  # 2028 is a leap year
    ],
)
def test_symbol_shapes(raw: str, symbol: str) -> None:
    assert symbol_problem(raw) == (symbol, None)


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "AAPL!",
        "A1",
        "GOOGLEX",  # seven letters
        "BRK.BBB",
        "ÄPPLE",
        "\u0131bm",  # dotless i: upper-cases to IBM
        "A" * 40,
        "AAPL261218X00200000",
        "AAPL261218C0020000",
        "AAPL 261218C00200000",
    ],
)
def test_garbage_is_an_invalid_symbol(raw: str) -> None:
    assert symbol_problem(raw) == (
        None,
        UserProblem("INVALID_SYMBOL", "That is not a stock ticker or an OCC option symbol.", "symbol"),
    )


@pytest.mark.parametrize("raw", ["AAPL261318C00200000", "AAPL261232C00200000", "AAPL270229C00200000"])
def test_an_option_symbol_with_an_impossible_date_is_invalid(raw: str) -> None:
    assert symbol_problem(raw) == (
        None,
        UserProblem("INVALID_SYMBOL", "That option symbol does not name a real date.", "symbol"),
    )


def test_an_unknown_asset() -> None:
    assert asset_problems("XYZ", None, today=date(2026, 11, 23)) == [
        UserProblem("UNKNOWN_SYMBOL", "XYZ is not an asset this broker trades.", "symbol")
    ]


@pytest.mark.parametrize(
    ("the_asset", "today", "expected"),
    [
        (asset(), date(2026, 11, 23), []),
        (asset(tradable=False), date(2026, 11, 23), [("NOT_TRADABLE", "symbol")]),
        (asset(status="inactive"), date(2026, 11, 23), [("NOT_TRADABLE", "symbol")]),
        (OPTION, date(2026, 12, 17), []),
        (OPTION, date(2026, 12, 18), []),  # expiring today is still tradable
        (OPTION, date(2026, 12, 19), [("OPTION_EXPIRED", "symbol")]),
        (
            asset(CALL, tradable=False, asset_class=AssetClass.US_OPTION),
            date(2027, 1, 4),
            [("NOT_TRADABLE", "symbol"), ("OPTION_EXPIRED", "symbol")],
        ),
    ],
)
def test_asset_problems(the_asset: Asset, today: date, expected: list[tuple[str, str]]) -> None:
    assert pairs(asset_problems(the_asset.symbol, the_asset, today=today)) == expected


def test_asset_problem_messages() -> None:
    assert asset_problems("AAPL", asset(tradable=False), today=date(2026, 11, 23))[0].message == (
        "AAPL cannot be traded now."
    )
    assert asset_problems(CALL, OPTION, today=date(2026, 12, 21))[0].message == (
        f"The {CALL} contract expired on 2026-12-18."
    )
