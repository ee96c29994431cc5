from __future__ import annotations

import asyncio

import strawberry

from server.api.context import Info
from server.api.errors import bad_user_input
from server.api.market.symbols import normalize_symbol, normalize_symbols
from server.api.market.types import Quote
from server.brokers.base import UnknownSymbolError


@strawberry.type
class MarketQuery:
    @strawberry.field(description="The latest quote for one symbol.")
    async def quote(self, info: Info, symbol: str) -> Quote:
        quote = await info.context.loaders.quotes.load(normalize_symbol(symbol))
        return Quote.from_model(quote)

    @strawberry.field(description="The latest quotes for many symbols, in the order asked, fetched in one batch.")
    async def quotes(self, info: Info, symbols: list[str]) -> list[Quote]:
        wanted = normalize_symbols(symbols, limit=info.context.services.settings.max_symbols_per_request)
        loaded = await asyncio.gather(*(info.context.loaders.quotes.load(s) for s in wanted), return_exceptions=True)
        unknown = [s for s, result in zip(wanted, loaded, strict=True) if isinstance(result, UnknownSymbolError)]
        if unknown:
            raise bad_user_input(str(UnknownSymbolError(list(dict.fromkeys(unknown)))), symbols=unknown)
        for result in loaded:
            if isinstance(result, BaseException):
                raise result
        return [Quote.from_model(quote) for quote in loaded]  # type: ignore[arg-type]
