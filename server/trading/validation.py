"""Checks an order passes before anything is sent: every problem, each with its input field.

The order rules are Alpaca's (server.brokers.order_rules, which the paper exchange also
applies); here they are joined by the checks that need the asset: does it exist, can it
be traded, is the option contract still alive, are prices on its tick grid.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal

from server.brokers.domain import Asset, AssetClass, OrderRequest
from server.brokers.order_rules import Violation, decimal_places, prices_of, tick_violations, violations
from server.brokers.paper.options import parse_occ
from server.brokers.symbols import clean_symbol, is_option_symbol
from server.users.problems import UserProblem

MAX_QTY = Decimal(10) ** 9
MAX_NOTIONAL = Decimal(10) ** 10
MAX_PRICE = Decimal(10) ** 7
QTY_DECIMALS = 9
NOTIONAL_DECIMALS = 2


def camel_path(field: str) -> str:
    """take_profit.limit_price -> takeProfit.limitPrice: Alpaca's names as the API's input paths."""
    return ".".join(_camel(part) for part in field.split("."))


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word.title() for word in rest)


# The order rules name fields as Alpaca does; the API's inputs are camelCase.
_FIELD_NAMES = re.compile(
    r"\b(client_order_id|time_in_force|extended_hours|order_class|take_profit|stop_loss|limit_price|stop_price"
    r"|trail_price|trail_percent)\b"
)


def as_problem(violation: Violation) -> UserProblem:
    field = camel_path(violation.field) if violation.field else None
    message = _FIELD_NAMES.sub(lambda match: _camel(match.group(0)), violation.message)
    return UserProblem(violation.code, message, field)


def symbol_problem(raw: str) -> tuple[str | None, UserProblem | None]:
    symbol = clean_symbol(raw)
    if symbol is None:
        return None, UserProblem("INVALID_SYMBOL", "That is not a stock ticker or an OCC option symbol.", "symbol")
    if is_option_symbol(symbol) and parse_occ(symbol) is None:
        return None, UserProblem("INVALID_SYMBOL", "That option symbol does not name a real date.", "symbol")
    return symbol, None


def asset_problems(symbol: str, asset: Asset | None, *, today: date) -> list[UserProblem]:
    if asset is None:
        return [UserProblem("UNKNOWN_SYMBOL", f"{symbol} is not an asset this broker trades.", "symbol")]
    problems = []
    if not asset.tradable or asset.status != "active":
        problems.append(UserProblem("NOT_TRADABLE", f"{symbol} cannot be traded now.", "symbol"))
    parsed = parse_occ(symbol) if asset.asset_class is AssetClass.US_OPTION else None
    if parsed is not None and parsed[1] < today:
        problems.append(UserProblem("OPTION_EXPIRED", f"The {symbol} contract expired on {parsed[1]}.", "symbol"))
    return problems


def _size_problems(request: OrderRequest) -> list[UserProblem]:
    problems = []
    for field, price in prices_of(request).items():
        name = camel_path(field)
        if price is not None and price.is_finite() and price > MAX_PRICE:
            problems.append(UserProblem("TOO_LARGE", f"{name} must be at most {MAX_PRICE:,}.", name))
    for name, value, limit, places in (
        ("qty", request.qty, MAX_QTY, QTY_DECIMALS),
        ("notional", request.notional, MAX_NOTIONAL, NOTIONAL_DECIMALS),
    ):
        if value is None or not value.is_finite():
            continue
        if value > limit:
            problems.append(UserProblem("TOO_LARGE", f"{name} must be at most {limit:,}.", name))
        if decimal_places(value) > places:
            problems.append(UserProblem("TOO_PRECISE", f"{name} takes at most {places} decimals.", name))
    return problems


def order_problems(request: OrderRequest, asset: Asset) -> list[UserProblem]:
    """Every rule `request` breaks, for an asset that exists."""
    is_option = asset.asset_class is AssetClass.US_OPTION
    found = violations(request, fractionable=asset.fractionable, is_option=is_option)
    found += tick_violations(request, is_option=is_option)
    problems = [as_problem(violation) for violation in found]
    problems += _size_problems(request)
    seen: set[tuple[str, str | None]] = set()
    unique = []
    for problem in problems:  # a rule may fire twice for one field (e.g. two time-in-force rules)
        if (problem.code, problem.field) not in seen:
            seen.add((problem.code, problem.field))
            unique.append(problem)
    return unique
