"""Paper accounts: cash, positions with average entry price, realized P&L, buying power.

Buying power follows Reg T on a 2x margin account: twice the equity, less what open
positions and open orders already use. Options are not marginable and count double.
Every fill keeps `cash + cost basis of open positions - realized P&L` equal to the
starting cash: that is the conservation law the property tests check.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from server.brokers.domain import Account, AssetClass, OrderSide, Position, PositionSide

ZERO = Decimal(0)
MARGIN_MULTIPLIER = 2
MIN_EQUITY_FOR_MARGIN = Decimal(2000)
MONEY_PLACES = Decimal("0.01")
# Book values keep 9 decimal places, so sums stay exact within Decimal's 28 digits.
COST_PLACES = Decimal("0.000000001")
PriceLookup = Callable[[str], Decimal]
# The valuation's three buckets, in the order market_values returns them.
LONG_STOCK, SHORT_STOCK, LONG_OPTIONS = range(3)


@dataclass(slots=True)
class Holding:
    symbol: str
    asset_class: AssetClass
    multiplier: int
    qty: Decimal = ZERO  # signed: negative is short
    cost_basis: Decimal = ZERO  # signed, in dollars: qty * avg entry * multiplier

    @property
    def avg_entry_price(self) -> Decimal:
        return ZERO if self.qty == 0 else self.cost_basis / (self.qty * self.multiplier)

    def market_value(self, price: Decimal) -> Decimal:
        return self.qty * price * self.multiplier

    def bucket(self, value: Decimal) -> int:
        if self.asset_class is AssetClass.US_OPTION:
            return LONG_OPTIONS
        return LONG_STOCK if value >= 0 else SHORT_STOCK


@dataclass(slots=True)
class PaperAccount:
    starting_cash: Decimal
    created_at: datetime
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    account_number: str = field(default_factory=lambda: "PA" + uuid.uuid4().hex[:10].upper())
    cash: Decimal = ZERO
    realized_pl: Decimal = ZERO
    holdings: dict[str, Holding] = field(default_factory=dict)
    option_symbols: set[str] = field(default_factory=set)  # the holdings that are option contracts
    # The last valuation and the pricing generation it was made at (see market_values).
    _marks: list[Decimal] = field(default_factory=lambda: [ZERO, ZERO, ZERO])
    _marked_at: int | None = None

    def __post_init__(self) -> None:
        self.cash = self.starting_cash

    def position_qty(self, symbol: str) -> Decimal:
        holding = self.holdings.get(symbol)
        return holding.qty if holding else ZERO

    def apply_fill(
        self,
        symbol: str,
        asset_class: AssetClass,
        side: OrderSide,
        qty: Decimal,
        price: Decimal,
        multiplier: int,
        *,
        mark: tuple[int, Decimal] | None = None,
    ) -> Decimal:
        """Book a fill; returns the position quantity after it.

        `mark` is (pricing generation, the symbol's price then): with it, a valuation made
        at that generation is carried forward instead of being thrown away."""
        signed = qty if side is OrderSide.BUY else -qty
        self.cash -= signed * price * multiplier
        holding = self.holdings.get(symbol)
        if holding is None:
            holding = self.holdings[symbol] = Holding(symbol, asset_class, multiplier)
        if mark is not None and mark[0] == self._marked_at:
            before = holding.market_value(mark[1])
            self._marks[holding.bucket(before)] -= before
            self._book(holding, signed, price, multiplier)
            after = holding.market_value(mark[1])
            self._marks[holding.bucket(after)] += after
        else:
            self._marked_at = None
            self._book(holding, signed, price, multiplier)
        if holding.qty == 0:
            del self.holdings[symbol]
            self.option_symbols.discard(symbol)
        elif asset_class is AssetClass.US_OPTION:
            self.option_symbols.add(symbol)
        return holding.qty

    def _book(self, holding: Holding, signed: Decimal, price: Decimal, multiplier: int) -> None:
        if holding.qty == 0 or (holding.qty > 0) == (signed > 0):
            holding.cost_basis += signed * price * multiplier
            holding.qty += signed
        else:
            closing = min(abs(signed), abs(holding.qty))
            direction = 1 if holding.qty > 0 else -1
            # The cost taken off the books is computed once and booked both ways, so cash +
            # cost basis - realized P&L stays exactly constant whatever the rounding.
            if closing == abs(holding.qty):
                removed = holding.cost_basis
            else:
                removed = (holding.cost_basis * closing / abs(holding.qty)).quantize(COST_PLACES)
            self.realized_pl += direction * closing * price * multiplier - removed
            holding.cost_basis -= removed
            holding.qty -= closing * direction
            opening = abs(signed) - closing
            if opening:
                holding.qty = signed / abs(signed) * opening
                holding.cost_basis = holding.qty * price * multiplier

    def settle(self, symbol: str, value_per_unit: Decimal) -> Decimal:
        """Close a position for cash at `value_per_unit` (options expiring); returns the qty closed."""
        holding = self.holdings.get(symbol)
        if holding is None:
            return ZERO
        qty = holding.qty
        side = OrderSide.SELL if qty > 0 else OrderSide.BUY
        self.apply_fill(symbol, holding.asset_class, side, abs(qty), value_per_unit, holding.multiplier)
        return qty

    def market_values(self, price_of: PriceLookup, generation: int | None = None) -> tuple[Decimal, Decimal, Decimal]:
        """(long stock, short stock, long options) market values.

        With a pricing `generation` (a number that changes whenever prices may have), the
        valuation is kept and reused until the generation changes: checking an order then
        costs the same with one position or a hundred."""
        if generation is not None and generation == self._marked_at:
            long_stock, short_stock, long_options = self._marks
            return long_stock, short_stock, long_options
        marks = [ZERO, ZERO, ZERO]
        for holding in self.holdings.values():
            value = holding.market_value(price_of(holding.symbol))
            marks[holding.bucket(value)] += value
        self._marks, self._marked_at = marks, generation
        return marks[LONG_STOCK], marks[SHORT_STOCK], marks[LONG_OPTIONS]

    def buying_power(self, price_of: PriceLookup, reserved: Decimal = ZERO, generation: int | None = None) -> Decimal:
        return self._buying_power(self.market_values(price_of, generation), reserved)

    def _buying_power(self, values: Sequence[Decimal], reserved: Decimal) -> Decimal:
        long_stock, short_stock, long_options = values
        equity = self.cash + long_stock + short_stock + long_options
        if _multiplier(equity) == 1:  # a cash account: no margin
            return max(ZERO, self.cash - reserved)
        used = long_stock - short_stock + MARGIN_MULTIPLIER * long_options
        return max(ZERO, MARGIN_MULTIPLIER * equity - used - reserved)

    def snapshot(self, price_of: PriceLookup, reserved: Decimal = ZERO, generation: int | None = None) -> Account:
        """One valuation serves every figure (with a pricing `generation`, the one kept since
        the last step, as for buying power); each position's unrealized P&L is rounded as its
        Position rounds it, so the account's is their sum."""
        values = self.market_values(price_of, generation)
        long_stock, short_stock, long_options = values
        equity = self.cash + long_stock + short_stock + long_options
        unrealized = sum(
            (_money(h.market_value(price_of(h.symbol)) - h.cost_basis) for h in self.holdings.values()), ZERO
        )
        return Account(
            id=self.id,
            account_number=self.account_number,
            status="ACTIVE",
            currency="USD",
            cash=_money(self.cash),
            buying_power=_money(self._buying_power(values, reserved)),
            equity=_money(equity),
            portfolio_value=_money(equity),
            long_market_value=_money(long_stock + long_options),
            short_market_value=_money(short_stock),
            realized_pl=_money(self.realized_pl),
            unrealized_pl=_money(unrealized),
            multiplier=_multiplier(equity),
            shorting_enabled=True,
            created_at=self.created_at,
        )

    def position(self, symbol: str, price_of: PriceLookup) -> Position:
        holding = self.holdings[symbol]
        price = price_of(symbol)
        market_value = holding.market_value(price)
        unrealized = market_value - holding.cost_basis
        return Position(
            symbol=symbol,
            asset_class=holding.asset_class,
            qty=abs(holding.qty),
            side=PositionSide.LONG if holding.qty > 0 else PositionSide.SHORT,
            avg_entry_price=_money(holding.avg_entry_price, Decimal("0.0001")),
            cost_basis=_money(abs(holding.cost_basis)),
            current_price=price,
            market_value=_money(market_value),
            unrealized_pl=_money(unrealized),
            unrealized_plpc=_money(unrealized / abs(holding.cost_basis), Decimal("0.0001"))
            if holding.cost_basis
            else ZERO,
            multiplier=holding.multiplier,
        )


def _multiplier(equity: Decimal) -> int:
    return MARGIN_MULTIPLIER if equity >= MIN_EQUITY_FOR_MARGIN else 1


def _money(value: Decimal, places: Decimal = MONEY_PLACES) -> Decimal:
    return value.quantize(places) + 0  # + 0 turns -0.00 into 0.00
