"""The live portfolio: positions revalued at quote mids, reloaded on this connection's fills,
throttled to one snapshot per interval built from the latest prices."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from server.brokers.domain import Account, AssetClass, OrderRequest, OrderSide, Position, PositionSide, Quote
from server.brokers.paper.feed import PaperFeed
from server.brokers.paper.streams import PaperStreams
from server.brokers.registry import ConnectionRef
from server.brokers.streaming import Channel, Family
from server.models import Order as OrderRow
from server.streams.backoff import Backoff
from server.streams.hub import StreamHub
from server.streams.orders import OrderUpdates
from server.streams.portfolio import PortfolioSnapshot, PortfolioWatch, revalue, snapshot
from server.trading.ledger import OrderChange
from tests.utils.paper import PaperWorld, paper_world

pytestmark = pytest.mark.anyio
WAIT_SECONDS = 2.0
SETTLE_SECONDS = 0.02  # long enough for the watch to act on an order change, were it going to
FAST = Backoff(first_seconds=0.001, max_seconds=0.01)
USER = "alice"
NOW = datetime(2026, 11, 23, 15, tzinfo=UTC)
ROW = OrderRow(
    user_id=USER,
    connection_id="c",
    client_order_id="o",
    symbol="MSFT",
    asset_class="us_equity",
    side="buy",
    order_type="market",
    time_in_force="day",
    status="filled",
)


def position(
    symbol: str, qty: str, cost_basis: str, side: PositionSide = PositionSide.LONG, **fields: object
) -> Position:
    return Position(
        symbol=symbol,
        asset_class=AssetClass.US_EQUITY,
        qty=Decimal(qty),
        side=side,
        avg_entry_price=Decimal(cost_basis) / Decimal(qty),
        cost_basis=Decimal(cost_basis),
        current_price=Decimal(0),
        market_value=Decimal(0),
        unrealized_pl=Decimal(0),
        unrealized_plpc=Decimal(0),
        **fields,  # type: ignore[arg-type]
    )


def quote(symbol: str, bid: str, ask: str) -> Quote:
    return Quote(symbol, Decimal(bid), Decimal(100), Decimal(ask), Decimal(100), NOW)


# ----- revalue and snapshot -------------------------------------------------------------------


def test_revalue_a_long_position_at_the_mid() -> None:
    valued = revalue(position("AAPL", "10", "1000"), quote("AAPL", "109.99", "110.01"))
    assert valued.current_price == Decimal("110.00")
    assert valued.market_value == Decimal("1100.00")
    assert valued.unrealized_pl == Decimal("100.00")
    assert valued.unrealized_plpc == Decimal("0.1000")


def test_revalue_a_short_position() -> None:
    valued = revalue(position("TSLA", "10", "1000", PositionSide.SHORT), quote("TSLA", "109.99", "110.01"))
    assert valued.market_value == Decimal("-1100.00")
    assert valued.unrealized_pl == Decimal("-100.00")
    assert valued.unrealized_plpc == Decimal("-0.1000")


def test_revalue_an_option_by_its_multiplier() -> None:
    held = replace(position("AAPL261218C00230000", "2", "1000", multiplier=100), asset_class=AssetClass.US_OPTION)
    valued = revalue(held, quote(held.symbol, "5.90", "6.10"))
    assert valued.market_value == Decimal("1200.00")
    assert valued.unrealized_pl == Decimal("200.00")


def test_revalue_without_a_cost_basis_has_no_ratio() -> None:
    valued = revalue(position("AAPL", "10", "0"), quote("AAPL", "1.00", "1.00"))
    assert valued.unrealized_plpc == Decimal(0)
    assert valued.unrealized_pl == Decimal("10.00")


def test_revalue_agrees_with_the_exchange() -> None:
    world = paper_world()
    exchange = world.exchange
    exchange.submit(world.account_id, OrderRequest(symbol="AAPL", side=OrderSide.BUY, qty=Decimal(10)))
    exchange.submit(world.account_id, OrderRequest(symbol="MSFT", side=OrderSide.SELL, qty=Decimal(20)))
    before = exchange.positions(world.account_id)
    assert {p.side for p in before} == {PositionSide.LONG, PositionSide.SHORT}
    world.step(times=30)
    for held in before:
        assert revalue(held, exchange.quote(held.symbol)) == exchange.position(world.account_id, held.symbol)


def test_snapshot_totals_the_positions(world: PaperWorld) -> None:
    account = replace(world.exchange.account(world.account_id), cash=Decimal("1000.00"))
    positions = [
        replace(position("AAPL", "10", "1000"), market_value=Decimal("1100.004"), unrealized_pl=Decimal("100.004")),
        replace(position("TSLA", "5", "600"), market_value=Decimal("-500.00"), unrealized_pl=Decimal("100.00")),
    ]
    taken = snapshot(account, positions, NOW)
    assert taken.equity == Decimal("1600.00")
    assert taken.market_value == Decimal("600.00")
    assert taken.unrealized_pl == Decimal("200.00")
    assert taken.positions == tuple(positions)
    assert taken.timestamp == NOW


# ----- PortfolioWatch over a paper exchange ---------------------------------------------------


@pytest.fixture
def world() -> PaperWorld:
    return paper_world()


@pytest.fixture
def streams(world: PaperWorld) -> PaperStreams:
    return PaperStreams(world.exchange)  # no pulse: tests publish after stepping the clock


@pytest.fixture
async def hub() -> AsyncIterator[StreamHub]:
    hub = StreamHub(grace_seconds=60, backoff=FAST)
    yield hub
    await hub.close()


class Holdings:
    """The broker's view of the account, counting how often the watch asks."""

    def __init__(self, world: PaperWorld) -> None:
        self.world = world
        self.calls = 0

    async def __call__(self) -> tuple[Account, list[Position]]:
        self.calls += 1
        exchange = self.world.exchange
        return exchange.account(self.world.account_id), exchange.positions(self.world.account_id)


