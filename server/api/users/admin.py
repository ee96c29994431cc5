"""Admin-only operations: list users, disable or enable one, risk limits and the kill switch."""

from __future__ import annotations

import strawberry

from server.api.auth import admin_user
from server.api.context import Info
from server.api.errors import ApiError, ErrorCode, api_error_of
from server.api.trading.types import BulkOrdersPayload, Order
from server.api.users.inputs import RiskLimitsInput
from server.api.users.types import AdminUserPayload, User, UserError
from server.brokers.base import BrokerError
from server.models import User as UserRow
from server.trading.service import OrderOutcome
from server.users.admin import RiskLimits
from server.users.problems import UserProblem


def _payload(outcome: UserRow | list[UserProblem]) -> AdminUserPayload:
    if isinstance(outcome, list):
        return AdminUserPayload(user_errors=[_error(problem) for problem in outcome])
    return AdminUserPayload(user=User.from_row(outcome))


def _error(problem: UserProblem) -> UserError:
    """userId is an argument of its own; the limits are fields of `input`."""
    [error] = UserError.of([problem], prefix=() if problem.field == "userId" else ("input",))
    return error


@strawberry.type(description="The user whose kill switch changed, and the orders it canceled.")
class KillSwitchPayload:
    user: User | None = None
    canceled_orders: list[Order] = strawberry.field(default_factory=list)
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class AdminQuery:
    @strawberry.field(description="Admin only: users in username order, `first` at most (200), after a username.")
    async def users(self, info: Info, first: int = 50, after: str | None = None) -> list[User]:
        await admin_user(info)
        rows = await info.context.services.admin.list_users(first=first, after=after)
        return [User.from_row(row) for row in rows]


@strawberry.type
class AdminMutation:
    @strawberry.mutation(description="Admin only: disable a user; their sessions end and their tokens stop working.")
    async def disable_user(self, info: Info, user_id: strawberry.ID) -> AdminUserPayload:
        await admin_user(info)
        return _payload(await info.context.services.admin.set_active(str(user_id), False, info.context.actor))

    @strawberry.mutation(description="Admin only: let a disabled user sign in again.")
    async def enable_user(self, info: Info, user_id: strawberry.ID) -> AdminUserPayload:
        await admin_user(info)
        return _payload(await info.context.services.admin.set_active(str(user_id), True, info.context.actor))

    @strawberry.mutation(description="Admin only: set a user's risk limits (null keeps the server default).")
    async def set_risk_limits(self, info: Info, user_id: strawberry.ID, input: RiskLimitsInput) -> AdminUserPayload:
        await admin_user(info)
        limits = RiskLimits(input.max_order_notional, input.max_position_notional, input.price_band_percent)
        return _payload(await info.context.services.admin.set_risk_limits(str(user_id), limits, info.context.actor))

    @strawberry.mutation(
        description="Admin only: engage or release a user's kill switch (no new orders while on; closing "
        "positions stays allowed). With cancelOpenOrders, every open order of the user is canceled too."
    )
    async def set_kill_switch(
        self, info: Info, user_id: strawberry.ID, engaged: bool, cancel_open_orders: bool = False
    ) -> KillSwitchPayload:
        await admin_user(info)
        services = info.context.services
        outcome = await services.admin.set_kill_switch(str(user_id), engaged, info.context.actor)
        payload = _payload(outcome)
        canceled: list[OrderOutcome] = []
        if engaged and cancel_open_orders and not isinstance(outcome, list):
            for connection in await services.connections.of_user(outcome.id):
                try:
                    canceled += await services.trading.cancel_all(outcome, connection)
                except BrokerError as error:  # one broker failing must not stop the rest of an emergency stop
                    canceled.append(OrderOutcome(None, [_connection_problem(connection.id, error)]))
        bulk = BulkOrdersPayload.of(canceled)
        return KillSwitchPayload(
            user=payload.user, canceled_orders=bulk.orders, user_errors=payload.user_errors + bulk.user_errors
        )


def _connection_problem(connection_id: str, error: BrokerError) -> UserProblem:
    coded = api_error_of(error) or ApiError(ErrorCode.BROKER_UNAVAILABLE, "The broker is unavailable.")
    return UserProblem(coded.code.value, f"Connection {connection_id}: {coded.message}", "connectionId")
