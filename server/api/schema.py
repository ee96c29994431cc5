"""The GraphQL schema: `schema` is what `schema.graphql` records; apps build theirs with their limits."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext, ExecutionResult
from strawberry.types.graphql import OperationType

from server.api.errors import ErrorCodes, log_errors
from server.api.extensions import QueryLimits, extensions
from server.api.market.queries import MarketQuery
from server.api.scalars import DecimalScalar
from server.api.streams.execution import SubscriptionExecutor
from server.api.streams.subscriptions import Subscription
from server.api.trading.connection_test import ConnectionTestQuery
from server.api.trading.mutations import TradingMutation
from server.api.trading.queries import TradingQuery
from server.api.users.admin import AdminMutation, AdminQuery
from server.api.users.mutations import AccountMutation
from server.api.users.queries import AccountQuery


@strawberry.type
class Query(MarketQuery, TradingQuery, ConnectionTestQuery, AccountQuery, AdminQuery):
    pass


@strawberry.type
class Mutation(TradingMutation, AccountMutation, AdminMutation):
    pass


class TradingSchema(strawberry.Schema):
    async def execute(self, *args: Any, **kwargs: Any) -> ExecutionResult:
        # Plain execution answers with one result, which a subscription cannot be; the
        # streaming transports (WebSocket, multipart) call `stream`/`subscribe` instead.
        allowed = kwargs.get("allowed_operation_types")
        if allowed is not None:
            kwargs["allowed_operation_types"] = set(allowed) - {OperationType.SUBSCRIPTION}
        return await super().execute(*args, **kwargs)

    def process_errors(self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None) -> None:
        log_errors(errors, execution_context)


def build_schema(limits: QueryLimits | None = None) -> TradingSchema:
    # Not StrawberryConfig(sort_schema=True): sorting rebuilds the enum types as plain
    # graphql-core ones, which cannot serialise Python enum values ("Enum 'Role' cannot
    # represent value"). schema.graphql is in definition order, as `strawberry export-schema` prints it.
    return TradingSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        execution_context_class=SubscriptionExecutor,  # type: ignore[arg-type]
        config=StrawberryConfig(scalar_map={Decimal: DecimalScalar}),
        extensions=[*extensions(limits or QueryLimits()), ErrorCodes],
    )


schema = build_schema()
