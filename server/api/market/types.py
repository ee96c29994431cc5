from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import strawberry

from server.brokers.domain import Quote as QuoteModel


@strawberry.type(description="The best bid and offer for a symbol at a moment.")
class Quote:
    symbol: str
    bid_price: Decimal
    bid_size: Decimal
    ask_price: Decimal
    ask_size: Decimal
    timestamp: datetime

    @strawberry.field(description="Halfway between bid and ask.")
    def mid_price(self) -> Decimal:
        return (self.bid_price + self.ask_price) / 2

    @classmethod
    def from_model(cls, quote: QuoteModel) -> Quote:
        return cls(
            symbol=quote.symbol,
            bid_price=quote.bid_price,
            bid_size=quote.bid_size,
            ask_price=quote.ask_price,
            ask_size=quote.ask_size,
            timestamp=quote.timestamp,
        )
