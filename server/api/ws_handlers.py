"""The WebSocket protocols' handlers: Strawberry's, with a coded error when a connection's
operation cap is reached, and market subscriptions kept by the connection once Strawberry
has set them up (server/api/streams/direct.py).

Subscriptions are set up a few at a time (`SetupSlots`): while one is set up it holds
Strawberry's whole operation state (extension hooks, executor, loaders, about 25 KB) and
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
from functools import lru_cache
from typing import Any

from graphql import GraphQLError, parse
from strawberry.http.async_base_view import AsyncWebSocketAdapter
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import BaseGraphQLTransportWSHandler, Operation
from strawberry.subscriptions.protocols.graphql_transport_ws.types import SubscribeMessage
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.subscriptions.protocols.graphql_ws.types import OperationMessage, StartMessage
from strawberry.types.graphql import OperationType as StrawberryOperationType
from strawberry.utils.operation import get_operation_type

from server.api.context import Context
from server.api.errors import ErrorCode
from server.api.streams.direct import DISCONNECTED, DirectStream, DirectTarget, Outbox, direct_target
from server.api.streams.encoding import encode_json
from server.ws_protocol import FLUSH_EXTENSION

SETUPS_AT_ONCE = 32
SETUPS_PER_CALLER = 4
PARSED_KEPT = 512
CACHED_QUERY_CHARS = 8192


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

        def give_back() -> None:
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
        return self._all._value

    @property
    def callers(self) -> int:
        """Callers holding or waiting for slots now."""
        return len(self._callers)


def is_subscription(query: str, operation_name: str | None, max_tokens: int) -> bool:
    """Whether Strawberry will run the operation a message names as a subscription (by its
    own rule: no name means the first operation). False for anything that does not parse:
    Strawberry reports that. Queries up to CACHED_QUERY_CHARS long are parsed once."""
    if len(query) <= CACHED_QUERY_CHARS:
        return _is_subscription(query, operation_name, max_tokens)
    return _is_subscription.__wrapped__(query, operation_name, max_tokens)


@lru_cache(maxsize=PARSED_KEPT)
def _is_subscription(query: str, operation_name: str | None, max_tokens: int) -> bool:
    try:
        kind = get_operation_type(parse(query, max_tokens=max_tokens), operation_name)
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
    delivered through (both made with the first of them), and the set-up slots its
    subscriptions take."""

    websocket: AsyncWebSocketAdapter
    view: Any
    context: Context
    _outbox: Outbox | None = None
    _streams: dict[str, DirectStream] | None = None
    _closing = False

    @property
    def outbox(self) -> Outbox:
        if self._outbox is None:
            self._outbox = Outbox(self.websocket.send_json, self._flush())
        return self._outbox

    def _flush(self) -> Callable[[], None] | None:
        """The connection's flush, where the server offers one (server/ws_protocol.py)."""
        scope = getattr(getattr(self.websocket, "ws", None), "scope", None) or {}
        flush = (scope.get("extensions") or {}).get(FLUSH_EXTENSION, {}).get("flush")
        return flush if callable(flush) else None

    @property
    def direct_streams(self) -> dict[str, DirectStream]:
        """The operations handed over, by id: open until their stream ends or is closed."""
        if self._streams is None:
            self._streams = {}
        return self._streams

    @property
    def accepts_streams(self) -> bool:
        return not self._closing

    async def offer(self, operation_id: str, message_start: str, query: object, name: object) -> DirectTarget:
        """Offer direct delivery to the operation the current task runs (its messages start
        with `message_start`), after waiting for a set-up slot if it is a subscription.
        Raises CancelledError if the operation is cancelled while it waits."""
        release = None
        subscription = isinstance(query, str) and (
            not (name is None or isinstance(name, str)) or is_subscription(query, name, self._tokens)
        )
        if subscription:
            claims = self.context.auth.claims
            release = await self.view.setup_slots.take(claims.user_id if claims is not None else id(self))
        target = DirectTarget(self, operation_id, message_start, release)
        direct_target.set(target)
        return target

    @property
    def _tokens(self) -> int:
        return int(self.view.max_tokens)

    def close_direct(self, operation_id: str) -> None:
        stream = self.direct_streams.pop(operation_id, None)
        if stream is not None:
            stream.close()

    def close_every_direct(self) -> None:
        """The connection is closing: close its streams, and adopt none from now on."""
        self._closing = True
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
        target = await self.offer(operation.id, start, operation.query, operation.operation_name)
        task = asyncio.current_task()
        self._running[task] = operation
        try:
            await super().run_operation(operation)
        finally:
            target.set_up()
            del self._running[task]

    @property
    def _running(self) -> dict[asyncio.Task[Any] | None, Operation[Context, None]]:
        """Each running operation, by its task."""
        running = self.__dict__.get("_running_operations")
        if running is None:
            running = self.__dict__["_running_operations"] = {}
        return running

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
