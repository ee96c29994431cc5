"""Quote path figures, in-process: the market simulator alone, and a GraphQL quote query.

Run: `.venv/bin/python -m bench.quotes` (prints a Markdown table; nothing is asserted).
Both run on one core, side by side in one process, so the ratio shows the GraphQL cost.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from tempfile import TemporaryDirectory

from bench.report import Report, Table, add_common_options, parse_args
from server.api.context import Context
from server.api.schema import schema
from server.brokers.paper.clock import ManualClock
from server.services import Services, run_services
from tests.utils.factories import make_clock, make_settings

ROUNDS = 5
ROUND_SECONDS = 1.0
QUICK = {"rounds": 1, "seconds": 0.1}
QUERY = '{ quote(symbol: "AAPL") { symbol bidPrice askPrice bidSize askSize timestamp } }'
BATCH_QUERY = "{ quotes(symbols: %s) { symbol bidPrice askPrice } }"
BATCH = 50


async def _rate(operation: Callable[[], Awaitable[object]], seconds: float) -> float:
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        await operation()
        count += 1
    return count / elapsed


async def _median_rate(operation: Callable[[], Awaitable[object]], rounds: int, seconds: float) -> float:
    return statistics.median([await _rate(operation, seconds) for _ in range(rounds)])


async def measure(rounds: int, seconds: float) -> Report:
    with TemporaryDirectory() as tmp:
        # An unlimited anonymous rate limit: the limiter's cost is measured, not its refusals.
        settings = make_settings(Path(tmp), rate_limit_anonymous_per_minute=10**9)
        async with run_services(settings, clock=make_clock()) as services:
            return await _measure(services, rounds, seconds)


async def _measure(services: Services, rounds: int, seconds: float) -> Report:
    clock, market = services.clock, services.market
    assert isinstance(clock, ManualClock)
    symbols = list(market.assets)[:BATCH]
    batch = BATCH_QUERY % str(symbols).replace("'", '"')

    async def simulator_quote() -> object:
        clock.advance(1)
        return market.quote("AAPL")

    async def graphql_quote() -> object:
        clock.advance(1)
        result = await schema.execute(QUERY, context_value=Context(request=None, response=None, services=services))
        assert result.errors is None
        return result

    async def graphql_batch() -> object:
        clock.advance(1)
        result = await schema.execute(batch, context_value=Context(request=None, response=None, services=services))
        assert result.errors is None
        return result

    raw = await _median_rate(simulator_quote, rounds, seconds)
    one = await _median_rate(graphql_quote, rounds, seconds)
    many = await _median_rate(graphql_batch, rounds, seconds)

    table = Table(["operation", "per second", "vs. simulator"], "lrr")
    table.add("simulator quote (AAPL)", f"{raw:,.0f}", "1.00")
    table.add("GraphQL `quote` (in-process execute)", f"{one:,.0f}", f"{one / raw:.3f}")
    table.add(
        f"GraphQL `quotes` for {BATCH} symbols",
        f"{many:,.0f} ({many * BATCH:,.0f} quotes)",
        f"{many * BATCH / raw:.3f}",
    )
    setup = f"one core, median of {rounds} rounds of {seconds:g} s" if rounds > 1 else f"one core, {seconds:g} s"
    figures = {"simulator_per_second": raw, "graphql_quote_per_second": one, "graphql_quotes_50_per_second": many}
    return Report(setup, [table], figures=figures)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=ROUNDS, help=f"rounds, the median counts (default: {ROUNDS})")
    parser.add_argument("--seconds", type=float, default=ROUND_SECONDS, help="seconds per round (default: 1)")
    add_common_options(parser, quick=f"{QUICK['rounds']} round of {QUICK['seconds']:g} s")
    args = parse_args(parser, argv, QUICK)
    if args.rounds < 1 or args.seconds <= 0:
        parser.error("--rounds must be at least 1 and --seconds positive")
    asyncio.run(measure(args.rounds, args.seconds)).publish(args.json)


if __name__ == "__main__":
    main()
