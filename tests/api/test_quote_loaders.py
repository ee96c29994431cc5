"""The per-operation quote loaders, without a server: batches per source, and symbols asked
for while a batch is out are sent in the next one."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from server.api.market.loaders import QuoteLoaders
from server.brokers.domain import Quote

pytestmark = pytest.mark.anyio
WAIT_SECONDS = 2


class GatedSource:
    """Answers every symbol, but each batch waits until the test opens the gate."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.gate = asyncio.Event()

    async def get_quotes(self, symbols: Sequence[str]) -> Mapping[str, Quote]:
        self.batches.append(list(symbols))
        await self.gate.wait()
        moment = datetime(2026, 11, 24, tzinfo=UTC)
        return {s: Quote(s, Decimal(1), Decimal(1), Decimal(2), Decimal(1), moment) for s in symbols}

    async def ping(self) -> None:
        return None


async def _until(condition: object) -> None:
    async with asyncio.timeout(WAIT_SECONDS):
        while not condition():  # type: ignore[operator]  # noqa: ASYNC110
            await asyncio.sleep(0)


async def test_a_symbol_asked_for_while_a_batch_is_out_goes_in_the_next_batch() -> None:
    source = GatedSource()
    loaders = QuoteLoaders(source)
    first = asyncio.create_task(loaders.load("AAPL"))
    await _until(lambda: source.batches == [["AAPL"]])
    second = asyncio.create_task(loaders.load("MSFT"))  # the first batch is still out
    source.gate.set()
    async with asyncio.timeout(WAIT_SECONDS):
        quotes = await asyncio.gather(first, second)
    assert [quote.symbol for quote in quotes] == ["AAPL", "MSFT"]
    assert source.batches == [["AAPL"], ["MSFT"]]


async def test_each_source_gets_its_own_batch_and_the_default_is_the_servers() -> None:
    server, broker = GatedSource(), GatedSource()
    server.gate.set()
    broker.gate.set()
    loaders = QuoteLoaders(server)
    async with asyncio.timeout(WAIT_SECONDS):
        await asyncio.gather(loaders.load("AAPL"), loaders.load("SPY", broker), loaders.load("MSFT", broker))
    assert server.batches == [["AAPL"]]
    assert sorted(broker.batches[0]) == ["MSFT", "SPY"]
    assert len(broker.batches) == 1