class Watching:
    def __init__(self, world: PaperWorld, streams: PaperStreams, hub: StreamHub, interval: float) -> None:
        self.world = world
        self.ref = ConnectionRef(USER, world.account_id)
        self.order_updates = OrderUpdates()
        self.holdings = Holdings(world)
        self._orders = self.order_updates.subscribe(USER)
        watch = PortfolioWatch(
            self.holdings,
            hub,
            self.ref,
            self._orders,
            feeds=self._feed,
            min_interval_seconds=interval,
            now=world.clock.now,
        )
        self.updates = watch.updates()
        self._streams = streams

    def _feed(self, family: Family) -> PaperFeed:
        return PaperFeed(self._streams, self.world.account_id, family, symbol_limit=None)

    async def next(self, until: Callable[[PortfolioSnapshot], bool] = lambda _: True) -> PortfolioSnapshot:
        async with asyncio.timeout(WAIT_SECONDS):
            while not until(update := await anext(self.updates)):
                pass
        return update

    def filled(self, event: str = "fill", connection_id: str | None = None) -> None:
        self.order_updates.publish(OrderChange(USER, connection_id or self.world.account_id, event, ROW))

    def buy(self, symbol: str, qty: int) -> None:
        request = OrderRequest(symbol=symbol, side=OrderSide.BUY, qty=Decimal(qty))
        self.world.exchange.submit(self.world.account_id, request)

    async def close(self) -> None:
        await self.updates.aclose()  # type: ignore[attr-defined]
        self._orders.close()


@contextlib.asynccontextmanager
async def watching(
    world: PaperWorld, streams: PaperStreams, hub: StreamHub, *, interval: float = 0.0
) -> AsyncIterator[Watching]:
    watched = Watching(world, streams, hub, interval)
    try:
        yield watched
    finally:
        await watched.close()


def priced_now(world: PaperWorld) -> Callable[[PortfolioSnapshot], bool]:
    """Whether a snapshot prices every position at the exchange's current mid."""

    def check(update: PortfolioSnapshot) -> bool:
        return all(p.current_price == world.exchange.price_of(p.symbol) for p in update.positions)

    return check


