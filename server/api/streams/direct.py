"""Direct delivery of market subscriptions over WebSocket.

Strawberry serves each subscriber through a task of its own: per event a chain of async
generators, its result handling and extension hooks, then one `send`; and while the
subscription lives, that task holds the operation's whole state. Market payloads are the
same for every subscriber of a tick (see execution.py), so over WebSocket a market
subscription is set up by Strawberry as any other (parsing, validation, limits, sign-in,
the resolver's checks and the upstream subscription) and then handed to its connection:
the resolver returns, Strawberry's task ends, and the hub puts each event into the
connection's `Outbox`, whose one writer task finds the shared result and its JSON, puts
the operation's id around it and sends it. The latest event per symbol wins while a
message waits, as in a Mailbox, so a slow reader gets fresh prices and holds nothing
back.

The connection's handler (server/api/ws_handlers.py) keeps the operation open meanwhile: the
client's complete, or the connection's end, closes the stream; an upstream failure, the
token's expiry or an event that cannot be executed ends it with the messages Strawberry
would send for that error, after what was waiting. Its metrics are recorded when it ends,
as for any subscription.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable
from contextvars import Context, ContextVar
from datetime import datetime
from typing import Protocol

from graphql import GraphQLError
from starlette.websockets import WebSocketDisconnect
from starlette.websockets import WebSocketDisconnected as StarletteWebSocketDisconnected
from strawberry.http.exceptions import WebSocketDisconnected

from server.api.errors import ApiError, ErrorCode, log_errors, to_client_error
from server.api.streams.encoding import PreEncoded, encode_json
from server.api.streams.execution import SubscriptionExecutor, shared_results
from server.brokers.streaming import MarketEvent
from server.streams.hub import MarketSubscription

logger = logging.getLogger(__name__)

Send = Callable[[object], Awaitable[None]]
Convert = Callable[[MarketEvent], object]
"""An event as its subscription's GraphQL payload (one object per event, see types.py)."""
DISCONNECTED = (WebSocketDisconnected, WebSocketDisconnect, StarletteWebSocketDisconnected)


def expired() -> ApiError:
    return ApiError(ErrorCode.UNAUTHENTICATED, "The access token has expired; subscribe again with a fresh one.")


class DirectHost(Protocol):
    """The WebSocket handler that keeps a connection's streams (server/api/ws_handlers.py)."""

    outbox: Outbox

    def adopt(self, operation_id: str, stream: DirectStream) -> bool:
        """Keep the operation open with `stream` delivering it; False if it is over already."""

    async def end(self, operation_id: str, error: GraphQLError) -> None:
        """End the operation with `error`, as the protocol ends a subscription that failed."""


class Outbox:
    """One WebSocket connection's pending market messages, and the task that writes them."""

    def __init__(self, send: Send, flush: Callable[[], None] | None = None) -> None:
        self._send = send
        self._flush = flush  # the connection's: what was sent leaves now, not at the turn's end
        self._pending: dict[tuple[DirectStream, Hashable], MarketEvent | None] = {}
        self._ready = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._closed = False
        self.replaced = 0  # events overwritten before they were written

    def __len__(self) -> int:
        return len(self._pending)

    def put(self, stream: DirectStream, key: Hashable, event: MarketEvent | None) -> None:
        """`event` for `stream`, replacing one of the same key still waiting (None: the
        stream's end, once what it had waiting is written)."""
        if self._closed:
            return
        pending = self._pending
        waiting = len(pending)
        pending[(stream, key)] = event
        if len(pending) == waiting:
            self.replaced += 1
        if self._writer is None:
            # A context of its own: it lives as long as the connection, not the operation whose
            # first event started it, and must keep nothing of that operation.
            writer = self._write()
            self._writer = asyncio.get_running_loop().create_task(writer, name="market-outbox", context=Context())
        self._ready.set()

    async def _write(self) -> None:
        while True:
            await self._ready.wait()
            self._ready.clear()
            pending, self._pending = self._pending, {}
            for (stream, _), event in pending.items():
                try:
                    if event is None:
                        await stream.end()
                        continue
                    message = stream.message(event)
                    if message is not None:
                        await self._send(message)
                except DISCONNECTED:
                    self._closed = True  # the connection is closing: its handler closes every stream
                    self._pending.clear()
                    return
                except Exception as error:
                    if stream.open:
                        stream.fail(error)  # reported with the stream's end
                    else:
                        logger.exception("ending a market stream failed")
            if self._flush is not None:
                # A tick wakes every connection's writer in one turn: each connection's batch
                # leaves as soon as it is made, not all of them once the last is.
                self._flush()

    def close(self) -> None:
        """The connection is over: write nothing more."""
        self._closed = True
        if self._writer is not None:
            self._writer.cancel()
        self._pending.clear()


