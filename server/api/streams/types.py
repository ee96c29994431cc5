"""GraphQL types of live data: trades, bars, order updates and portfolio snapshots.

Market events are converted through small caches keyed by the event itself, so every
subscriber of one tick gets the same object; the subscription executor then runs the
selection once per distinct (event, query) and shares the result.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from functools import lru_cache

import strawberry

from server.api.market.types import Quote
from server.api.trading.types import Account, Order, Position
from server.brokers import domain
from server.brokers.base import QuoteSource
from server.streams.portfolio import PortfolioSnapshot
from server.trading.ledger import OrderChange

CONVERSION_CACHE_SIZE = 4096


@strawberry.type(description="A trade printed on the tape.")
class Trade:
    symbol: str
    price: Decimal
    size: Decimal
    timestamp: datetime


@strawberry.type(description="A one-minute bar, sent as each minute closes.")
class Bar:
    symbol: str
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    trade_count: int
    vwap: Decimal
    timestamp: datetime


@lru_cache(maxsize=CONVERSION_CACHE_SIZE)
def quote_of(event: domain.Quote) -> Quote:
    return Quote.from_model(event)


@lru_cache(maxsize=CONVERSION_CACHE_SIZE)
def trade_of(event: domain.Trade) -> Trade:
    return Trade(symbol=event.symbol, price=event.price, size=event.size, timestamp=event.timestamp)


@lru_cache(maxsize=CONVERSION_CACHE_SIZE)
def bar_of(event: domain.Bar) -> Bar:
    return Bar(
        symbol=event.symbol,
        open=event.open,
        high=event.high,
        low=event.low,
        close=event.close,
        volume=event.volume,
        trade_count=event.trade_count,
        vwap=event.vwap,
        timestamp=event.timestamp,
    )


SHARED_PAYLOADS = (Quote, Trade, Bar)
"""Types whose fields depend on nothing but the event: one execution serves every subscriber."""


@strawberry.type(description="A trade-update event from the broker, with the order as the ledger now holds it.")
class OrderUpdate:
    event: str = strawberry.field(description="Alpaca's event name: new, fill, partial_fill, canceled, ...")
    order: Order

    @classmethod
    def from_change(cls, change: OrderChange) -> OrderUpdate:
        return cls(event=change.event, order=Order.from_row(change.order))


@strawberry.type(description="The account valued at live prices.")
class PortfolioUpdate:
    account: Account
    positions: list[Position]
    equity: Decimal = strawberry.field(description="Cash plus the positions' market value at live prices.")
    market_value: Decimal
    unrealized_pl: Decimal
    timestamp: datetime

    @classmethod
    def from_snapshot(
        cls, snapshot: PortfolioSnapshot, connection_id: str, quote_source: QuoteSource | None = None
    ) -> PortfolioUpdate:
        return cls(
            account=Account.from_model(snapshot.account, connection_id),
            positions=[Position.from_model(position, quote_source) for position in snapshot.positions],
            equity=snapshot.equity,
            market_value=snapshot.market_value,
            unrealized_pl=snapshot.unrealized_pl,
            timestamp=snapshot.timestamp,
        )
