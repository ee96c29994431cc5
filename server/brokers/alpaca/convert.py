"""alpaca-py's models to the broker seam's domain types, and domain requests to alpaca-py's.

alpaca-py parses numbers as strings or floats; every amount becomes a Decimal through
its text (`Decimal(str(x))` gives a float's shortest repr, which is the JSON's digits).
Times come aware from alpaca-py and are normalised to UTC.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal

from alpaca.data import models as data_models
from alpaca.trading import enums as alpaca_enums
from alpaca.trading import models as trading
from alpaca.trading import requests as alpaca_requests
from pydantic import ValidationError

from server.brokers.base import OrderRejectedError
from server.brokers.domain import (
    OPTION_MULTIPLIER,
    Account,
    Asset,
    AssetClass,
    MarketClock,
    OptionContract,
    OptionGreeks,
    OptionType,
    Order,
    OrderClass,
    OrderRequest,
    OrderSide,
    OrderStatus,
    OrderType,
    Position,
    PositionSide,
    Quote,
    ReplaceRequest,
    TimeInForce,
    TradeEvent,
    TradeUpdate,
    multiplier_of,
)
from server.brokers.paper.options import parse_occ

ZERO = Decimal(0)
ONE = Decimal(1)
CENT = Decimal("0.01")
_ORDER_CLASSES = {item.value: item for item in OrderClass}
_ASSET_CLASSES = {item.value: item for item in AssetClass}
# Alpaca statuses the domain has no name for, as the nearest one that means the same to a trader.
_STATUSES = {item.value: item for item in OrderStatus} | {
    "pending_review": OrderStatus.PENDING_NEW,
    "accepted_for_bidding": OrderStatus.ACCEPTED,
}
# The prices alpaca-py's request model for each order type sends; it has no field for the others.
_TYPE_PRICES: dict[OrderType, frozenset[str]] = {
    OrderType.MARKET: frozenset(),
    OrderType.LIMIT: frozenset({"limit_price"}),
    OrderType.STOP: frozenset({"stop_price"}),
    OrderType.STOP_LIMIT: frozenset({"stop_price", "limit_price"}),
    OrderType.TRAILING_STOP: frozenset({"trail_price", "trail_percent"}),
}


def decimal(value: object) -> Decimal:
    return Decimal(str(value))


def price(value: object) -> Decimal:
    """A market-data price: alpaca-py hands them over as floats, so 230.00 arrives as 230.0;
    cents are put back so a price reads the same from every broker."""
    amount = Decimal(str(value))
    exponent = amount.as_tuple().exponent
    return amount.quantize(CENT) if isinstance(exponent, int) and exponent > -2 else amount


def size(value: object) -> Decimal:
    amount = Decimal(str(value))
    return amount.quantize(ONE) if amount == amount.to_integral_value() else amount


def maybe_decimal(value: object) -> Decimal | None:
    return None if value is None or value == "" else Decimal(str(value))


def utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def maybe_utc(moment: datetime | None) -> datetime | None:
    return None if moment is None else moment.astimezone(UTC)


def _value(item: object) -> str:
    return str(getattr(item, "value", item))


def order(model: trading.Order) -> Order:
    created = utc(model.created_at)
    order_type = model.type or model.order_type
    return Order(
        id=str(model.id),
        client_order_id=model.client_order_id,
        symbol=model.symbol or "",
        asset_class=AssetClass(_value(model.asset_class or "us_equity")),
        side=OrderSide(_value(model.side)),
        type=OrderType(_value(order_type)),
        time_in_force=TimeInForce(_value(model.time_in_force)),
        order_class=_ORDER_CLASSES.get(_value(model.order_class), OrderClass.SIMPLE),
        status=_STATUSES[_value(model.status)],
        qty=maybe_decimal(model.qty),
        notional=maybe_decimal(model.notional),
        filled_qty=maybe_decimal(model.filled_qty) or ZERO,
        filled_avg_price=maybe_decimal(model.filled_avg_price),
        limit_price=maybe_decimal(model.limit_price),
        stop_price=maybe_decimal(model.stop_price),
        trail_price=maybe_decimal(model.trail_price),
        trail_percent=maybe_decimal(model.trail_percent),
        hwm=maybe_decimal(model.hwm),
        extended_hours=bool(model.extended_hours),
        created_at=created,
        updated_at=maybe_utc(model.updated_at) or created,
        submitted_at=maybe_utc(model.submitted_at) or created,
        filled_at=maybe_utc(model.filled_at),
        canceled_at=maybe_utc(model.canceled_at),
        expired_at=maybe_utc(model.expired_at),
        failed_at=maybe_utc(model.failed_at),
        replaced_at=maybe_utc(model.replaced_at),
        replaced_by=None if model.replaced_by is None else str(model.replaced_by),
        replaces=None if model.replaces is None else str(model.replaces),
        legs=tuple(order(leg) for leg in model.legs or ()),
    )


def trade_update(model: trading.TradeUpdate) -> TradeUpdate:
    return TradeUpdate(
        event=TradeEvent(_value(model.event)),
        order=order(model.order),
        timestamp=utc(model.timestamp),
        execution_id=None if model.execution_id is None else str(model.execution_id),
        price=maybe_decimal(model.price),
        qty=maybe_decimal(model.qty),
        position_qty=maybe_decimal(model.position_qty),
    )


def positions(models: Sequence[trading.Position]) -> list[Position]:
    """Stock and option positions; others (crypto) are not traded through this API and are left out."""
    return [position(model) for model in models if _value(model.asset_class) in _ASSET_CLASSES]


def position(model: trading.Position) -> Position:
    """Alpaca signs a short's qty and cost basis (both negative); the domain's are unsigned,
    the side says which way. Market value and P&L keep their signs."""
    asset_class = AssetClass(_value(model.asset_class))
    return Position(
        symbol=model.symbol,
        asset_class=asset_class,
        qty=abs(decimal(model.qty)),
        side=PositionSide(_value(model.side)),
        avg_entry_price=decimal(model.avg_entry_price),
        cost_basis=abs(decimal(model.cost_basis)),
        current_price=maybe_decimal(model.current_price) or ZERO,
        market_value=maybe_decimal(model.market_value) or ZERO,
        unrealized_pl=maybe_decimal(model.unrealized_pl) or ZERO,
        unrealized_plpc=maybe_decimal(model.unrealized_plpc) or ZERO,
        multiplier=multiplier_of(asset_class),
    )


def account(model: trading.TradeAccount, positions: Sequence[Position]) -> Account:
    """Alpaca reports no P&L on the account: unrealized is the positions' sum, realized unknown."""
    equity = maybe_decimal(model.equity) or ZERO
    return Account(
        id=str(model.id),
        account_number=model.account_number,
        status=_value(model.status),
        currency=model.currency or "USD",
        cash=maybe_decimal(model.cash) or ZERO,
        buying_power=maybe_decimal(model.buying_power) or ZERO,
        equity=equity,
        portfolio_value=maybe_decimal(model.portfolio_value) or equity,
        long_market_value=maybe_decimal(model.long_market_value) or ZERO,
        short_market_value=maybe_decimal(model.short_market_value) or ZERO,
        realized_pl=None,
        unrealized_pl=sum((p.unrealized_pl for p in positions), ZERO),
        multiplier=int(decimal(model.multiplier or 1)),
        shorting_enabled=bool(model.shorting_enabled),
        created_at=maybe_utc(model.created_at) or datetime.fromtimestamp(0, UTC),
    )


