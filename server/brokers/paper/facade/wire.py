"""Alpaca's JSON shapes for the paper exchange's domain objects.

Trading answers carry money as strings, as Alpaca's trading API does; market data carries
prices as JSON numbers, as Alpaca's data API does. alpaca-py's models are the judge:
everything here parses into them.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from server.brokers.domain import (
    Account,
    Bar,
    MarketClock,
    Order,
    Position,
    PositionSide,
    Quote,
    Trade,
    TradeUpdate,
)
from server.brokers.paper.options import ContractSpec
from server.brokers.paper.universe import AssetSpec

# Asset ids must be UUIDs; deriving them from the symbol keeps them stable across restarts.
_ACCOUNT_NAMESPACE = uuid.UUID("6f1d3c52-8a0e-4d4b-9d8e-2f7a1c3b5e90")
_ASSET_NAMESPACE = uuid.UUID("6f1a4d3e-0c7b-4f8e-9d2a-5b3c1e0f7a91")
QUOTE_EXCHANGE = "V"  # IEX's code on Alpaca's feed
TRADE_CONDITIONS = ["@"]


def asset_id(symbol: str) -> str:
    return str(uuid.uuid5(_ASSET_NAMESPACE, symbol))


def account_id(name: str) -> str:
    """Alpaca's account ids are UUIDs (alpaca-py refuses others); a named account gets a stable one."""
    try:
        return str(uuid.UUID(name))
    except ValueError:
        return str(uuid.uuid5(_ACCOUNT_NAMESPACE, name))


