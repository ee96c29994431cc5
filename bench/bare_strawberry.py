"""What Strawberry itself costs: a one-resolver schema against a plain Starlette route, in-process.

Run: `.venv/bin/python -m bench.bare_strawberry` (prints microseconds per request; nothing is
asserted). The schema has the parser and validation caches and one async resolver returning
the same six quote fields the GraphQL benchmark asks for; both apps are called through
httpx's ASGI transport in this process, one request at a time, so the difference is
Strawberry's view plus its execution, with no server, no network and none of this project's
extensions. The floor under `bench.http_quotes`'s executed GraphQL row.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import httpx
import strawberry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from strawberry.asgi import GraphQL
from strawberry.extensions import ParserCache, ValidationCache

REQUESTS = 3000
WARMUP = 300
QUERY = '{ quote(symbol: "AAPL") { symbol bidPrice askPrice bidSize askSize timestamp } }'
ANSWER = {
    "symbol": "AAPL",
    "bidPrice": "230.02",
    "askPrice": "230.04",
    "bidSize": "3",
    "askSize": "4",
    "timestamp": "2026-11-23T15:00:00+00:00",
}


@strawberry.type
class Quote:
    symbol: str
    bid_price: str
    ask_price: str
    bid_size: str
    ask_size: str
    timestamp: str


@strawberry.type
class Query:
    @strawberry.field
    async def quote(self, symbol: str) -> Quote:
        return Quote(
            symbol=symbol,
            bid_price=ANSWER["bidPrice"],
            ask_price=ANSWER["askPrice"],
            bid_size=ANSWER["bidSize"],
            ask_size=ANSWER["askSize"],
            timestamp=ANSWER["timestamp"],
        )


async def plain(_request: Request) -> JSONResponse:
    return JSONResponse(ANSWER)


async def _per_request(app: object, send: str, requests: int) -> float:
    """Microseconds per request, after a warm-up."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as client:  # type: ignore[arg-type]

        async def one() -> None:
            if send == "graphql":
                response = await client.post("/", json={"query": QUERY})
            else:
                response = await client.get("/")
            response.raise_for_status()

        for _ in range(min(WARMUP, requests)):
            await one()
        started = time.perf_counter()
        for _ in range(requests):
            await one()
        return (time.perf_counter() - started) / requests * 1e6


async def measure(requests: int) -> dict[str, float]:
    schema = strawberry.Schema(Query, extensions=[lambda: ParserCache(maxsize=8), lambda: ValidationCache(maxsize=8)])
    plain_us = await _per_request(Starlette(routes=[Route("/", plain)]), "plain", requests)
    graphql_us = await _per_request(GraphQL(schema), "graphql", requests)
    return {"plain_us": plain_us, "graphql_us": graphql_us}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=REQUESTS, help=f"per app (default: {REQUESTS:,})")
    args = parser.parse_args(argv)
    figures = asyncio.run(measure(args.requests))
    print(f"plain Starlette route: {figures['plain_us']:.0f} us per request (httpx client included)")
    print(f"bare Strawberry, one resolver: {figures['graphql_us']:.0f} us per request (httpx client included)")
    print(f"Strawberry's own cost: {figures['graphql_us'] - figures['plain_us']:.0f} us per request")


if __name__ == "__main__":
    main()