async def test_the_first_snapshot_is_the_broker_holdings(
    world: PaperWorld, streams: PaperStreams, hub: StreamHub
) -> None:
    async with watching(world, streams, hub) as watched:
        watched.buy("AAPL", 10)
        first = await watched.next()
        exchange = world.exchange
        assert first.positions == tuple(exchange.positions(world.account_id))
        assert first.account == exchange.account(world.account_id)
        assert first.equity == first.account.equity
        assert first.timestamp == world.clock.now()
        assert hub.subscribed(watched.ref) == {(Channel.QUOTES, "AAPL"): 1}


async def test_quotes_revalue_the_positions(world: PaperWorld, streams: PaperStreams, hub: StreamHub) -> None:
    async with watching(world, streams, hub) as watched:
        watched.buy("AAPL", 10)
        watched.buy("MSFT", 20)
        first = await watched.next()
        world.step(times=30)
        streams.publish()
        moved = await watched.next(until=priced_now(world))
        assert moved.positions == tuple(world.exchange.positions(world.account_id))
        assert moved.positions != first.positions
        assert moved.equity == world.exchange.account(world.account_id).equity
        assert moved.timestamp == world.clock.now()
        assert watched.holdings.calls == 1  # prices come from quotes, not from asking the broker


async def test_a_fill_on_this_connection_reloads_the_holdings(
    world: PaperWorld, streams: PaperStreams, hub: StreamHub
) -> None:
    async with watching(world, streams, hub) as watched:
        watched.buy("AAPL", 10)
        await watched.next()
        watched.buy("MSFT", 20)
        reloading = asyncio.create_task(watched.next(until=lambda update: len(update.positions) == 2))
        watched.filled(connection_id="another-connection")  # another account of the same user
        watched.filled(event="new")  # nothing moved
        await asyncio.sleep(SETTLE_SECONDS)
        assert watched.holdings.calls == 1
        assert not reloading.done()

        watched.filled(event="partial_fill")
        reloaded = await reloading
        assert [p.symbol for p in reloaded.positions] == ["AAPL", "MSFT"]
        assert reloaded.account == world.exchange.account(world.account_id)
        assert watched.holdings.calls == 2
        assert hub.subscribed(watched.ref) == {(Channel.QUOTES, "AAPL"): 1, (Channel.QUOTES, "MSFT"): 1}


async def test_an_empty_account_starts_watching_quotes_on_its_first_fill(
    world: PaperWorld, streams: PaperStreams, hub: StreamHub
) -> None:
    async with watching(world, streams, hub) as watched:
        empty = await watched.next()
        assert empty.positions == ()
        assert empty.equity == empty.account.cash
        assert hub.subscribed(watched.ref) == {}

        watched.buy("AAPL", 10)
        watched.filled()
        bought = await watched.next()
        assert [p.symbol for p in bought.positions] == ["AAPL"]
        assert hub.subscribed(watched.ref) == {(Channel.QUOTES, "AAPL"): 1}


async def test_updates_are_throttled_and_use_the_latest_prices(
    world: PaperWorld, streams: PaperStreams, hub: StreamHub
) -> None:
    interval = 0.2
    async with watching(world, streams, hub, interval=interval) as watched:
        watched.buy("AAPL", 10)
        first = await watched.next()
        sent = time.monotonic()
        following = asyncio.create_task(watched.next())
        await asyncio.sleep(interval / 4)  # the quote sent on subscribing has arrived: the watch is holding back
        for _ in range(3):
            world.step()
            streams.publish()
            await asyncio.sleep(0)
        update = await following
        assert time.monotonic() - sent >= interval
        assert priced_now(world)(update)  # what was published while holding back, not the older quote
        assert update.positions != first.positions


async def test_closing_the_watch_releases_its_quotes(world: PaperWorld, streams: PaperStreams, hub: StreamHub) -> None:
    async with watching(world, streams, hub) as watched:
        watched.buy("AAPL", 10)
        await watched.next()
        assert hub.subscribed(watched.ref) == {(Channel.QUOTES, "AAPL"): 1}
    assert hub.subscribed(watched.ref) == {}
    assert watched.order_updates.subscriber_count(USER) == 0
