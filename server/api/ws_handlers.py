"""The WebSocket protocols' handlers: Strawberry's, with a coded error when a connection's
operation cap is reached, and market subscriptions kept by the connection once Strawberry
has set them up (server/api/streams/direct.py).

Operations are set up a few at a time across the process (`SETUPS_AT_ONCE`): while one is
set up it holds Strawberry's whole operation state (extension hooks, executor, loaders,
about 25 KB), and it may wait on the database. A burst of subscriptions (a thousand sent
at once) would otherwise hold all of it at the same time, and the allocator keeps that
peak afterwards. An operation waits for a slot before Strawberry sees it, and gives it back
once set up: a subscription when it is handed over or its resolver starts waiting for
events, anything else when it ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from graphql import GraphQLError
from strawberry.http.async_base_view import AsyncWebSocketAdapter
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import BaseGraphQLTransportWSHandler, Operation
from strawberry.subscriptions.protocols.graphql_transport_ws.types import SubscribeMessage
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.subscriptions.protocols.graphql_ws.types import OperationMessage, StartMessage

from server.api.context import Context
from server.api.errors import ErrorCode
from server.api.streams.direct import DISCONNECTED, DirectStream, DirectTarget, Outbox, direct_target
from server.api.streams.encoding import encode_json

SETUPS_AT_ONCE = 32


class SetupSlots:
    """The process's slots for operations being set up (one per app)."""

    def __init__(self, size: int = SETUPS_AT_ONCE) -> None:
        self._semaphore = asyncio.Semaphore(size)

    async def take(self) -> None:
        await self._semaphore.acquire()

    def give_back(self) -> None:
        self._semaphore.release()

    @property
    def free(self) -> int:
        return self._semaphore._value


def _subscription_limit(limit: int | None) -> dict[str, Any]:
    return GraphQLError(
        f"This connection already runs {limit} operations; complete one first.",
        extensions={"code": ErrorCode.SUBSCRIPTION_LIMIT.value, "limit": limit},
    ).formatted  # type: ignore[return-value]


class DirectDelivery:
    """A connection's market streams handed over by their operations, and the outbox they
    are delivered through (both made with the first of them)."""

    websocket: AsyncWebSocketAdapter
    view: object
    _outbox: Outbox | None = None
    _streams: dict[str, DirectStream] | None = None

    @property
    def outbox(self) -> Outbox:
        if self._outbox is None:
            self._outbox = Outbox(self.websocket.send_json)
        return self._outbox

    @property
    def direct_streams(self) -> dict[str, DirectStream]:
        """The operations handed over, by id: open until their stream ends or is closed."""
        if self._streams is None:
            self._streams = {}
        return self._streams

    async def run_offered(self, operation_id: str, message_start: str, operation: Awaitable[None]) -> None:
        """Run the operation in a set-up slot, with direct delivery offered to it (its
        messages start with `message_start`)."""
        slots: SetupSlots = self.view.setup_slots  # type: ignore[attr-defined]
        try:
            await slots.take()
        except BaseException:
            operation.close()  # type: ignore[attr-defined]  (a coroutine never started)
            raise
        target = DirectTarget(self, operation_id, message_start, release=slots.give_back)
        direct_target.set(target)
        try:
            await operation
        finally:
            target.set_up()

    def close_direct(self, operation_id: str) -> None:
        stream = self.direct_streams.pop(operation_id, None)
        if stream is not None:
            stream.close()

    def close_every_direct(self) -> None:
        if self._outbox is not None:
            self._outbox.close()
        for operation_id in list(self.direct_streams):
            self.close_direct(operation_id)


