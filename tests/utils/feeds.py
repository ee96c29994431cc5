"""A scripted upstream connection for StreamHub and FeedRunner tests."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from server.brokers.streaming import Channel, EventSink, FeedDropped, FeedError, FeedProblem

Call = tuple[str, Channel, list[str]]


class FakeConnection:
    """Records what it is asked; the test drops it, refuses through it, or makes close hang."""

    def __init__(self, deliver: EventSink) -> None:
        self.deliver = deliver
        self.calls: list[Call] = []
        self.closed = False
        self.close_hangs = False
        self._ended = asyncio.Event()
        self._why: Exception = FeedDropped("dropped by the test")

    async def subscribe(self, channel: Channel, symbols: Iterable[str]) -> None:
        self.calls.append(("subscribe", channel, list(symbols)))

    async def unsubscribe(self, channel: Channel, symbols: Iterable[str]) -> None:
        self.calls.append(("unsubscribe", channel, list(symbols)))

    async def wait_closed(self) -> None:
        await self._ended.wait()
        raise self._why

    async def close(self) -> None:
        if self.close_hangs:
            await asyncio.Event().wait()
        self.closed = True

    def drop(self) -> None:
        self._ended.set()

    def refuse(self, problem: FeedProblem, message: str) -> None:
        self._why = FeedError(problem, message)
        self._ended.set()
