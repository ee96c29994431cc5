"""Direct delivery of market subscriptions over WebSocket.

Strawberry serves each event of each subscriber through the subscriber's own task: a chain
of async generators, its result handling and extension hooks, then one `send`. Market
payloads are the same for every subscriber of a tick (see execution.py), so over WebSocket
a market subscription is set up by Strawberry as any other (parsing, validation, limits,
sign-in, the resolver's checks and the upstream subscription) and its events then take a
short way: the hub puts each one into the connection's `Outbox`, whose one writer task
takes what is pending, finds the shared result and its JSON, puts the operation's id
around it and sends it. The latest event per symbol wins while a message waits, as in a
Mailbox, so a slow reader gets fresh prices and holds nothing back.

The subscription's own task waits meanwhile, and ends the subscription as any ends (the
client's complete, an upstream failure, the token's expiry): errors, metrics and the
protocol's closing messages stay Strawberry's own.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable
from contextvars import ContextVar
from datetime import datetime

from starlette.websockets import WebSocketDisconnect
from starlette.websockets import WebSocketDisconnected as StarletteWebSocketDisconnected
from strawberry.http.exceptions import WebSocketDisconnected

from server.api.errors import ApiError, ErrorCode
from server.api.streams.encoding import PreEncoded, encode_json
from server.api.streams.execution import SubscriptionExecutor, shared_results
from server.brokers.streaming import MarketEvent

logger = logging.getLogger(__name__)

Send = Callable[[object], Awaitable[None]]
Convert = Callable[[MarketEvent], object]
"""An event as its subscription's GraphQL payload (one object per event, see types.py)."""
DISCONNECTED = (WebSocketDisconnected, WebSocketDisconnect, StarletteWebSocketDisconnected)


def expired() -> ApiError:
    return ApiError(ErrorCode.UNAUTHENTICATED, "The access token has expired; subscribe again with a fresh one.")


class Outbox:
    """One WebSocket connection's pending market messages, and the task that writes them."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self._pending: dict[tuple[DirectStream, Hashable], MarketEvent | None] = {}
        self._ready = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self.replaced = 0  # events overwritten before they were written

    def __len__(self) -> int:
        return len(self._pending)

    def put(self, stream: DirectStream, key: Hashable, event: MarketEvent | None) -> None:
        """`event` for `stream`, replacing one of the same key still waiting (None: the
        stream's end, once what it had waiting is written)."""
        pending = self._pending
        waiting = len(pending)
        pending[(stream, key)] = event
        if len(pending) == waiting:
            self.replaced += 1
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._write(), name="market-outbox")
        self._ready.set()

    async def _write(self) -> None:
        while True:
            await self._ready.wait()
            self._ready.clear()
            pending, self._pending = self._pending, {}
            for (stream, _), event in pending.items():
                if event is None:
                    stream.ended()
                    continue
                message = stream.message(event)
                if message is None:
                    continue
                try:
                    await self._send(message)
                except DISCONNECTED:
                    return  # the connection is closing: its handler ends every stream
                except Exception as error:
                    logger.exception("sending a market message failed")
                    stream.fail(error)

    def close(self) -> None:
        """The connection is over: write nothing more."""
        if self._writer is not None:
            self._writer.cancel()
        for stream, _ in self._pending:
            stream.ended()
        self._pending.clear()


class DirectTarget:
    """What a WebSocket handler offers one operation's task (through `direct_target`): the
    connection's outbox, and the start of that operation's messages, up to their data."""

    __slots__ = ("outbox", "prefix")

    def __init__(self, outbox: Outbox, prefix: str) -> None:
        self.outbox = outbox
        self.prefix = prefix


direct_target: ContextVar[DirectTarget | None] = ContextVar("direct_target", default=None)

_END = object()  # the key of a stream's end in the outbox


class DirectStream:
    """A market subscription delivered through its connection's outbox: the hub's receiver
    for it, and what its task waits on until it ends."""

    __slots__ = ("_convert", "_done", "_error", "_executor", "_expires_at", "_now", "_outbox", "_prefix", "open")

    def __init__(
        self,
        target: DirectTarget,
        executor: SubscriptionExecutor,
        convert: Convert,
        expires_at: datetime,
        now: Callable[[], datetime],
    ) -> None:
        self._outbox = target.outbox
        self._prefix = target.prefix
        self._executor = executor
        self._convert = convert
        self._expires_at = expires_at
        self._now = now
        self._error: BaseException | None = None
        self._done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.open = True

    @property
    def outbox(self) -> Outbox:
        return self._outbox

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
            if result.errors:  # never kept as shared: end with the error, as Strawberry reports it
                raise result.errors[0]
            data = shared_results.encoded(result.data, encode_json)
        except Exception as error:  # noqa: BLE001  (the subscription ends with it)
            self.fail(error)
            return None
        return PreEncoded(self._prefix + (data or encode_json(result.data)) + "}}")

    def ended(self) -> None:
        self.open = False
        if not self._done.done():
            if self._error is not None:
                self._done.set_exception(self._error)
            else:
                self._done.set_result(None)

    # The subscription task's side.

    async def wait(self) -> None:
        """Until the stream ends: raises its failure, or the expiry of its token."""
        remaining = (self._expires_at - self._now()).total_seconds()
        try:
            async with asyncio.timeout(max(remaining, 0)):
                await self._done
        except TimeoutError:
            raise expired() from None

    def close(self) -> None:
        """Its subscription is over: nothing more is sent."""
        self.open = False
        if not self._done.done():
            self._done.cancel()
