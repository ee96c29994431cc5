"""StreamHub: one upstream connection per user connection and family, refcounted symbols,
limits checked before anything changes, a grace period before hanging up, failures fanned out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from server.brokers.domain import Quote
from server.brokers.paper.feed import PaperFeed
from server.brokers.paper.streams import PaperStreams
from server.brokers.registry import ConnectionRef
from server.brokers.streaming import Channel, EventSink, Family, FeedError, FeedProblem, MarketEvent
from server.streams import hub as hub_module
from server.streams.backoff import Backoff
from server.streams.hub import MarketSubscription, StreamHub, SymbolLimitError
from server.streams.runner import FeedFailure
from tests.utils.feeds import FakeConnection
from tests.utils.paper import paper_world

pytestmark = pytest.mark.anyio
WAIT_SECONDS = 1.0
SETTLE_SECONDS = 0.02  # long enough for a runner to act on a change, were it going to
FAST = Backoff(first_seconds=0.001, max_seconds=0.01)
ALICE = ConnectionRef("alice", "alice-paper")
BOB = ConnectionRef("bob", "bob-paper")
OPTION = "AAPL261218C00230000"


class FakeFeed:
    def __init__(self, family: Family, symbol_limit: int | None) -> None:
        self.family = family
        self.symbol_limit = symbol_limit
        self.connections: list[FakeConnection] = []
        self.refusal: FeedError | None = None  # every connect raises it while set

    @property
    def connection(self) -> FakeConnection:
        assert len(self.connections) == 1
        return self.connections[0]

    async def connect(self, deliver: EventSink) -> FakeConnection:
        connection = FakeConnection(deliver)
        self.connections.append(connection)
        if self.refusal is not None:
            raise self.refusal
        return connection


class Feeds:
    """One user's feed factory, remembering every feed it built."""

    def __init__(self, limits: dict[Family, int] | None = None) -> None:
        self.limits = limits or {}
        self.built: list[FakeFeed] = []

    def __call__(self, family: Family) -> FakeFeed:
        feed = FakeFeed(family, self.limits.get(family))
        self.built.append(feed)
        return feed

    def __getitem__(self, family: Family) -> FakeFeed:
        (feed,) = (feed for feed in self.built if feed.family is family)
        return feed


@pytest.fixture
async def hub() -> AsyncIterator[StreamHub]:
    hub = StreamHub(grace_seconds=60, backoff=FAST)
    yield hub
    await hub.close()


async def eventually(check: Callable[[], bool]) -> None:
    """Wait, bounded, for another task to bring about what `check` looks for."""
    async with asyncio.timeout(WAIT_SECONDS):
        while not check():  # noqa: ASYNC110  (polls another task's state)
            await asyncio.sleep(0.001)


async def subscribed_upstream(feeds: Feeds, family: Family, calls: int) -> FakeConnection:
    """The family's one connection, once it has had `calls` subscribe/unsubscribe calls."""
    await eventually(lambda: any(f.family is family and len(f.connections) == 1 for f in feeds.built))
    connection = feeds[family].connection
    await eventually(lambda: len(connection.calls) >= calls)
    assert len(connection.calls) == calls
    return connection


def quote(symbol: str, bid: str) -> Quote:
    price = Decimal(bid)
    return Quote(symbol, price, Decimal(1), price + Decimal("0.02"), Decimal(1), datetime(2026, 11, 23, 15, tzinfo=UTC))


async def next_events(subscription: MarketSubscription) -> list[MarketEvent]:
    async with asyncio.timeout(WAIT_SECONDS):
        return await subscription.mailbox.take()


async def test_subscriptions_of_a_user_connection_share_one_upstream_connection(hub: StreamHub) -> None:
    alice, bob = Feeds(), Feeds()
    hub.subscribe(ALICE, {Channel.QUOTES: ["AAPL"]}, alice)
    hub.subscribe(ALICE, {Channel.TRADES: ["MSFT"]}, alice)
    hub.subscribe(BOB, {Channel.QUOTES: ["AAPL"]}, bob)
    await subscribed_upstream(alice, Family.STOCKS, 2)
    await subscribed_upstream(bob, Family.STOCKS, 1)
    assert len(alice.built) == 1
    assert len(bob.built) == 1
    assert set(hub.runners(ALICE)) == {Family.STOCKS}


async def test_each_family_has_its_own_connection(hub: StreamHub) -> None:
    feeds = Feeds()
    hub.subscribe(ALICE, {Channel.QUOTES: ["AAPL", OPTION]}, feeds)
    stocks = await subscribed_upstream(feeds, Family.STOCKS, 1)
    options = await subscribed_upstream(feeds, Family.OPTIONS, 1)
    assert stocks.calls == [("subscribe", Channel.QUOTES, ["AAPL"])]
    assert options.calls == [("subscribe", Channel.QUOTES, [OPTION])]


