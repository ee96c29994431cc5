"""Pre-trade risk checks, run before any order leaves: the kill switch, buying power, the
largest order and position a user may hold, and a band around the quote for limit and
stop prices (a fat-finger check). Limits are the server's defaults unless an admin set a
user's own.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from server.brokers.domain import Account, OrderRequest, OrderSide, Position, PositionSide, Quote
from server.models import User
from server.users.admin import RiskLimits
from server.users.problems import UserProblem

ZERO = Decimal(0)
HUNDRED = Decimal(100)
MIN_BAND = Decimal("0.05")

KILL_SWITCH = UserProblem("KILL_SWITCH", "Trading is halted for this account (kill switch); no new orders.")


def limits_for(user: User, defaults: RiskLimits) -> RiskLimits:
    return RiskLimits(
        max_order_notional=user.max_order_notional or defaults.max_order_notional,
        max_position_notional=user.max_position_notional or defaults.max_position_notional,
        price_band_percent=user.price_band_percent or defaults.price_band_percent,
    )


@dataclass(frozen=True, slots=True)
class Exposure:
    """What the checks need to know about the market and the account at this moment."""

    quote: Quote
    account: Account
    position: Position | None
    multiplier: int

    @property
    def signed_position(self) -> Decimal:
        if self.position is None:
            return ZERO
        return self.position.qty if self.position.side is PositionSide.LONG else -self.position.qty


def _reference_price(request: OrderRequest, quote: Quote) -> Decimal:
    """The price the order is expected to trade at: its own limit or stop, else the near side."""
    market = quote.ask_price if request.side is OrderSide.BUY else quote.bid_price
    if market <= 0:
        market = max(quote.ask_price, quote.bid_price)
    return request.limit_price or request.stop_price or market


def estimated_notional(request: OrderRequest, exposure: Exposure) -> Decimal:
    if request.notional is not None:
        return request.notional
    return (request.qty or ZERO) * _reference_price(request, exposure.quote) * exposure.multiplier


def risk_problems(request: OrderRequest, exposure: Exposure, limits: RiskLimits) -> list[UserProblem]:
    problems: list[UserProblem] = []
    notional = estimated_notional(request, exposure)
    price = _reference_price(request, exposure.quote)
    held = exposure.signed_position
    qty = request.qty if request.qty is not None else (notional / (price * exposure.multiplier) if price else ZERO)
    after = held + (qty if request.side is OrderSide.BUY else -qty)
    opening = max(ZERO, abs(after) - abs(held)) if (after > 0) == (held > 0) or held == 0 else abs(after)
    opening_cost = opening * price * exposure.multiplier

    if opening_cost > exposure.account.buying_power:
        problems.append(
            UserProblem(
                "INSUFFICIENT_BUYING_POWER",
                f"The order needs about {opening_cost:.2f} of buying power; "
                f"{exposure.account.buying_power:.2f} is available.",
                "qty",
            )
        )
    if limits.max_order_notional is not None and notional > limits.max_order_notional:
        problems.append(
            UserProblem(
                "MAX_ORDER_NOTIONAL",
                f"The order is worth about {notional:.2f}, over your limit of {limits.max_order_notional:.2f}.",
                "qty",
            )
        )
    position_value = abs(after) * price * exposure.multiplier
    if limits.max_position_notional is not None and opening and position_value > limits.max_position_notional:
        problems.append(
            UserProblem(
                "MAX_POSITION",
                f"The position would be worth about {position_value:.2f}, "
                f"over your limit of {limits.max_position_notional:.2f}.",
                "qty",
            )
        )
    problems += _price_band(request, exposure.quote, limits.price_band_percent)
    return problems


def _price_band(request: OrderRequest, quote: Quote, band_percent: Decimal | None) -> list[UserProblem]:
    if band_percent is None:
        return []
    # With no bid (a cheap option quoted 0.00 / 0.01) the ask is the market; and the band
    # is never narrower than a few ticks, or a contract worth a cent could take no limit.
    mid = (quote.bid_price + quote.ask_price) / 2 if quote.bid_price > 0 else quote.ask_price
    half_width = max(mid * band_percent / HUNDRED, MIN_BAND)
    low, high = mid - half_width, mid + half_width
    problems = []
    for field, price in (("limitPrice", request.limit_price), ("stopPrice", request.stop_price)):
        if price is not None and not low <= price <= high:
            problems.append(
                UserProblem(
                    "PRICE_BAND",
                    f"{field} {price} is more than {band_percent}% away from the market ({mid:.4f}).",
                    field,
                )
            )
    return problems
