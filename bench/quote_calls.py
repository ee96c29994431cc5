"""Quote calls per request: however many `quote` fields a request has, the quote source is asked once.

Run: `.venv/bin/python -m bench.quote_calls` (prints a Markdown table; nothing is asserted).
In-process: the real app (a temporary SQLite file, a manual clock) over httpx's ASGI
transport, its quote source wrapped by the counting wrapper the tests use
(`tests/api/test_quotes.py`). A signed-up user bought 50 symbols (50 orders, 50 positions); each request below is
sent a number of times and the calls the quote source got are counted. The issue's target:
one call per request.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory

import httpx
from starlette.applications import Starlette

from bench.report import Report, Table, Target, add_common_options, parse_args
from server.app import create_app
from server.brokers.paper.universe import UNIVERSE
from tests.api.test_quotes import CountingQuoteSource, replace_quote_source
from tests.utils.accounts import as_user, register
from tests.utils.factories import make_clock, make_settings

REQUESTS = 50
QUICK = {"requests": 3}
POSITIONS = 50
TARGET_CALLS = 1
PLACE = "mutation($i: PlaceOrderInput!) { placeOrder(input: $i) { order { id } userErrors { code } } }"


@dataclass(frozen=True)
class Case:
    name: str
    query: str
    symbols: int  # distinct symbols the request quotes


def cases(contracts: int) -> list[Case]:
    return [
        Case(
            f"{POSITIONS} positions, each with its quote",
            "{ positions { symbol quote { symbol bidPrice askPrice } } }",
            POSITIONS,
        ),
        Case(
            'aliased `a: quote(symbol: "AAPL") b: quote(symbol: "MSFT")`',
            '{ a: quote(symbol: "AAPL") { bidPrice askPrice } b: quote(symbol: "MSFT") { bidPrice askPrice } }',
            2,
        ),
        Case(
            "aliased quotes, positions, orders and an option chain, each with quotes",
            """{
              a: quote(symbol: "AAPL") { askPrice }
              b: quote(symbol: "MSFT") { askPrice }
              positions { quote { symbol } }
              orders(status: ALL, first: 100) { nodes { quote { symbol } } }
              optionChain(underlying: "AAPL", type: CALL, minStrike: "230", maxStrike: "230") { quote { symbol } }
            }""",
            POSITIONS + contracts,  # the orders' and the aliases' symbols are the positions' ones
        ),
    ]


@dataclass
class Counted:
    case: Case
    requests: int
    calls: int
    symbols_per_call: float
    seconds: float

    @property
    def calls_per_request(self) -> float:
        return self.calls / self.requests


async def _holdings(client: httpx.AsyncClient) -> str:
    """A user who bought one share of each of the first POSITIONS symbols through the API; their token."""
    user = await register(client, "bench")
    symbols = [spec.symbol for spec in UNIVERSE[:POSITIONS]]
    if not {"AAPL", "MSFT"} <= set(symbols):
        raise RuntimeError("the aliased cases count AAPL and MSFT among the positions")
    for symbol in symbols:
        order = {"symbol": symbol, "side": "BUY", "qty": "1"}
        result = await as_user(client, user.access_token, PLACE, {"i": order})
        if result.get("errors") or result["data"]["placeOrder"]["userErrors"]:
            raise RuntimeError(f"buying {symbol}: {result}")
    return user.access_token


async def _contracts(client: httpx.AsyncClient, token: str) -> int:
    query = '{ optionChain(underlying: "AAPL", type: CALL, minStrike: "230", maxStrike: "230") { symbol } }'
    return len((await as_user(client, token, query))["data"]["optionChain"])


async def _count(app: Starlette, client: httpx.AsyncClient, token: str, case: Case, requests: int) -> Counted:
    counting = CountingQuoteSource(app.state.services.quote_source)
    replace_quote_source(app, counting)
    started = time.perf_counter()
    for _ in range(requests):
        result = await as_user(client, token, case.query)
        if result.get("errors"):
            raise RuntimeError(f"{case.name}: {result['errors']}")
    seconds = time.perf_counter() - started
    replace_quote_source(app, counting.inner)
    symbols = sum(len(set(call)) for call in counting.calls) / max(1, len(counting.calls))
    return Counted(case, requests, len(counting.calls), symbols, seconds)


async def measure(requests: int) -> Report:
    with TemporaryDirectory() as tmp:
        unlimited = 10**9  # any --requests: what is counted is calls, not the limiter's refusals
        settings = make_settings(
            Path(tmp), rate_limit_user_per_minute=unlimited, rate_limit_orders_per_minute=unlimited
        )
        app = create_app(settings, clock=make_clock())
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as client,
        ):
            token = await _holdings(client)
            counted = [
                await _count(app, client, token, case, requests) for case in cases(await _contracts(client, token))
            ]
    table = Table(["request", "requests", "quote calls", "per request", "symbols per call", "ms per request"], "lrrrrr")
    for c in counted:
        table.add(
            c.case.name,
            c.requests,
            c.calls,
            f"{c.calls_per_request:g}",
            f"{c.symbols_per_call:g} of {c.case.symbols}",
            f"{c.seconds / c.requests * 1000:.1f}",
        )
    worst = max(counted, key=lambda c: c.calls_per_request)
    target = Target(
        f"{TARGET_CALLS} quote call per request, with every symbol in it",
        all(c.calls_per_request == TARGET_CALLS and c.symbols_per_call == c.case.symbols for c in counted),
        f"at most {worst.calls_per_request:g} per request",
    )
    figures = {
        c.case.name: {"requests": c.requests, "calls": c.calls, "symbols_per_call": c.symbols_per_call} for c in counted
    }
    setup = f"in-process (ASGI transport, SQLite, manual clock), {requests} requests each"
    return Report(setup, [table], targets=[target], figures=figures)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=REQUESTS, help=f"requests per case (default: {REQUESTS})")
    add_common_options(parser, quick=f"{QUICK['requests']} requests per case")
    args = parse_args(parser, argv, QUICK)
    if args.requests < 1:
        parser.error("--requests must be at least 1")
    asyncio.run(measure(args.requests)).publish(args.json)


if __name__ == "__main__":
    main()
