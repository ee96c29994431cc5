"""FeedRunner: connect, subscribe what is wanted, reconnect after drops, give up on refusals."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from server.brokers.domain import Quote
from server.brokers.streaming import (
    Channel,
    EventSink,
    Family,
    FeedDropped,
    FeedError,
    FeedProblem,
    MarketEvent,
)
from server.streams import runner as runner_module
from server.streams.backoff import Backoff
from server.streams.runner import MAX_FAILED_CONNECTS, FeedFailure, FeedRunner
from tests.utils.feeds import FakeConnection

pytestmark = pytest.mark.anyio
WAIT_SECONDS = 1.0
FAST = Backoff(first_seconds=0.001, max_seconds=0.01)


class FakeFeed:
    def __init__(self, family: Family = Family.STOCKS) -> None:
        self.family = family
        self.symbol_limit: int | None = None
        self.connections: list[FakeConnection] = []
        self.attempts = 0
        self.failures: list[Exception] = []  # raised by the next connects, in order
        self.hangs = 0  # connects that never answer, before the failures

    async def connect(self, deliver: EventSink) -> FakeConnection:
        self.attempts += 1
        if self.hangs:
            self.hangs -= 1
            await asyncio.Event().wait()
        if self.failures:
            raise self.failures.pop(0)
        connection = FakeConnection(deliver)
        self.connections.append(connection)
        return connection


class Harness:
    def __init__(self, feed: FakeFeed) -> None:
        self.feed = feed
        self.events: list[tuple[Channel, MarketEvent]] = []
        self.failures: list[tuple[FeedRunner, FeedFailure]] = []
        self.runner = FeedRunner(feed, self.events.extend, self._failed, backoff=FAST)

    def _failed(self, runner: FeedRunner, failure: FeedFailure) -> None:
        self.failures.append((runner, failure))


@contextlib.asynccontextmanager
async def running(feed: FakeFeed) -> AsyncIterator[Harness]:
    harness = Harness(feed)
    try:
        yield harness
    finally:
        harness.runner.stop()
        await asyncio.wait([harness.runner.task], timeout=WAIT_SECONDS)
        assert harness.runner.task.done()


async def eventually(check: Callable[[], bool]) -> None:
    """Wait, bounded, for another task to bring about what `check` looks for."""
    async with asyncio.timeout(WAIT_SECONDS):
        while not check():  # noqa: ASYNC110  (polls another task's state)
            await asyncio.sleep(0.001)


def quote(symbol: str, bid: str) -> Quote:
    price = Decimal(bid)
    return Quote(symbol, price, Decimal(1), price + Decimal("0.02"), Decimal(1), datetime(2026, 11, 23, 15, tzinfo=UTC))


async def test_subscribes_what_is_wanted_once_connected() -> None:
    feed = FakeFeed()
    async with running(feed) as harness:
        harness.runner.want({Channel.QUOTES: {"MSFT", "AAPL"}, Channel.TRADES: {"AAPL"}})
        await eventually(lambda: len(feed.connections) == 1 and len(feed.connections[0].calls) == 2)
        assert feed.connections[0].calls == [
            ("subscribe", Channel.QUOTES, ["AAPL", "MSFT"]),
            ("subscribe", Channel.TRADES, ["AAPL"]),
        ]
        assert harness.runner.connected
        assert harness.runner.connects == 1
        assert harness.failures == []


async def test_a_change_sends_only_the_difference() -> None:
    feed = FakeFeed()
    async with running(feed) as harness:
        harness.runner.want({Channel.QUOTES: {"AAPL", "MSFT"}})
        await eventually(lambda: bool(feed.connections) and len(feed.connections[0].calls) == 1)
        harness.runner.want({Channel.QUOTES: {"MSFT", "TSLA"}})
        connection = feed.connections[0]
        await eventually(lambda: len(connection.calls) == 3)
        assert connection.calls[1:] == [
            ("unsubscribe", Channel.QUOTES, ["AAPL"]),
            ("subscribe", Channel.QUOTES, ["TSLA"]),
        ]
        harness.runner.want({})
        await eventually(lambda: len(connection.calls) == 4)
        assert connection.calls[3] == ("unsubscribe", Channel.QUOTES, ["MSFT", "TSLA"])
        assert not connection.closed  # nothing wanted is not a reason to hang up
        assert feed.attempts == 1


async def test_events_reach_the_owner() -> None:
    feed = FakeFeed()
    async with running(feed) as harness:
        await eventually(lambda: bool(feed.connections))
        event = quote("AAPL", "100.00")
        feed.connections[0].deliver([(Channel.QUOTES, event)])
        assert harness.events == [(Channel.QUOTES, event)]


async def test_a_drop_reconnects_and_resubscribes_everything_wanted() -> None:
    feed = FakeFeed()
    async with running(feed) as harness:
        harness.runner.want({Channel.QUOTES: {"AAPL", "MSFT"}, Channel.BARS: {"SPY"}})
        await eventually(lambda: bool(feed.connections) and len(feed.connections[0].calls) == 2)
        first = feed.connections[0]
        first.drop()
        await eventually(lambda: len(feed.connections) == 2 and len(feed.connections[1].calls) == 2)
        assert first.closed
        assert feed.connections[1].calls == [
            ("subscribe", Channel.QUOTES, ["AAPL", "MSFT"]),
            ("subscribe", Channel.BARS, ["SPY"]),
        ]
        assert harness.runner.connects == 2
        assert harness.runner.connected
        assert harness.failures == []


async def test_failed_connects_are_retried() -> None:
    feed = FakeFeed()
    feed.failures = [FeedDropped("no route"), OSError("refused"), FeedDropped("reset")]
    async with running(feed) as harness:
        harness.runner.want({Channel.QUOTES: {"AAPL"}})
        await eventually(lambda: bool(feed.connections) and bool(feed.connections[0].calls))
        assert feed.attempts == 4
        assert harness.runner.connects == 1
        assert feed.connections[0].calls == [("subscribe", Channel.QUOTES, ["AAPL"])]
        assert harness.failures == []


async def test_a_connect_that_hangs_times_out_and_is_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner_module, "CONNECT_TIMEOUT_SECONDS", 0.01)
    feed = FakeFeed()
    feed.hangs = 1
    async with running(feed) as harness:
        await eventually(lambda: bool(feed.connections))
        assert feed.attempts == 2
        assert harness.failures == []


async def test_gives_up_as_unavailable_after_too_many_failed_connects() -> None:
    feed = FakeFeed()
    feed.failures = [FeedDropped("down")] * (MAX_FAILED_CONNECTS + 5)
    async with running(feed) as harness:
        await eventually(harness.runner.task.done)
        assert feed.attempts == MAX_FAILED_CONNECTS
        assert len(harness.failures) == 1
        runner, failure = harness.failures[0]
        assert runner is harness.runner
        assert failure.problem is FeedProblem.UNAVAILABLE


async def test_a_refused_connect_fails_at_once_without_retrying() -> None:
    feed = FakeFeed()
    feed.failures = [FeedError(FeedProblem.AUTH_FAILED, "bad keys")]
    async with running(feed) as harness:
        await eventually(harness.runner.task.done)
        assert harness.runner.task.exception() is None
        assert feed.attempts == 1
        assert [(f.problem, f.message) for _, f in harness.failures] == [(FeedProblem.AUTH_FAILED, "bad keys")]


async def test_a_refusal_while_connected_fails_and_hangs_up() -> None:
    feed = FakeFeed()
    async with running(feed) as harness:
        harness.runner.want({Channel.QUOTES: {"AAPL"}})
        await eventually(lambda: bool(feed.connections) and bool(feed.connections[0].calls))
        feed.connections[0].refuse(FeedProblem.SYMBOL_LIMIT, "symbol limit exceeded")
        await eventually(harness.runner.task.done)
        assert feed.connections[0].closed
        assert not harness.runner.connected
        assert feed.attempts == 1
        assert [(f.problem, str(f)) for _, f in harness.failures] == [
            (FeedProblem.SYMBOL_LIMIT, "symbol limit exceeded")
        ]


async def test_stop_closes_the_connection() -> None:
    feed = FakeFeed()
    harness = Harness(feed)
    await eventually(lambda: harness.runner.connected)
    task = harness.runner.stop()
    await asyncio.wait([task], timeout=WAIT_SECONDS)
    assert task.cancelled()
    assert feed.connections[0].closed
    assert not harness.runner.connected
    assert harness.failures == []


class RecordedBackoff:
    """FAST's delays, with the attempt number of each wait recorded."""

    def __init__(self) -> None:
        self.attempts: list[int] = []

    def delay(self, attempt: int) -> float:
        self.attempts.append(attempt)
        return FAST.delay(attempt)

    def after_drop(self, attempt: int, session_seconds: float) -> int:
        return FAST.after_drop(attempt, session_seconds)


async def test_sessions_that_drop_at_once_back_off_more_each_time() -> None:
    feed = FakeFeed()
    backoff = RecordedBackoff()
    runner = FeedRunner(feed, lambda _events: None, lambda _runner, _failure: None, backoff=backoff)  # type: ignore[arg-type]
    try:
        for dropped in range(3):
            await eventually(lambda n=dropped: len(feed.connections) == n + 1)
            feed.connections[dropped].drop()
        await eventually(lambda: len(feed.connections) == 4)
    finally:
        runner.stop()
        await asyncio.wait([runner.task], timeout=WAIT_SECONDS)

    assert backoff.attempts == [1, 2, 3]  # not a fresh first wait after every short session