class DirectTarget:
    """What a WebSocket handler offers one operation's task (through `direct_target`): the
    handler, the operation's id, the start of its messages up to their data, and the
    release of the set-up slot the operation holds (see ws_handlers.py)."""

    __slots__ = ("_release", "host", "operation_id", "prefix", "stream")

    def __init__(
        self, host: DirectHost, operation_id: str, prefix: str, release: Callable[[], None] | None = None
    ) -> None:
        self.host = host
        self.operation_id = operation_id
        self.prefix = prefix
        self._release = release
        self.stream: DirectStream | None = None  # once the operation is handed over

    def set_up(self) -> None:
        """The operation is set up (or over): its slot goes to the next one."""
        release, self._release = self._release, None
        if release is not None:
            release()


direct_target: ContextVar[DirectTarget | None] = ContextVar("direct_target", default=None)


def set_up() -> None:
    """Called by a subscription's resolver once it is set up and starts waiting for events."""
    target = direct_target.get()
    if target is not None:
        target.set_up()


def handed_over() -> DirectStream | None:
    """The stream the current task's operation was handed over to, if it was."""
    target = direct_target.get()
    return target.stream if target is not None else None


_END = object()  # the key of a stream's end in the outbox
Ended = Callable[[GraphQLError | None], None]


class DirectStream:
    """A market subscription delivered through its connection's outbox: the hub's receiver
    for it, and what its handler keeps while it is open."""

    __slots__ = (
        "_convert",
        "_ended",
        "_error",
        "_executor",
        "_expires_at",
        "_expiry",
        "_now",
        "_outbox",
        "_outcome",
        "_subscription",
        "_target",
        "open",
    )

    def __init__(
        self,
        target: DirectTarget,
        executor: SubscriptionExecutor,
        convert: Convert,
        expires_at: datetime,
        now: Callable[[], datetime],
    ) -> None:
        self._target = target
        self._outbox = target.host.outbox
        self._executor = executor
        self._convert = convert
        self._expires_at = expires_at
        self._now = now
        self._error: BaseException | None = None
        self._subscription: MarketSubscription | None = None
        self._expiry: asyncio.TimerHandle | None = None
        self._ended: list[Ended] = []
        self._outcome: GraphQLError | None = None  # the error it ended with, once closed
        self.open = True

    @property
    def outbox(self) -> Outbox:
        return self._outbox

    def hand_over(self, subscription: MarketSubscription) -> None:
        """Called by the resolver once `subscription` is made: the connection keeps the
        operation from now on (or, if it is over already, the subscription is closed)."""
        self._subscription = subscription
        target = self._target
        target.set_up()
        if not self.open or not target.host.adopt(target.operation_id, self):
            self.close()
            return
        target.stream = self
        remaining = (self._expires_at - self._now()).total_seconds()
        self._expiry = asyncio.get_running_loop().call_later(max(remaining, 0), self._expire, context=Context())

    def _expire(self) -> None:
        self.fail(expired())

    def when_ended(self, callback: Ended) -> None:
        """Call `callback` once the stream ends (now, if it has): with the error it ended
        with, or None."""
        if self.open:
            self._ended.append(callback)
        else:
            callback(self._outcome)

    # The hub's side: cheap, never blocks.

    def put(self, key: Hashable, value: MarketEvent) -> None:
        if self.open and self._error is None:
            self._outbox.put(self, key, value)

    def fail(self, error: BaseException) -> None:
        if self.open and self._error is None:
            self._error = error
            self._outbox.put(self, _END, None)

    # The writer's side.

    def message(self, event: MarketEvent) -> PreEncoded | None:
        """The message for `event`, or None when the stream ends instead (its token
        expired, or the event could not be executed)."""
        if not self.open:
            return None
        if self._expires_at <= self._now():
            self.fail(expired())
            return None
        try:
            result = self._executor.shared_result(self._convert(event))
            if result.errors:  # never kept as shared: end with the error, as Strawberry would report it
                raise result.errors[0]
            data = shared_results.encoded(result.data, encode_json)
        except Exception as error:  # noqa: BLE001  (the subscription ends with it)
            self.fail(error)
            return None
        return PreEncoded(self._target.prefix + (data or encode_json(result.data)) + "}}")

    async def end(self) -> None:
        """End with the failure, once what came before it was written."""
        if not self.open or self._error is None:
            return
        error = self._client_error()
        self._close(error)
        await self._target.host.end(self._target.operation_id, error)

    # The handler's side.

    def close(self) -> None:
        """The operation is over (the client's complete, the connection's end); a failure
        not yet sent still counts as its outcome."""
        if self.open:
            self._close(self._client_error() if self._error is not None else None)

    def _client_error(self) -> GraphQLError:
        assert self._error is not None
        raw = _as_graphql_error(self._error)
        log_errors([raw], None)  # as Strawberry logs it, before it is coded for the client
        return to_client_error(raw)

    def _close(self, error: GraphQLError | None) -> None:
        self.open = False
        self._outcome = error
        if self._expiry is not None:
            self._expiry.cancel()
        if self._subscription is not None:
            self._subscription.close()
        callbacks, self._ended = self._ended, []
        for callback in callbacks:
            callback(error)


def _as_graphql_error(error: BaseException) -> GraphQLError:
    # As Strawberry wraps an exception raised by a subscription's source stream.
    return error if isinstance(error, GraphQLError) else GraphQLError(str(error), original_error=error)
