"""No request body, however malformed, makes the server answer 500 or log a traceback."""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.anyio

HOSTILE_BODIES: list[Any] = [
    [],
    [{"query": '{ quote(symbol: "AAPL") { symbol } }'}],
    None,
    "query",
    42,
    {},
    {"query": 5},
    {"query": None},
    {"query": ""},
    {"query": '{ quote(symbol: "AAPL") { symbol } }', "variables": "x"},
    {"query": '{ quote(symbol: "AAPL") { symbol } }', "variables": [1, 2]},
    {"query": '{ quote(symbol: "AAPL") { symbol } }', "operationName": "Missing"},
    {"query": 'query A { quote(symbol: "AAPL") { symbol } } query B { quotes(symbols: []) { symbol } }'},
    {"query": 'subscription { quotes(symbols: ["AAPL"]) { symbol } }'},
    {"query": "mutation { placeOrder }"},
    {"query": "{ " + 'quote(symbol: "AAPL") { symbol } ' * 3 + "}"},
    {"query": "{ __schema { types { name } } }"},
    {"query": "{" * 5000},
    {"query": "query($s: [String!]!) { quotes(symbols: $s) { symbol } }", "variables": {"s": [None, 1, {}]}},
]

jsonish = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
bodies = st.one_of(
    jsonish,
    st.fixed_dictionaries({"query": st.text(max_size=80)}, optional={"variables": jsonish, "operationName": jsonish}),
    st.fixed_dictionaries(
        {"query": st.just("query($s: String!) { quote(symbol: $s) { symbol bidPrice } }"), "variables": jsonish}
    ),
)


async def _assert_handled(client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture, **request: Any) -> None:
    caplog.clear()
    response = await client.post("/graphql", **request)
    assert response.status_code < 500, response.text
    assert "Traceback" not in response.text
    assert [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR] == []


@pytest.mark.parametrize("body", HOSTILE_BODIES, ids=lambda body: json.dumps(body)[:40])
async def test_hostile_json_bodies_are_answered(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture, body: Any
) -> None:
    await _assert_handled(client, caplog, json=body)


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"\xff\xfe\x00", "application/json"),
        (b"query=1", "application/x-www-form-urlencoded"),
        (b"{ quote }", "text/plain"),
        (b"", "application/json"),
        (b"--x\r\n\r\n", "multipart/form-data; boundary=x"),
    ],
)
async def test_hostile_raw_bodies_are_answered(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture, content: bytes, content_type: str
) -> None:
    await _assert_handled(client, caplog, content=content, headers={"content-type": content_type})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies)
async def test_generated_bodies_never_break_the_server(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture, body: Any
) -> None:
    await _assert_handled(client, caplog, content=json.dumps(body), headers={"content-type": "application/json"})


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"query": '{ quote(symbol: "AAPL") { symbol } }', "variables": "not json"},
        {"query": '{ quote(symbol: "AAPL") { symbol } }', "variables": "5"},
        {"query": '{ quote(symbol: "AAPL") { symbol } }', "variables": "[1]"},
        {"query": '{ quote(symbol: "AAPL") { symbol } }', "extensions": '"x"'},
        {"query": "mutation { x }"},
        {"query": "{"},
    ],
)
async def test_hostile_get_requests_are_answered(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture, params: dict[str, str]
) -> None:
    caplog.clear()
    response = await client.get("/graphql", params=params, headers={"accept": "application/json"})
    assert response.status_code < 500, response.text
    assert [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR] == []
