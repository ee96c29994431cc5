"""/metrics on a real uvicorn: subscriptions, WebSockets and brokers' upstream streams are
gauged while they live and released when they end; Alpaca's calls, 429s and trade stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from gql.transport.exceptions import TransportQueryError
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from server.brokers.alpaca.broker import AlpacaBroker
from server.brokers.paper.clock import ManualClock
from tests.utils.accounts import register
from tests.utils.facade import KEY_ID, SECRET_KEY, Facade, serve_facade
from tests.utils.metrics import Samples, parse, scrape, value
from tests.utils.paper import paper_world
from tests.utils.streams import (
    LEGACY_WS,
    TRANSPORT_WS,
    Stream,
    StreamingServer,
    eventually,
    streaming_server,
    ws_session,
)

pytestmark = pytest.mark.anyio
WAIT_SECONDS = 5.0
QUOTES = "subscription Quotes($symbols: [String!]!) { quotes(symbols: $symbols) { symbol bidPrice } }"


async def scrape_until(http: httpx.AsyncClient, settled: Callable[[Samples], bool]) -> Samples:
    """Gauges move as the server notices a client leave: scrape again, bounded, until they settle."""
    async with asyncio.timeout(WAIT_SECONDS):
        while not settled(samples := await scrape(http)):  # noqa: ASYNC110  (polls the server's gauges)
            await asyncio.sleep(0.02)
    return samples


@pytest.fixture
async def server(tmp_path: Path, clock: ManualClock) -> AsyncIterator[StreamingServer]:
    async with streaming_server(tmp_path / "data", clock, stream_grace_seconds=0) as running:
        yield running


async def test_subscriptions_connections_and_upstreams_are_gauged_while_they_live(server: StreamingServer) -> None:
    user = await server.sign_up("metrics-streamer")
    async with (
        ws_session(server.address, user.access_token, TRANSPORT_WS) as session,
        ws_session(server.address, user.access_token, LEGACY_WS) as legacy,
    ):
        quotes = Stream(session, QUOTES, symbols=["AAPL"])
        more_quotes = Stream(legacy, 'subscription { quotes(symbols: ["MSFT"]) { symbol } }')
        await quotes.next()
        await more_quotes.next()
        live = await scrape(server.http)
        await quotes.close()
        await more_quotes.close()

    assert value(live, "graphql_subscriptions_active", field="quotes") == 2
    assert value(live, "websocket_connections_active", protocol="graphql-transport-ws") == 1
    assert value(live, "websocket_connections_active", protocol="graphql-ws") == 1
    assert value(live, "upstream_streams_active", broker="paper", stream="market_stocks") == 1
    assert value(live, "upstream_stream_connects_total", broker="paper", stream="market_stocks") == 1

    def released(samples: Samples) -> bool:
        return (
            value(samples, "graphql_subscriptions_active") == 0
            and value(samples, "websocket_connections_active") == 0
            and value(samples, "upstream_streams_active") == 0
        )

    after = await scrape_until(server.http, released)
    ended = "graphql_operations_total"
    assert value(after, ended, type="subscription", operation="Quotes", outcome="ok") == 1
    assert value(after, ended, type="subscription", operation="anonymous", outcome="ok") == 1
    assert (
        value(after, "graphql_operation_duration_seconds_count", type="subscription") == 0
    )  # a lifetime is no latency


async def test_a_refused_subscription_counts_its_code_and_the_broker_call(server: StreamingServer) -> None:
    user = await server.sign_up("metrics-unknown")
    async with ws_session(server.address, user.access_token) as session:
        unknown = Stream(session, QUOTES, symbols=["ZZZZ"])
        with pytest.raises(TransportQueryError):
            await unknown.next()

    samples = await scrape_until(server.http, lambda s: value(s, "websocket_connections_active") == 0)
    assert value(samples, "broker_calls_total", broker="paper", method="get_quotes", outcome="unknown_symbol") == 1
    assert value(samples, "graphql_operations_total", type="subscription", outcome="BAD_USER_INPUT") == 1
    assert value(samples, "graphql_subscriptions_active", field="quotes") == 0


async def test_websockets_refused_at_the_handshake_are_not_counted(server: StreamingServer) -> None:
    with pytest.raises(InvalidStatus):
        await connect(
            f"ws://{server.address}/graphql",
            subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
            origin="https://evil.example.net",  # type: ignore[arg-type]
        )
    samples = await scrape(server.http)
    assert ("websocket_connections_active", frozenset({("protocol", "graphql-transport-ws")})) not in samples


# ----- Alpaca ---------------------------------------------------------------------------


@pytest.fixture
async def facade() -> AsyncIterator[Facade]:
    async with serve_facade(paper_world()) as served:
        yield served


@pytest.fixture
async def alpaca_server(tmp_path: Path, clock: ManualClock, facade: Facade) -> AsyncIterator[StreamingServer]:
    settings = {
        "alpaca_trading_url": facade.url,
        "alpaca_data_url": facade.url,
        "alpaca_data_stream_url": f"ws://{facade.address}",
        "stream_grace_seconds": 0,
        "broker_timeout_seconds": 2,
    }
    async with streaming_server(tmp_path / "data", clock, **settings) as running:
        yield running


async def next_while_stepping(stream: Stream, facade: Facade) -> None:
    """The facade pushes a quote at each step of its market: step it until one arrives."""
    async with asyncio.timeout(WAIT_SECONDS):
        while True:
            try:
                await stream.next(within=0.2)
                return
            except TimeoutError:
                facade.world.step()


async def test_alpaca_calls_429s_and_streams_are_counted(alpaca_server: StreamingServer, facade: Facade) -> None:
    server = alpaca_server
    user = await register(server.http, "metrics-alpaca", alpacaApiKey=KEY_ID, alpacaSecretKey=SECRET_KEY)
    await server.run(user, "{ account { cash } }")  # builds the broker, which starts its trade-updates stream
    connections = (await server.run(user, "{ me { brokerConnections { id isDefault } } }"))["me"]["brokerConnections"]
    broker = server.services.brokers.built(next(c["id"] for c in connections if c["isDefault"]))
    assert isinstance(broker, AlpacaBroker)
    await eventually(lambda: broker.stream.connects >= 1)
    facade.faults.errors_429 = 2
    await server.run(user, "{ account { cash } }")  # answered after Alpaca's 429s, within the deadline
    async with ws_session(server.address, user.access_token) as session:
        quotes = Stream(session, QUOTES, symbols=["AAPL"])
        await next_while_stepping(quotes, facade)
        response = await server.http.get("/metrics")
        await quotes.close()

    samples = parse(response.text)
    trade_updates = {"broker": "alpaca_paper", "stream": "trade_updates"}
    assert value(samples, "upstream_streams_active", **trade_updates) == 1
    assert value(samples, "upstream_streams_active", broker="alpaca", stream="market_stocks") == 1
    assert value(samples, "broker_calls_total", broker="alpaca", method="get_account", outcome="ok") == 2
    assert value(samples, "alpaca_requests_total", outcome="rate_limited") == 2
    assert value(samples, "alpaca_requests_total", outcome="ok") >= 4
    assert value(samples, "rate_limit_rejections_total", limiter="alpaca") == 2
    assert KEY_ID not in response.text
    assert SECRET_KEY not in response.text
