"""Quote path figures, in-process: the market simulator alone, and a GraphQL quote query.

Run: `.venv/bin/python -m bench.quotes` (prints a Markdown table; nothing is asserted).
Both run on one core, side by side in one process, so the ratio shows the GraphQL cost.
"""

from __future__ import annotations

import asyncio
import os
import platform
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from tempfile import TemporaryDirectory

from server.api.context import Context
from server.api.schema import schema
from server.brokers.paper.clock import ManualClock
from server.services import Services, run_services
from server.settings import Settings

ROUNDS = 5
ROUND_SECONDS = 1.0
QUERY = '{ quote(symbol: "AAPL") { symbol bidPrice askPrice bidSize askSize timestamp } }'
BATCH_QUERY = "{ quotes(symbols: %s) { symbol bidPrice askPrice } }"


async def _rate(operation: Callable[[], Awaitable[object]]) -> float:
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < ROUND_SECONDS:
        await operation()
        count += 1
    return count / elapsed


async def _median_rate(operation: Callable[[], Awaitable[object]]) -> float:
    return statistics.median([await _rate(operation) for _ in range(ROUNDS)])


async def main() -> None:
    clock = ManualClock(datetime(2026, 11, 23, 15, tzinfo=UTC))
    with TemporaryDirectory() as tmp:
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None,
            data_dir=Path(tmp),
            rate_limit_anonymous_per_minute=10**9,  # measure the limiter's cost, not its refusals
        )
        async with run_services(settings, clock=clock) as services:
            await _measure(services)


async def _measure(services: Services) -> None:
    clock, market = services.clock, services.market
    assert isinstance(clock, ManualClock)
    symbols = list(market.assets)[:50]
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

    raw = await _median_rate(simulator_quote)
    one = await _median_rate(graphql_quote)
    fifty = await _median_rate(graphql_batch)

    machine = f"Python {platform.python_version()} on {platform.machine()} ({os.cpu_count()} cores)"
    print(f"{machine}, median of {ROUNDS} one-second rounds\n")
    print("| operation | per second | vs. simulator |")
    print("|---|---:|---:|")
    print(f"| simulator quote (AAPL) | {raw:,.0f} | 1.00 |")
    print(f"| GraphQL `quote` (in-process execute) | {one:,.0f} | {one / raw:.3f} |")
    print(f"| GraphQL `quotes` for 50 symbols | {fifty:,.0f} ({fifty * 50:,.0f} quotes) | {fifty * 50 / raw:.3f} |")


if __name__ == "__main__":
    asyncio.run(main())
