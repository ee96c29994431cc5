"""The WebSocket protocols' handlers: Strawberry's, with a coded error when a connection's
operation cap is reached, and market subscriptions kept by the connection once Strawberry
has set them up (server/api/streams/direct.py).

Subscriptions are set up a few at a time (`SetupSlots`): while one is set up it holds
Strawberry's whole operation state (extension hooks, executor, loaders) and
may wait on the database or the broker. A burst of subscriptions (a thousand sent at once)
would otherwise hold all of that at the same time, and the allocator keeps such a peak
afterwards. A subscription waits for a slot before Strawberry sees it, holding only its
message, and gives the slot back once set up: when it is handed over, when its resolver
starts waiting for events, or when it ends. The server sets up at most `SETUPS_AT_ONCE`
at a time, and a caller (a signed-in user, else the connection) at most
`SETUPS_PER_CALLER`, so one caller's slow set-ups leave the rest to everyone else. Queries
and mutations over a WebSocket are not held back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable
from typing import Any

from graphql import GraphQLError
from strawberry.http.async_base_view import AsyncWebSocketAdapter
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import BaseGraphQLTransportWSHandler, Operation
from strawberry.subscriptions.protocols.graphql_transport_ws.types import SubscribeMessage
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.subscriptions.protocols.graphql_ws.types import OperationMessage, StartMessage
from strawberry.types.graphql import OperationType as StrawberryOperationType
from strawberry.utils.operation import get_operation_type

from server.api.context import Context
from server.api.errors import ErrorCode
from server.api.extensions import cached_parse
from server.api.streams.direct import DISCONNECTED, DirectStream, DirectTarget, Outbox, direct_target
from server.api.streams.encoding import encode_json
from server.ws_protocol import FLUSH_EXTENSION

SETUPS_AT_ONCE = 32
SETUPS_PER_CALLER = 4


class _Caller:
    __slots__ = ("semaphore", "users")

    def __init__(self, size: int) -> None:
        self.semaphore = asyncio.Semaphore(size)
        self.users = 0  # operations holding or waiting for one of its slots


class SetupSlots:
    """The process's slots for subscriptions being set up (one per app), shared fairly
    between callers."""

    def __init__(self, size: int = SETUPS_AT_ONCE, per_caller: int = SETUPS_PER_CALLER) -> None:
        self._all = asyncio.Semaphore(size)
        self._size = size
        self._taken = 0  # kept here: the semaphore's own count is private
        self._per_caller = per_caller
        self._callers: dict[Hashable, _Caller] = {}

    async def take(self, caller: Hashable) -> Callable[[], None]:
        """Wait for a slot of `caller`'s and one of the server's; returns what gives them back."""
        entry = self._callers.get(caller)
        if entry is None:
            entry = self._callers[caller] = _Caller(self._per_caller)
        entry.users += 1
        try:
            await entry.semaphore.acquire()
            try:
                await self._all.acquire()
            except BaseException:
                entry.semaphore.release()
                raise
        except BaseException:
            self._leave(caller, entry)
            raise
        self._taken += 1

        def give_back() -> None:
            self._taken -= 1
            self._all.release()
            entry.semaphore.release()
            self._leave(caller, entry)

        return give_back

    def _leave(self, caller: Hashable, entry: _Caller) -> None:
        entry.users -= 1
        if entry.users == 0 and self._callers.get(caller) is entry:
            del self._callers[caller]

    @property
    def free(self) -> int:
        """Server-wide slots not held now."""
        return self._size - self._taken

    @property
    def callers(self) -> int:
        """Callers holding or waiting for slots now."""
        return len(self._callers)


def is_subscription(query: str, operation_name: str | None, max_tokens: int) -> bool:
    """Whether Strawberry will run the operation a message names as a subscription (by its
    own rule: no name means the first operation), parsed through the operations' own parser
    cache. False for anything that does not parse: Strawberry reports that."""
    try:
        kind = get_operation_type(cached_parse(query, max_tokens), operation_name)
    except (GraphQLError, RuntimeError, TypeError, RecursionError):  # RuntimeError: no such operation
        return False
    return kind is StrawberryOperationType.SUBSCRIPTION


def _subscription_limit(limit: int | None) -> dict[str, Any]:
    return GraphQLError(
        f"This connection already runs {limit} operations; complete one first.",
        extensions={"code": ErrorCode.SUBSCRIPTION_LIMIT.value, "limit": limit},
    ).formatted  # type: ignore[return-value]


class DirectDelivery:
    """A connection's market streams handed over by their operations, the outbox they are
    delivered through, and the set-up slots its subscriptions take."""

    websocket: AsyncWebSocketAdapter
    view: Any
    context: Context

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.outbox = Outbox(self.websocket.send_json, self._flush())
        self.direct_streams: dict[str, DirectStream] = {}  # handed over, by id: open until ended or closed
        self.accepts_streams = True  # until the connection closes

    def _flush(self) -> Callable[[], None] | None:
        """The connection's flush, where the server offers one (server/ws_protocol.py)."""
        scope = getattr(getattr(self.websocket, "ws", None), "scope", None) or {}
        flush = (scope.get("extensions") or {}).get(FLUSH_EXTENSION, {}).get("flush")
        return flush if callable(flush) else None

    async def offer(self, operation_id: str, message_start: str, query: object, name: object) -> DirectTarget:
        """Offer direct delivery to the operation the current task runs (its messages start
        with `message_start`), after waiting for a set-up slot if it is a subscription (an
        operation name that is no string is held back too: Strawberry refuses it anyway).
        Raises CancelledError if the operation is cancelled while it waits."""
        release = None
        if isinstance(query, str) and (
            is_subscription(query, name, self.view.max_tokens) if name is None or isinstance(name, str) else True
        ):
            claims = self.context.auth.claims
            release = await self.view.setup_slots.take(claims.user_id if claims is not None else id(self))
        target = DirectTarget(self, operation_id, message_start, release)
        direct_target.set(target)
        return target

    def close_direct(self, operation_id: str) -> None:
        stream = self.direct_streams.pop(operation_id, None)
        if stream is not None:
            stream.close()

    def close_every_direct(self) -> None:
        """The connection is closing: close its streams, and adopt none from now on."""
        self.accepts_streams = False
        self.outbox.close()
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

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._running: dict[asyncio.Task[Any] | None, Operation[Context, None]] = {}  # by their tasks

    async def run_operation(self, operation: Operation[Context, None]) -> None:
        start = f'{{"id":{encode_json(operation.id)},"type":"next","payload":{{"data":'
        target = await self.offer(operation.id, start, operation.query, operation.operation_name)
        task = asyncio.current_task()
        self._running[task] = operation
        try:
            await super().run_operation(operation)
        finally:
            target.set_up()
            del self._running[task]

    def adopt(self, operation_id: str, stream: DirectStream) -> bool:
        own = self._running.get(asyncio.current_task())
        if own is None:
            return False
        own.completed = True  # Strawberry's task ends without a word, handed over or not
        # The id must still be this operation's: a cancel can be swallowed (by wait_for)
        # after the client completed it, and the id reused by a new operation.
        if not self.accepts_streams or self.operations.get(operation_id) is not own:
            return False
        # Nothing of its set-up is kept: the task (its context), the query, the variables.
        own.task, own.query, own.variables = None, "", None
        self.direct_streams[operation_id] = stream
        return True

    async def end(self, operation_id: str, error: GraphQLError) -> None:
        operation = self.operations.get(operation_id)
        if self.direct_streams.pop(operation_id, None) is None or operation is None:
            return
        payload = {"data": None, "errors": [error.formatted]}
        await self.send_message({"id": operation_id, "type": "next", "payload": payload})  # type: ignore[typeddict-item]
        if self.operations.get(operation_id) is operation:  # the client did not complete it meanwhile
            del self.operations[operation_id]  # forgotten before its last message, as Strawberry does
            await self.send_message({"id": operation_id, "type": "complete"})

    async def cleanup_operation(self, operation_id: str) -> None:
        operation = self.operations.get(operation_id)
        if operation is not None and operation.task is None:  # handed over: open, or ending
            self.close_direct(operation_id)
            del self.operations[operation_id]
            return
        await super().cleanup_operation(operation_id)

    async def shutdown(self) -> None:
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
        if operation_id in self.direct_streams:  # a start reusing an id replaces that operation
            await self.cleanup_operation(operation_id)
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
        try:
            target = await self.offer(operation_id, start, query, operation_name)
        except asyncio.CancelledError:  # stopped while waiting for a slot: answered as Strawberry answers a stop
            await self.send_message({"type": "complete", "id": operation_id})
            return
        try:
            await super().handle_async_results(operation_id, query, operation_name, variables)
        except DISCONNECTED:
            pass  # its closing message met a closed connection (Strawberry's task no longer awaited)
        finally:
            target.set_up()

    def adopt(self, operation_id: str, stream: DirectStream) -> bool:
        if not self.accepts_streams or self.tasks.get(operation_id) is not asyncio.current_task():
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
