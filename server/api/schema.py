"""The GraphQL schema: `schema` is what the server serves and `schema.graphql` records."""

from __future__ import annotations

from decimal import Decimal

import strawberry
from graphql import GraphQLError
from strawberry.extensions import ParserCache, ValidationCache
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext

from server.api.errors import ErrorCodes, log_errors
from server.api.market.queries import MarketQuery
from server.api.scalars import DecimalScalar

PARSER_CACHE_SIZE = 512
VALIDATION_CACHE_SIZE = 512


@strawberry.type
class Query(MarketQuery):
    pass


class TradingSchema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None) -> None:
        log_errors(errors, execution_context)


schema = TradingSchema(
    query=Query,
    config=StrawberryConfig(sort_schema=True, scalar_map={Decimal: DecimalScalar}),
    extensions=[
        lambda: ParserCache(maxsize=PARSER_CACHE_SIZE),
        lambda: ValidationCache(maxsize=VALIDATION_CACHE_SIZE),
        ErrorCodes,
    ],
)
