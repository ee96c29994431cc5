"""A live view of one broker account: positions revalued as their quotes tick.

Positions and cash come from the broker (through `holdings`), again whenever one of the owner's orders fills;
prices come from the user's shared quote feed. Updates are throttled: however fast quotes
arrive, a subscriber gets at most one snapshot per interval, always built from the
latest prices.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

from server.brokers.domain import Account, Position, PositionSide, Quote
from server.brokers.registry import ConnectionRef
from server.brokers.streaming import Channel, MarketEvent
from server.streams.hub import FeedFactory, MarketSubscription, StreamHub
from server.streams.orders import OrderFeed
from server.trading.ledger import OrderChange

CENT = Decimal("0.01")
RATIO = Decimal("0.0001")
POSITION_EVENTS = frozenset({"fill", "partial_fill"})


@dataclass(frozen=True, slots=True)
class PortfolioSnapshot:
    account: Account
    positions: tuple[Position, ...]
    equity: Decimal
    market_value: Decimal
    unrealized_pl: Decimal
    timestamp: datetime


def revalue(position: Position, quote: Quote) -> Position:
    """`position` at the quote's mid price (what the paper exchange values holdings at)."""
    price = (quote.bid_price + quote.ask_price) / 2
    sign = 1 if position.side is PositionSide.LONG else -1
    market_value = sign * position.qty * price * position.multiplier
    unrealized = market_value - sign * position.cost_basis
    return replace(
        position,
        current_price=price,
        market_value=market_value.quantize(CENT) + 0,
        unrealized_pl=unrealized.quantize(CENT) + 0,
        unrealized_plpc=(unrealized / position.cost_basis).quantize(RATIO) if position.cost_basis else Decimal(0),
    )


def snapshot(account: Account, positions: Sequence[Position], now: datetime) -> PortfolioSnapshot:
    market_value = sum((p.market_value for p in positions), Decimal(0))
    return PortfolioSnapshot(
        account=account,
        positions=tuple(positions),
        equity=(account.cash + market_value).quantize(CENT),
        market_value=market_value.quantize(CENT),
        unrealized_pl=sum((p.unrealized_pl for p in positions), Decimal(0)).quantize(CENT),
        timestamp=now,
    )


class PortfolioWatch:
    def __init__(
        self,
        holdings: Callable[[], Awaitable[tuple[Account, list[Position]]]],
        hub: StreamHub,
        ref: ConnectionRef,
        orders: OrderFeed,
        *,
        feeds: FeedFactory,
        min_interval_seconds: float,
        now: Callable[[], datetime],
    ) -> None:
        self._holdings, self._hub, self._ref, self._orders = holdings, hub, ref, orders
        self._feeds = feeds
        self._min_interval = min_interval_seconds
        self._now = now
        self._account: Account | None = None
        self._positions: dict[str, Position] = {}
        self._quotes: MarketSubscription | None = None

    async def updates(self) -> AsyncIterator[PortfolioSnapshot]:
        order_task: asyncio.Task[OrderChange] | None = None
        quote_task: asyncio.Task[list[MarketEvent]] | None = None
        try:
            await self._reload()
            yield self._snapshot()
            last_sent = time.monotonic()
            while True:
                order_task = order_task or asyncio.create_task(self._orders.next())
                quote_task = quote_task or self._watch_quotes()
                waiting = {order_task} if quote_task is None else {order_task, quote_task}
                done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                moved = False
                if order_task in done:
                    change = order_task.result()
                    order_task = None
                    if change.event in POSITION_EVENTS and change.connection_id == self._ref.connection_id:
                        if quote_task is not None:
                            quote_task.cancel()
                            quote_task = None
                        await self._reload()
                        moved = True
                if quote_task is not None and quote_task in done:
                    moved = self._apply(quote_task.result()) or moved
                    quote_task = None
                if not moved:
                    continue
                wait = self._min_interval - (time.monotonic() - last_sent)
                if wait > 0:
                    await asyncio.sleep(wait)
                    if self._quotes is not None:
                        self._apply(self._quotes.mailbox.drain())
                yield self._snapshot()
                last_sent = time.monotonic()
        finally:
            for task in (order_task, quote_task):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            if self._quotes is not None:
                self._quotes.close()

    def _watch_quotes(self) -> asyncio.Task[list[MarketEvent]] | None:
        if self._quotes is None:
            return None
        return asyncio.create_task(self._quotes.mailbox.take())

    async def _reload(self) -> None:
        self._account, positions = await self._holdings()
        self._positions = {p.symbol: p for p in positions}
        previous = self._quotes
        wanted = {Channel.QUOTES: list(self._positions)}
        self._quotes = self._hub.subscribe(self._ref, wanted, self._feeds) if self._positions else None
        if previous is not None:
            previous.close()  # after subscribing anew, so symbols still held are not dropped upstream

    def _apply(self, events: Sequence[MarketEvent]) -> bool:
        moved = False
        for event in events:
            if isinstance(event, Quote) and event.symbol in self._positions:
                self._positions[event.symbol] = revalue(self._positions[event.symbol], event)
                moved = True
        return moved

    def _snapshot(self) -> PortfolioSnapshot:
        assert self._account is not None
        return snapshot(self._account, sorted(self._positions.values(), key=lambda p: p.symbol), self._now())
