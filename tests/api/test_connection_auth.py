"""Signing in a WebSocket with connection_init, browser origins, and per-caller rate limits."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from server.app import create_app
from server.brokers.paper.clock import ManualClock
from tests.utils.accounts import as_user, register
from tests.utils.factories import make_settings
from tests.utils.graphql import error_codes, execute
from tests.utils.live import live_server

pytestmark = pytest.mark.anyio
TIMEOUT_SECONDS = 5.0
ALLOWED_ORIGIN = "https://trader.example.com"


@pytest.fixture
async def address(tmp_path: Path, clock: ManualClock) -> AsyncIterator[str]:
    settings = make_settings(tmp_path / "data", allowed_origins=ALLOWED_ORIGIN)
    async with live_server(create_app(settings, clock=clock)) as where:
        yield where


async def _receive(ws: ClientConnection) -> dict[str, Any]:
    async with asyncio.timeout(TIMEOUT_SECONDS):
        return json.loads(await ws.recv())


async def _signed_in_token(address: str) -> str:
    async with httpx.AsyncClient(base_url=f"http://{address}") as client:
        return (await register(client, "ada")).access_token


async def _open(address: str, payload: dict[str, Any], protocol: str = "graphql-transport-ws") -> ClientConnection:
    ws = await connect(f"ws://{address}/graphql", subprotocols=[protocol])  # type: ignore[list-item]
    await ws.send(json.dumps({"type": "connection_init", "payload": payload}))
    return ws


@pytest.mark.parametrize("key", ["authorization", "Authorization"])
async def test_connection_init_signs_the_connection_in(address: str, key: str) -> None:
    token = await _signed_in_token(address)
    ws = await _open(address, {key: f"Bearer {token}"})
    try:
        assert (await _receive(ws))["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": "{ me { username } }"}}))
        assert (await _receive(ws))["payload"] == {"data": {"me": {"username": "ada"}}}
    finally:
        await ws.close()


async def test_anonymous_connections_are_allowed_but_see_no_user(address: str) -> None:
    ws = await _open(address, {})
    try:
        assert (await _receive(ws))["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": "{ me { username } }"}}))
        assert (await _receive(ws))["payload"] == {"data": {"me": None}}
    finally:
        await ws.close()


async def test_a_bad_token_closes_the_connection_with_4403(address: str) -> None:
    ws = await _open(address, {"authorization": "Bearer not-a-token"})
    with pytest.raises(ConnectionClosed) as closed:
        await _receive(ws)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4403


async def test_a_bad_token_on_legacy_graphql_ws_gets_a_connection_error(address: str) -> None:
    ws = await _open(address, {"authorization": "Bearer not-a-token"}, protocol="graphql-ws")
    try:
        message = await _receive(ws)
    finally:
        await ws.close()
    assert message["type"] == "connection_error"
    assert message["payload"]["code"] == "UNAUTHENTICATED"


async def test_an_expired_token_stops_working_on_an_open_connection(address: str, clock: ManualClock) -> None:
    token = await _signed_in_token(address)
    ws = await _open(address, {"authorization": f"Bearer {token}"})
    try:
        assert (await _receive(ws))["type"] == "connection_ack"
        clock.advance(16 * 60)
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": "{ me { username } }"}}))
        message = await _receive(ws)
    finally:
        await ws.close()
    assert message["payload"]["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_websockets_from_other_origins_are_refused(address: str) -> None:
    with pytest.raises(InvalidStatus) as refused:
        await connect(
            f"ws://{address}/graphql",
            subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
            origin="https://evil.example.net",  # type: ignore[arg-type]
        )
    assert refused.value.response.status_code == 403
    for origin in (ALLOWED_ORIGIN, f"http://{address}"):  # the configured one, and the same origin
        ws = await connect(f"ws://{address}/graphql", subprotocols=["graphql-transport-ws"], origin=origin)  # type: ignore[list-item,arg-type]
        await ws.close()


async def test_cors_allows_only_the_configured_origins(address: str) -> None:
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}
    async with httpx.AsyncClient(base_url=f"http://{address}") as client:
        allowed = await client.options("/graphql", headers={"Origin": ALLOWED_ORIGIN, **preflight})
        refused = await client.options("/graphql", headers={"Origin": "https://evil.example.net", **preflight})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert "access-control-allow-credentials" not in allowed.headers
    assert refused.status_code == 400
    assert "access-control-allow-origin" not in refused.headers


async def test_operations_are_rate_limited_per_user_and_per_address(tmp_path: Path, clock: ManualClock) -> None:
    settings = make_settings(tmp_path / "data", rate_limit_user_per_minute=3, rate_limit_anonymous_per_minute=5)
    app = create_app(settings, clock=clock)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as client,
    ):
        ada = await register(client, "ada")  # one anonymous operation
        grace = await register(client, "grace")  # two
        quote = '{ quote(symbol: "AAPL") { bidPrice } }'
        for _ in range(3):
            assert "errors" not in await as_user(client, ada.access_token, quote)
        limited = await as_user(client, ada.access_token, quote)
        # Grace has her own allowance; anonymous callers share the address's.
        assert "errors" not in await as_user(client, grace.access_token, quote)
        anonymous = [await execute(client, quote) for _ in range(4)]
    assert error_codes(limited) == ["RATE_LIMITED"]
    assert limited["errors"][0]["extensions"]["retryAfter"] == 20
    assert limited["data"] is None
    assert [error_codes(result) for result in anonymous] == [[], [], [], ["RATE_LIMITED"]]
