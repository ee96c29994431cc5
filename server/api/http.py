"""The Strawberry ASGI app, building our Context for every operation."""

from __future__ import annotations

import json
from decimal import Decimal

from cross_web import HTTPException  # what Strawberry's views raise for HTTP errors
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLHTTPResponse
from strawberry.types import ExecutionResult

from server.api.context import Context
from server.api.errors import to_client_error
from server.api.extensions import QueryLimits
from server.api.schema import build_schema
from server.services import Services
from server.settings import Settings


class TradingGraphQL(GraphQL[Context, None]):
    async def get_context(self, request: Request | WebSocket, response: Response | WebSocket) -> Context:
        services: Services = request.app.state.services
        return Context(
            request=request,
            response=response if isinstance(response, Response) else None,
            services=services,
        )

    def decode_json(self, data: str | bytes) -> object:
        # JSON numbers become exact Decimals, never floats (Decimal arguments stay exact).
        return json.loads(data, parse_float=Decimal)

    def parse_json(self, data: str | bytes) -> object:
        try:
            parsed = self.decode_json(data)
        except (ValueError, RecursionError) as error:  # bad JSON, bad UTF-8, absurd nesting
            raise HTTPException(400, "Unable to parse request body as JSON") from error
        if not isinstance(parsed, dict | list):
            raise HTTPException(400, "The request body must be a JSON object")
        return parsed

    async def process_result(self, request: Request, result: ExecutionResult) -> GraphQLHTTPResponse:
        # Errors raised before the operation hooks run (a syntax error found by ParserCache)
        # skip the ErrorCodes extension; coding them here is idempotent for the rest.
        if result.errors:
            result.errors = [to_client_error(error) for error in result.errors]
        return await super().process_result(request, result)


def graphql_app(settings: Settings) -> TradingGraphQL:
    limits = QueryLimits(
        max_depth=settings.max_query_depth, max_aliases=settings.max_aliases, max_tokens=settings.max_tokens
    )
    return TradingGraphQL(build_schema(limits), graphql_ide="graphiql", allow_queries_via_get=True)