class TransportWSHandler(DirectDelivery, BaseGraphQLTransportWSHandler[Context, None]):
    """graphql-transport-ws. A handed-over operation stays among `operations` (its id taken,
    counted by the cap) with Strawberry's own switch for sending nothing more set."""

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        limit = self.max_subscriptions_per_connection
        full = limit is not None and len(self.operations) >= limit
        if self.connection_acknowledged and message["id"] not in self.operations and full:
            await self.send_message({"id": message["id"], "type": "error", "payload": [_subscription_limit(limit)]})
            return
        await super().handle_subscribe(message)

    async def run_operation(self, operation: Operation[Context, None]) -> None:
        start = f'{{"id":{encode_json(operation.id)},"type":"next","payload":{{"data":'
        await self.run_offered(operation.id, start, super().run_operation(operation))

    def adopt(self, operation_id: str, stream: DirectStream) -> bool:
        operation = self.operations.get(operation_id)
        if operation is None or operation.completed:
            return False
        operation.completed = True  # Strawberry's task ends without a complete
        # and nothing of its set-up is kept: the task (its context), the query, the variables
        operation.task, operation.query, operation.variables = None, "", None
        self.direct_streams[operation_id] = stream
        return True

    async def end(self, operation_id: str, error: GraphQLError) -> None:
        operation = self.operations.get(operation_id)
        if self.direct_streams.pop(operation_id, None) is None or operation is None:
            return
        operation.completed = False
        payload = {"data": None, "errors": [error.formatted]}
        await operation.send_operation_message({"id": operation_id, "type": "next", "payload": payload})  # type: ignore[typeddict-item]
        await operation.send_operation_message({"id": operation_id, "type": "complete"})

    async def cleanup_operation(self, operation_id: str) -> None:
        if operation_id in self.direct_streams:
            self.close_direct(operation_id)
            self.operations.pop(operation_id, None)
            return
        await super().cleanup_operation(operation_id)

    async def shutdown(self) -> None:
        for operation_id in self.direct_streams:
            self.operations.pop(operation_id, None)
        self.close_every_direct()
        await super().shutdown()

    async def handle_task_exception(self, error: Exception) -> None:
        if isinstance(error, DISCONNECTED):
            return  # the client left with operations running: nothing went wrong here
        await super().handle_task_exception(error)


class LegacyWSHandler(DirectDelivery, BaseGraphQLWSHandler[Context, None]):
    """Legacy graphql-ws. A handed-over operation leaves `tasks` with its task, so it is
    counted among the direct streams, and the complete its task would send is held back."""

    async def handle_start(self, message: StartMessage) -> None:
        operation_id = message["id"]
        self.close_direct(operation_id)  # a start reusing an id replaces that operation
        limit = self.max_subscriptions_per_connection
        full = limit is not None and len(self.tasks) + len(self.direct_streams) >= limit
        if self.connection_acknowledged and operation_id not in self.tasks and full:
            await self.send_message({"type": "error", "id": operation_id, "payload": _subscription_limit(limit)})
            return
        await super().handle_start(message)

    async def handle_async_results(
        self, operation_id: str, query: str, operation_name: str | None, variables: dict[str, object] | None
    ) -> None:
        start = f'{{"type":"data","id":{encode_json(operation_id)},"payload":{{"data":'
        results = super().handle_async_results(operation_id, query, operation_name, variables)
        await self.run_offered(operation_id, start, results)

    def adopt(self, operation_id: str, stream: DirectStream) -> bool:
        if operation_id not in self.tasks:
            return False
        self.direct_streams[operation_id] = stream
        return True

    async def end(self, operation_id: str, error: GraphQLError) -> None:
        if self.direct_streams.pop(operation_id, None) is None:
            return
        payload = {"data": None, "errors": [error.formatted]}
        await self.send_message({"type": "data", "id": operation_id, "payload": payload})  # type: ignore[typeddict-item]
        await self.send_message({"type": "complete", "id": operation_id})

    async def send_message(self, message: OperationMessage) -> None:
        if message["type"] == "complete" and message.get("id") in self.direct_streams:
            return  # the task of an operation handed over ends; the operation goes on
        await super().send_message(message)

    async def cleanup_operation(self, operation_id: str) -> None:
        if operation_id in self.direct_streams:
            self.close_direct(operation_id)
            await self.send_message({"type": "complete", "id": operation_id})  # as Strawberry answers a stop
            return
        await super().cleanup_operation(operation_id)

    async def cleanup(self) -> None:
        self.close_every_direct()
        await super().cleanup()