async def test_symbols_are_refcounted(hub: StreamHub) -> None:
    feeds = Feeds()
    first = hub.subscribe(ALICE, {Channel.QUOTES: ["AAPL"]}, feeds)
    connection = await subscribed_upstream(feeds, Family.STOCKS, 1)
    second = hub.subscribe(ALICE, {Channel.QUOTES: ["AAPL", "MSFT"]}, feeds)
    await eventually(lambda: len(connection.calls) == 2)
    assert connection.calls[1] == ("subscribe", Channel.QUOTES, ["MSFT"])  # AAPL is not asked for again
    assert hub.subscribed(ALICE) == {(Channel.QUOTES, "AAPL"): 2, (Channel.QUOTES, "MSFT"): 1}

    first.close()
    await asyncio.sleep(SETTLE_SECONDS)
    assert len(connection.calls) == 2  # AAPL is still wanted by the second subscription
    assert hub.subscribed(ALICE) == {(Channel.QUOTES, "AAPL"): 1, (Channel.QUOTES, "MSFT"): 1}

    second.close()
    await eventually(lambda: len(connection.calls) == 3)
    assert connection.calls[2] == ("unsubscribe", Channel.QUOTES, ["AAPL", "MSFT"])
    assert hub.subscribed(ALICE) == {}


async def test_closing_twice_releases_once(hub: StreamHub) -> None:
    feeds = Feeds()
    first = hub.subscribe(ALICE, {Channel.QUOTES: ["AAPL"]}, feeds)
    hub.subscribe(ALICE, {Channel.QUOTES: ["AAPL"]}, feeds)
    first.close()
    first.close()
    assert hub.subscribed(ALICE) == {(Channel.QUOTES, "AAPL"): 1}


async def test_events_reach_only_the_subscribers_of_their_key(hub: StreamHub) -> None:
    feeds = Feeds()
    quotes = hub.subscribe(ALICE, {Channel.QUOTES: ["AAPL"]}, feeds)
    trades = hub.subscribe(ALICE, {Channel.TRADES: ["AAPL"]}, feeds)
    other = hub.subscribe(ALICE, {Channel.QUOTES: ["MSFT"]}, feeds)
    connection = await subscribed_upstream(feeds, Family.STOCKS, 2)
    event = quote("AAPL", "100.00")
    connection.deliver([(Channel.QUOTES, event)])
    assert await next_events(quotes) == [event]
    assert len(trades.mailbox) == 0
    assert len(other.mailbox) == 0


async def test_a_new_subscriber_gets_the_latest_value_at_once(hub: StreamHub) -> None:
    feeds = Feeds()
    hub.subscribe(ALICE, {Channel.QUOTES: ["AAPL"]}, feeds)
    connection = await subscribed_upstream(feeds, Family.STOCKS, 1)
    connection.deliver([(Channel.QUOTES, quote("AAPL", "100.00")), (Channel.QUOTES, quote("AAPL", "101.00"))])
    late = hub.subscribe(ALICE, {Channel.QUOTES: ["AAPL"]}, feeds)
    assert late.mailbox.drain() == [quote("AAPL", "101.00")]


async def test_a_slow_subscriber_holds_one_value_per_key(hub: StreamHub) -> None:
    feeds = Feeds()
    subscription = hub.subscribe(ALICE, {Channel.QUOTES: ["AAPL", "MSFT"]}, feeds)
    connection = await subscribed_upstream(feeds, Family.STOCKS, 1)
    for cents in range(500):
        bid = f"{100 + cents / 100:.2f}"
        connection.deliver([(Channel.QUOTES, quote("AAPL", bid)), (Channel.QUOTES, quote("MSFT", bid))])
    assert len(subscription.mailbox) == 2
    assert await next_events(subscription) == [quote("AAPL", "104.99"), quote("MSFT", "104.99")]


async def test_over_the_symbol_limit_a_subscription_is_refused_alone(hub: StreamHub) -> None:
    feeds = Feeds({Family.STOCKS: 2})
    held = hub.subscribe(ALICE, {Channel.QUOTES: ["AAPL", "MSFT"]}, feeds)
    connection = await subscribed_upstream(feeds, Family.STOCKS, 1)

    with pytest.raises(SymbolLimitError) as refused:
        hub.subscribe(ALICE, {Channel.QUOTES: ["TSLA"], Channel.TRADES: ["AAPL"]}, feeds)
    assert (refused.value.family, refused.value.limit, refused.value.wanted) == (Family.STOCKS, 2, 3)
    await asyncio.sleep(SETTLE_SECONDS)
    assert len(connection.calls) == 1
    assert hub.subscribed(ALICE) == {(Channel.QUOTES, "AAPL"): 1, (Channel.QUOTES, "MSFT"): 1}

    event = quote("MSFT", "300.00")
    connection.deliver([(Channel.QUOTES, event)])
    assert await next_events(held) == [event]
    # Symbols already held do not count twice, on any channel; another family has its own limit.
    hub.subscribe(ALICE, {Channel.TRADES: ["AAPL", "MSFT"], Channel.QUOTES: [OPTION]}, feeds)
    assert len(hub.subscribed(ALICE)) == 5


