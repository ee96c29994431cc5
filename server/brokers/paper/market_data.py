"""The paper market as a QuoteSource (public market data when no Alpaca keys are set)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from server.brokers.domain import Quote
from server.brokers.paper.market import MarketSimulator


class PaperQuoteSource:
    def __init__(self, market: MarketSimulator) -> None:
        self.market = market

    async def get_quotes(self, symbols: Sequence[str]) -> Mapping[str, Quote]:
        return self.market.quotes(symbols)

    async def ping(self) -> None:
        self.market.current_step()
