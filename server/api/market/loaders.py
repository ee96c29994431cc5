"""Per-request DataLoader for quotes: every `quote` field of one request shares one batch."""

from __future__ import annotations

from collections.abc import Sequence

from strawberry.dataloader import DataLoader

from server.brokers.base import QuoteSource, UnknownSymbolError
from server.brokers.domain import Quote

QuoteLoader = DataLoader[str, Quote]


def quote_loader(source: QuoteSource) -> QuoteLoader:
    async def load(symbols: list[str]) -> Sequence[Quote | BaseException]:
        try:
            quotes = await source.get_quotes(symbols)
        except UnknownSymbolError as error:
            unknown = set(error.symbols)
            known = [symbol for symbol in symbols if symbol not in unknown]
            quotes = await source.get_quotes(known) if known else {}
        return [quotes.get(symbol) or UnknownSymbolError([symbol]) for symbol in symbols]

    return DataLoader(load_fn=load)
