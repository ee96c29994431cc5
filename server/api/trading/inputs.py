"""Inputs of order entry, turned into the broker seam's requests."""

from __future__ import annotations

from decimal import Decimal

import strawberry

from server.api.trading.types import OrderClass, OrderSide, OrderType, TimeInForce
from server.brokers import domain


@strawberry.input(description="The exit at a profit of a bracket, OCO or OTO order.")
class TakeProfitInput:
    limit_price: Decimal


@strawberry.input(
    description="The protective exit of a bracket, OCO or OTO order; a stop-limit when limitPrice is set."
)
class StopLossInput:
    stop_price: Decimal
    limit_price: Decimal | None = None


@strawberry.input
class PlaceOrderInput:
    symbol: str = strawberry.field(description="A stock ticker (AAPL) or an OCC option symbol (AAPL261218C00200000).")
    side: OrderSide  # type: ignore[valid-type]
    type: OrderType = domain.OrderType.MARKET  # type: ignore[valid-type]
    qty: Decimal | None = None
    notional: Decimal | None = strawberry.field(default=None, description="Dollars to trade (market day orders).")
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    trail_price: Decimal | None = None
    trail_percent: Decimal | None = None
    time_in_force: TimeInForce = domain.TimeInForce.DAY  # type: ignore[valid-type]
    extended_hours: bool = False
    client_order_id: str | None = strawberry.field(
        default=None,
        description="Your id for the order, unique per user: sending it again returns the first order. "
        "Generated when absent.",
    )
    order_class: OrderClass = domain.OrderClass.SIMPLE  # type: ignore[valid-type]
    take_profit: TakeProfitInput | None = None
    stop_loss: StopLossInput | None = None
    connection_id: strawberry.ID | None = strawberry.field(
        default=None, description="The broker connection to trade through; default: your default connection."
    )

    def to_request(self) -> domain.OrderRequest:
        return domain.OrderRequest(
            symbol=self.symbol,
            side=self.side,
            type=self.type,
            time_in_force=self.time_in_force,
            qty=self.qty,
            notional=self.notional,
            limit_price=self.limit_price,
            stop_price=self.stop_price,
            trail_price=self.trail_price,
            trail_percent=self.trail_percent,
            extended_hours=self.extended_hours,
            client_order_id=self.client_order_id,
            order_class=self.order_class,
            take_profit=domain.TakeProfit(self.take_profit.limit_price) if self.take_profit else None,
            stop_loss=domain.StopLoss(self.stop_loss.stop_price, self.stop_loss.limit_price)
            if self.stop_loss
            else None,
        )


@strawberry.input(description="What to change; fields left out keep their value. A new order replaces the old one.")
class ReplaceOrderInput:
    qty: Decimal | None = None
    time_in_force: TimeInForce | None = None  # type: ignore[valid-type]
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    trail: Decimal | None = strawberry.field(default=None, description="The new trail price or percent.")
    client_order_id: str | None = None

    def to_request(self) -> domain.ReplaceRequest:
        return domain.ReplaceRequest(
            qty=self.qty,
            time_in_force=self.time_in_force,
            limit_price=self.limit_price,
            stop_price=self.stop_price,
            trail=self.trail,
            client_order_id=self.client_order_id,
        )