def clock(model: trading.Clock) -> MarketClock:
    return MarketClock(
        timestamp=utc(model.timestamp),
        is_open=model.is_open,
        next_open=utc(model.next_open),
        next_close=utc(model.next_close),
    )


def asset(model: trading.Asset) -> Asset:
    return Asset(
        symbol=model.symbol,
        name=model.name or model.symbol,
        exchange=_value(model.exchange),
        asset_class=AssetClass(_value(model.asset_class)),
        tradable=model.tradable,
        shortable=model.shortable,
        easy_to_borrow=model.easy_to_borrow,
        fractionable=model.fractionable,
        status=_value(model.status),
    )


def option_asset(model: trading.OptionContract) -> Asset:
    return Asset(
        symbol=model.symbol,
        name=model.name,
        exchange="OPRA",
        asset_class=AssetClass.US_OPTION,
        tradable=model.tradable,
        shortable=False,
        easy_to_borrow=False,
        fractionable=False,
        status=_value(model.status),
    )


def quote(symbol: str, model: data_models.Quote) -> Quote:
    return Quote(
        symbol=symbol,
        bid_price=price(model.bid_price),
        bid_size=size(model.bid_size),
        ask_price=price(model.ask_price),
        ask_size=size(model.ask_size),
        timestamp=utc(model.timestamp),
    )


def quotes(models: Mapping[str, data_models.Quote]) -> dict[str, Quote]:
    return {symbol: quote(symbol, model) for symbol, model in models.items()}


