"""Live quotes on each protocol a client may speak: graphql-transport-ws, legacy
graphql-ws (both through gql) and Apollo's multipart HTTP (through httpx)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from decimal import Decimal
from pathlib import Path

import pytest
from starlette.websockets import WebSocketDisconnected
from websockets.asyncio.client import connect

from server.api.streams.execution import shared_results
from server.api.ws_handlers import TransportWSHandler
from server.brokers.paper.clock import ManualClock
from tests.utils.streams import (
    LEGACY_WS,
    TRANSPORT_WS,
    Stream,
    StreamingServer,
    multipart_events,
    streaming_server,
    ws_session,
)

pytestmark = pytest.mark.anyio
QUOTES = "subscription($symbols: [String!]!) { quotes(symbols: $symbols) { symbol bidPrice askPrice timestamp } }"


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_a_websocket_client_gets_quotes_within_a_second(server: StreamingServer, protocol: str) -> None:
    user = await server.sign_up("ada")
    async with ws_session(server.address, user.access_token, protocol) as session:
        started = time.monotonic()
        stream = Stream(session, QUOTES, symbols=["AAPL"])
        first = (await stream.next(within=1.0))["quotes"]
        assert time.monotonic() - started < 1.0
        assert first["symbol"] == "AAPL"
        assert Decimal(first["bidPrice"]) < Decimal(first["askPrice"])
        server.tick()
        second = (await stream.next(within=1.0))["quotes"]
        assert second["timestamp"] > first["timestamp"]
        await stream.close()


async def test_a_multipart_http_client_gets_quotes_within_a_second(server: StreamingServer) -> None:
    user = await server.sign_up("ada")
    started = time.monotonic()
    events = multipart_events(server.address, user.access_token, QUOTES, {"symbols": ["MSFT"]})
    first = await anext(events)
    assert time.monotonic() - started < 1.0
    assert first["payload"]["data"]["quotes"]["symbol"] == "MSFT"
    server.tick()
    second = await anext(events)
    assert second["payload"]["data"]["quotes"]["timestamp"] > first["payload"]["data"]["quotes"]["timestamp"]
    await events.aclose()  # type: ignore[attr-defined]


async def test_a_multipart_subscription_without_a_token_is_refused_with_a_code(server: StreamingServer) -> None:
    events = multipart_events(server.address, "not-a-token", QUOTES, {"symbols": ["MSFT"]})
    first = await anext(events)
    await events.aclose()  # type: ignore[attr-defined]
    errors = first["payload"]["errors"] if first.get("payload") else first["errors"]
    assert [error["extensions"]["code"] for error in errors] == ["UNAUTHENTICATED"]


async def test_a_subscription_over_plain_http_is_refused(server: StreamingServer) -> None:
    user = await server.sign_up("ada")
    response = await server.http.post(
        "/graphql", json={"query": QUOTES, "variables": {"symbols": ["AAPL"]}}, headers=user.headers
    )
    assert response.status_code == 400
    assert response.text == "subscriptions are not allowed when using POST"


async def test_legacy_graphql_ws_connections_are_kept_alive(tmp_path: Path, clock: ManualClock) -> None:
    async with (
        streaming_server(tmp_path / "data", clock, websocket_keepalive_seconds=0.05) as server,
        connect(f"ws://{server.address}/graphql", subprotocols=[LEGACY_WS]) as ws,  # type: ignore[list-item]
    ):
        await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        async with asyncio.timeout(5):
            kinds = [json.loads(await ws.recv())["type"] for _ in range(3)]
    assert kinds[0] == "connection_ack"
    assert kinds[1:] == ["ka", "ka"]


async def test_a_send_racing_the_clients_close_is_not_logged_as_an_error(caplog: pytest.LogCaptureFixture) -> None:
    """Under load a subscription's send can race the client's close; that is the client
    leaving, not a fault (a real exception in an operation is still logged)."""
    handler = object.__new__(TransportWSHandler)  # only its exception hook is exercised
    await handler.handle_task_exception(WebSocketDisconnected('Cannot call "send" once a close message has been sent.'))
    await handler.handle_task_exception(ValueError("a real bug"))
    assert [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR] == [
        "Exception in worker task"
    ]


async def test_subscribers_of_one_query_share_each_ticks_execution(server: StreamingServer) -> None:
    """Two users, the same document: each tick's quote is executed and encoded once, and reused."""
    ada, bob = await server.sign_up("ada"), await server.sign_up("bob")
    async with (
        ws_session(server.address, ada.access_token) as first,
        ws_session(server.address, bob.access_token) as second,
    ):
        # A document of its own: results are shared process-wide, other tests' included.
        query = QUOTES.replace("subscription(", "subscription SharedTick(")
        streams = [Stream(first, query, symbols=["AAPL"]), Stream(second, query, symbols=["AAPL"])]
        for stream in streams:
            await stream.next()
        hits, misses, encoded = shared_results.hits, shared_results.misses, shared_results.encoding_hits
        server.tick()
        ticked = [(await stream.next())["quotes"] for stream in streams]
        assert ticked[0] == ticked[1]
        assert (shared_results.hits - hits, shared_results.misses - misses) == (1, 1)
        assert shared_results.encoding_hits - encoded == 1
        for stream in streams:
            await stream.close()


async def test_bars_arrive_as_minutes_close(server: StreamingServer) -> None:
    user = await server.sign_up("ada")
    query = 'subscription { bars(symbols: ["SPY"]) { symbol open high low close volume tradeCount vwap timestamp } }'
    async with ws_session(server.address, user.access_token) as session:
        stream = Stream(session, query)
        latest = (await stream.next())["bars"]  # the last closed minute, at once
        assert latest["symbol"] == "SPY"
        assert Decimal(latest["low"]) <= Decimal(latest["close"]) <= Decimal(latest["high"])
        server.tick(61)  # the live minute closes
        closed = (await stream.next())["bars"]
        assert closed["timestamp"] > latest["timestamp"]
        await stream.close()
