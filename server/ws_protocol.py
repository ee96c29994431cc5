"""uvicorn's WebSocket protocol, writing each connection's frames once per event-loop turn.

A market tick wakes every subscriber at once, and each sends its message: with ten
subscriptions on a connection that was ten socket writes, each a system call. Here the
frames a connection produces in one turn of the event loop are joined and written in the
next, in order, with one call. Closing writes what is pending first. Past `FLUSH_BYTES`
pending, a write goes out at once, so that the transport's own flow control (uvicorn's
`send` waits while it is paused) still holds back a slow reader within one turn. The app
may also flush a connection itself (FLUSH_EXTENSION), once it has sent what it had.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

FLUSH_BYTES = 64 * 1024
FLUSH_EXTENSION = "coalescing.flush"


class CoalescingTransport:
    """A transport whose writes within one event-loop turn reach the socket as one write."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []
        self._pending_bytes = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(bytes(data))
        self._pending_bytes += len(data)
        if self._pending_bytes >= FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        data = b"".join(self._pending)
        self._pending.clear()
        self._pending_bytes = 0
        if not self._transport.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._pending.clear()
        self._pending_bytes = 0
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:  # everything else is the transport's own
        return getattr(self._transport, name)


class CoalescingWebSocketProtocol(WebSocketsSansIOProtocol):
    """Also offers the app its connection's flush, as the ASGI extension FLUSH_EXTENSION: a
    writer that has sent a batch can send it at once rather than at the end of the turn."""

    _coalescing: CoalescingTransport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (uvloop's transports are not asyncio.Transport subclasses, but have its methods)
        self._coalescing = CoalescingTransport(cast(asyncio.Transport, transport), self.loop)
        super().connection_made(cast(asyncio.Transport, self._coalescing))

    async def run_asgi(self) -> None:
        self.scope["extensions"][FLUSH_EXTENSION] = {"flush": self._coalescing.flush}  # type: ignore[index]
        await super().run_asgi()
