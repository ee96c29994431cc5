from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from decimal import Decimal

import httpx
import pytest
from starlette.applications import Starlette

from server.brokers.base import QuoteSource
from server.brokers.domain import Quote
from server.brokers.paper.clock import ManualClock
from tests.utils.graphql import error_codes, execute

pytestmark = pytest.mark.anyio

QUOTE_FIELDS = "symbol bidPrice bidSize askPrice askSize midPrice timestamp"


class CountingQuoteSource:
    """Wraps a real source and records every batch it is asked for."""

    def __init__(self, inner: QuoteSource) -> None:
        self.inner = inner
        self.calls: list[list[str]] = []

    async def get_quotes(self, symbols: Sequence[str]) -> Mapping[str, Quote]:
        self.calls.append(list(symbols))
        return await self.inner.get_quotes(symbols)

    async def ping(self) -> None:
        await self.inner.ping()


class ExplodingQuoteSource:
    async def get_quotes(self, symbols: Sequence[str]) -> Mapping[str, Quote]:
        raise RuntimeError("secret internal detail")

    async def ping(self) -> None:
        return None


def replace_quote_source(app: Starlette, source: QuoteSource) -> None:
    app.state.services = dataclasses.replace(app.state.services, quote_source=source)


async def test_quote_answers_decimal_strings_from_the_paper_market(client: httpx.AsyncClient, app: Starlette) -> None:
    result = await execute(client, f'{{ quote(symbol: "AAPL") {{ {QUOTE_FIELDS} }} }}')

    expected = app.state.services.market.quote("AAPL")
    quote = result["data"]["quote"]
    assert quote["symbol"] == "AAPL"
    assert quote["bidPrice"] == format(expected.bid_price, "f")
    assert quote["askPrice"] == format(expected.ask_price, "f")
    assert quote["bidSize"] == format(expected.bid_size, "f")
    assert Decimal(quote["midPrice"]) == (expected.bid_price + expected.ask_price) / 2
    assert quote["timestamp"] == "2026-11-23T15:00:00+00:00"
    assert Decimal(quote["bidPrice"]) < Decimal(quote["askPrice"])


async def test_quote_moves_when_the_clock_moves(client: httpx.AsyncClient, clock: ManualClock) -> None:
    query = '{ quote(symbol: "TSLA") { bidPrice timestamp } }'
    first = (await execute(client, query))["data"]["quote"]
    same = (await execute(client, query))["data"]["quote"]
    clock.advance(300)
    later = (await execute(client, query))["data"]["quote"]

    assert same == first
    assert later["timestamp"] == "2026-11-23T15:05:00+00:00"
    assert later["bidPrice"] != first["bidPrice"]


async def test_symbols_are_normalised(client: httpx.AsyncClient) -> None:
    result = await execute(client, '{ quote(symbol: "  brk.b ") { symbol } }')
    assert result["data"]["quote"]["symbol"] == "BRK.B"


async def test_quotes_keep_the_order_asked(client: httpx.AsyncClient) -> None:
    result = await execute(client, '{ quotes(symbols: ["SPY", "aapl", "F", "SPY"]) { symbol } }')
    assert [q["symbol"] for q in result["data"]["quotes"]] == ["SPY", "AAPL", "F", "SPY"]


async def test_one_request_makes_one_batched_quote_call(client: httpx.AsyncClient, app: Starlette) -> None:
    counter = CountingQuoteSource(app.state.services.quote_source)
    replace_quote_source(app, counter)

    result = await execute(
        client,
        """{
          a: quote(symbol: "AAPL") { bidPrice }
          b: quote(symbol: "MSFT") { bidPrice }
          c: quote(symbol: "AAPL") { askPrice }
          quotes(symbols: ["NVDA", "MSFT", "QQQ"]) { symbol }
        }""",
    )

    assert "errors" not in result
    assert len(counter.calls) == 1
    assert sorted(counter.calls[0]) == ["AAPL", "MSFT", "NVDA", "QQQ"]


