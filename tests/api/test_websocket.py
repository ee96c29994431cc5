"""GraphQL over WebSocket (graphql-transport-ws and legacy graphql-ws) on a real uvicorn."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from server.app import create_app
from server.brokers.paper.clock import ManualClock
from tests.utils.factories import make_settings
from tests.utils.live import live_server

pytestmark = pytest.mark.anyio
RECEIVE_TIMEOUT_SECONDS = 5.0
QUOTE = '{ quote(symbol: "TSLA") { bidPrice timestamp } }'


@pytest.fixture
async def address(tmp_path: Path, clock: ManualClock) -> AsyncIterator[str]:
    async with live_server(create_app(make_settings(tmp_path / "data"), clock=clock)) as where:
        yield where


async def _receive(ws: ClientConnection) -> dict[str, Any]:
    async with asyncio.timeout(RECEIVE_TIMEOUT_SECONDS):
        return json.loads(await ws.recv())


async def _transport_ws(address: str) -> ClientConnection:
    ws = await connect(f"ws://{address}/graphql", subprotocols=["graphql-transport-ws"])  # type: ignore[list-item]
    await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
    assert (await _receive(ws))["type"] == "connection_ack"
    return ws


async def _run(ws: ClientConnection, operation_id: str, query: str) -> list[dict[str, Any]]:
    await ws.send(json.dumps({"id": operation_id, "type": "subscribe", "payload": {"query": query}}))
    messages = []
    while True:
        message = await _receive(ws)
        messages.append(message)
        if message["type"] in {"complete", "error"}:
            return messages


async def test_each_operation_on_a_connection_gets_fresh_quotes(address: str, clock: ManualClock) -> None:
    ws = await _transport_ws(address)
    try:
        first = await _run(ws, "1", QUOTE)
        clock.advance(60)
        second = await _run(ws, "2", QUOTE)
    finally:
        await ws.close()
    first_quote = first[0]["payload"]["data"]["quote"]
    second_quote = second[0]["payload"]["data"]["quote"]
    assert first_quote["timestamp"] == "2026-11-23T15:00:00+00:00"
    assert second_quote["timestamp"] == "2026-11-23T15:01:00+00:00"


async def test_a_syntax_error_over_websocket_is_answered(address: str) -> None:
    ws = await _transport_ws(address)
    try:
        messages = await _run(ws, "1", "{ quote(")
    finally:
        await ws.close()
    assert messages[0]["type"] == "error"
    [error] = messages[0]["payload"]
    assert "Syntax Error" in error["message"]


async def test_unknown_symbol_over_websocket_has_its_code(address: str) -> None:
    ws = await _transport_ws(address)
    try:
        messages = await _run(ws, "1", '{ quote(symbol: "ZZZZ") { symbol } }')
    finally:
        await ws.close()
    [error] = messages[0]["payload"]["errors"]
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "symbols": ["ZZZZ"]}


async def test_a_query_over_legacy_graphql_ws_gets_a_coded_error(
    address: str, caplog: pytest.LogCaptureFixture
) -> None:
    ws = await connect(f"ws://{address}/graphql", subprotocols=["graphql-ws"])  # type: ignore[list-item]
    try:
        await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        assert (await _receive(ws))["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "1", "type": "start", "payload": {"query": QUOTE}}))
        answer = await _receive(ws)
        while answer["type"] == "ka":
            answer = await _receive(ws)
    finally:
        await ws.close()
    assert answer == {
        "type": "error",
        "id": "1",
        "payload": {"message": "Queries are not allowed here", "extensions": {"code": "BAD_USER_INPUT"}},
    }
    assert [r for r in caplog.records if r.exc_info] == []
