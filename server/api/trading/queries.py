"""Account, positions, orders, the clock, assets and option chains."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated

import strawberry

from server.api.auth import signed_in_user
from server.api.context import Info
from server.api.errors import bad_user_input
from server.api.market.symbols import normalize_symbol, normalize_symbols
from server.api.trading.types import (
    Account,
    Asset,
    MarketClock,
    OptionContract,
    OptionType,
    Order,
    OrderConnection,
    OrderSide,
    OrderStatusFilter,
    Position,
)
from server.brokers import domain
from server.brokers.alpaca.broker import AlpacaMarketData
from server.brokers.base import Broker
from server.brokers.paper.market_data import PaperMarket
from server.trading.history import InvalidCursorError, OrderFilter, StatusFilter

MAX_ASSETS = 500


async def user_broker(info: Info, connection_id: strawberry.ID | None) -> tuple[str, Broker]:
    """The signed-in user's broker: the connection asked for, or their default one."""
    user = await signed_in_user(info)
    trading = info.context.services.trading
    connection = await trading.connection(user.id, str(connection_id) if connection_id else None)
    return connection.id, trading.broker(connection)


async def market(info: Info, connection_id: strawberry.ID | None) -> Broker | PaperMarket | AlpacaMarketData:
    """Market information: the caller's broker when signed in, else the server's own market."""
    if connection_id is not None or info.context.auth.claims is not None:
        return (await user_broker(info, connection_id))[1]
    return info.context.services.market_data