async def test_a_first_subscription_over_the_limit_opens_nothing(hub: StreamHub) -> None:
    feeds = Feeds({Family.OPTIONS: 1})
    with pytest.raises(SymbolLimitError):
        hub.subscribe(ALICE, {Channel.QUOTES: [OPTION, "AAPL261218P00230000"]}, feeds)
    await asyncio.sleep(SETTLE_SECONDS)
    assert hub.runners(ALICE) == {}
    assert all(feed.connections == [] for feed in feeds.built)


async def test_a_drop_reconnects_and_resubscribes_every_symbol(hub: StreamHub) -> None:
    feeds = Feeds()
    quotes = hub.subscribe(ALICE, {Channel.QUOTES: ["AAPL", "MSFT"]}, feeds)
    hub.subscribe(ALICE, {Channel.TRADES: ["AAPL"]}, feeds)
    first = await subscribed_upstream(feeds, Family.STOCKS, 2)
    first.drop()
    feed = feeds[Family.STOCKS]
    await eventually(lambda: len(feed.connections) == 2 and len(feed.connections[1].calls) == 2)
    second = feed.connections[1]
    assert first.closed
    assert second.calls == [
        ("subscribe", Channel.QUOTES, ["AAPL", "MSFT"]),
        ("subscribe", Channel.TRADES, ["AAPL"]),
    ]
    event = quote("AAPL", "99.00")
    second.deliver([(Channel.QUOTES, event)])
    assert await next_events(quotes) == [event]


async def test_a_refusal_fails_every_subscription_of_that_family(hub: StreamHub) -> None:
    feeds = Feeds()
    first = hub.subscribe(ALICE, {Channel.QUOTES: ["AAPL"]}, feeds)
    second = hub.subscribe(ALICE, {Channel.TRADES: ["MSFT"]}, feeds)
    options = hub.subscribe(ALICE, {Channel.QUOTES: [OPTION]}, feeds)
    stocks = await subscribed_upstream(feeds, Family.STOCKS, 2)
    option_connection = await subscribed_upstream(feeds, Family.OPTIONS, 1)

    stocks.refuse(FeedProblem.INSUFFICIENT_SUBSCRIPTION, "upgrade your plan")
    for subscription in (first, second):
        with pytest.raises(FeedFailure) as failed:
            async with asyncio.timeout(WAIT_SECONDS):
                await anext(subscription.events())
        assert failed.value.problem is FeedProblem.INSUFFICIENT_SUBSCRIPTION
        assert failed.value.message == "upgrade your plan"

    assert hub.subscribed(ALICE) == {(Channel.QUOTES, OPTION): 1}
    event = quote(OPTION, "5.00")
    option_connection.deliver([(Channel.QUOTES, event)])
    assert await next_events(options) == [event]


async def test_a_refusal_is_not_retried(hub: StreamHub) -> None:
    feeds = Feeds()
    first = hub.subscribe(ALICE, {Channel.QUOTES: ["AAPL"]}, feeds)
    second = hub.subscribe(ALICE, {Channel.QUOTES: ["MSFT"]}, feeds)
    connection = await subscribed_upstream(feeds, Family.STOCKS, 1)
    runner = hub.runners(ALICE)[Family.STOCKS]
    connection.refuse(FeedProblem.CONNECTION_LIMIT, "connection limit exceeded")
    await asyncio.wait([runner.task], timeout=WAIT_SECONDS)
    for subscription in (first, second):
        with pytest.raises(FeedFailure):
            await next_events(subscription)
    assert hub.runners(ALICE) == {}
    await asyncio.sleep(SETTLE_SECONDS)
    assert len(feeds[Family.STOCKS].connections) == 1


async def test_the_last_close_keeps_the_connection_for_the_grace_period(hub: StreamHub) -> None:
    feeds = Feeds()
    subscription = hub.subscribe(ALICE, {Channel.QUOTES: ["AAPL"]}, feeds)
    connection = await subscribed_upstream(feeds, Family.STOCKS, 1)
    subscription.close()
    await eventually(lambda: len(connection.calls) == 2)
    assert connection.calls[1] == ("unsubscribe", Channel.QUOTES, ["AAPL"])
    assert not connection.closed
    assert set(hub.runners(ALICE)) == {Family.STOCKS}

    hub.subscribe(ALICE, {Channel.QUOTES: ["AAPL"]}, feeds)  # a page reload
    await eventually(lambda: len(connection.calls) == 3)
    assert connection.calls[2] == ("subscribe", Channel.QUOTES, ["AAPL"])
    assert len(feeds.built) == 1
    assert len(feeds[Family.STOCKS].connections) == 1


