"""Order updates for subscribers: what the ledger recorded, fanned out to its owner only.

The ledger writer publishes after each commit, so a subscriber never hears of a change
that a query could not find yet. Order updates are not conflated (each event matters);
a subscriber that falls more than a bounded number behind is ended with SlowConsumer
rather than letting its queue grow.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from server.trading.ledger import OrderChange

MAX_PENDING_UPDATES = 1000


class SlowConsumerError(Exception):
    def __init__(self) -> None:
        super().__init__(
            f"More than {MAX_PENDING_UPDATES} order updates went unread; subscribe again and query orders to catch up."
        )


class OrderFeed:
    def __init__(self, release: Callable[[OrderFeed], None]) -> None:
        self._queue: asyncio.Queue[OrderChange | None] = asyncio.Queue(MAX_PENDING_UPDATES)  # None: overflowed
        self._release: Callable[[OrderFeed], None] | None = release

    def offer(self, change: OrderChange) -> None:
        try:
            self._queue.put_nowait(change)
        except asyncio.QueueFull:
            self.close()
            while not self._queue.empty():
                self._queue.get_nowait()
            self._queue.put_nowait(None)

    async def next(self) -> OrderChange:
        """The next change (safe to cancel); SlowConsumerError once the queue overflowed."""
        change = await self._queue.get()
        if change is None:
            raise SlowConsumerError
        return change

    async def changes(self) -> AsyncIterator[OrderChange]:
        while True:
            yield await self.next()

    def close(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            release(self)


class OrderUpdates:
    def __init__(self) -> None:
        self._feeds: dict[str, set[OrderFeed]] = {}

    def publish(self, change: OrderChange) -> None:
        for feed in list(self._feeds.get(change.user_id, ())):
            feed.offer(change)

    def subscribe(self, user_id: str) -> OrderFeed:
        feeds = self._feeds.setdefault(user_id, set())

        def release(feed: OrderFeed) -> None:
            feeds.discard(feed)
            if not feeds and self._feeds.get(user_id) is feeds:
                del self._feeds[user_id]

        feed = OrderFeed(release)
        feeds.add(feed)
        return feed

    def subscriber_count(self, user_id: str) -> int:
        return len(self._feeds.get(user_id, ()))