def _s(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def _t(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def _n(value: Decimal) -> float | int:
    return int(value) if value == value.to_integral_value() and abs(value) < 2**53 else float(value)


def order(item: Order) -> dict[str, Any]:
    return {
        "id": item.id,
        "client_order_id": item.client_order_id,
        "created_at": _t(item.created_at),
        "updated_at": _t(item.updated_at),
        "submitted_at": _t(item.submitted_at),
        "filled_at": _t(item.filled_at),
        "expired_at": _t(item.expired_at),
        "canceled_at": _t(item.canceled_at),
        "failed_at": _t(item.failed_at),
        "replaced_at": _t(item.replaced_at),
        "replaced_by": item.replaced_by,
        "replaces": item.replaces,
        "asset_id": asset_id(item.symbol),
        "symbol": item.symbol,
        "asset_class": item.asset_class.value,
        "notional": _s(item.notional),
        "qty": _s(item.qty),
        "filled_qty": _s(item.filled_qty),
        "filled_avg_price": _s(item.filled_avg_price),
        "order_class": item.order_class.value if item.order_class.value != "simple" else "",
        "order_type": item.type.value,
        "type": item.type.value,
        "side": item.side.value,
        "time_in_force": item.time_in_force.value,
        "limit_price": _s(item.limit_price),
        "stop_price": _s(item.stop_price),
        "status": item.status.value,
        "extended_hours": item.extended_hours,
        "legs": [order(leg) for leg in item.legs] or None,
        "trail_percent": _s(item.trail_percent),
        "trail_price": _s(item.trail_price),
        "hwm": _s(item.hwm),
    }


def account(item: Account) -> dict[str, Any]:
    return {
        "id": account_id(item.id),
        "account_number": item.account_number,
        "status": item.status,
        "crypto_status": "INACTIVE",
        "currency": item.currency,
        "buying_power": _s(item.buying_power),
        "regt_buying_power": _s(item.buying_power),
        "daytrading_buying_power": _s(item.buying_power),
        "non_marginable_buying_power": _s(max(Decimal(0), item.cash)),
        "options_buying_power": _s(max(Decimal(0), item.cash)),
        "cash": _s(item.cash),
        "portfolio_value": _s(item.portfolio_value),
        "equity": _s(item.equity),
        "last_equity": _s(item.equity),
        "long_market_value": _s(item.long_market_value),
        "short_market_value": _s(item.short_market_value),
        "multiplier": str(item.multiplier),
        "shorting_enabled": item.shorting_enabled,
        "pattern_day_trader": False,
        "trading_blocked": False,
        "transfers_blocked": False,
        "account_blocked": False,
        "trade_suspended_by_user": False,
        "daytrade_count": 0,
        "options_approved_level": 2,
        "options_trading_level": 2,
        "created_at": _t(item.created_at),
    }


def position(item: Position, exchange: str) -> dict[str, Any]:
    """Alpaca signs a short's qty and cost basis (negative); the domain's are unsigned."""
    sign = -1 if item.side is PositionSide.SHORT else 1
    return {
        "asset_id": asset_id(item.symbol),
        "symbol": item.symbol,
        "exchange": exchange,
        "asset_class": item.asset_class.value,
        "asset_marginable": item.multiplier == 1,
        "avg_entry_price": _s(item.avg_entry_price),
        "qty": _s(sign * item.qty),
        "qty_available": _s(sign * item.qty),
        "side": item.side.value,
        "market_value": _s(item.market_value),
        "cost_basis": _s(sign * item.cost_basis),
        "unrealized_pl": _s(item.unrealized_pl),
        "unrealized_plpc": _s(item.unrealized_plpc),
        "unrealized_intraday_pl": _s(item.unrealized_pl),
        "unrealized_intraday_plpc": _s(item.unrealized_plpc),
        "current_price": _s(item.current_price),
        "lastday_price": _s(item.current_price),
        "change_today": "0",
    }


def clock(item: MarketClock) -> dict[str, Any]:
    return {
        "timestamp": _t(item.timestamp),
        "is_open": item.is_open,
        "next_open": _t(item.next_open),
        "next_close": _t(item.next_close),
    }


def stock_asset(spec: AssetSpec) -> dict[str, Any]:
    return {
        "id": asset_id(spec.symbol),
        "class": "us_equity",
        "exchange": spec.exchange.value,
        "symbol": spec.symbol,
        "name": spec.name,
        "status": "active",
        "tradable": True,
        "marginable": True,
        "shortable": spec.shortable,
        "easy_to_borrow": spec.easy_to_borrow,
        "fractionable": spec.fractionable,
        "maintenance_margin_requirement": 30,
        "attributes": [],
    }


def option_contract(contract: ContractSpec, *, today: date) -> dict[str, Any]:
    return {
        "id": asset_id(contract.symbol),
        "symbol": contract.symbol,
        "name": f"{contract.underlying} {contract.expiration:%b %d %Y} {contract.strike:f} "
        f"{'Call' if contract.type.value == 'call' else 'Put'}",
        "status": "active" if contract.expiration >= today else "inactive",
        "tradable": contract.expiration >= today,
        "expiration_date": contract.expiration.isoformat(),
        "root_symbol": contract.root,
        "underlying_symbol": contract.underlying,
        "underlying_asset_id": asset_id(contract.underlying),
        "type": contract.type.value,
        "style": "american",
        "strike_price": _s(
            contract.strike.normalize() if contract.strike % 1 else contract.strike.quantize(Decimal(1))
        ),
        "multiplier": "100",
        "size": "100",
        "open_interest": None,
        "open_interest_date": None,
        "close_price": None,
        "close_price_date": None,
    }


def trade_update(update: TradeUpdate) -> dict[str, Any]:
    data: dict[str, Any] = {
        "event": update.event.value,
        "timestamp": _t(update.timestamp),
        "order": order(update.order),
    }
    if update.execution_id is not None:
        data.update(
            execution_id=update.execution_id,
            price=_s(update.price),
            qty=_s(update.qty),
            position_qty=_s(update.position_qty),
        )
    return {"stream": "trade_updates", "data": data}


# ----- market data (Alpaca's short keys) ---------------------------------------------


def quote(item: Quote) -> dict[str, Any]:
    return {
        "ax": QUOTE_EXCHANGE,
        "ap": _n(item.ask_price),
        "as": _n(item.ask_size),
        "bx": QUOTE_EXCHANGE,
        "bp": _n(item.bid_price),
        "bs": _n(item.bid_size),
        "c": ["R"],
        "z": "C",
        "t": _t(item.timestamp),
    }


def trade(item: Trade) -> dict[str, Any]:
    return {
        "x": QUOTE_EXCHANGE,
        "p": _n(item.price),
        "s": _n(item.size),
        "c": TRADE_CONDITIONS,
        "i": item.trade_id,
        "z": "C",
        "t": _t(item.timestamp),
    }


def bar(item: Bar) -> dict[str, Any]:
    return {
        "o": _n(item.open),
        "h": _n(item.high),
        "l": _n(item.low),
        "c": _n(item.close),
        "v": _n(item.volume),
        "n": item.trade_count,
        "vw": _n(item.vwap),
        "t": _t(item.timestamp),
    }


def error(code: int, message: str) -> dict[str, Any]:
    return {"code": code, "message": message}