async def test_the_connection_closes_once_the_grace_period_ends() -> None:
    hub = StreamHub(grace_seconds=0.01, backoff=FAST)
    feeds = Feeds()
    try:
        subscription = hub.subscribe(ALICE, {Channel.QUOTES: ["AAPL"]}, feeds)
        connection = await subscribed_upstream(feeds, Family.STOCKS, 1)
        runner = hub.runners(ALICE)[Family.STOCKS]
        subscription.close()
        await asyncio.wait([runner.task], timeout=WAIT_SECONDS)
        assert runner.task.done()
        assert connection.closed
        assert hub.runners(ALICE) == {}

        hub.subscribe(ALICE, {Channel.QUOTES: ["AAPL"]}, feeds)  # a later subscription starts afresh
        await eventually(lambda: len(feeds.built) == 2 and bool(feeds.built[1].connections))
    finally:
        await hub.close()


async def test_a_subscription_within_the_grace_period_starts_it_over() -> None:
    hub = StreamHub(grace_seconds=0.2, backoff=FAST)
    feeds = Feeds()
    try:
        hub.subscribe(ALICE, {Channel.QUOTES: ["AAPL"]}, feeds).close()
        await asyncio.sleep(0.1)
        hub.subscribe(ALICE, {Channel.QUOTES: ["MSFT"]}, feeds).close()  # the grace period starts again
        await asyncio.sleep(0.15)  # past the first close's grace period, within the second's
        assert set(hub.runners(ALICE)) == {Family.STOCKS}
        assert len(feeds.built) == 1
        assert not feeds[Family.STOCKS].connection.closed
    finally:
        await hub.close()


async def test_close_stops_every_feed_within_a_second(hub: StreamHub) -> None:
    alice, bob = Feeds(), Feeds()
    hub.subscribe(ALICE, {Channel.QUOTES: ["AAPL", OPTION]}, alice)
    hub.subscribe(BOB, {Channel.BARS: ["SPY"]}, bob)
    await subscribed_upstream(alice, Family.OPTIONS, 1)
    await subscribed_upstream(bob, Family.STOCKS, 1)
    runners = [*hub.runners(ALICE).values(), *hub.runners(BOB).values()]
    async with asyncio.timeout(1.0):
        await hub.close()
    assert all(runner.task.done() for runner in runners)
    assert all(connection.closed for feeds in (alice, bob) for f in feeds.built for connection in f.connections)
    assert hub.runners(ALICE) == {}
    assert hub.subscribed(BOB) == {}


async def test_close_does_not_wait_on_an_upstream_that_hangs(monkeypatch: pytest.MonkeyPatch, hub: StreamHub) -> None:
    monkeypatch.setattr(hub_module, "STOP_TIMEOUT_SECONDS", 0.05)
    feeds = Feeds()
    hub.subscribe(ALICE, {Channel.QUOTES: ["AAPL"]}, feeds)
    connection = await subscribed_upstream(feeds, Family.STOCKS, 1)
    connection.close_hangs = True
    runner = hub.runners(ALICE)[Family.STOCKS]
    async with asyncio.timeout(0.5):
        await hub.close()
    assert runner.task.done()  # its hanging close was abandoned when the hub's stop timeout ran out
    assert not connection.closed


async def test_paper_feeds_reconnect_after_the_exchange_drops_them(hub: StreamHub) -> None:
    world = paper_world()
    streams = PaperStreams(world.exchange)

    def feeds(family: Family) -> PaperFeed:
        return PaperFeed(streams, world.account_id, family, symbol_limit=None)

    subscription = hub.subscribe(ALICE, {Channel.QUOTES: ["AAPL", "MSFT"]}, feeds)
    hub.subscribe(ALICE, {Channel.TRADES: ["AAPL"]}, feeds)
    await eventually(lambda: len(subscription.mailbox) == 2)  # the latest quotes, sent on subscribing
    subscription.mailbox.drain()

    assert streams.drop_all() == 1
    await eventually(lambda: streams.opened == 2 and len(streams.sessions()) == 1)
    (session,) = streams.sessions()
    await eventually(lambda: session.symbols() == {"AAPL", "MSFT"})
    assert session.channels[Channel.QUOTES] == {"AAPL", "MSFT"}
    assert session.channels[Channel.TRADES] == {"AAPL"}

    subscription.mailbox.drain()
    world.step()
    streams.publish()
    events = await next_events(subscription)
    assert {event.symbol for event in events} == {"AAPL", "MSFT"}
    assert world.exchange.quote("AAPL") in events
