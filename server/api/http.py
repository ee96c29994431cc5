"""The Strawberry ASGI app, building our Context for every operation."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from cross_web import HTTPException  # what Strawberry's views raise for HTTP errors
from graphql import GraphQLError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLHTTPResponse
from strawberry.http.async_base_view import AsyncWebSocketAdapter
from strawberry.subscriptions import (
    GRAPHQL_TRANSPORT_WS_PROTOCOL,
    GRAPHQL_WS_PROTOCOL,
    MULTIPART_SUBSCRIPTION_PROTOCOL,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import BaseGraphQLTransportWSHandler, Operation
from strawberry.subscriptions.protocols.graphql_transport_ws.types import SubscribeMessage
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.subscriptions.protocols.graphql_ws.types import StartMessage
from strawberry.types import ExecutionResult

from server.api import answers
from server.api.context import Context
from server.api.errors import ErrorCode, to_client_error
from server.api.extensions import QueryLimits
from server.api.graphiql import graphiql_page
from server.api.identity import authenticate, client_ip
from server.api.origins import origin_allowed
from server.api.schema import build_schema
from server.api.streams.direct import DISCONNECTED, DirectTarget, Outbox, direct_target
from server.api.streams.encoding import encode_json, encode_message
from server.services import Services
from server.settings import Settings


def _subscription_limit(limit: int | None) -> dict[str, Any]:
    return GraphQLError(
        f"This connection already runs {limit} operations; complete one first.",
        extensions={"code": ErrorCode.SUBSCRIPTION_LIMIT.value, "limit": limit},
    ).formatted  # type: ignore[return-value]


class DirectDelivery:
    """A WebSocket connection's outbox, through which its market subscriptions are
    delivered (server/api/streams/direct.py), made with the first of them."""

    websocket: AsyncWebSocketAdapter
    _outbox: Outbox | None = None

    def offer_direct_delivery(self, message_start: str) -> None:
        """Offer it to the operation the current task runs, whose messages start so."""
        if self._outbox is None:
            self._outbox = Outbox(self.websocket.send_json)
        direct_target.set(DirectTarget(self._outbox, message_start))

    def close_outbox(self) -> None:
        if self._outbox is not None:
            self._outbox.close()


class TransportWSHandler(DirectDelivery, BaseGraphQLTransportWSHandler[Context, None]):
    """graphql-transport-ws with a coded error when the connection's operation cap is
    reached, and market subscriptions delivered directly."""

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        limit = self.max_subscriptions_per_connection
        full = limit is not None and len(self.operations) >= limit
        if self.connection_acknowledged and message["id"] not in self.operations and full:
            await self.send_message({"id": message["id"], "type": "error", "payload": [_subscription_limit(limit)]})
            return
        await super().handle_subscribe(message)

    async def run_operation(self, operation: Operation[Context, None]) -> None:
        self.offer_direct_delivery(f'{{"id":{encode_json(operation.id)},"type":"next","payload":{{"data":')
        await super().run_operation(operation)

    async def shutdown(self) -> None:
        self.close_outbox()
        await super().shutdown()

    async def handle_task_exception(self, error: Exception) -> None:
        if isinstance(error, DISCONNECTED):
            return  # the client left with operations running: nothing went wrong here
        await super().handle_task_exception(error)


class LegacyWSHandler(DirectDelivery, BaseGraphQLWSHandler[Context, None]):
    """Legacy graphql-ws, with the same coded error at the cap and the same direct delivery."""

    async def handle_start(self, message: StartMessage) -> None:
        limit = self.max_subscriptions_per_connection
        full = limit is not None and len(self.tasks) >= limit
        if self.connection_acknowledged and message["id"] not in self.tasks and full:
            await self.send_message({"type": "error", "id": message["id"], "payload": _subscription_limit(limit)})
            return
        await super().handle_start(message)

    async def handle_async_results(
        self, operation_id: str, query: str, operation_name: str | None, variables: dict[str, object] | None
    ) -> None:
        self.offer_direct_delivery(f'{{"type":"data","id":{encode_json(operation_id)},"payload":{{"data":')
        await super().handle_async_results(operation_id, query, operation_name, variables)

    async def cleanup(self) -> None:
        self.close_outbox()
        await super().cleanup()


class TradingGraphQL(GraphQL[Context, None]):
    graphql_transport_ws_handler_class = TransportWSHandler
    graphql_ws_handler_class = LegacyWSHandler

    def __init__(self, *args: object, allowed_origins: list[str], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.allowed_origins = allowed_origins
        self.answers = answers.AnswerCache()

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
        subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL, MULTIPART_SUBSCRIPTION_PROTOCOL),
        keep_alive=True,  # legacy graphql-ws "ka"; graphql-transport-ws clients ping, and are answered
        keep_alive_interval=settings.websocket_keepalive_seconds,
        max_subscriptions_per_connection=settings.max_subscriptions_per_connection,
    )