async def test_unknown_symbol_is_bad_user_input_naming_it(client: httpx.AsyncClient) -> None:
    result = await execute(client, '{ quote(symbol: "ZZZZ") { symbol } }')
    assert result["data"] is None
    [error] = result["errors"]
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "symbols": ["ZZZZ"]}
    assert "ZZZZ" in error["message"]


async def test_unknown_symbols_in_a_list_are_all_named(client: httpx.AsyncClient) -> None:
    result = await execute(client, '{ quotes(symbols: ["AAPL", "NOPE", "ZZZZ", "NOPE"]) { symbol } }')
    [error] = result["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["extensions"]["symbols"] == ["NOPE", "ZZZZ", "NOPE"]
    assert "NOPE" in error["message"]
    assert "ZZZZ" in error["message"]


@pytest.mark.parametrize("symbol", ["", "AAPL!", "A" * 40, "12345", "DROP TABLE", "\u0131bm", "\u00df"])
async def test_malformed_symbol_is_bad_user_input(client: httpx.AsyncClient, symbol: str) -> None:
    result = await execute(client, "query($s: String!) { quote(symbol: $s) { symbol } }", {"s": symbol})
    assert error_codes(result) == ["BAD_USER_INPUT"]
    assert "Malformed symbol" in result["errors"][0]["message"]


async def test_oversized_symbol_list_is_bad_user_input(client: httpx.AsyncClient) -> None:
    symbols = ["AAPL"] * 101
    result = await execute(client, "query($s: [String!]!) { quotes(symbols: $s) { symbol } }", {"s": symbols})
    assert error_codes(result) == ["BAD_USER_INPUT"]
    assert result["errors"][0]["extensions"]["limit"] == 100


async def test_empty_symbol_list_gives_an_empty_list(client: httpx.AsyncClient) -> None:
    result = await execute(client, "{ quotes(symbols: []) { symbol } }")
    assert result == {"data": {"quotes": []}}


async def test_unknown_field_is_a_validation_error(client: httpx.AsyncClient) -> None:
    result = await execute(client, '{ quote(symbol: "AAPL") { lastPrice } }')
    assert error_codes(result) == ["GRAPHQL_VALIDATION_FAILED"]
    assert "lastPrice" in result["errors"][0]["message"]


async def test_syntax_error_is_a_parse_failure(client: httpx.AsyncClient) -> None:
    result = await execute(client, '{ quote(symbol: "AAPL" { symbol }')
    assert error_codes(result) == ["GRAPHQL_PARSE_FAILED"]


async def test_wrongly_typed_variable_is_bad_user_input(client: httpx.AsyncClient) -> None:
    result = await execute(client, "query($s: String!) { quote(symbol: $s) { symbol } }", {"s": 42})
    assert error_codes(result) == ["BAD_USER_INPUT"]


async def test_malformed_json_body_is_http_400(client: httpx.AsyncClient) -> None:
    response = await client.post("/graphql", content=b'{"query": ', headers={"content-type": "application/json"})
    assert response.status_code == 400


async def test_unexpected_failure_is_masked_and_logged_with_the_request_id(
    client: httpx.AsyncClient, app: Starlette, caplog: pytest.LogCaptureFixture
) -> None:
    replace_quote_source(app, ExplodingQuoteSource())

    with caplog.at_level(logging.ERROR):
        response = await client.post(
            "/graphql", json={"query": '{ quote(symbol: "AAPL") { symbol } }'}, headers={"x-request-id": "req-123"}
        )

    [error] = response.json()["errors"]
    assert error["message"] == "Unexpected error."
    assert error["extensions"] == {"code": "INTERNAL_SERVER_ERROR", "requestId": "req-123"}
    assert "secret internal detail" not in response.text
    [record] = [r for r in caplog.records if r.exc_info]
    assert record.exc_info is not None
    assert "secret internal detail" in str(record.exc_info[1])


async def test_bad_input_never_logs_a_traceback(client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        await execute(client, '{ quote(symbol: "ZZZZ") { symbol } }')
        await execute(client, '{ quote(symbol: "AAPL") { nope } }')
        await execute(client, "{ quote(")
        await client.post("/graphql", content=b"not json", headers={"content-type": "application/json"})

    assert [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR] == []
