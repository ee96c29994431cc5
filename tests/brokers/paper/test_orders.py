"""The paper order's snapshot: built positionally for speed, so every field is checked by name."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from server.brokers.domain import (
    AssetClass,
    Order,
    OrderClass,
    OrderRequest,
    OrderSide,
    OrderStatus,
    OrderType,
    TakeProfit,
    TimeInForce,
)
from server.brokers.paper.orders import PaperOrder, exit_legs
from tests.utils.factories import MARKET_OPEN


def test_a_snapshot_carries_every_field_under_its_own_name() -> None:
    request = OrderRequest(
        "AAPL",
        OrderSide.SELL,
        OrderType.STOP_LIMIT,
        TimeInForce.GTC,
        qty=Decimal(7),
        limit_price=Decimal("99.5"),
        stop_price=Decimal(100),
        extended_hours=True,
        client_order_id="mine-1",
        order_class=OrderClass.OTO,
        take_profit=TakeProfit(Decimal(90)),
    )
    order = PaperOrder("acct", request, AssetClass.US_EQUITY, 1, OrderStatus.PARTIALLY_FILLED, MARKET_OPEN)
    order.legs = exit_legs(order)
    order.filled_qty, order.filled_value = Decimal(2), Decimal("199.01")
    moments = [MARKET_OPEN + timedelta(seconds=n) for n in range(1, 6)]
    order.updated_at, order.filled_at, order.canceled_at, order.expired_at, order.replaced_at = moments
    order.replaced_by, order.replaces, order.reject_reason = "next-id", "previous-id", "a reason"

    snapshot = order.snapshot()

    # Built positionally, a snapshot skips Order's defaults: a field added to Order leaves
    # it one element short, which `_asdict()` alone would not show.
    assert len(snapshot) == len(Order._fields)
    assert snapshot._asdict() == {
        "id": order.id,
        "client_order_id": "mine-1",
        "symbol": "AAPL",
        "asset_class": AssetClass.US_EQUITY,
        "side": OrderSide.SELL,
        "type": OrderType.STOP_LIMIT,
        "time_in_force": TimeInForce.GTC,
        "order_class": OrderClass.OTO,
        "status": OrderStatus.PARTIALLY_FILLED,
        "qty": Decimal(7),
        "notional": None,
        "filled_qty": Decimal(2),
        "filled_avg_price": Decimal("99.5050"),
        "limit_price": Decimal("99.5"),
        "stop_price": Decimal(100),
        "trail_price": None,
        "trail_percent": None,
        "hwm": None,
        "extended_hours": True,
        "created_at": MARKET_OPEN,
        "updated_at": moments[0],
        "submitted_at": MARKET_OPEN,
        "filled_at": moments[1],
        "canceled_at": moments[2],
        "expired_at": moments[3],
        "failed_at": None,
        "replaced_at": moments[4],
        "replaced_by": "next-id",
        "replaces": "previous-id",
        "legs": (order.legs[0].snapshot(),),
        "reject_reason": "a reason",
    }
    assert snapshot.legs[0].type is OrderType.LIMIT
    assert snapshot.legs[0].status is OrderStatus.HELD


def test_a_trailing_stop_reports_its_current_stop() -> None:
    request = OrderRequest(
        "AAPL", OrderSide.SELL, OrderType.TRAILING_STOP, TimeInForce.GTC, qty=Decimal(1), trail_price=Decimal(2)
    )
    order = PaperOrder("acct", request, AssetClass.US_EQUITY, 1, OrderStatus.NEW, MARKET_OPEN, hwm=Decimal(50))
    snapshot = order.snapshot()
    assert (snapshot.stop_price, snapshot.hwm, snapshot.trail_price) == (Decimal(48), Decimal(50), Decimal(2))
    assert snapshot.legs == ()
