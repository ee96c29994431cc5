"""The Alpaca market-data client under the StreamHub, against the paper exchange's
Alpaca-compatible facade on a real uvicorn: data, every refusal as a coded failure
within seconds, healing after the facade drops the stream, and a prompt stop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from server.brokers.alpaca.stream import AlpacaStreams
from server.brokers.domain import Quote
from server.brokers.paper.facade.access import KeyPair
from server.brokers.registry import ConnectionRef
from server.brokers.streaming import Channel, Family, FeedProblem, MarketFeed
from server.streams.hub import MarketSubscription, StreamHub, SymbolLimitError
from server.streams.runner import FeedFailure
from tests.utils.facade import FAULT_TOKEN, KEY_ID, SECRET_KEY, Facade, serve_facade
from tests.utils.paper import paper_world
from tests.utils.streams import eventually

pytestmark = pytest.mark.anyio
REF = ConnectionRef("user-1", "connection-1")
SIP_KEY = KeyPair("PKSIP0000000000001", "sip-secret-for-tests-only-0001", "sip-account", data_plan="unlimited")
WAIT_SECONDS = 5.0


@pytest.fixture
async def facade() -> AsyncIterator[Facade]:
    async with serve_facade(paper_world(), more_keys=(SIP_KEY,)) as served:
        yield served


@pytest.fixture
async def hub() -> AsyncIterator[StreamHub]:
    hub = StreamHub(grace_seconds=0)
    yield hub
    await hub.close()


def _feeds(facade: Facade, key_id: str = KEY_ID, secret: str = SECRET_KEY, *, stock_feed: str = "iex") -> object:
    streams = AlpacaStreams(f"ws://{facade.address}", stock_feed=stock_feed)
    return lambda family: streams.feed(family, key_id, secret)


async def _next_quote(subscription: MarketSubscription, facade: Facade) -> Quote:
    """Step the facade's market until a quote arrives (the facade pushes on each new step)."""
    async with asyncio.timeout(WAIT_SECONDS):
        while True:
            facade.world.step()
            try:
                async with asyncio.timeout(0.2):
                    events = await subscription.mailbox.take()
            except TimeoutError:
                continue
            assert isinstance(events[-1], Quote)
            return events[-1]


async def _read_to_the_end(subscription: MarketSubscription) -> None:
    async with asyncio.timeout(WAIT_SECONDS):
        async for _ in subscription.events():
            pass


async def _failure(subscription: MarketSubscription) -> FeedFailure:
    started = time.monotonic()
    with pytest.raises(FeedFailure) as raised:
        await _read_to_the_end(subscription)
    assert time.monotonic() - started < 2.0  # refusals reach subscribers within two seconds
    return raised.value


async def test_quotes_arrive_through_the_alpaca_protocol(facade: Facade, hub: StreamHub) -> None:
    subscription = hub.subscribe(REF, {Channel.QUOTES: ["AAPL"]}, _feeds(facade))  # type: ignore[arg-type]
    quote = await _next_quote(subscription, facade)
    assert quote.symbol == "AAPL"
    assert quote.bid_price < quote.ask_price
    assert quote.timestamp.tzinfo is not None
    subscription.close()


async def test_bad_keys_fail_the_subscription_with_auth_failed(facade: Facade, hub: StreamHub) -> None:
    feeds = _feeds(facade, KEY_ID, "wrong-secret")
    subscription = hub.subscribe(REF, {Channel.QUOTES: ["AAPL"]}, feeds)  # type: ignore[arg-type]
    assert (await _failure(subscription)).problem is FeedProblem.AUTH_FAILED


async def test_a_second_stream_on_the_same_keys_fails_with_connection_limit(facade: Facade, hub: StreamHub) -> None:
    first = hub.subscribe(REF, {Channel.QUOTES: ["AAPL"]}, _feeds(facade))  # type: ignore[arg-type]
    await _next_quote(first, facade)
    other_server = StreamHub(grace_seconds=0)  # another process holding the same account's keys
    try:
        second = other_server.subscribe(REF, {Channel.QUOTES: ["MSFT"]}, _feeds(facade))  # type: ignore[arg-type]
        assert (await _failure(second)).problem is FeedProblem.CONNECTION_LIMIT
    finally:
        await other_server.close()
    assert (await _next_quote(first, facade)).symbol == "AAPL"  # the first one goes on
    first.close()


async def test_a_feed_outside_the_plan_fails_with_insufficient_subscription(facade: Facade, hub: StreamHub) -> None:
    feeds = _feeds(facade, stock_feed="sip")
    subscription = hub.subscribe(REF, {Channel.QUOTES: ["AAPL"]}, feeds)  # type: ignore[arg-type]
    assert (await _failure(subscription)).problem is FeedProblem.INSUFFICIENT_SUBSCRIPTION
    allowed = hub.subscribe(
        ConnectionRef("user-2", "c-2"),
        {Channel.QUOTES: ["AAPL"]},
        _feeds(facade, SIP_KEY.key_id, SIP_KEY.secret_key, stock_feed="sip"),  # type: ignore[arg-type]
    )
    assert (await _next_quote(allowed, facade)).symbol == "AAPL"
    allowed.close()


async def test_the_feeds_symbol_limit_is_checked_before_subscribing(facade: Facade, hub: StreamHub) -> None:
    symbols = sorted(facade.world.exchange.market.assets)[:31]  # iex allows 30
    feeds = _feeds(facade)
    with pytest.raises(SymbolLimitError) as raised:
        hub.subscribe(REF, {Channel.QUOTES: symbols}, feeds)  # type: ignore[arg-type]
    assert raised.value.limit == 30
    assert hub.runners(REF) == {}  # nothing was opened upstream


async def test_a_dropped_stream_heals_within_five_seconds(facade: Facade, hub: StreamHub) -> None:
    subscription = hub.subscribe(REF, {Channel.QUOTES: ["AAPL", "MSFT"]}, _feeds(facade))  # type: ignore[arg-type]
    await _next_quote(subscription, facade)
    runner = hub.runners(REF)[Family.STOCKS]
    async with httpx.AsyncClient(base_url=facade.url) as http:
        response = await http.post("/_faults", json={"drop_streams": True}, headers={"x-fault-token": FAULT_TOKEN})
    assert response.status_code == 200
    started = time.monotonic()
    await eventually(lambda: runner.connects == 2)
    subscription.mailbox.drain()  # what arrived before the drop
    healed = await _next_quote(subscription, facade)
    assert time.monotonic() - started < 5.0
    assert healed.symbol in {"AAPL", "MSFT"}
    subscription.close()


async def test_stopping_takes_under_a_second(facade: Facade) -> None:
    hub = StreamHub(grace_seconds=60)
    subscription = hub.subscribe(REF, {Channel.QUOTES: ["AAPL"]}, _feeds(facade))  # type: ignore[arg-type]
    await _next_quote(subscription, facade)
    started = time.monotonic()
    await hub.close()
    assert time.monotonic() - started < 1.0
    assert all(runner.task.done() for runner in hub.runners(REF).values())


def test_feeds_never_show_their_keys() -> None:
    feed: MarketFeed = AlpacaStreams("wss://example.invalid").feed(Family.STOCKS, KEY_ID, SECRET_KEY)
    assert SECRET_KEY not in repr(feed)
    assert KEY_ID not in repr(feed)
