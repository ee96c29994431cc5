"""Pure helpers of order entry: what a refusal means, what an order becomes when
replaced, how much a close sells, whether a retry is the same order."""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal

from server.brokers.base import OrderRejectedError
from server.brokers.domain import AssetClass, OrderRequest, OrderSide, OrderType, ReplaceRequest, TimeInForce
from server.decimals import QTY_PLACES
from server.models import Order as OrderRow
from server.users.problems import UserProblem

BUYING_POWER_CODE = 40310000


def broker_refusal(error: OrderRejectedError) -> UserProblem:
    code = "INSUFFICIENT_BUYING_POWER" if error.code == BUYING_POWER_CODE else "BROKER_REJECTED"
    return UserProblem(code, error.message)


def same_order(row: OrderRow, request: OrderRequest) -> bool:
    return (row.symbol, row.side, row.order_type, row.time_in_force, row.qty, row.notional, row.limit_price) == (
        request.symbol,
        request.side.value,
        request.type.value,
        request.time_in_force.value,
        request.qty,
        request.notional,
        request.limit_price,
    ) and (row.stop_price, row.order_class) == (request.stop_price, request.order_class.value)


def replaced_request(row: OrderRow, change: ReplaceRequest) -> OrderRequest:
    """The order as it would stand after `change`."""
    trail_price, trail_percent = row.trail_price, row.trail_percent
    if change.trail is not None:
        if trail_price is not None:
            trail_price = change.trail
        else:
            trail_percent = change.trail
    return OrderRequest(
        symbol=row.symbol,
        side=OrderSide(row.side),
        type=OrderType(row.order_type),
        time_in_force=change.time_in_force or TimeInForce(row.time_in_force),
        qty=change.qty if change.qty is not None else row.qty,
        notional=row.notional if change.qty is None else None,
        limit_price=change.limit_price if change.limit_price is not None else row.limit_price,
        stop_price=change.stop_price if change.stop_price is not None else row.stop_price,
        trail_price=trail_price,
        trail_percent=trail_percent,
        extended_hours=row.extended_hours,
        client_order_id=change.client_order_id,
    )


def closing_qty(
    held: Decimal, asset_class: AssetClass, *, qty: Decimal | None, percentage: Decimal | None
) -> tuple[Decimal, list[UserProblem]]:
    if qty is not None and percentage is not None:
        return held, [UserProblem("QTY_OR_PERCENTAGE", "Give qty or percentage, not both.", "qty")]
    if percentage is not None:
        if not 0 < percentage <= 100:
            message = "percentage must be above 0 and at most 100."
            return held, [UserProblem("INVALID_PERCENTAGE", message, "percentage")]
        amount = (held * percentage / 100).quantize(QTY_PLACES, rounding=ROUND_DOWN)
        if asset_class is AssetClass.US_OPTION:
            amount = amount.to_integral_value(rounding=ROUND_DOWN)
        if amount <= 0:
            return held, [UserProblem("INVALID_PERCENTAGE", "That percentage closes less than one unit.", "percentage")]
        return amount.normalize(), []
    if qty is not None:
        if not 0 < qty <= held:
            return held, [UserProblem("INVALID_QTY", f"qty must be above 0 and at most the {held} held.", "qty")]
        return qty, []
    return held, []
