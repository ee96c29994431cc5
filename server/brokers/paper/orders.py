"""Paper orders: the mutable order the engine works, and the checks an order must pass."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal

from server.brokers.base import OrderRejectedError
from server.brokers.domain import (
    CLOSED_STATUSES,
    AssetClass,
    Order,
    OrderClass,
    OrderRequest,
    OrderSide,
    OrderStatus,
    OrderType,
    TimeInForce,
)
from server.brokers.order_rules import first_violation
from server.brokers.paper.ids import new_id

ZERO = Decimal(0)
AVG_PRICE_PLACES = Decimal("0.0001")


@dataclass(slots=True)
class PaperOrder:
    account_id: str
    request: OrderRequest
    asset_class: AssetClass
    multiplier: int
    status: OrderStatus
    created_at: datetime
    id: str = field(default_factory=new_id)
    client_order_id: str = ""
    qty: Decimal | None = None
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    filled_qty: Decimal = ZERO
    filled_value: Decimal = ZERO
    hwm: Decimal | None = None
    triggered: bool = False
    expires_at: datetime | None = None
    updated_at: datetime | None = None
    filled_at: datetime | None = None
    canceled_at: datetime | None = None
    expired_at: datetime | None = None
    replaced_at: datetime | None = None
    replaced_by: str | None = None
    replaces: str | None = None
    parent_id: str | None = None
    legs: tuple[PaperOrder, ...] = ()  # a tuple: most orders have none, and share the one empty tuple
    reject_reason: str | None = None
    reserved: Decimal = ZERO  # buying power this order still holds
    seq: int = 0  # arrival order, set by the book
    filed: int = 0  # how many times the resting index has filed it (see resting.py)
    indexed: bool = False  # counted in the resting index (an order is indexed only once its arrival is worked)
    # The request's fields the engine reads on every order, copied once: plain slots, not properties.
    symbol: str = field(init=False)
    side: OrderSide = field(init=False)
    type: OrderType = field(init=False)
    time_in_force: TimeInForce = field(init=False)

    def __post_init__(self) -> None:
        request = self.request
        self.symbol, self.side, self.type, self.time_in_force = (
            request.symbol,
            request.side,
            request.type,
            request.time_in_force,
        )
        self.client_order_id = self.client_order_id or request.client_order_id or new_id()
        self.qty = self.qty if self.qty is not None else request.qty
        self.limit_price = self.limit_price if self.limit_price is not None else request.limit_price
        self.stop_price = self.stop_price if self.stop_price is not None else request.stop_price
        self.updated_at = self.updated_at or self.created_at

    @property
    def is_open(self) -> bool:
        return self.status not in CLOSED_STATUSES

    @property
    def remaining(self) -> Decimal | None:
        return None if self.qty is None else self.qty - self.filled_qty

    @property
    def filled_avg_price(self) -> Decimal | None:
        if not self.filled_qty:
            return None
        return (self.filled_value / self.filled_qty).quantize(AVG_PRICE_PLACES)

    def trail_stop(self) -> Decimal | None:
        """The current stop of a trailing order, from its high (sell) or low (buy) water mark."""
        if self.hwm is None:
            return None
        request = self.request
        if request.trail_price is not None:
            offset = request.trail_price
        else:
            offset = self.hwm * (request.trail_percent or ZERO) / 100
        stop = self.hwm - offset if self.side is OrderSide.SELL else self.hwm + offset
        return stop.quantize(Decimal("0.01"))

    def snapshot(self) -> Order:
        request = self.request
        kind = request.type
        created_at = self.created_at
        # Positional, in Order's field order: a snapshot is built for every trade update,
        # and building the tuple directly costs a third of passing 31 keywords.
        return _new_order(
            Order,
            (
                self.id,
                self.client_order_id,
                request.symbol,
                self.asset_class,
                request.side,
                kind,
                request.time_in_force,
                request.order_class,
                self.status,
                self.qty,
                request.notional,
                self.filled_qty,
                self.filled_avg_price,
                self.limit_price,
                self.trail_stop() if kind is OrderType.TRAILING_STOP else self.stop_price,
                request.trail_price,
                request.trail_percent,
                self.hwm,
                request.extended_hours,
                created_at,
                self.updated_at or created_at,
                created_at,
                self.filled_at,
                self.canceled_at,
                self.expired_at,
                None,
                self.replaced_at,
                self.replaced_by,
                self.replaces,
                tuple([leg.snapshot() for leg in self.legs]) if self.legs else (),
                self.reject_reason,
            ),
        )


_new_order = tuple.__new__


def _reject(message: str, field: str | None = None) -> OrderRejectedError:
    return OrderRejectedError(message, field=field)


def validate_request(request: OrderRequest, *, fractionable: bool, is_option: bool) -> None:
    """Alpaca's rules for a new order; raises OrderRejectedError (422) naming the first broken one."""
    if request.time_in_force in {TimeInForce.OPG, TimeInForce.CLS}:
        raise _reject(f"time_in_force {request.time_in_force} is not supported by the paper exchange", "time_in_force")
    violation = first_violation(request, fractionable=fractionable, is_option=is_option)
    if violation is not None:
        raise _reject(violation.message, violation.field)


def exit_request(parent: OrderRequest, *, take_profit: bool) -> OrderRequest:
    """The exit leg of a bracket, OCO or OTO order: the other side, same quantity."""
    exit_side = OrderSide.SELL if parent.side is OrderSide.BUY else OrderSide.BUY
    if parent.order_class is OrderClass.OCO:
        exit_side = parent.side
    if take_profit:
        assert parent.take_profit is not None
        return replace(
            parent,
            side=exit_side,
            type=OrderType.LIMIT,
            limit_price=parent.take_profit.limit_price,
            stop_price=None,
            client_order_id=None,
            take_profit=None,
            stop_loss=None,
        )
    assert parent.stop_loss is not None
    stop_limit = parent.stop_loss.limit_price
    return replace(
        parent,
        side=exit_side,
        type=OrderType.STOP_LIMIT if stop_limit is not None else OrderType.STOP,
        stop_price=parent.stop_loss.stop_price,
        limit_price=stop_limit,
        client_order_id=None,
        take_profit=None,
        stop_loss=None,
    )


def exit_legs(parent: PaperOrder) -> tuple[PaperOrder, ...]:
    """The exit legs an order class brings: OCO's stop leg works at once; bracket and OTO
    legs are held until the entry has filled."""
    request = parent.request
    if request.order_class is OrderClass.SIMPLE:
        return ()
    if request.order_class is OrderClass.OCO:
        wanted = [(False, OrderStatus.NEW)]
    else:  # bracket and oto
        wanted = [
            (take_profit, OrderStatus.HELD)
            for take_profit in (True, False)
            if (request.take_profit if take_profit else request.stop_loss) is not None
        ]
    return tuple(
        PaperOrder(
            parent.account_id,
            exit_request(request, take_profit=take_profit),
            parent.asset_class,
            parent.multiplier,
            status,
            parent.created_at,
            parent_id=parent.id,
            expires_at=parent.expires_at,
        )
        for take_profit, status in wanted
    )
