"""Who may subscribe to what, and the limits: sign-in, token expiry, other users'
connections, bad symbols, the feed's symbol limit and the per-connection cap."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from gql.transport.exceptions import TransportQueryError

from server.api.errors import ApiError, ErrorCode
from server.api.streams.subscriptions import _until_expiry
from server.brokers.paper.clock import ManualClock
from server.security.tokens import AccessClaims
from tests.utils.streams import Stream, StreamingServer, streaming_server, ws_session

pytestmark = pytest.mark.anyio
QUOTES = "subscription($symbols: [String!]!, $c: ID) { quotes(symbols: $symbols, connectionId: $c) { symbol } }"
PORTFOLIO = "subscription($c: ID) { portfolio(connectionId: $c) { equity } }"


async def _error_of(stream: Stream) -> dict[str, Any]:
    with pytest.raises(TransportQueryError) as raised:
        await stream.next()
    assert raised.value.errors is not None
    (error,) = raised.value.errors
    return error


async def test_an_anonymous_subscription_is_refused(server: StreamingServer) -> None:
    async with ws_session(server.address, None) as session:
        error = await _error_of(Stream(session, QUOTES, symbols=["AAPL"]))
    assert error["extensions"]["code"] == "UNAUTHENTICATED"


async def test_a_subscription_ends_when_its_token_expires(server: StreamingServer) -> None:
    user = await server.sign_up("ada")
    async with ws_session(server.address, user.access_token) as session:
        stream = Stream(session, QUOTES, symbols=["AAPL"])
        await stream.next()
        server.tick(16 * 60)  # past the 15-minute token; the next quote finds it expired
        error = await _error_of(stream)
    assert error["extensions"]["code"] == "UNAUTHENTICATED"
    assert "expired" in error["message"]


async def test_a_quiet_stream_also_ends_when_its_token_expires() -> None:
    """The wait for the next item is bounded by the token's expiry, not only checked per item."""
    clock = ManualClock(datetime(2026, 11, 23, 15, tzinfo=UTC))
    claims = AccessClaims(user_id="u", role="user", token_id="t", expires_at=clock.now() + timedelta(seconds=0.05))
    info: Any = SimpleNamespace(context=SimpleNamespace(services=SimpleNamespace(clock=clock)))

    async def silent() -> AsyncIterator[int]:
        await asyncio.Event().wait()
        yield 0

    async with asyncio.timeout(5):
        with pytest.raises(ApiError) as raised:
            await anext(_until_expiry(info, claims, silent()))
    assert raised.value.code is ErrorCode.UNAUTHENTICATED


async def test_another_users_connection_is_not_found(server: StreamingServer) -> None:
    ada, eve = await server.sign_up("ada"), await server.sign_up("eve")
    adas_connection = await server.default_connection(ada)
    async with ws_session(server.address, eve.access_token) as session:
        quotes_error = await _error_of(Stream(session, QUOTES, symbols=["AAPL"], c=adas_connection))
        portfolio_error = await _error_of(Stream(session, PORTFOLIO, c=adas_connection))
    assert quotes_error["extensions"]["code"] == "NOT_FOUND"
    assert portfolio_error["extensions"]["code"] == "NOT_FOUND"
    assert server.sessions_of(adas_connection) == []


@pytest.mark.parametrize(
    ("symbols", "code"),
    [(["NOPE"], "BAD_USER_INPUT"), (["bad symbol!"], "BAD_USER_INPUT"), ([], "BAD_USER_INPUT")],
)
async def test_bad_symbols_are_refused_before_any_stream(
    server: StreamingServer, symbols: list[str], code: str
) -> None:
    user = await server.sign_up("ada")
    async with ws_session(server.address, user.access_token) as session:
        error = await _error_of(Stream(session, QUOTES, symbols=symbols))
    assert error["extensions"]["code"] == code
    assert server.paper_streams.opened == 0


async def test_bars_of_options_are_refused(server: StreamingServer) -> None:
    user = await server.sign_up("ada")
    query = "subscription($s: [String!]!) { bars(symbols: $s) { symbol } }"
    async with ws_session(server.address, user.access_token) as session:
        error = await _error_of(Stream(session, query, s=["AAPL261218C00200000"]))
    assert error["extensions"]["code"] == "BAD_USER_INPUT"


@pytest.fixture
async def narrow_server(tmp_path: Path, clock: ManualClock) -> AsyncIterator[StreamingServer]:
    settings = {"paper_stream_stock_symbols": 3, "max_subscriptions_per_connection": 2, "stream_grace_seconds": 0}
    async with streaming_server(tmp_path / "data", clock, **settings) as running:
        yield running


async def test_over_the_symbol_limit_only_the_new_subscription_is_refused(narrow_server: StreamingServer) -> None:
    server = narrow_server
    user = await server.sign_up("ada")
    connection_id = await server.default_connection(user)
    async with (
        ws_session(server.address, user.access_token) as first,
        ws_session(server.address, user.access_token) as second,
    ):
        held = Stream(first, QUOTES, symbols=["AAPL", "MSFT"])
        await held.next()
        await held.next()
        error = await _error_of(Stream(second, QUOTES, symbols=["NVDA", "AMZN"]))  # 4 symbols > 3
        assert error["extensions"]["code"] == "SYMBOL_LIMIT"
        assert error["extensions"]["limit"] == 3
        (session,) = server.sessions_of(connection_id)
        assert session.symbols() == {"AAPL", "MSFT"}  # nothing of the refused one reached upstream
        server.tick()
        assert {(await held.next())["quotes"]["symbol"] for _ in range(2)} == {"AAPL", "MSFT"}
        fits = Stream(second, QUOTES, symbols=["NVDA"])
        assert (await fits.next())["quotes"]["symbol"] == "NVDA"
        await fits.close()
        await held.close()


async def test_a_connection_holds_a_limited_number_of_subscriptions(narrow_server: StreamingServer) -> None:
    server = narrow_server
    user = await server.sign_up("ada")
    async with ws_session(server.address, user.access_token) as session:
        streams = [Stream(session, QUOTES, symbols=["AAPL"]), Stream(session, QUOTES, symbols=["MSFT"])]
        for stream in streams:
            await stream.next()
        error = await _error_of(Stream(session, QUOTES, symbols=["NVDA"]))
        assert error["extensions"]["code"] == "SUBSCRIPTION_LIMIT"
        for stream in streams:
            await stream.close()
