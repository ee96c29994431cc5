"""The Strawberry ASGI app, building our Context for every operation."""

from __future__ import annotations

import json
from decimal import Decimal

from cross_web import HTTPException  # what Strawberry's views raise for HTTP errors
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLHTTPResponse
from strawberry.subscriptions import (
    GRAPHQL_TRANSPORT_WS_PROTOCOL,
    GRAPHQL_WS_PROTOCOL,
    MULTIPART_SUBSCRIPTION_PROTOCOL,
)
from strawberry.types import ExecutionResult

from server.api import answers
from server.api.context import Context
from server.api.errors import ErrorCode, to_client_error
from server.api.extensions import QueryLimits
from server.api.graphiql import graphiql_page
from server.api.identity import authenticate, client_ip
from server.api.origins import origin_allowed
from server.api.schema import build_schema
from server.api.streams.encoding import encode_message
from server.api.ws_handlers import LegacyWSHandler, SetupSlots, TransportWSHandler
from server.services import Services
from server.settings import Settings


class TradingGraphQL(GraphQL[Context, None]):
    graphql_transport_ws_handler_class = TransportWSHandler
    graphql_ws_handler_class = LegacyWSHandler

    def __init__(self, *args: object, allowed_origins: list[str], max_tokens: int, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.allowed_origins = allowed_origins
        self.max_tokens = max_tokens  # also the most a subscription's query may be parsed to before it is set up
        self.answers = answers.AnswerCache()
        self.setup_slots = SetupSlots()  # shared by every WebSocket connection's subscriptions

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Browsers let any page open a WebSocket anywhere (no CORS): refuse other origins
        # before the handshake completes (the client sees HTTP 403).
        if scope["type"] == "websocket" and not origin_allowed(scope, self.allowed_origins):
            await send({"type": "websocket.close", "code": 4403, "reason": "Origin not allowed"})
            return
        await answers.answer(self.answers, scope, receive, send, super().__call__)

    async def render_graphql_ide(self, request: Request) -> Response:
        # Strawberry's page loads GraphiQL from a CDN; ours is self-hosted and signs in.
        return graphiql_page(request)

    async def get_context(self, request: Request | WebSocket, response: Response | WebSocket) -> Context:
        services: Services = request.app.state.services
        return Context(
            request=request,
            response=response if isinstance(response, Response) else None,
            services=services,
            auth=authenticate(services.access_tokens, request.headers.get("authorization")),
            client_ip=client_ip(request, services.settings.trusted_proxies),
        )

    async def on_ws_connect(self, context: Context) -> None:
        """connection_init's `authorization` (any case) signs the connection in;
        a bad or expired token closes it (4403 on graphql-transport-ws)."""
        params = {str(name).lower(): value for name, value in (context.connection_params or {}).items()}
        authorization = params.get("authorization")
        if authorization is None:
            return
        auth = authenticate(context.services.access_tokens, authorization)
        if auth.claims is None:
            raise ConnectionRejectionError(
                {
                    "message": f"The access token is {auth.problem or 'missing'}.",
                    "code": ErrorCode.UNAUTHENTICATED.value,
                }
            )
        context.auth = auth
        return

    def encode_json(self, data: object) -> str:
        return encode_message(data)

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
    return TradingGraphQL(
        build_schema(limits),
        graphql_ide="graphiql",  # a browser's GET /graphql gets render_graphql_ide's page
        allow_queries_via_get=True,  # queries only: Strawberry refuses mutations over GET
        allowed_origins=settings.allowed_origins,
        max_tokens=settings.max_tokens,
        subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL, MULTIPART_SUBSCRIPTION_PROTOCOL),
        keep_alive=True,  # legacy graphql-ws "ka"; graphql-transport-ws clients ping, and are answered
        keep_alive_interval=settings.websocket_keepalive_seconds,
        max_subscriptions_per_connection=settings.max_subscriptions_per_connection,
    )