def option_chain(snapshots: Mapping[str, data_models.OptionsSnapshot]) -> list[OptionContract]:
    """The chain's contracts in the paper exchange's order: expiration, strike, type."""
    contracts = [option_contract(symbol, snapshot) for symbol, snapshot in snapshots.items()]
    chain = [contract for contract in contracts if contract is not None]
    return sorted(chain, key=lambda c: (c.expiration, c.strike, c.type.value))


def option_contract(symbol: str, snapshot: data_models.OptionsSnapshot) -> OptionContract | None:
    parsed = parse_occ(symbol)
    if parsed is None:
        return None
    underlying, expiration, option_type, strike = parsed
    greeks = snapshot.greeks
    return OptionContract(
        symbol=symbol,
        underlying=underlying,
        type=option_type,
        strike=strike,
        expiration=expiration,
        multiplier=OPTION_MULTIPLIER,
        implied_volatility=snapshot.implied_volatility,
        greeks=None
        if greeks is None
        else OptionGreeks(delta=greeks.delta, gamma=greeks.gamma, theta=greeks.theta, vega=greeks.vega, rho=greeks.rho),
    )


def contract_type(option_type: OptionType | None) -> alpaca_enums.ContractType | None:
    return None if option_type is None else alpaca_enums.ContractType(option_type.value)


def _price(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def order_request(request: OrderRequest) -> alpaca_requests.OrderRequest:
    """The order as alpaca-py's request model (which sends its numbers as JSON floats).

    Raises OrderRejectedError (422) for an order the model refuses, or one carrying a price
    its type's model has no field for (sent without it, it would be another order)."""
    for name in ("limit_price", "stop_price", "trail_price", "trail_percent"):
        if getattr(request, name) is not None and name not in _TYPE_PRICES[request.type]:
            raise OrderRejectedError(f"{name} is not allowed for {request.type} orders", field=name)
    try:
        return _order_model(request)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or None
        raise OrderRejectedError(first["msg"].removeprefix("Value error, "), field=field) from None


def _order_model(request: OrderRequest) -> alpaca_requests.OrderRequest:
    fields: dict[str, object] = {
        "symbol": request.symbol,
        "side": alpaca_enums.OrderSide(request.side.value),
        "type": alpaca_enums.OrderType(request.type.value),
        "time_in_force": alpaca_enums.TimeInForce(request.time_in_force.value),
        "qty": _price(request.qty),
        "notional": _price(request.notional),
        "extended_hours": request.extended_hours or None,
        "client_order_id": request.client_order_id,
        "order_class": None
        if request.order_class is OrderClass.SIMPLE
        else alpaca_enums.OrderClass(request.order_class.value),
    }
    if request.take_profit is not None:
        fields["take_profit"] = alpaca_requests.TakeProfitRequest(limit_price=float(request.take_profit.limit_price))
    if request.stop_loss is not None:
        fields["stop_loss"] = alpaca_requests.StopLossRequest(
            stop_price=float(request.stop_loss.stop_price), limit_price=_price(request.stop_loss.limit_price)
        )
    match request.type:
        case OrderType.MARKET:
            return alpaca_requests.MarketOrderRequest(**fields)
        case OrderType.LIMIT:
            return alpaca_requests.LimitOrderRequest(**fields, limit_price=_price(request.limit_price))
        case OrderType.STOP:
            return alpaca_requests.StopOrderRequest(**fields, stop_price=_price(request.stop_price))
        case OrderType.STOP_LIMIT:
            return alpaca_requests.StopLimitOrderRequest(
                **fields, stop_price=_price(request.stop_price), limit_price=_price(request.limit_price)
            )
        case OrderType.TRAILING_STOP:
            return alpaca_requests.TrailingStopOrderRequest(
                **fields, trail_price=_price(request.trail_price), trail_percent=_price(request.trail_percent)
            )


def replace_request(change: ReplaceRequest) -> alpaca_requests.ReplaceOrderRequest:
    qty = change.qty
    if qty is not None and qty != qty.to_integral_value():
        raise OrderRejectedError("qty must be a whole number to replace an order", field="qty")
    return alpaca_requests.ReplaceOrderRequest(
        qty=None if qty is None else int(qty),
        time_in_force=None if change.time_in_force is None else alpaca_enums.TimeInForce(change.time_in_force.value),
        limit_price=_price(change.limit_price),
        stop_price=_price(change.stop_price),
        trail=_price(change.trail),
        client_order_id=change.client_order_id,
    )
