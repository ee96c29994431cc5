"""The paper exchange's own pre-trade checks, answered with Alpaca's reasons.

An order that adds exposure needs buying power for its estimated cost (limit price, or
the price it would trade at now); open orders hold buying power until they finish. An
order that reduces a position may not reduce it past zero (Alpaca does not flip a
position in one order), and short sales need a shortable, easy-to-borrow asset.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from decimal import Decimal

from server.brokers.base import InsufficientBuyingPowerError, InsufficientQtyError, OrderRejectedError
from server.brokers.domain import OrderRequest, OrderSide, OrderStatus, Quote
from server.brokers.paper.accounts import PaperAccount
from server.brokers.paper.instruments import Instrument
from server.brokers.paper.orders import PaperOrder

ZERO = Decimal(0)
QuoteOf = Callable[[str], Quote]
PriceOf = Callable[[str], Decimal]


def exposure(request: OrderRequest, qty: Decimal | None, held: Decimal, quote: Quote, multiplier: int) -> Decimal:
    """The dollars of new exposure an order (or its unfilled rest) would add."""
    if request.notional is not None and qty is None:
        return request.notional
    assert qty is not None
    closing = held > 0 if request.side is OrderSide.SELL else held < 0
    if closing:
        qty = max(ZERO, qty - abs(held))
    market = quote.ask_price if request.side is OrderSide.BUY else quote.bid_price
    price = request.limit_price if request.limit_price is not None else max(market, request.stop_price or ZERO)
    return qty * price * multiplier


def reserved(account: PaperAccount, open_orders: Iterable[PaperOrder], quote_of: QuoteOf) -> Decimal:
    """Buying power held by the account's open orders (exit legs add no exposure)."""
    return sum(
        (
            exposure(o.request, o.remaining, account.position_qty(o.symbol), quote_of(o.symbol), o.multiplier)
            for o in open_orders
            if o.status is not OrderStatus.HELD and not o.parent_id
        ),
        ZERO,
    )


def check_order(
    account: PaperAccount,
    request: OrderRequest,
    instrument: Instrument,
    open_orders: list[PaperOrder],
    quote_of: QuoteOf,
    price_of: PriceOf,
) -> None:
    held = account.position_qty(request.symbol)
    committed = sum(
        (
            o.remaining or ZERO
            for o in open_orders
            if o.symbol == request.symbol and o.side is request.side and not o.parent_id
        ),
        ZERO,
    )
    qty = request.qty if request.qty is not None else ZERO
    reducing = held > 0 if request.side is OrderSide.SELL else held < 0
    if reducing and qty + committed > abs(held):
        raise InsufficientQtyError(qty, max(ZERO, abs(held) - committed))
    if request.side is OrderSide.SELL and held <= 0:
        if instrument.contract is not None:
            raise OrderRejectedError("uncovered option contracts are not allowed", code=40310000, status=403)
        if not instrument.shortable:
            raise OrderRejectedError(f"asset {request.symbol} cannot be sold short", code=42210000, status=422)
        if request.notional is not None or qty != qty.to_integral():
            raise OrderRejectedError("fractional orders cannot be sold short", code=42210000, status=422)
    cost = exposure(request, request.qty, held, quote_of(request.symbol), instrument.multiplier)
    if cost > account.buying_power(price_of, reserved(account, open_orders, quote_of)):
        raise InsufficientBuyingPowerError()
