"""The paper exchange's market-data streams, and PaperFeed, the client the hub connects through."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta

import pytest

from server.brokers.domain import Bar, Quote, Trade
from server.brokers.paper.feed import PaperFeed
from server.brokers.paper.streams import PULSE_SECONDS, STEP_SLACK_SECONDS, PaperStreams, StreamLimitError
from server.brokers.streaming import Channel, Family, FeedDropped, FeedError, FeedProblem, MarketEvent
from tests.utils.paper import PaperWorld, paper_world

pytestmark = pytest.mark.anyio
WAIT_SECONDS = 1.0
OTHER_ACCOUNT = "someone-else"


class Sink:
    """An EventSink that keeps what it is sent."""

    def __init__(self) -> None:
        self.batches: list[list[tuple[Channel, MarketEvent]]] = []

    def __call__(self, events: Sequence[tuple[Channel, MarketEvent]]) -> None:
        self.batches.append(list(events))

    def take(self) -> list[tuple[Channel, MarketEvent]]:
        events = [event for batch in self.batches for event in batch]
        self.batches.clear()
        return events


class Drops:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


@pytest.fixture
def world() -> PaperWorld:
    return paper_world()


@pytest.fixture
def streams(world: PaperWorld) -> PaperStreams:
    return PaperStreams(world.exchange)


def test_one_session_per_account_and_family(world: PaperWorld, streams: PaperStreams) -> None:
    first = streams.open(world.account_id, Family.STOCKS, Sink(), Drops())
    with pytest.raises(StreamLimitError):
        streams.open(world.account_id, Family.STOCKS, Sink(), Drops())
    streams.open(world.account_id, Family.OPTIONS, Sink(), Drops())
    streams.open(OTHER_ACCOUNT, Family.STOCKS, Sink(), Drops())
    assert len(streams.sessions(world.account_id)) == 2
    assert len(streams.sessions()) == 3

    streams.close(first)
    assert not first.open
    streams.open(world.account_id, Family.STOCKS, Sink(), Drops())
    assert streams.opened == 4


def test_subscribing_sends_the_latest_data_at_once(world: PaperWorld, streams: PaperStreams) -> None:
    world.step(times=5)
    sink = Sink()
    session = streams.open(world.account_id, Family.STOCKS, sink, Drops())
    streams.subscribe(session, Channel.QUOTES, ["AAPL", "MSFT"])
    assert sink.take() == [
        (Channel.QUOTES, world.exchange.quote("AAPL")),
        (Channel.QUOTES, world.exchange.quote("MSFT")),
    ]
    streams.subscribe(session, Channel.TRADES, ["SPY"])
    streams.subscribe(session, Channel.BARS, ["SPY"])
    market = world.exchange.market
    assert sink.take() == [
        (Channel.TRADES, market.latest_trade("SPY")),
        (Channel.BARS, market.latest_minute_bar("SPY")),
    ]
    assert session.channels[Channel.QUOTES] == {"AAPL", "MSFT"}


def test_subscribing_again_sends_nothing(world: PaperWorld, streams: PaperStreams) -> None:
    sink = Sink()
    session = streams.open(world.account_id, Family.STOCKS, sink, Drops())
    streams.subscribe(session, Channel.QUOTES, ["AAPL"])
    sink.take()
    streams.subscribe(session, Channel.QUOTES, ["AAPL"])
    assert sink.take() == []
    streams.subscribe(session, Channel.QUOTES, ["AAPL", "MSFT"])
    assert sink.take() == [(Channel.QUOTES, world.exchange.quote("MSFT"))]


def test_each_step_sends_every_session_what_changed_of_its_own(world: PaperWorld, streams: PaperStreams) -> None:
    mine, theirs = Sink(), Sink()
    session = streams.open(world.account_id, Family.STOCKS, mine, Drops())
    other = streams.open(OTHER_ACCOUNT, Family.STOCKS, theirs, Drops())
    streams.subscribe(session, Channel.QUOTES, ["AAPL"])
    streams.subscribe(other, Channel.QUOTES, ["AAPL", "MSFT"])
    streams.subscribe(other, Channel.TRADES, ["AAPL"])
    mine.take()
    theirs.take()

    world.step(times=3)  # (seeded) AAPL prints a trade in these steps
    streams.publish()
    market = world.exchange.market
    aapl, msft, trade = world.exchange.quote("AAPL"), world.exchange.quote("MSFT"), market.latest_trade("AAPL")
    mine_events = mine.take()
    assert mine_events == [(Channel.QUOTES, aapl)]
    received = theirs.take()
    assert sorted(received, key=lambda item: (item[0], item[1].symbol)) == [
        (Channel.QUOTES, aapl),
        (Channel.QUOTES, msft),
        (Channel.TRADES, trade),
    ]
    (shared,) = [event for channel, event in received if channel is Channel.QUOTES and event.symbol == "AAPL"]
    assert shared is mine_events[0][1]  # computed once, the same object for every session


def test_unchanged_data_is_not_sent_again(world: PaperWorld, streams: PaperStreams) -> None:
    sink = Sink()
    session = streams.open(world.account_id, Family.STOCKS, sink, Drops())
    streams.subscribe(session, Channel.QUOTES, ["AAPL"])
    sink.take()
    world.step()
    streams.publish()
    assert sink.take() == [(Channel.QUOTES, world.exchange.quote("AAPL"))]
    streams.publish()  # the market has not moved
    assert sink.take() == []


def test_bars_go_out_as_each_minute_closes(world: PaperWorld, streams: PaperStreams) -> None:
    sink = Sink()
    session = streams.open(world.account_id, Family.STOCKS, sink, Drops())
    streams.subscribe(session, Channel.BARS, ["SPY"])
    ((_, history),) = sink.take()
    world.step()
    streams.publish()
    sink.take()  # see test_a_bar_sent_on_subscribing_is_not_sent_again
    minute_start = world.clock.now().replace(second=0, microsecond=0)
    while world.clock.now() < minute_start + timedelta(seconds=59):
        world.step()
        streams.publish()
        assert sink.take() == []  # the minute is still in progress
    world.step()
    streams.publish()
    ((channel, bar),) = sink.take()
    assert channel is Channel.BARS
    assert isinstance(bar, Bar)
    assert isinstance(history, Bar)
    assert bar.timestamp == minute_start
    assert bar.timestamp > history.timestamp
    assert bar == world.exchange.market.latest_minute_bar("SPY")


def test_a_bar_sent_on_subscribing_is_not_sent_again(world: PaperWorld, streams: PaperStreams) -> None:
    sink = Sink()
    session = streams.open(world.account_id, Family.STOCKS, sink, Drops())
    streams.subscribe(session, Channel.BARS, ["SPY"])
    assert len(sink.take()) == 1
    world.step()  # still within the same minute: no new bar has closed
    streams.publish()
    assert sink.take() == []


def test_unsubscribed_symbols_are_not_sent(world: PaperWorld, streams: PaperStreams) -> None:
    sink = Sink()
    session = streams.open(world.account_id, Family.STOCKS, sink, Drops())
    streams.subscribe(session, Channel.QUOTES, ["AAPL", "MSFT"])
    streams.unsubscribe(session, Channel.QUOTES, ["AAPL"])
    sink.take()
    world.step()
    streams.publish()
    assert [event.symbol for _, event in sink.take()] == ["MSFT"]


def test_drop_all_cuts_every_session(world: PaperWorld, streams: PaperStreams) -> None:
    sink, drops, other_drops = Sink(), Drops(), Drops()
    session = streams.open(world.account_id, Family.STOCKS, sink, drops)
    streams.open(OTHER_ACCOUNT, Family.OPTIONS, Sink(), other_drops)
    streams.subscribe(session, Channel.QUOTES, ["AAPL"])
    sink.take()

    assert streams.drop_all() == 2
    assert (drops.count, other_drops.count) == (1, 1)
    assert streams.sessions() == []
    assert not session.open
    world.step()
    streams.publish()
    streams.subscribe(session, Channel.QUOTES, ["MSFT"])
    assert sink.take() == []  # a dropped session hears nothing more


def test_closing_a_stale_session_leaves_its_successor_open(world: PaperWorld, streams: PaperStreams) -> None:
    stale = streams.open(world.account_id, Family.STOCKS, Sink(), Drops())
    streams.drop_all()
    fresh = streams.open(world.account_id, Family.STOCKS, Sink(), Drops())
    streams.close(stale)
    assert streams.sessions(world.account_id) == [fresh]
    assert fresh.open


async def test_the_pulse_publishes_when_the_market_steps(world: PaperWorld, streams: PaperStreams) -> None:
    sink = Sink()
    session = streams.open(world.account_id, Family.STOCKS, sink, Drops())
    streams.subscribe(session, Channel.QUOTES, ["AAPL"])
    sink.take()
    streams.start()
    streams.start()  # one pulse task, however often started
    try:
        await asyncio.sleep(PULSE_SECONDS * 3)
        assert sink.take() == []  # the clock has not moved

        world.clock.advance(1)
        async with asyncio.timeout(WAIT_SECONDS):
            while not sink.batches:  # noqa: ASYNC110  (polls the pulse task's output)
                await asyncio.sleep(PULSE_SECONDS / 2)
        assert sink.take() == [(Channel.QUOTES, world.exchange.quote("AAPL"))]
    finally:
        await streams.stop()
    world.clock.advance(1)
    await asyncio.sleep(PULSE_SECONDS * 3)
    assert sink.take() == []


# ----- PaperFeed ------------------------------------------------------------------------------


def feed(world: PaperWorld, streams: PaperStreams, family: Family = Family.STOCKS) -> PaperFeed:
    return PaperFeed(streams, world.account_id, family, symbol_limit=30)


async def test_paper_feed_allows_one_connection_per_account_and_family(
    world: PaperWorld, streams: PaperStreams
) -> None:
    stocks = feed(world, streams)
    assert (stocks.family, stocks.symbol_limit) == (Family.STOCKS, 30)
    connection = await stocks.connect(Sink())
    with pytest.raises(FeedError) as refused:
        await stocks.connect(Sink())
    assert refused.value.problem is FeedProblem.CONNECTION_LIMIT
    await feed(world, streams, Family.OPTIONS).connect(Sink())

    await connection.close()
    assert [s.family for s in streams.sessions(world.account_id)] == [Family.OPTIONS]
    await stocks.connect(Sink())


async def test_paper_feed_subscribes_its_session(world: PaperWorld, streams: PaperStreams) -> None:
    world.step(times=5)  # so that AAPL has printed a trade
    sink = Sink()
    connection = await feed(world, streams).connect(sink)
    await connection.subscribe(Channel.QUOTES, ["AAPL", "MSFT"])
    await connection.subscribe(Channel.TRADES, ["AAPL"])
    await connection.unsubscribe(Channel.QUOTES, ["MSFT"])
    (session,) = streams.sessions(world.account_id)
    assert session.channels == {Channel.QUOTES: {"AAPL"}, Channel.TRADES: {"AAPL"}, Channel.BARS: set()}
    events = sink.take()
    assert [(channel, type(event), event.symbol) for channel, event in events] == [
        (Channel.QUOTES, Quote, "AAPL"),
        (Channel.QUOTES, Quote, "MSFT"),
        (Channel.TRADES, Trade, "AAPL"),
    ]


async def test_paper_feed_connection_ends_dropped_when_the_exchange_cuts_it(
    world: PaperWorld, streams: PaperStreams
) -> None:
    connection = await feed(world, streams).connect(Sink())
    waiting = asyncio.create_task(connection.wait_closed())
    await asyncio.sleep(0.01)
    assert not waiting.done()
    streams.drop_all()
    async with asyncio.timeout(WAIT_SECONDS):
        with pytest.raises(FeedDropped):
            await waiting
    await connection.close()  # closing after the drop is harmless
    await feed(world, streams).connect(Sink())  # and a reconnect is allowed


def test_the_pulse_looks_again_just_as_the_next_step_begins() -> None:
    world = paper_world()
    streams = PaperStreams(world.exchange)
    market = world.exchange.market
    tick = market.tick.total_seconds()
    assert streams._until_next_look() == PULSE_SECONDS  # a step just began: the next is far off
    world.clock.advance(tick - 0.005)  # 5 ms before the next step
    assert 0.005 < streams._until_next_look() <= 0.005 + STEP_SLACK_SECONDS + 1e-9
    step = market.current_step()
    world.clock.advance(streams._until_next_look())
    assert market.current_step() == step + 1  # waking then finds the new step
