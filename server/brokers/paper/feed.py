"""A paper account's market-data feed: a client of the exchange's in-process streams,
behaving as an Alpaca stream connection does (one per account and family, limits, drops)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from server.brokers.paper.streams import PaperStreams, StreamLimitError, StreamSession
from server.brokers.streaming import Channel, EventSink, Family, FeedDropped, FeedError, FeedProblem


class PaperFeed:
    def __init__(self, streams: PaperStreams, account_id: str, family: Family, *, symbol_limit: int | None) -> None:
        self._streams = streams
        self.account_id = account_id
        self.family = family
        self.symbol_limit = symbol_limit

    async def connect(self, deliver: EventSink) -> PaperFeedConnection:
        dropped = asyncio.Event()
        try:
            session = self._streams.open(self.account_id, self.family, deliver, dropped.set)
        except StreamLimitError as error:
            raise FeedError(FeedProblem.CONNECTION_LIMIT, str(error)) from error
        return PaperFeedConnection(self._streams, session, dropped)


class PaperFeedConnection:
    def __init__(self, streams: PaperStreams, session: StreamSession, dropped: asyncio.Event) -> None:
        self._streams = streams
        self._session = session
        self._dropped = dropped

    async def subscribe(self, channel: Channel, symbols: Iterable[str]) -> None:
        self._streams.subscribe(self._session, channel, symbols)

    async def unsubscribe(self, channel: Channel, symbols: Iterable[str]) -> None:
        self._streams.unsubscribe(self._session, channel, symbols)

    async def wait_closed(self) -> None:
        await self._dropped.wait()
        raise FeedDropped("the exchange closed the stream")

    async def close(self) -> None:
        self._streams.close(self._session)
