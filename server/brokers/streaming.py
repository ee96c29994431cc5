"""Market-data streams at the broker seam: channels, feed families, and what an upstream
stream connection must offer, whoever serves it (the paper exchange, Alpaca).

A `MarketFeed` opens connections; a `FeedConnection` is one live connection that takes
subscribe and unsubscribe calls and ends by raising: `FeedDropped` when it was cut (the
hub reconnects), `FeedError` when the upstream refused us (the hub tells subscribers and
does not retry on its own).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from enum import StrEnum
from typing import Protocol

from server.brokers.domain import Bar, Quote, Trade
from server.brokers.symbols import is_option_symbol


class Channel(StrEnum):
    QUOTES = "quotes"
    TRADES = "trades"
    BARS = "bars"


class Family(StrEnum):
    """Alpaca streams stocks and options on separate connections, each with its own limits."""

    STOCKS = "stocks"
    OPTIONS = "options"

    @classmethod
    def of(cls, symbol: str) -> Family:
        return cls.OPTIONS if is_option_symbol(symbol) else cls.STOCKS


MarketEvent = Quote | Trade | Bar
EventSink = Callable[[Sequence[tuple[Channel, MarketEvent]]], None]


class FeedProblem(StrEnum):
    AUTH_FAILED = "auth_failed"
    CONNECTION_LIMIT = "connection_limit"
    SYMBOL_LIMIT = "symbol_limit"
    INSUFFICIENT_SUBSCRIPTION = "insufficient_subscription"
    UNAVAILABLE = "unavailable"


class FeedError(Exception):
    """The upstream refused us: retrying the same way would fail the same way."""

    def __init__(self, problem: FeedProblem, message: str) -> None:
        super().__init__(message)
        self.problem = problem
        self.message = message


class FeedDropped(Exception):
    """The connection was cut or could not be made: worth reconnecting."""


class FeedConnection(Protocol):
    async def subscribe(self, channel: Channel, symbols: Iterable[str]) -> None: ...

    async def unsubscribe(self, channel: Channel, symbols: Iterable[str]) -> None: ...

    async def wait_closed(self) -> None:
        """Return never; raise FeedDropped or FeedError when the connection ends."""
        ...

    async def close(self) -> None: ...


class MarketFeed(Protocol):
    family: Family
    symbol_limit: int | None

    async def connect(self, deliver: EventSink) -> FeedConnection: ...
