"""The StreamHub seen from the exchange's side: one upstream per user and connection,
symbols released after their last subscriber, healing after a drop, and slow readers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from server.api.streams.direct import DirectStream
from server.brokers.paper.clock import ManualClock
from server.brokers.streaming import Channel
from server.streams.hub import MarketSubscription
from tests.utils.streams import (
    LEGACY_WS,
    TRANSPORT_WS,
    Stream,
    StreamingServer,
    eventually,
    stalled_client,
    streaming_server,
    ws_session,
)

pytestmark = pytest.mark.anyio
QUOTES = "subscription($symbols: [String!]!) { quotes(symbols: $symbols) { symbol bidPrice timestamp } }"
BULKY_ALIASES = 200
BULKY_QUOTES = (
    "subscription($symbols: [String!]!) { quotes(symbols: $symbols) { symbol timestamp "
    + " ".join(f"b{i}: bidPrice a{i}: askPrice" for i in range(BULKY_ALIASES // 2))
    + " } }"
)
TRADES = "subscription($symbols: [String!]!) { trades(symbols: $symbols) { symbol price size timestamp } }"


async def _tick_until_a_trade_prints(server: StreamingServer, symbol: str) -> None:
    market = server.services.market
    before = market.latest_trade(symbol)
    for _ in range(100):
        server.tick()
        if market.latest_trade(symbol) != before:
            return
    raise AssertionError(f"no {symbol} trade in 100 steps")


async def test_three_subscriptions_on_two_connections_share_one_upstream(server: StreamingServer) -> None:
    user = await server.sign_up("ada")
    connection_id = await server.default_connection(user)
    async with (
        ws_session(server.address, user.access_token, TRANSPORT_WS) as first,
        ws_session(server.address, user.access_token, LEGACY_WS) as second,
    ):
        aapl = Stream(first, QUOTES, symbols=["AAPL"])
        both = Stream(first, QUOTES, symbols=["AAPL", "MSFT"])
        trades = Stream(second, TRADES, symbols=["AAPL"])
        await aapl.next()
        await both.next()
        await both.next()
        await _tick_until_a_trade_prints(server, "AAPL")
        assert (await trades.next())["trades"]["symbol"] == "AAPL"
        sessions = server.sessions_of(connection_id)
        assert len(sessions) == 1
        assert server.paper_streams.opened == 1
        assert sessions[0].channels[Channel.QUOTES] == {"AAPL", "MSFT"}
        assert sessions[0].channels[Channel.TRADES] == {"AAPL"}

        await both.close()  # MSFT had one subscriber: released; AAPL still has one
        await eventually(lambda: sessions[0].channels[Channel.QUOTES] == {"AAPL"})
        await aapl.close()
        await eventually(lambda: sessions[0].channels[Channel.QUOTES] == set())
        assert sessions[0].channels[Channel.TRADES] == {"AAPL"}
        await trades.close()
        # Grace period 0: the upstream goes once nothing is subscribed.
        await eventually(lambda: server.sessions_of(connection_id) == [])


async def test_each_user_has_an_upstream_of_their_own(server: StreamingServer) -> None:
    ada, bob = await server.sign_up("ada"), await server.sign_up("bob")
    async with (
        ws_session(server.address, ada.access_token) as ada_ws,
        ws_session(server.address, bob.access_token) as bob_ws,
    ):
        ada_stream, bob_stream = Stream(ada_ws, QUOTES, symbols=["AAPL"]), Stream(bob_ws, QUOTES, symbols=["AAPL"])
        await ada_stream.next()
        await bob_stream.next()
        ada_connection, bob_connection = await server.default_connection(ada), await server.default_connection(bob)
        assert len(server.sessions_of(ada_connection)) == 1
        assert len(server.sessions_of(bob_connection)) == 1
        assert server.paper_streams.opened == 2
        await ada_stream.close()
        await bob_stream.close()


async def test_a_dropped_upstream_heals_and_subscribers_keep_receiving(server: StreamingServer) -> None:
    user = await server.sign_up("ada")
    connection_id = await server.default_connection(user)
    async with ws_session(server.address, user.access_token) as session:
        stream = Stream(session, QUOTES, symbols=["AAPL", "MSFT"])
        await stream.next()
        await stream.next()
        assert server.paper_streams.drop_all() == 1
        await eventually(lambda: len(server.sessions_of(connection_id)) == 1)  # reconnected, with backoff
        healed = server.sessions_of(connection_id)[0]
        assert healed.channels[Channel.QUOTES] == {"AAPL", "MSFT"}  # resubscribed without the client asking
        server.tick()
        received = {(await stream.next())["quotes"]["symbol"] for _ in range(2)}
        assert received == {"AAPL", "MSFT"}
        assert server.paper_streams.opened == 2
        await stream.close()


@pytest.fixture
async def roomy_server(tmp_path: Path, clock: ManualClock) -> AsyncIterator[StreamingServer]:
    """Room for bulky payloads, so a stalled reader fills the socket buffers in a few ticks."""
    async with streaming_server(tmp_path / "data", clock, max_aliases=BULKY_ALIASES + 10, max_tokens=5000) as running:
        yield running


async def test_a_client_that_stops_reading_does_not_hold_up_another(roomy_server: StreamingServer) -> None:
    server = roomy_server
    slow_user, quick_user = await server.sign_up("slow"), await server.sign_up("quick")
    symbols = sorted(server.services.market.assets)[:100]
    # A raw client that reads nothing after subscribing, with a tiny receive buffer: the
    # server's sends to it soon block, and its quotes must conflate instead of queueing.
    slow = await stalled_client(server.address, slow_user.access_token, BULKY_QUOTES, {"symbols": symbols})
    try:
        async with ws_session(server.address, quick_user.access_token) as quick:
            quick_stream = Stream(quick, QUOTES, symbols=["AAPL"])
            await quick_stream.next()
            # The two set-ups read the database side by side: the slow one may finish second.
            await eventually(lambda: _subscriptions_of(server, slow_user.user_id) == 1)
            slow_stream = _only_subscription(server, slow_user.user_id).receiver
            assert isinstance(slow_stream, DirectStream)  # delivered through its connection's outbox
            outbox = slow_stream.outbox
            for _ in range(100):
                server.tick()
                assert (await quick_stream.next(within=2.0))["quotes"]["symbol"] == "AAPL"
                if outbox.replaced > 0:
                    break
            assert outbox.replaced > 0, "the slow client never fell behind"
            assert len(outbox) <= len(symbols)  # one pending quote per symbol, at most
            for _ in range(5):  # and the quick client still gets every tick
                server.tick()
                assert (await quick_stream.next(within=2.0))["quotes"]["symbol"] == "AAPL"
            await quick_stream.close()
    finally:
        slow.close()


def _subscriptions_of(server: StreamingServer, user_id: str) -> int:
    users = [streams for ref, streams in server.services.streams._users.items() if ref.user_id == user_id]
    return len({subscription for streams in users for routes in streams.routes.values() for subscription in routes})


def _only_subscription(server: StreamingServer, user_id: str) -> MarketSubscription:
    (streams,) = [s for ref, s in server.services.streams._users.items() if ref.user_id == user_id]
    (subscription,) = {subscription for routes in streams.routes.values() for subscription in routes}
    return subscription
