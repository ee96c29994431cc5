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
import contextlib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from server.brokers.base import QuoteSource, UnknownSymbolError
from server.brokers.domain import Quote

# Loop ticks with no new symbol and no producer before the batch leaves. graphql-core
# starts the fields of a returned list within two ticks; the rest is margin.
SETTLE_TICKS = 4


class Producers:
    """Resolvers at work fetching things that have quotes; every batch of the operation waits for them."""

    def __init__(self) -> None:
        self.count = 0
        self.idle = asyncio.Event()
        self.idle.set()

    @asynccontextmanager
    async def producing(self) -> AsyncIterator[None]:
        self.count += 1
        self.idle.clear()
        try:
            yield
        finally:
            self.count -= 1
            if self.count == 0:
                self.idle.set()


class QuoteLoaders:
    """One batch per quote source in an operation: the server's market by default, or a
    broker's own (a user's Alpaca connection quotes from Alpaca, on that user's data plan)."""

    def __init__(self, default: QuoteSource) -> None:
        self._default = default
        self._producers = Producers()
        self._loaders: dict[int, QuoteLoader] = {}

    def producing(self) -> contextlib.AbstractAsyncContextManager[None]:
        """Hold the batches while this resolver fetches objects whose fields will want quotes."""
        return self._producers.producing()

    async def load(self, symbol: str, source: QuoteSource | None = None) -> Quote:
        source = source or self._default
        loader = self._loaders.get(id(source))
        if loader is None:
            loader = self._loaders[id(source)] = QuoteLoader(source, self._producers)
        return await loader.load(symbol)


class QuoteLoader:
    def __init__(self, source: QuoteSource, producers: Producers | None = None) -> None:
        self._source = source
        self._loaded: dict[str, asyncio.Future[Quote]] = {}
        self._waiting: dict[str, asyncio.Future[Quote]] = {}
        self._producers = producers or Producers()
        self._dispatcher: asyncio.Task[None] | None = None

    async def load(self, symbol: str) -> Quote:
        future = self._loaded.get(symbol)
        if future is None:
            future = self._loaded[symbol] = asyncio.get_running_loop().create_future()
            self._waiting[symbol] = future
            self._schedule()
        return await asyncio.shield(future)

    def _schedule(self) -> None:
        if self._dispatcher is None or self._dispatcher.done():
            self._dispatcher = asyncio.create_task(self._dispatch())

    async def _dispatch(self) -> None:
        # Symbols asked for while a batch is out go in the next one, sent by this same task:
        # `_schedule` starts no second dispatcher while this one runs.
        while self._waiting:
            await self._settle()
            batch, self._waiting = self._waiting, {}
            await self._fetch(list(batch), batch)

    async def _settle(self) -> None:
        """Until no producer is at work and a few loop ticks pass with no new symbol."""
        quiet = 0
        producers = self._producers
        while quiet < SETTLE_TICKS:
            if producers.count:
                await producers.idle.wait()
                quiet = 0
                continue
            asked = len(self._waiting)
            await asyncio.sleep(0)
            quiet = quiet + 1 if len(self._waiting) == asked and not producers.count else 0

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


def quote_loader(source: QuoteSource) -> QuoteLoaders:
    return QuoteLoaders(source)