@strawberry.type
class TradingQuery:
    @strawberry.field(description="Balances of a broker account (default: your default connection).")
    async def account(self, info: Info, connection_id: strawberry.ID | None = None) -> Account:
        connection, broker = await user_broker(info, connection_id)
        call = info.context.services.trading.call
        return Account.from_model(await call(broker.get_account()), connection)

    @strawberry.field(description="Open positions, each with its quote (all quotes in one batch).")
    async def positions(self, info: Info, connection_id: strawberry.ID | None = None) -> list[Position]:
        async with info.context.loaders.quotes.producing():
            _, broker = await user_broker(info, connection_id)
            positions = await info.context.services.trading.call(broker.list_positions())
            source = info.context.services.quote_source_of(broker)
            return [Position.from_model(position, source) for position in positions]

    @strawberry.field(description="The position in one symbol; null when there is none.")
    async def position(self, info: Info, symbol: str, connection_id: strawberry.ID | None = None) -> Position | None:
        async with info.context.loaders.quotes.producing():
            _, broker = await user_broker(info, connection_id)
            found = await info.context.services.trading.call(broker.get_position(normalize_symbol(symbol)))
            source = info.context.services.quote_source_of(broker)
            return Position.from_model(found, source) if found is not None else None

    @strawberry.field(description="Your orders from the ledger, newest first, in pages.")
    async def orders(
        self,
        info: Info,
        status: OrderStatusFilter = StatusFilter.OPEN,  # type: ignore[valid-type]
        symbols: list[str] | None = None,
        side: OrderSide | None = None,  # type: ignore[valid-type]
        since: Annotated[datetime | None, strawberry.argument(description="Created at or after.")] = None,
        until: Annotated[datetime | None, strawberry.argument(description="Created before.")] = None,
        connection_id: strawberry.ID | None = None,
        first: int = 50,
        after: str | None = None,
    ) -> OrderConnection:
        async with info.context.loaders.quotes.producing():
            user = await signed_in_user(info)
            limit = info.context.services.settings.max_symbols_per_request
            where = OrderFilter(
                status=StatusFilter(status),
                symbols=tuple(normalize_symbols(symbols or [], limit=limit)),
                side=side,
                since=_aware(since, "since"),
                until=_aware(until, "until"),
                connection_id=str(connection_id) if connection_id else None,
            )
            if not 0 < first <= 500:
                raise bad_user_input("first must be between 1 and 500.")
            try:
                page = await info.context.services.history.page(user.id, where, first=first, after=after)
            except InvalidCursorError as error:
                raise bad_user_input(str(error)) from None
            await _warm_quote_sources(info, {row.connection_id for row in page.rows})
            return OrderConnection.of(page.rows, has_next=page.has_next)

    @strawberry.field(description="One of your orders, by its id or by your clientOrderId.")
    async def order(
        self, info: Info, id: strawberry.ID | None = None, client_order_id: str | None = None
    ) -> Order | None:
        async with info.context.loaders.quotes.producing():
            user = await signed_in_user(info)
            if (id is None) == (client_order_id is None):
                raise bad_user_input("Give id or clientOrderId, not both.")
            trading = info.context.services.trading
            row = (
                await trading.find(user.id, str(id))
                if id is not None
                else await trading.find_by_client_id(user.id, client_order_id or "")
            )
            if row is None:
                return None
            await _warm_quote_sources(info, {row.connection_id})
            return Order.from_row(row)

    @strawberry.field(description="The market clock (of your broker when signed in).")
    async def clock(self, info: Info, connection_id: strawberry.ID | None = None) -> MarketClock:
        source = await market(info, connection_id)
        found = await info.context.services.trading.call(source.clock())
        return MarketClock(
            timestamp=found.timestamp, is_open=found.is_open, next_open=found.next_open, next_close=found.next_close
        )

    @strawberry.field(description="Tradable stocks and ETFs, optionally those whose symbol or name contains `search`.")
    async def assets(
        self, info: Info, search: str | None = None, connection_id: strawberry.ID | None = None
    ) -> list[Asset]:
        source = await market(info, connection_id)
        found = await info.context.services.trading.call(source.list_assets())
        if search:
            needle = search.strip().lower()
            found = [a for a in found if needle in a.symbol.lower() or needle in a.name.lower()]
        return [Asset.from_model(asset) for asset in found[:MAX_ASSETS]]

    @strawberry.field(description="One stock, ETF or option contract; null when not listed.")
    async def asset(self, info: Info, symbol: str, connection_id: strawberry.ID | None = None) -> Asset | None:
        source = await market(info, connection_id)
        found = await info.context.services.trading.call(source.get_asset(normalize_symbol(symbol)))
        return Asset.from_model(found) if found is not None else None

    @strawberry.field(description="Listed option contracts of an underlying, with greeks and quotes.")
    async def option_chain(
        self,
        info: Info,
        underlying: str,
        expiration: date | None = None,
        type: OptionType | None = None,  # type: ignore[valid-type]
        min_strike: Decimal | None = None,
        max_strike: Decimal | None = None,
        connection_id: strawberry.ID | None = None,
    ) -> list[OptionContract]:
        async with info.context.loaders.quotes.producing():
            source = await market(info, connection_id)
            symbol = normalize_symbol(underlying)
            kind = domain.OptionType(type) if type is not None else None
            chain = await info.context.services.trading.call(
                source.option_chain(symbol, expiration=expiration, option_type=kind)
            )
            quotes = info.context.services.quote_source_of(source)
            return [
                OptionContract.from_model(contract, quotes)
                for contract in chain
                if (min_strike is None or contract.strike >= min_strike)
                and (max_strike is None or contract.strike <= max_strike)
            ]


async def _warm_quote_sources(info: Info, connection_ids: set[str]) -> None:
    """Find each connection's quote source while the batch is held, so the orders' quote
    fields find them at once and still make one batch per source."""
    for connection_id in connection_ids:
        await info.context.services.quotes_for(connection_id)


def _aware(moment: datetime | None, name: str) -> datetime | None:
    """The moment in UTC, as the ledger compares it."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        raise bad_user_input(f"{name} needs a time zone (e.g. 2026-11-23T14:30:00Z).")
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 is before the first UTC moment Python has
        raise bad_user_input(f"{name} is out of range.") from None
