"""Domain types every broker adapter speaks: Alpaca's vocabulary, Decimal money, aware UTC."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import NamedTuple
from zoneinfo import ZoneInfo


class AssetClass(StrEnum):
    US_EQUITY = "us_equity"
    US_OPTION = "us_option"


class OrderSide(StrEnum):
    BUY = "buy"
    SELL = "sell"


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"
    STOP_LIMIT = "stop_limit"
    TRAILING_STOP = "trailing_stop"


class TimeInForce(StrEnum):
    DAY = "day"
    GTC = "gtc"
    OPG = "opg"
    CLS = "cls"
    IOC = "ioc"
    FOK = "fok"


class OrderClass(StrEnum):
    SIMPLE = "simple"
    BRACKET = "bracket"
    OCO = "oco"
    OTO = "oto"


class OrderStatus(StrEnum):
    NEW = "new"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    DONE_FOR_DAY = "done_for_day"
    CANCELED = "canceled"
    EXPIRED = "expired"
    REPLACED = "replaced"
    PENDING_CANCEL = "pending_cancel"
    PENDING_REPLACE = "pending_replace"
    ACCEPTED = "accepted"
    PENDING_NEW = "pending_new"
    HELD = "held"
    STOPPED = "stopped"
    REJECTED = "rejected"
    SUSPENDED = "suspended"
    CALCULATED = "calculated"

    @property
    def is_open(self) -> bool:
        return self not in CLOSED_STATUSES


CLOSED_STATUSES = frozenset(
    {OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.EXPIRED, OrderStatus.REPLACED, OrderStatus.REJECTED}
)
CLOSED_STATUS_VALUES = tuple(sorted(status.value for status in CLOSED_STATUSES))
OPTION_MULTIPLIER = 100  # shares per US equity option contract


def multiplier_of(asset_class: AssetClass) -> int:
    """Shares one unit of the asset stands for: a contract's 100, a share's 1."""
    return OPTION_MULTIPLIER if asset_class is AssetClass.US_OPTION else 1


NEW_YORK = ZoneInfo("America/New_York")  # US market hours and option expirations are New York's


class TradeEvent(StrEnum):
    NEW = "new"
    FILL = "fill"
    PARTIAL_FILL = "partial_fill"
    CANCELED = "canceled"
    EXPIRED = "expired"
    REPLACED = "replaced"
    REJECTED = "rejected"
    PENDING_NEW = "pending_new"
    PENDING_CANCEL = "pending_cancel"
    PENDING_REPLACE = "pending_replace"
    ORDER_REPLACE_REJECTED = "order_replace_rejected"
    ORDER_CANCEL_REJECTED = "order_cancel_rejected"


class PositionSide(StrEnum):
    LONG = "long"
    SHORT = "short"


class OptionType(StrEnum):
    CALL = "call"
    PUT = "put"


@dataclass(frozen=True, slots=True)
class Quote:
    symbol: str
    bid_price: Decimal
    bid_size: Decimal
    ask_price: Decimal
    ask_size: Decimal
    timestamp: datetime


@dataclass(frozen=True, slots=True)
class Trade:
    symbol: str
    price: Decimal
    size: Decimal
    timestamp: datetime
    trade_id: int


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
class TakeProfit:
    limit_price: Decimal


@dataclass(frozen=True, slots=True)
class StopLoss:
    stop_price: Decimal
    limit_price: Decimal | None = None


@dataclass(frozen=True, slots=True)
class OrderRequest:
    symbol: str
    side: OrderSide
    type: OrderType = OrderType.MARKET
    time_in_force: TimeInForce = TimeInForce.DAY
    qty: Decimal | None = None
    notional: Decimal | None = None
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    trail_price: Decimal | None = None
    trail_percent: Decimal | None = None
    extended_hours: bool = False
    client_order_id: str | None = None
    order_class: OrderClass = OrderClass.SIMPLE
    take_profit: TakeProfit | None = None
    stop_loss: StopLoss | None = None


@dataclass(frozen=True, slots=True)
class ReplaceRequest:
    qty: Decimal | None = None
    time_in_force: TimeInForce | None = None
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    trail: Decimal | None = None
    client_order_id: str | None = None


class Order(NamedTuple):
    """An order as the broker reports it (a snapshot; brokers never hand out live objects).

    A named tuple rather than a frozen dataclass: it is just as immutable and four times
    cheaper to build, and the paper exchange builds one for every trade update.
    """

    id: str
    client_order_id: str
    symbol: str
    asset_class: AssetClass
    side: OrderSide
    type: OrderType
    time_in_force: TimeInForce
    order_class: OrderClass
    status: OrderStatus
    qty: Decimal | None
    notional: Decimal | None
    filled_qty: Decimal
    filled_avg_price: Decimal | None
    limit_price: Decimal | None
    stop_price: Decimal | None
    trail_price: Decimal | None
    trail_percent: Decimal | None
    hwm: Decimal | None
    extended_hours: bool
    created_at: datetime
    updated_at: datetime
    submitted_at: datetime
    filled_at: datetime | None = None
    canceled_at: datetime | None = None
    expired_at: datetime | None = None
    failed_at: datetime | None = None
    replaced_at: datetime | None = None
    replaced_by: str | None = None
    replaces: str | None = None
    legs: tuple[Order, ...] = ()
    reject_reason: str | None = None


class TradeUpdate(NamedTuple):
    """One event of an order's life, with the order as it stood after it (a named tuple
    for the same reason as Order: the paper exchange builds one per event)."""

    event: TradeEvent
    order: Order
    timestamp: datetime
    execution_id: str | None = None
    price: Decimal | None = None
    qty: Decimal | None = None
    position_qty: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Position:
    symbol: str
    asset_class: AssetClass
    qty: Decimal
    side: PositionSide
    avg_entry_price: Decimal
    cost_basis: Decimal
    current_price: Decimal
    market_value: Decimal
    unrealized_pl: Decimal
    unrealized_plpc: Decimal
    multiplier: int = 1


@dataclass(frozen=True, slots=True)
class Account:
    id: str
    account_number: str
    status: str
    currency: str
    cash: Decimal
    buying_power: Decimal
    equity: Decimal
    portfolio_value: Decimal
    long_market_value: Decimal
    short_market_value: Decimal
    realized_pl: Decimal | None  # None: the broker does not report it (Alpaca)
    unrealized_pl: Decimal
    multiplier: int
    shorting_enabled: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class MarketClock:
    timestamp: datetime
    is_open: bool
    next_open: datetime
    next_close: datetime


@dataclass(frozen=True, slots=True)
class Asset:
    symbol: str
    name: str
    exchange: str
    asset_class: AssetClass
    tradable: bool
    shortable: bool
    easy_to_borrow: bool
    fractionable: bool
    status: str = "active"


@dataclass(frozen=True, slots=True)
class OptionGreeks:
    delta: float
    gamma: float
    theta: float
    vega: float
    rho: float


@dataclass(frozen=True, slots=True)
class OptionContract:
    symbol: str
    underlying: str
    type: OptionType
    strike: Decimal
    expiration: date
    multiplier: int
    implied_volatility: float | None = None
    greeks: OptionGreeks | None = None
