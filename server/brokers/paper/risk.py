"""The paper exchange's own pre-trade checks, answered with Alpaca's reasons.

An order that adds exposure needs buying power for its estimated cost (limit price, or
the price it would trade at now); it holds that much from acceptance until it fills or
closes, as a broker reserves buying power at order entry. An
order that reduces a position may not reduce it past zero (Alpaca does not flip a
position in one order), and short sales need a shortable, easy-to-borrow asset.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from server.brokers.base import InsufficientBuyingPowerError, InsufficientQtyError, OrderRejectedError
from server.brokers.domain import OrderRequest, OrderSide, Quote
from server.brokers.paper.accounts import PaperAccount
from server.brokers.paper.book import OrderBook
from server.brokers.paper.instruments import Instrument
from server.brokers.paper.orders import PaperOrder

ZERO = Decimal(0)
QuoteOf = Callable[[str], Quote]
BuyingPowerOf = Callable[[PaperAccount], Decimal]


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


def check_order(
    account: PaperAccount,
    request: OrderRequest,
    instrument: Instrument,
    book: OrderBook,
    quote_of: QuoteOf,
    buying_power_of: BuyingPowerOf,
    *,
    replacing: PaperOrder | None = None,
) -> Decimal:
    """Raise Alpaca's rejection, or return the buying power the order will hold.

    `replacing` is the open order this one replaces: what it commits and holds is
    counted as free, since it goes when this one is accepted."""
    held = account.position_qty(request.symbol)
    committed = book.committed(account.id, request.symbol, request.side)
    freed = ZERO
    if replacing is not None:
        committed -= replacing.remaining or ZERO
        freed = replacing.reserved
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
    if cost > buying_power_of(account) + freed:
        raise InsufficientBuyingPowerError()
    return cost
