"""Alpaca's rules for a new order, shared by the paper exchange and the trading service.

`violations` lists every rule an order breaks (the API shows them all as userErrors; the
paper exchange rejects on the first, as Alpaca does). Fields are Alpaca's snake_case
names; nested ones are dotted (`take_profit.limit_price`).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from server.brokers.domain import OrderClass, OrderRequest, OrderSide, OrderType, TimeInForce

MAX_CLIENT_ORDER_ID_LENGTH = 128
CENT = Decimal("0.01")
SUB_PENNY = Decimal("0.0001")


@dataclass(frozen=True, slots=True)
class Violation:
    code: str
    message: str
    field: str | None = None


def violations(request: OrderRequest, *, fractionable: bool, is_option: bool) -> list[Violation]:
    found: list[Violation] = []
    _amounts(request, found)
    _prices(request, found)
    _time_in_force(request, found, is_option=is_option)
    _fractional(request, found, fractionable=fractionable, is_option=is_option)
    _order_class(request, found)
    return found


def first_violation(request: OrderRequest, *, fractionable: bool, is_option: bool) -> Violation | None:
    found = violations(request, fractionable=fractionable, is_option=is_option)
    return found[0] if found else None


def _positive(value: Decimal | None, name: str, found: list[Violation]) -> None:
    if value is not None and (not value.is_finite() or value <= 0):
        found.append(Violation("NOT_POSITIVE", f"{name} must be > 0", name))


def _amounts(request: OrderRequest, found: list[Violation]) -> None:
    if (request.qty is None) == (request.notional is None):
        found.append(Violation("QTY_OR_NOTIONAL", "qty or notional is required, but not both", "qty"))
    _positive(request.qty, "qty", found)
    _positive(request.notional, "notional", found)
    cid = request.client_order_id
    if cid is not None and not (0 < len(cid) <= MAX_CLIENT_ORDER_ID_LENGTH and cid.isascii() and cid.isprintable()):
        found.append(
            Violation(
                "INVALID_CLIENT_ORDER_ID",
                "client_order_id must be 1 to 128 printable ASCII characters",
                "client_order_id",
            )
        )


def _prices(request: OrderRequest, found: list[Violation]) -> None:
    kind = request.type
    limit_price, stop_price = request.limit_price, request.stop_price
    trail_price, trail_percent = request.trail_price, request.trail_percent
    _positive(limit_price, "limit_price", found)
    _positive(stop_price, "stop_price", found)
    _positive(trail_price, "trail_price", found)
    _positive(trail_percent, "trail_percent", found)
    needs_limit = kind is OrderType.LIMIT or kind is OrderType.STOP_LIMIT
    needs_stop = kind is OrderType.STOP or kind is OrderType.STOP_LIMIT
    if needs_limit and limit_price is None:
        found.append(Violation("LIMIT_PRICE_REQUIRED", f"limit_price is required for {kind} orders", "limit_price"))
    if not needs_limit and limit_price is not None:
        found.append(Violation("LIMIT_PRICE_NOT_ALLOWED", "limit_price is only for limit orders", "limit_price"))
    if needs_stop and stop_price is None:
        found.append(Violation("STOP_PRICE_REQUIRED", f"stop_price is required for {kind} orders", "stop_price"))
    if not needs_stop and stop_price is not None:
        found.append(Violation("STOP_PRICE_NOT_ALLOWED", "stop_price is only for stop orders", "stop_price"))
    trails = (trail_price is not None) + (trail_percent is not None)
    if kind is OrderType.TRAILING_STOP:
        if trails != 1:
            found.append(
                Violation(
                    "TRAIL_REQUIRED", "trailing_stop needs exactly one of trail_price or trail_percent", "trail_price"
                )
            )
        if _finite(trail_percent) and trail_percent >= 100:  # type: ignore[operator]
            found.append(Violation("TRAIL_PERCENT_TOO_LARGE", "trail_percent must be < 100", "trail_percent"))
    elif trails:
        found.append(
            Violation(
                "TRAIL_NOT_ALLOWED", "trail_price and trail_percent are only for trailing_stop orders", "trail_price"
            )
        )


def _market_or_limit(kind: OrderType) -> bool:
    return kind is OrderType.MARKET or kind is OrderType.LIMIT


def _time_in_force(request: OrderRequest, found: list[Violation], *, is_option: bool) -> None:
    tif, kind = request.time_in_force, request.type
    day = tif is TimeInForce.DAY
    if not day and tif is not TimeInForce.GTC:  # opg, cls, ioc, fok: market and limit orders only
        if not _market_or_limit(kind):
            found.append(
                Violation("TIME_IN_FORCE_NOT_ALLOWED", f"{tif} orders must be market or limit", "time_in_force")
            )
        if kind is OrderType.TRAILING_STOP:
            found.append(
                Violation("TIME_IN_FORCE_NOT_ALLOWED", "trailing_stop orders must be day or gtc", "time_in_force")
            )
    if request.extended_hours and (kind is not OrderType.LIMIT or not day):
        found.append(
            Violation("EXTENDED_HOURS_NOT_ALLOWED", "extended hours orders must be limit day orders", "extended_hours")
        )
    if is_option:
        if not _market_or_limit(kind) or request.order_class is not OrderClass.SIMPLE:
            found.append(Violation("OPTION_ORDER_TYPE", "option orders must be simple market or limit orders", "type"))
        if not day:
            found.append(Violation("TIME_IN_FORCE_NOT_ALLOWED", "option orders must be day orders", "time_in_force"))


def _fractional(request: OrderRequest, found: list[Violation], *, fractionable: bool, is_option: bool) -> None:
    qty = request.qty
    fractional = request.notional is not None or (qty is not None and qty.is_finite() and qty != qty.to_integral())
    if not fractional:
        return
    if is_option:
        found.append(Violation("WHOLE_CONTRACTS_ONLY", "option orders must be for whole contracts", "qty"))
        return
    if not fractionable:
        found.append(Violation("NOT_FRACTIONABLE", f"asset {request.symbol} is not fractionable", "qty"))
    if request.type is not OrderType.MARKET or request.time_in_force is not TimeInForce.DAY:
        found.append(
            Violation("FRACTIONAL_MARKET_DAY_ONLY", "fractional and notional orders must be market day orders", "type")
        )
    if request.order_class is not OrderClass.SIMPLE:
        found.append(Violation("FRACTIONAL_SIMPLE_ONLY", "fractional orders must be simple orders", "order_class"))


def _order_class(request: OrderRequest, found: list[Violation]) -> None:
    take_profit, stop_loss = request.take_profit, request.stop_loss
    order_class = request.order_class
    if order_class is OrderClass.SIMPLE:
        if take_profit or stop_loss:
            found.append(
                Violation(
                    "LEGS_NOT_ALLOWED", "take_profit and stop_loss need order_class bracket, oco or oto", "order_class"
                )
            )
        return
    if request.time_in_force not in {TimeInForce.DAY, TimeInForce.GTC}:
        found.append(
            Violation("TIME_IN_FORCE_NOT_ALLOWED", f"{order_class} orders must be day or gtc", "time_in_force")
        )
    if order_class in {OrderClass.BRACKET, OrderClass.OCO} and not (take_profit and stop_loss):
        found.append(
            Violation("LEGS_REQUIRED", f"{order_class} orders need both take_profit and stop_loss", "take_profit")
        )
    if order_class is OrderClass.OTO and bool(take_profit) == bool(stop_loss):
        found.append(
            Violation("LEGS_REQUIRED", "oto orders need exactly one of take_profit or stop_loss", "take_profit")
        )
    if order_class is OrderClass.OCO and request.type is not OrderType.LIMIT:
        found.append(Violation("ORDER_CLASS_TYPE", "oco orders must be limit orders (the take-profit leg)", "type"))
    if order_class is not OrderClass.OCO and not _market_or_limit(request.type):
        found.append(Violation("ORDER_CLASS_TYPE", f"{order_class} entry orders must be market or limit", "type"))
    if take_profit:
        _positive(take_profit.limit_price, "take_profit.limit_price", found)
    if stop_loss:
        _positive(stop_loss.stop_price, "stop_loss.stop_price", found)
        _positive(stop_loss.limit_price, "stop_loss.limit_price", found)
    if (
        take_profit
        and stop_loss
        and order_class is OrderClass.BRACKET
        and _finite(take_profit.limit_price)
        and _finite(stop_loss.stop_price)
    ):
        _bracket_prices(request, take_profit.limit_price, stop_loss.stop_price, found)


def _finite(value: Decimal | None) -> bool:
    return value is not None and value.is_finite()


def _beyond(far: Decimal, near: Decimal, *, buying: bool) -> bool:
    """`far` is strictly on the profit side of `near`: above it for a buy, below for a sell."""
    return far > near if buying else far < near


def _bracket_prices(request: OrderRequest, take_profit: Decimal, stop: Decimal, found: list[Violation]) -> None:
    buying = request.side is OrderSide.BUY
    side = "above" if buying else "below"
    if not _beyond(take_profit, stop, buying=buying):
        found.append(
            Violation(
                "BRACKET_PRICES",
                f"take_profit.limit_price must be {side} stop_loss.stop_price",
                "take_profit.limit_price",
            )
        )
    entry = request.limit_price
    if _finite(entry) and not (
        _beyond(take_profit, entry, buying=buying) and _beyond(entry, stop, buying=buying)  # type: ignore[arg-type]
    ):
        found.append(
            Violation(
                "BRACKET_PRICES",
                "the entry limit_price must lie between stop_loss.stop_price and take_profit.limit_price",
                "limit_price",
            )
        )


def decimal_places(value: Decimal) -> int:
    """Digits after the point once trailing zeros are dropped (1E+30 has none, 1.50 has 1)."""
    exponent = value.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def prices_of(request: OrderRequest) -> dict[str, Decimal | None]:
    """Every price an order carries, by field (legs dotted)."""
    return {
        "limit_price": request.limit_price,
        "stop_price": request.stop_price,
        "trail_price": request.trail_price,
        "take_profit.limit_price": request.take_profit.limit_price if request.take_profit else None,
        "stop_loss.stop_price": request.stop_loss.stop_price if request.stop_loss else None,
        "stop_loss.limit_price": request.stop_loss.limit_price if request.stop_loss else None,
    }


def tick_violations(request: OrderRequest, *, is_option: bool) -> list[Violation]:
    """Prices on the tick grid: cents at or above $1 (and for options), 1/100 cent below."""
    found = []
    for name, price in prices_of(request).items():
        if price is None or not price.is_finite() or price <= 0:
            continue
        tick = CENT if is_option or price >= 1 else SUB_PENNY
        if decimal_places(price) > decimal_places(tick):
            found.append(Violation("PRICE_TICK", f"{name} must be a multiple of {tick} at this price", name))
    return found
