"""Order entry and order management. Expected refusals are userErrors; nothing that fails
validation reaches the broker. Order entry has its own per-user rate limit."""

from __future__ import annotations

from decimal import Decimal

import strawberry

from server.api.auth import signed_in_claims, signed_in_user
from server.api.context import Info
from server.api.trading.inputs import PlaceOrderInput, ReplaceOrderInput
from server.api.trading.types import (
    BulkOrdersPayload,
    CancelOrderPayload,
    Order,
    PlaceOrderPayload,
    SyncOrdersPayload,
)
from server.api.users.types import UserError
from server.models import BrokerConnection, User


async def _order_entry(info: Info) -> User:
    user = await signed_in_user(info)
    await info.context.services.limits.orders.hit(user.id)
    return user


async def _connection(info: Info, user: User, connection_id: strawberry.ID | None) -> BrokerConnection:
    return await info.context.services.trading.connection(user.id, str(connection_id) if connection_id else None)


@strawberry.type
class TradingMutation:
    @strawberry.mutation(
        description="Place an order. Checked first (userErrors, nothing sent), then recorded, then sent. "
        "The same clientOrderId returns the first order."
    )
    async def place_order(self, info: Info, input: PlaceOrderInput) -> PlaceOrderPayload:
        async with info.context.loaders.quotes.producing():
            # The user is read with the rest of what placing reads (one statement), not by the loader.
            claims = signed_in_claims(info)
            limits = info.context.services.limits
            connection_id = str(input.connection_id) if input.connection_id else None
            outcome = await info.context.services.trading.place(
                claims.user_id, connection_id, input.to_request(), admit=lambda user: limits.orders.hit(user.id)
            )
            return PlaceOrderPayload.of(outcome)

    @strawberry.mutation(description="Ask the broker to cancel an order.")
    async def cancel_order(self, info: Info, id: strawberry.ID) -> CancelOrderPayload:
        async with info.context.loaders.quotes.producing():
            user = await signed_in_user(info)
            outcome = await info.context.services.trading.cancel(user, str(id))
            order = Order.from_row(outcome.order) if outcome.order is not None else None
            return CancelOrderPayload(order=order, user_errors=UserError.of(outcome.problems, prefix=()))

    @strawberry.mutation(description="Cancel every open order of a broker connection.")
    async def cancel_all_orders(self, info: Info, connection_id: strawberry.ID | None = None) -> BulkOrdersPayload:
        async with info.context.loaders.quotes.producing():
            user = await signed_in_user(info)
            connection = await _connection(info, user, connection_id)
            return BulkOrdersPayload.of(await info.context.services.trading.cancel_all(user, connection))

    @strawberry.mutation(description="Replace an open order with a changed copy (the old one ends as replaced).")
    async def replace_order(self, info: Info, id: strawberry.ID, input: ReplaceOrderInput) -> PlaceOrderPayload:
        async with info.context.loaders.quotes.producing():
            user = await _order_entry(info)
            outcome = await info.context.services.trading.replace(user, str(id), input.to_request())
            return PlaceOrderPayload.of(outcome)

    @strawberry.mutation(
        description="Close all or part of a position with a market order (allowed under the kill switch)."
    )
    async def close_position(
        self,
        info: Info,
        symbol: str,
        qty: Decimal | None = None,
        percentage: Decimal | None = None,
        client_order_id: str | None = None,
        connection_id: strawberry.ID | None = None,
    ) -> PlaceOrderPayload:
        async with info.context.loaders.quotes.producing():
            user = await _order_entry(info)
            connection = await _connection(info, user, connection_id)
            outcome = await info.context.services.trading.close_position(
                user, connection, symbol, qty=qty, percentage=percentage, client_order_id=client_order_id
            )
            return PlaceOrderPayload.of(outcome, prefix=())

    @strawberry.mutation(
        description="Close every position of a broker connection; optionally cancel open orders first."
    )
    async def close_all_positions(
        self, info: Info, cancel_orders: bool = False, connection_id: strawberry.ID | None = None
    ) -> BulkOrdersPayload:
        async with info.context.loaders.quotes.producing():
            user = await _order_entry(info)
            connection = await _connection(info, user, connection_id)
            trading = info.context.services.trading
            canceled = await trading.cancel_all(user, connection) if cancel_orders else []
            return BulkOrdersPayload.of(canceled + await trading.close_all_positions(user, connection))

    @strawberry.mutation(description="Pull every open order's state from the brokers into the ledger.")
    async def sync_orders(self, info: Info) -> SyncOrdersPayload:
        user = await signed_in_user(info)
        report = await info.context.services.trading.sync(user.id)
        return SyncOrdersPayload(checked=report.checked, updated=report.updated)
