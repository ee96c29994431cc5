from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette

from server.api.answers import Answer, AnswerCache, reusable_operation
from server.app import create_app
from server.brokers.domain import Quote
from server.brokers.paper.clock import ManualClock
from tests.api.test_quotes import CountingQuoteSource, replace_quote_source
from tests.utils.factories import make_settings
from tests.utils.graphql import error_codes

pytestmark = pytest.mark.anyio

QUOTE = '{ quote(symbol: "AAPL") { symbol bidPrice askPrice timestamp } }'


@pytest.fixture
def quote_batches(app: Starlette, monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    return count_quote_batches(app, monkeypatch)


def count_quote_batches(app: Starlette, monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The paper market's quote batches (the market itself stays the server's quote source)."""
    market = app.state.services.paper_market
    batches: list[list[str]] = []
    get_quotes = market.get_quotes

    async def counting(symbols: Sequence[str]) -> Mapping[str, Quote]:
        batches.append(list(symbols))
        return await get_quotes(symbols)

    monkeypatch.setattr(market, "get_quotes", counting)
    return batches


async def post(client: httpx.AsyncClient, query: str, **headers: str) -> httpx.Response:
    response = await client.post("/graphql", json={"query": query}, headers=headers)
    assert response.status_code == 200, response.text
    return response


async def test_an_identical_anonymous_quote_query_is_answered_once_per_market_step(
    client: httpx.AsyncClient, app: Starlette, clock: ManualClock, quote_batches: list[list[str]]
) -> None:
    first = await post(client, QUOTE)
    again = await post(client, QUOTE)

    assert again.content == first.content
    assert again.headers["content-type"] == first.headers["content-type"]
    assert quote_batches == [["AAPL"]]

    clock.advance(timedelta(seconds=app.state.services.settings.market_tick_seconds))  # the next market step
    later = await post(client, QUOTE)

    assert quote_batches == [["AAPL"], ["AAPL"]]
    assert later.json()["data"]["quote"]["timestamp"] > first.json()["data"]["quote"]["timestamp"]


@pytest.mark.parametrize(
    "headers",
    [{"Authorization": "Bearer not-a-token"}, {"Cache-Control": "no-cache"}],
    ids=["signed-in or trying to be", "client asks for a fresh answer"],
)
async def test_some_requests_are_always_executed(
    client: httpx.AsyncClient, quote_batches: list[list[str]], headers: dict[str, str]
) -> None:
    for _ in range(2):
        await client.post("/graphql", json={"query": QUOTE}, headers=headers)

    assert len(quote_batches) == 2


@pytest.mark.parametrize(
    "query",
    [
        '{ quote(symbol: "NOPE") { symbol } }',  # an error is never reused
        "{ clock { timestamp isOpen } }",  # only quotes come in market steps
        'query A { quote(symbol: "AAPL") { symbol } } query B { quotes(symbols: ["MSFT"]) { symbol } }',
    ],
)
async def test_other_answers_are_not_reused(client: httpx.AsyncClient, app: Starlette, query: str) -> None:
    view = next(route.app for route in app.routes if getattr(route, "path", None) == "/graphql")  # type: ignore[attr-defined]
    cache: AnswerCache = view.answers
    for _ in range(2):
        await client.post("/graphql", json={"query": query, "operationName": "A"})

    assert len(cache) == 0


async def test_an_answer_is_kept_per_accept_header(client: httpx.AsyncClient, quote_batches: list[list[str]]) -> None:
    plain = await post(client, QUOTE, Accept="application/json")
    await post(client, QUOTE, Accept="application/json")
    graphql_type = await post(client, QUOTE, Accept="application/graphql-response+json")

    assert len(quote_batches) == 2
    assert plain.headers["content-type"].startswith("application/json")
    assert graphql_type.json() == plain.json()


async def test_another_quote_source_turns_reuse_off(client: httpx.AsyncClient, app: Starlette) -> None:
    counting = CountingQuoteSource(app.state.services.quote_source)
    replace_quote_source(app, counting)

    for _ in range(2):
        await post(client, QUOTE)

    assert len(counting.calls) == 2


@pytest.fixture
async def strict_app(tmp_path: Path, clock: ManualClock) -> AsyncIterator[Starlette]:
    settings = make_settings(tmp_path / "data").model_copy(update={"rate_limit_anonymous_per_minute": 3})
    application = create_app(settings, clock=clock)
    async with application.router.lifespan_context(application):
        yield application


async def test_reused_answers_count_against_the_callers_rate_limit_and_in_the_metrics(
    strict_app: Starlette, monkeypatch: pytest.MonkeyPatch
) -> None:
    quote_batches = count_quote_batches(strict_app, monkeypatch)
    transport = httpx.ASGITransport(app=strict_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        answers = [
            (await client.post("/graphql", json={"query": QUOTE, "operationName": None})).json() for _ in range(4)
        ]
        metrics = (await client.get("/metrics")).text

    assert [error_codes(answer) for answer in answers] == [[], [], [], ["RATE_LIMITED"]]
    assert len(quote_batches) == 1  # the second and third were reused
    operations = {
        sample.labels["outcome"]: sample.value
        for family in text_string_to_metric_families(metrics)
        if family.name == "graphql_operations"
        for sample in family.samples
        if sample.name == "graphql_operations_total" and sample.labels["type"] == "query"
    }
    assert operations == {"ok": 3.0, "RATE_LIMITED": 1.0}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"query": "{ quote(symbol: \\"A\\") { symbol } }"}', (True, None)),
        (b'{"query": "query Ticker { quotes(symbols: [\\"A\\"]) { symbol } __typename }"}', (True, "Ticker")),
        (b'{"query": "{ quote(symbol: \\"A\\") { symbol } me { id } }"}', (False, None)),
        (b'{"query": "mutation { quote(symbol: \\"A\\") { symbol } }"}', (False, None)),
        (b'{"query": "{ ...F } fragment F on Query { quote(symbol: \\"A\\") { symbol } }"}', (False, None)),
        (b'{"query": "{ quote(symbol: \\"A\\") @skip(if: true) { symbol } }"}', (False, None)),
        (b'{"query": "{ quote(symbol: \\"A\\") { symbol } }", "extensions": {}}', (False, None)),
        (b'{"query": "{ quote(", "variables": {}}', (False, None)),
        (b"[1, 2]", (False, None)),
    ],
)
def test_reusable_operations_ask_for_quotes_only(body: bytes, expected: tuple[bool, str | None]) -> None:
    assert reusable_operation(body) == expected


def test_the_cache_is_bounded_and_keeps_an_answer_for_its_step_only() -> None:
    cache = AnswerCache(max_entries=2)
    for key, step in ((b"a", 1), (b"b", 1), (b"c", 2)):
        cache.put(key, Answer(step=step, status=200, headers=(), body=key, operation_name=None))

    assert len(cache) == 2
    assert cache.get(b"a", 1) is None  # the oldest went
    assert cache.get(b"b", 2) is None  # from another step
    assert cache.get(b"c", 2) is not None
