"""GraphQL types of trading: accounts, positions, orders (from the ledger), the clock,
assets and option contracts. Every `quote` field goes through the request's quote loader."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import strawberry

from server.api.context import Info
from server.api.market.types import Quote
from server.api.users.types import UserError
from server.brokers import domain
from server.brokers.base import QuoteSource, UnknownSymbolError
from server.models import Order as OrderRow
from server.models import OrderEvent as OrderEventRow
from server.trading.history import StatusFilter, encode_cursor
from server.trading.service import OrderOutcome

OrderSide = strawberry.enum(domain.OrderSide, name="OrderSide")
OrderType = strawberry.enum(domain.OrderType, name="OrderType")
TimeInForce = strawberry.enum(domain.TimeInForce, name="TimeInForce")
OrderClass = strawberry.enum(domain.OrderClass, name="OrderClass")
OrderStatus = strawberry.enum(domain.OrderStatus, name="OrderStatus", description="Alpaca's order statuses.")
AssetClass = strawberry.enum(domain.AssetClass, name="AssetClass")
PositionSide = strawberry.enum(domain.PositionSide, name="PositionSide")
OptionType = strawberry.enum(domain.OptionType, name="OptionType")
OrderStatusFilter = strawberry.enum(StatusFilter, name="OrderStatusFilter", description="Open, closed or all orders.")


async def load_quote(info: Info, symbol: str, source: QuoteSource | None = None) -> Quote | None:
    """The symbol's quote from the request's batch for `source` (None: the server's market);
    null when the market no longer lists it."""
    try:
        return Quote.from_model(await info.context.loaders.quotes.load(symbol, source))
    except UnknownSymbolError:
        return None


@strawberry.type(description="A broker account's balances.")
class Account:
    id: strawberry.ID
    connection_id: strawberry.ID
    account_number: str
    status: str
    currency: str
    cash: Decimal
    buying_power: Decimal
    equity: Decimal
    portfolio_value: Decimal
    long_market_value: Decimal
    short_market_value: Decimal
    realized_pl: Decimal | None = strawberry.field(
        description="Profit and loss realized by closing positions; null when the broker does not report it (Alpaca)."
    )
    unrealized_pl: Decimal
    multiplier: int
    shorting_enabled: bool
    created_at: datetime

    @classmethod
    def from_model(cls, account: domain.Account, connection_id: str) -> Account:
        return cls(
            id=strawberry.ID(account.id),
            connection_id=strawberry.ID(connection_id),
            account_number=account.account_number,
            status=account.status,
            currency=account.currency,
            cash=account.cash,
            buying_power=account.buying_power,
            equity=account.equity,
            portfolio_value=account.portfolio_value,
            long_market_value=account.long_market_value,
            short_market_value=account.short_market_value,
            realized_pl=account.realized_pl,
            unrealized_pl=account.unrealized_pl,
            multiplier=account.multiplier,
            shorting_enabled=account.shorting_enabled,
            created_at=account.created_at,
        )


@strawberry.type(description="A holding, valued at the broker's current price.")
class Position:
    symbol: str
    asset_class: AssetClass  # type: ignore[valid-type]
    qty: Decimal
    side: PositionSide  # type: ignore[valid-type]
    avg_entry_price: Decimal
    cost_basis: Decimal
    current_price: Decimal | None
    market_value: Decimal | None
    unrealized_pl: Decimal | None
    unrealized_plpc: Decimal | None = strawberry.field(description="Unrealized P&L as a fraction of the cost.")
    multiplier: int
    quote_source: strawberry.Private[QuoteSource | None] = None

    @strawberry.field(description="The latest quote (batched with every other quote of the request).")
    async def quote(self, info: Info) -> Quote | None:
        return await load_quote(info, self.symbol, self.quote_source)

    @classmethod
    def from_model(cls, position: domain.Position, quote_source: QuoteSource | None = None) -> Position:
        return cls(
            symbol=position.symbol,
            asset_class=position.asset_class,
            qty=position.qty,
            side=position.side,
            avg_entry_price=position.avg_entry_price,
            cost_basis=position.cost_basis,
            current_price=position.current_price,
            market_value=position.market_value,
            unrealized_pl=position.unrealized_pl,
            unrealized_plpc=position.unrealized_plpc,
            multiplier=position.multiplier,
            quote_source=quote_source,
        )


@strawberry.type(description="A change to an order, as recorded in the ledger.")
class OrderEvent:
    event: str
    status: str
    qty: Decimal | None
    price: Decimal | None
    filled_qty: Decimal | None
    occurred_at: datetime

    @classmethod
    def from_row(cls, row: OrderEventRow) -> OrderEvent:
        return cls(
            event=row.event,
            status=row.status,
            qty=row.qty,
            price=row.price,
            filled_qty=row.filled_qty,
            occurred_at=row.occurred_at,
        )


@strawberry.type(description="An order as the ledger holds it: written before it was sent, kept up to date since.")
class Order:
    id: strawberry.ID
    client_order_id: str
    broker_order_id: str | None
    connection_id: strawberry.ID
    parent_order_id: strawberry.ID | None
    replaces_order_id: strawberry.ID | None
    symbol: str
    asset_class: AssetClass  # type: ignore[valid-type]
    side: OrderSide  # type: ignore[valid-type]
    type: OrderType  # type: ignore[valid-type]
    time_in_force: TimeInForce  # type: ignore[valid-type]
    order_class: OrderClass  # type: ignore[valid-type]
    qty: Decimal | None
    notional: Decimal | None
    limit_price: Decimal | None
    stop_price: Decimal | None
    trail_price: Decimal | None
    trail_percent: Decimal | None
    extended_hours: bool
    status: OrderStatus  # type: ignore[valid-type]
    filled_qty: Decimal
    filled_avg_price: Decimal | None
    reject_code: str | None
    reject_reason: str | None
    submitted_at: datetime | None
    filled_at: datetime | None
    canceled_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @strawberry.field(description="The latest quote of the order's symbol.")
    async def quote(self, info: Info) -> Quote | None:
        return await load_quote(info, self.symbol, await info.context.services.quotes_for(str(self.connection_id)))

    @strawberry.field(description="Exit legs of a bracket, OCO or OTO order.")
    async def legs(self, info: Info) -> list[Order]:
        return [Order.from_row(row) for row in await info.context.loaders.order_legs.load(str(self.id))]

    @strawberry.field(description="Every change recorded for this order, oldest first.")
    async def events(self, info: Info) -> list[OrderEvent]:
        return [OrderEvent.from_row(row) for row in await info.context.loaders.order_events.load(str(self.id))]

    @classmethod
    def from_row(cls, row: OrderRow) -> Order:
        return cls(
            id=strawberry.ID(row.id),
            client_order_id=row.client_order_id,
            broker_order_id=row.broker_order_id,
            connection_id=strawberry.ID(row.connection_id),
            parent_order_id=strawberry.ID(row.parent_order_id) if row.parent_order_id else None,
            replaces_order_id=strawberry.ID(row.replaces_order_id) if row.replaces_order_id else None,
            symbol=row.symbol,
            asset_class=domain.AssetClass(row.asset_class),
            side=domain.OrderSide(row.side),
            type=domain.OrderType(row.order_type),
            time_in_force=domain.TimeInForce(row.time_in_force),
            order_class=domain.OrderClass(row.order_class),
            qty=row.qty,
            notional=row.notional,
            limit_price=row.limit_price,
            stop_price=row.stop_price,
            trail_price=row.trail_price,
            trail_percent=row.trail_percent,
            extended_hours=row.extended_hours,
            status=domain.OrderStatus(row.status),
            filled_qty=row.filled_qty,
            filled_avg_price=row.filled_avg_price,
            reject_code=row.reject_code,
            reject_reason=row.reject_reason,
            submitted_at=row.submitted_at,
            filled_at=row.filled_at,
            canceled_at=row.canceled_at,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


@strawberry.type
class OrderEdge:
    cursor: str
    node: Order


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type(description="A page of orders, newest first; pass pageInfo.endCursor as `after` for the next.")
class OrderConnection:
    edges: list[OrderEdge]
    page_info: PageInfo

    @strawberry.field
    def nodes(self) -> list[Order]:
        return [edge.node for edge in self.edges]

    @classmethod
    def of(cls, rows: list[OrderRow], *, has_next: bool) -> OrderConnection:
        edges = [OrderEdge(cursor=encode_cursor(row), node=Order.from_row(row)) for row in rows]
        return cls(
            edges=edges, page_info=PageInfo(has_next_page=has_next, end_cursor=edges[-1].cursor if edges else None)
        )


@strawberry.type(description="Whether the market is open, and when it next opens and closes.")
class MarketClock:
    timestamp: datetime
    is_open: bool
    next_open: datetime
    next_close: datetime


@strawberry.type(description="A tradable stock, ETF or option contract.")
class Asset:
    symbol: str
    name: str
    exchange: str
    asset_class: AssetClass  # type: ignore[valid-type]
    status: str
    tradable: bool
    shortable: bool
    easy_to_borrow: bool
    fractionable: bool

    @classmethod
    def from_model(cls, asset: domain.Asset) -> Asset:
        return cls(
            symbol=asset.symbol,
            name=asset.name,
            exchange=asset.exchange,
            asset_class=asset.asset_class,
            status=asset.status,
            tradable=asset.tradable,
            shortable=asset.shortable,
            easy_to_borrow=asset.easy_to_borrow,
            fractionable=asset.fractionable,
        )


@strawberry.type(description="Black-Scholes sensitivities of an option's price.")
class Greeks:
    delta: float
    gamma: float
    theta: float = strawberry.field(description="Per calendar day.")
    vega: float = strawberry.field(description="Per volatility point.")
    rho: float = strawberry.field(description="Per rate point.")


@strawberry.type(description="A listed option contract (OCC symbol), priced from its underlying.")
class OptionContract:
    symbol: str
    underlying: str
    type: OptionType  # type: ignore[valid-type]
    strike: Decimal
    expiration: date
    multiplier: int
    implied_volatility: float | None
    greeks: Greeks | None
    quote_source: strawberry.Private[QuoteSource | None] = None

    @strawberry.field(description="The contract's latest quote.")
    async def quote(self, info: Info) -> Quote | None:
        return await load_quote(info, self.symbol, self.quote_source)

    @classmethod
    def from_model(cls, contract: domain.OptionContract, quote_source: QuoteSource | None = None) -> OptionContract:
        greeks = contract.greeks
        return cls(
            symbol=contract.symbol,
            underlying=contract.underlying,
            type=contract.type,
            strike=contract.strike,
            expiration=contract.expiration,
            multiplier=contract.multiplier,
            implied_volatility=round(contract.implied_volatility, 6) if contract.implied_volatility else None,
            greeks=Greeks(
                delta=round(greeks.delta, 6),
                gamma=round(greeks.gamma, 6),
                theta=round(greeks.theta, 6),
                vega=round(greeks.vega, 6),
                rho=round(greeks.rho, 6),
            )
            if greeks
            else None,
            quote_source=quote_source,
        )


@strawberry.type(description="The order placed (or found by its clientOrderId), or why there is none.")
class PlaceOrderPayload:
    order: Order | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)

    @classmethod
    def of(cls, outcome: OrderOutcome, *, prefix: tuple[str, ...] = ("input",)) -> PlaceOrderPayload:
        order = Order.from_row(outcome.order) if outcome.order is not None else None
        return cls(order=order, user_errors=UserError.of(outcome.problems, prefix=prefix))


@strawberry.type
class CancelOrderPayload:
    order: Order | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type(description="The orders a bulk action touched, and what went wrong on the way.")
class BulkOrdersPayload:
    orders: list[Order] = strawberry.field(default_factory=list)
    user_errors: list[UserError] = strawberry.field(default_factory=list)

    @classmethod
    def of(cls, outcomes: list[OrderOutcome]) -> BulkOrdersPayload:
        orders = [Order.from_row(outcome.order) for outcome in outcomes if outcome.order is not None]
        problems = [problem for outcome in outcomes for problem in outcome.problems]
        return cls(orders=orders, user_errors=UserError.of(problems, prefix=()))


@strawberry.type(description="How many orders were checked against the broker, and how many of them changed.")
class SyncOrdersPayload:
    checked: int
    updated: int
    user_errors: list[UserError] = strawberry.field(default_factory=list)
