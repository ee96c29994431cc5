"""When and at what price a paper order trades against the simulated quote.

Buys take the ask and sells hit the bid, never more than the displayed size per step, so
an order larger than the displayed size fills in parts over successive quotes. A limit
order trades at the quote when the quote is at or better than its limit (price
improvement goes to the customer). Stops trigger on the side they would trade on;
trailing stops follow the best price seen since they were placed.

Every submission passes through `match`, so it tests order types by identity and
returns a plain named tuple: both cost a fraction of set lookups and a frozen dataclass.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal
from typing import NamedTuple

from server.brokers.domain import OrderSide, OrderType, Quote
from server.brokers.paper.orders import PaperOrder
from server.decimals import QTY_PLACES

ZERO = Decimal(0)
_MARKET, _LIMIT = OrderType.MARKET, OrderType.LIMIT
_STOP, _STOP_LIMIT, _TRAILING_STOP = OrderType.STOP, OrderType.STOP_LIMIT, OrderType.TRAILING_STOP
_BUY, _SELL = OrderSide.BUY, OrderSide.SELL


class Fill(NamedTuple):
    qty: Decimal
    price: Decimal


def update_triggers(order: PaperOrder, price: Decimal) -> None:
    """Move a trailing order's water mark and fire stops whose `price` (the price on the
    side the order trades) has been reached."""
    kind = order.type
    if kind is _TRAILING_STOP:
        if order.hwm is None:
            order.hwm = price
        elif order.side is _SELL:
            order.hwm = max(order.hwm, price)
        else:
            order.hwm = min(order.hwm, price)
        stop = order.trail_stop()
        assert stop is not None
        reached = price <= stop if order.side is _SELL else price >= stop
    elif kind is _STOP or kind is _STOP_LIMIT:
        assert order.stop_price is not None
        reached = price >= order.stop_price if order.side is _BUY else price <= order.stop_price
    else:
        return
    order.triggered = order.triggered or reached


def match(order: PaperOrder, quote: Quote) -> Fill | None:
    """The fill this order gets from this quote, if any (does not change the order's fills)."""
    if order.side is _BUY:
        price, displayed = quote.ask_price, quote.ask_size
    else:
        price, displayed = quote.bid_price, quote.bid_size
    kind = order.type
    if kind is not _MARKET:
        if kind is not _LIMIT:
            update_triggers(order, price)
            if not order.triggered:
                return None
        if kind is _LIMIT or kind is _STOP_LIMIT:
            limit = order.limit_price
            assert limit is not None
            if (price > limit) if order.side is _BUY else (price < limit):
                return None
    qty = order.qty
    if qty is None:  # a notional order buys (or sells) its dollar amount in one fill
        notional = order.request.notional
        assert notional is not None
        qty = (notional / price).quantize(QTY_PLACES, rounding=ROUND_DOWN)
    else:
        qty -= order.filled_qty
        if displayed < qty:
            qty = displayed
    return Fill(qty, price) if qty > 0 else None


def fully_fillable(order: PaperOrder, quote: Quote) -> bool:
    """For fill-or-kill: could the whole order trade against this one quote?"""
    fill = match(order, quote)
    return fill is not None and (order.qty is None or fill.qty == order.remaining)
