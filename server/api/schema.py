"""The GraphQL schema: `schema` is what `schema.graphql` records; apps build theirs with their limits."""

from __future__ import annotations

from decimal import Decimal

import strawberry
from graphql import GraphQLError
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext

from server.api.errors import ErrorCodes, log_errors
from server.api.extensions import QueryLimits, extensions
from server.api.market.queries import MarketQuery
from server.api.scalars import DecimalScalar


@strawberry.type
class Query(MarketQuery):
    pass


class TradingSchema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None) -> None:
        log_errors(errors, execution_context)


def build_schema(limits: QueryLimits | None = None) -> TradingSchema:
    return TradingSchema(
        query=Query,
        config=StrawberryConfig(sort_schema=True, scalar_map={Decimal: DecimalScalar}),
        extensions=[*extensions(limits or QueryLimits()), ErrorCodes],
    )


schema = build_schema()
