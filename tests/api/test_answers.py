from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from server.api import answers
from server.api.answers import Answer, AnswerCache, reusable_operation
from server.app import create_app
from server.brokers.domain import Quote
from server.brokers.paper.clock import ManualClock
from tests.api.test_quotes import CountingQuoteSource, replace_quote_source
from tests.utils.factories import make_settings
from tests.utils.graphql import error_codes
from tests.utils.metrics import parse, value

pytestmark = pytest.mark.anyio

FIELDS = "symbol bidPrice askPrice bidSize askSize midPrice timestamp"
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


async def test_identical_queries_arriving_together_are_answered_by_one_execution(
    client: httpx.AsyncClient, quote_batches: list[list[str]]
) -> None:
    answers = await asyncio.gather(*(post(client, QUOTE) for _ in range(8)))

    assert quote_batches == [["AAPL"]]
    assert {answer.content for answer in answers} == {answers[0].content}
    assert "errors" not in answers[0].json()


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer not-a-token"},
        {"Cache-Control": "no-cache"},
        {"Cache-Control": "no-store"},
        {"Cache-Control": "max-age=0"},
        {"Pragma": "no-cache"},
    ],
    ids=["signed-in or trying to be", "no-cache", "no-store", "max-age=0", "pragma"],
)
async def test_some_requests_are_always_executed(
    client: httpx.AsyncClient, quote_batches: list[list[str]], headers: dict[str, str]
) -> None:
    for _ in range(2):
        await client.post("/graphql", json={"query": QUOTE}, headers=headers)

    assert len(quote_batches) == 2


def answer_cache(app: Starlette) -> AnswerCache:
    view = next(route.app for route in app.routes if getattr(route, "path", None) == "/graphql")  # type: ignore[attr-defined]
    return view.answers  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("request_body", "expected_codes"),
    [
        ({"query": '{ quote(symbol: "NOPE") { symbol } }'}, ["BAD_USER_INPUT"]),  # an error is never reused
        ({"query": "{ clock { timestamp isOpen } }"}, []),  # only quotes come in market steps
        (
            {
                "query": 'query A { quote(symbol: "AAPL") { symbol } } query B { quote(symbol: "F") { symbol } }',
                "operationName": "A",
            },
            [],
        ),
        ({"query": 'mutation { login(input: {login: "nobody", password: "quote"}) { accessToken } }'}, None),
    ],
    ids=["error", "clock", "two operations", "mutation"],
)
async def test_other_answers_are_not_reused(
    client: httpx.AsyncClient, app: Starlette, request_body: dict[str, str], expected_codes: list[str] | None
) -> None:
    for _ in range(2):
        answer = await client.post("/graphql", json=request_body)
        assert answer.status_code == 200, answer.text
        if expected_codes is not None:
            assert error_codes(answer.json()) == expected_codes

    assert len(answer_cache(app)) == 0


async def test_a_large_body_is_passed_on_whole_and_a_large_answer_is_not_kept(
    client: httpx.AsyncClient, app: Starlette, quote_batches: list[list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(answers, "MAX_ANSWER_BYTES", 10_000)
    padded = QUOTE + " " * 5000  # past what is read ahead: the app must still get all of it
    for _ in range(2):
        answer = await post(client, padded)
        assert answer.json()["data"]["quote"]["symbol"] == "AAPL"
    many = "{ " + " ".join(f'q{n}: quotes(symbols: ["AAPL", "MSFT", "SPY"]) {{ {FIELDS} }}' for n in range(25)) + " }"
    for _ in range(2):
        big = await post(client, many)
        assert len(big.content) > answers.MAX_ANSWER_BYTES
        assert "errors" not in big.json()

    assert len(quote_batches) == 4
    assert len(answer_cache(app)) == 0


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
    samples = parse(metrics)
    ok, refused = ({"type": "query", "outcome": outcome} for outcome in ("ok", "RATE_LIMITED"))
    assert value(samples, "graphql_operations_total", **ok) == 3
    assert value(samples, "graphql_operations_total", **refused) == 1
    # counted once, though the refused request was checked twice
    assert value(samples, "rate_limit_rejections_total", limiter="anonymous") == 1


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


def test_the_cache_is_bounded_and_holds_one_markets_current_step_only() -> None:
    market, other_market = object(), object()
    cache = AnswerCache(max_entries=2)

    def put(market: object, key: bytes, step: int) -> None:
        cache.put(market, key, Answer(step=step, headers=(), body=key, operation_name=None))

    for key in (b"a", b"b", b"c"):
        put(market, key, 1)
    assert len(cache) == 2
    assert cache.get(market, 1, b"a") is None  # the oldest went
    assert cache.get(market, 1, b"c") is not None

    put(market, b"d", 2)  # a newer step: the rest can never be served again
    assert len(cache) == 1
    put(market, b"late", 1)  # computed in a step already gone
    assert cache.get(market, 1, b"late") is None
    assert cache.get(market, 2, b"d") is not None
    assert cache.get(other_market, 2, b"d") is None  # step numbers are the market's own


async def test_a_reused_answer_takes_no_operation_name_slot(client: httpx.AsyncClient, app: Starlette) -> None:
    named = 'query StrangerName { quote(symbol: "AAPL") { symbol } }'
    for _ in range(2):
        await post(client, named)

    registry = app.state.services.metrics.registry
    labels = {"type": "query", "outcome": "ok"}
    assert registry.get_sample_value("graphql_operations_total", {**labels, "operation": "other"}) == 2
    assert registry.get_sample_value("graphql_operations_total", {**labels, "operation": "StrangerName"}) is None
