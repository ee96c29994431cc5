"""When and at what price a paper order trades against the simulated quote.

Buys take the ask and sells hit the bid, never more than the displayed size per step, so
an order larger than the displayed size fills in parts over successive quotes. A limit
order trades at the quote when the quote is at or better than its limit (price
improvement goes to the customer). Stops trigger on the side they would trade on;
trailing stops follow the best price seen since they were placed.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

from server.brokers.domain import OrderSide, OrderType, Quote
from server.brokers.paper.orders import PaperOrder
from server.decimals import QTY_PLACES

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Fill:
    qty: Decimal
    price: Decimal


def _trading_price(order: PaperOrder, quote: Quote) -> tuple[Decimal, Decimal]:
    """(price, displayed size) on the side the order would trade."""
    if order.side is OrderSide.BUY:
        return quote.ask_price, quote.ask_size
    return quote.bid_price, quote.bid_size


def update_triggers(order: PaperOrder, quote: Quote) -> None:
    """Move a trailing order's water mark and fire stops whose price has been reached."""
    price, _ = _trading_price(order, quote)
    if order.type is OrderType.TRAILING_STOP:
        if order.hwm is None:
            order.hwm = price
        elif order.side is OrderSide.SELL:
            order.hwm = max(order.hwm, price)
        else:
            order.hwm = min(order.hwm, price)
        stop = order.trail_stop()
        assert stop is not None
        reached = price <= stop if order.side is OrderSide.SELL else price >= stop
    elif order.type in {OrderType.STOP, OrderType.STOP_LIMIT}:
        assert order.stop_price is not None
        reached = price >= order.stop_price if order.side is OrderSide.BUY else price <= order.stop_price
    else:
        return
    order.triggered = order.triggered or reached


def marketable_price(order: PaperOrder, quote: Quote) -> Decimal | None:
    """The price the order would trade at now, or None when it must wait."""
    price, _ = _trading_price(order, quote)
    if order.type in {OrderType.STOP, OrderType.STOP_LIMIT, OrderType.TRAILING_STOP} and not order.triggered:
        return None
    if order.type in {OrderType.LIMIT, OrderType.STOP_LIMIT}:
        assert order.limit_price is not None
        acceptable = price <= order.limit_price if order.side is OrderSide.BUY else price >= order.limit_price
        if not acceptable:
            return None
    return price


def match(order: PaperOrder, quote: Quote) -> Fill | None:
    """The fill this order gets from this quote, if any (does not change the order's fills)."""
    update_triggers(order, quote)
    price = marketable_price(order, quote)
    if price is None:
        return None
    if order.qty is None:  # a notional order buys (or sells) its dollar amount in one fill
        notional = order.request.notional
        assert notional is not None
        qty = (notional / price).quantize(QTY_PLACES, rounding=ROUND_DOWN)
        return Fill(qty, price) if qty > 0 else None
    remaining = order.remaining
    assert remaining is not None
    _, displayed = _trading_price(order, quote)
    qty = min(remaining, displayed)
    return Fill(qty, price) if qty > 0 else None


def fully_fillable(order: PaperOrder, quote: Quote) -> bool:
    """For fill-or-kill: could the whole order trade against this one quote?"""
    fill = match(order, quote)
    return fill is not None and (order.qty is None or fill.qty == order.remaining)
