"""Per-operation quote batching: every `quote` field of one operation shares one call.

A plain DataLoader sends a batch at the end of the loop tick in which the first symbol
was asked for. That is one call for `a: quote b: quote`, but not for `positions { quote }`
beside a top-level `quote`: the positions resolver is still waiting on the broker when the
first batch leaves. So resolvers that fetch things which have quotes (positions, orders,
option chains) hold the batch open with `producing()`, and the batch leaves only once no
producer is at work and a few loop ticks have passed with no new symbol: by then the
fields of what the producers returned have asked for theirs.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from server.brokers.base import QuoteSource, UnknownSymbolError
from server.brokers.domain import Quote

# Loop ticks with no new symbol and no producer before the batch leaves. graphql-core
# starts the fields of a returned list within two ticks; the rest is margin.
SETTLE_TICKS = 4


class QuoteLoader:
    def __init__(self, source: QuoteSource) -> None:
        self._source = source
        self._loaded: dict[str, asyncio.Future[Quote]] = {}
        self._waiting: dict[str, asyncio.Future[Quote]] = {}
        self._producers = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._dispatcher: asyncio.Task[None] | None = None

    async def load(self, symbol: str) -> Quote:
        future = self._loaded.get(symbol)
        if future is None:
            future = self._loaded[symbol] = asyncio.get_running_loop().create_future()
            self._waiting[symbol] = future
            self._schedule()
        return await asyncio.shield(future)

    @asynccontextmanager
    async def producing(self) -> AsyncIterator[None]:
        """Hold the batch while this resolver fetches objects whose fields will want quotes."""
        self._producers += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._producers -= 1
            if self._producers == 0:
                self._idle.set()

    def _schedule(self) -> None:
        if self._dispatcher is None or self._dispatcher.done():
            self._dispatcher = asyncio.create_task(self._dispatch())

    async def _dispatch(self) -> None:
        quiet = 0
        while quiet < SETTLE_TICKS:
            if self._producers:
                await self._idle.wait()
                quiet = 0
                continue
            asked = len(self._waiting)
            await asyncio.sleep(0)
            quiet = quiet + 1 if len(self._waiting) == asked and not self._producers else 0
        batch, self._waiting = self._waiting, {}
        await self._fetch(list(batch), batch)
        if self._waiting:  # asked for while the batch was out
            self._schedule()

    async def _fetch(self, symbols: Sequence[str], futures: dict[str, asyncio.Future[Quote]]) -> None:
        try:
            quotes = await self._quotes(symbols)
        except Exception as error:  # noqa: BLE001 - not swallowed: every field waiting on the batch gets it
            for future in futures.values():
                if not future.done():
                    future.set_exception(error)
            return
        for symbol, future in futures.items():
            if future.done():
                continue
            quote = quotes.get(symbol)
            if quote is None:
                future.set_exception(UnknownSymbolError([symbol]))
            else:
                future.set_result(quote)

    async def _quotes(self, symbols: Sequence[str]) -> dict[str, Quote]:
        """One call for the batch; unknown symbols are dropped (each of their fields says so)."""
        try:
            return dict(await self._source.get_quotes(symbols))
        except UnknownSymbolError as error:
            unknown = set(error.symbols)
            known = [symbol for symbol in symbols if symbol not in unknown]
            return dict(await self._source.get_quotes(known)) if known else {}


def quote_loader(source: QuoteSource) -> QuoteLoader:
    return QuoteLoader(source)
