"""Request-wide guards: body size, depth, aliases, tokens."""

from __future__ import annotations

import httpx
import pytest

from server.api.extensions import CACHE_SIZE, QueryLimits
from server.api.schema import build_schema
from tests.utils.graphql import error_codes, execute

pytestmark = pytest.mark.anyio


async def test_too_many_aliases_are_refused_before_any_work(client: httpx.AsyncClient) -> None:
    query = "{ " + " ".join(f'q{i}: quotes(symbols: ["AAPL"]) {{ symbol }}' for i in range(31)) + " }"
    result = await execute(client, query)
    assert error_codes(result) == ["GRAPHQL_VALIDATION_FAILED"]
    assert "data" not in result or result["data"] is None


async def test_too_many_tokens_are_refused(client: httpx.AsyncClient) -> None:
    query = "{ quotes(symbols: [" + ", ".join('"AAPL"' for _ in range(2100)) + "]) { symbol } }"
    result = await execute(client, query)
    assert result["errors"][0]["extensions"]["code"] in {"GRAPHQL_PARSE_FAILED", "GRAPHQL_VALIDATION_FAILED"}
    assert "token" in result["errors"][0]["message"].lower()


async def test_query_depth_is_limited() -> None:
    # The schema is still shallow, so the wiring is checked with a tight limit.
    schema = build_schema(QueryLimits(max_depth=0))
    result = await schema.execute('{ quote(symbol: "AAPL") { symbol } }')
    assert result.errors is not None
    [error] = result.errors
    assert "exceeds maximum operation depth of 0" in error.message
    assert error.extensions == {"code": "GRAPHQL_VALIDATION_FAILED"}


async def test_oversized_bodies_get_413(client: httpx.AsyncClient) -> None:
    body = b'{"query": "' + b" " * 1_000_001 + b'{ quote(symbol: \\"AAPL\\") { symbol } }"}'
    response = await client.post("/graphql", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_oversized_streamed_bodies_get_413(client: httpx.AsyncClient) -> None:
    async def chunks():  # no content-length: the size is counted as it arrives
        for _ in range(20):
            yield b" " * 100_000

    response = await client.post("/graphql", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413


async def test_deeply_nested_json_is_a_400_not_a_crash(client: httpx.AsyncClient) -> None:
    body = b"[" * 100_000 + b"]" * 100_000
    response = await client.post("/graphql", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400


async def test_repeated_operations_hit_the_validation_cache() -> None:
    from strawberry.extensions.validation_cache import _get_validate_cache

    schema = build_schema(QueryLimits())
    cache = _get_validate_cache(CACHE_SIZE)
    query = "{ __typename } # a query text no other test sends"
    before = cache.cache_info()
    for _ in range(5):
        result = await schema.execute(query)
        assert result.errors is None
    after = cache.cache_info()
    assert after.misses - before.misses == 1
    assert after.hits - before.hits == 4
