"""The paper exchange: accounts and orders matched against the simulated market.

Synchronous and single-threaded by design (it runs on the event loop; every call is
microseconds). Time moves only through `advance()`, which steps the market to the
clock's present and, at every step in between, expires what is due and works the open
orders that step's quotes can fill (the book's index finds them), so tests drive the
exchange by moving a ManualClock and calling `advance()`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal

from server.brokers.base import (
    InsufficientQtyError,
    NotFoundError,
    OrderRejectedError,
    UnknownSymbolError,
)
from server.brokers.domain import (
    Account,
    MarketClock,
    Order,
    OrderClass,
    OrderRequest,
    OrderSide,
    OrderStatus,
    Position,
    Quote,
    ReplaceRequest,
    TimeInForce,
    TradeEvent,
    TradeUpdate,
)
from server.brokers.paper import matching, options, risk
from server.brokers.paper.accounts import PaperAccount
from server.brokers.paper.book import OrderBook
from server.brokers.paper.calendar import MarketCalendar, market_clock, session_close, sessions_from
from server.brokers.paper.ids import new_id
from server.brokers.paper.instruments import Instrument, Instruments
from server.brokers.paper.market import MarketSimulator
from server.brokers.paper.orders import PaperOrder, exit_legs, validate_request
from server.decimals import QTY_PLACES, canonical_decimal

ZERO = Decimal(0)
DEFAULT_STARTING_CASH = Decimal(100000)
# Past this many steps behind, open orders are worked on every n-th step only.
MAX_MATCHED_STEPS = 3600
_DAY = timedelta(days=1)
TradeListener = Callable[[str, TradeUpdate], None]


class PaperExchange:
    def __init__(
        self,
        market: MarketSimulator,
        calendar: MarketCalendar,
        *,
        starting_cash: Decimal = DEFAULT_STARTING_CASH,
    ) -> None:
        self.market = market
        self.instruments = Instruments(market)
        self.calendar = calendar
        self.starting_cash = starting_cash
        self._accounts: dict[str, PaperAccount] = {}
        self.book = OrderBook()
        self._listeners: tuple[TradeListener, ...] = ()
        self._session: tuple[datetime, datetime] | None = None
        # Per-step memos: a quote, a price or "is the market open" is computed once per
        # step, however many orders and valuations ask for it.
        self._quotes: dict[str, Quote] = {}
        self._prices: dict[str, Decimal] = {}
        self._open_now = False
        self._generation = 0  # bumped with every step: account valuations are kept per generation
        self._last_emitted: tuple[PaperOrder, Order] | None = None
        self._step = -1
        self._reach(market.current_step())
        market.before_moving(self.advance)

    # ----- accounts -------------------------------------------------------------------

    def open_account(self, account_id: str | None = None) -> str:
        if account_id is None or account_id not in self._accounts:
            account = PaperAccount(self.starting_cash, self.now())
            if account_id is not None:
                account.id = account_id
            self._accounts[account.id] = account
            return account.id
        return account_id

    def _account(self, account_id: str) -> PaperAccount:
        try:
            return self._accounts[account_id]
        except KeyError:
            raise NotFoundError("account") from None

    def restore_fill(self, account_id: str, symbol: str, side: OrderSide, qty: Decimal, price: Decimal) -> None:
        """Book a fill the account made before a restart (replayed from the ledger)."""
        instrument = self.instruments.resolve(symbol)
        if instrument is None:
            raise UnknownSymbolError([symbol])
        self._account(account_id).apply_fill(symbol, instrument.asset_class, side, qty, price, instrument.multiplier)

    def account(self, account_id: str) -> Account:
        self.advance()
        account = self._account(account_id)
        return account.snapshot(self.price_of, self.book.reserved(account_id), self._generation)

    def positions(self, account_id: str) -> list[Position]:
        self.advance()
        account = self._account(account_id)
        return [account.position(symbol, self.price_of) for symbol in sorted(account.holdings)]

    def position(self, account_id: str, symbol: str) -> Position:
        self.advance()
        account = self._account(account_id)
        if symbol not in account.holdings:
            raise NotFoundError("position")
        return account.position(symbol, self.price_of)

    # ----- market ---------------------------------------------------------------------

    def now(self) -> datetime:
        return self.market.clock.now()

    def clock(self) -> MarketClock:
        return market_clock(self.calendar, self.now())

    def quote(self, symbol: str) -> Quote:
        """The quote now (the exchange is brought to the present first)."""
        self.advance()
        return self._quote(symbol)

    def quotes(self, symbols: Sequence[str]) -> dict[str, Quote]:
        """The quotes now, all of one step: the exchange is brought to the present once.
        Raises UnknownSymbolError naming every unknown symbol."""
        self.advance()
        unknown = [s for s in dict.fromkeys(symbols) if s not in self._quotes and self.instruments.resolve(s) is None]
        if unknown:
            raise UnknownSymbolError(unknown)
        return {symbol: self._quote(symbol) for symbol in symbols}

    def _quote(self, symbol: str) -> Quote:
        """The quote at the step the exchange has reached: no clock arithmetic on hot paths."""
        quote = self._quotes.get(symbol)
        if quote is None:
            step = self._step
            if self.market.has_symbol(symbol):
                quote = self.market.quote_at_step(symbol, step)
            elif self.instruments.resolve(symbol) is None:
                raise UnknownSymbolError([symbol])
            else:
                quote = self.instruments.quote_at_step(symbol, step)
            self._quotes[symbol] = quote
        return quote

    def price_of(self, symbol: str) -> Decimal:
        price = self._prices.get(symbol)
        if price is None:
            quote = self._quote(symbol)
            price = self._prices[symbol] = (quote.bid_price + quote.ask_price) / 2
        return price

    def _buying_power(self, account: PaperAccount) -> Decimal:
        return account.buying_power(self.price_of, self.book.reserved(account.id), self._generation)

    def add_listener(self, listener: TradeListener) -> Callable[[], None]:
        self._listeners += (listener,)

        def remove() -> None:
            listeners = list(self._listeners)
            listeners.remove(listener)
            self._listeners = tuple(listeners)

        return remove

    # ----- orders ---------------------------------------------------------------------

    def submit(self, account_id: str, request: OrderRequest) -> Order:
        self.advance()
        account = self._account(account_id)
        self.book.check_client_order_id(account_id, request.client_order_id)
        instrument = self._instrument(request.symbol)
        validate_request(request, fractionable=instrument.fractionable, is_option=instrument.contract is not None)
        if instrument.contract is not None and instrument.contract.expiration < self.instruments.today():
            raise OrderRejectedError(f"option contract {request.symbol} has expired", field="symbol")
        holds = risk.check_order(account, request, instrument, self.book, self._quote, self._buying_power)
        order = self._new_order(account_id, request, instrument, holds)
        announced = [order, *(leg for leg in order.legs if leg.status is OrderStatus.NEW)] if order.legs else [order]
        self._arrive(order, announced)
        return self._snapshot(order)

    def _arrive(self, order: PaperOrder, announced: list[PaperOrder]) -> None:
        """Emit `new` for the orders `announced` and work `order` against the quote now;
        what is still open is filed for the steps."""
        try:
            for placed in announced:
                self._emit(placed, TradeEvent.NEW)
            self._work(order, immediate=True)
        finally:  # a listener raising must not leave an open order out of the index
            self.book.file(order)

    def _snapshot(self, order: PaperOrder) -> Order:
        """The order as it stands, reusing the snapshot just emitted for it when nothing in
        it can have changed since. Every change but one is followed by an event; the
        exception is a trailing stop's water mark, moved by matching, so it is compared.
        Orders with legs are rebuilt, since their legs change with their own events."""
        last = self._last_emitted
        if last is not None and last[0] is order and not order.legs and last[1].hwm == order.hwm:
            return last[1]
        return order.snapshot()

    def _instrument(self, symbol: str) -> Instrument:
        instrument = self.instruments.resolve(symbol)
        if instrument is None:
            raise OrderRejectedError(f"asset {symbol} not found", code=40410000, status=422, field="symbol")
        return instrument

    def _new_order(self, account_id: str, request: OrderRequest, instrument: Instrument, holds: Decimal) -> PaperOrder:
        now = self.now()
        order = PaperOrder(account_id, request, instrument.asset_class, instrument.multiplier, OrderStatus.NEW, now)
        order.reserved = holds
        if request.time_in_force is TimeInForce.DAY:
            order.expires_at = self._session_close(now)
        order.legs = exit_legs(order)
        self.book.add(order)
        for leg in order.legs:
            self.book.add(leg)
            self.book.file(leg)
        return order

    def get_order(self, account_id: str, order_id: str) -> Order:
        self.advance()
        return self.book.get(account_id, order_id).snapshot()

    def get_order_by_client_id(self, account_id: str, client_order_id: str) -> Order:
        self.advance()
        return self.book.by_client_id(account_id, client_order_id).snapshot()

    def list_orders(self, account_id: str, *, nested: bool = False) -> list[Order]:
        """All of the account's orders, newest first (the facade filters and pages them)."""
        self.advance()
        orders = self.book.all(account_id)
        chosen = [o for o in orders if not (nested and o.parent_id)]
        chosen.sort(key=lambda o: (o.created_at, o.id), reverse=True)
        return [o.snapshot() if nested else _flat(o) for o in chosen]

    def cancel(self, account_id: str, order_id: str) -> Order:
        self.advance()
        order = self.book.get(account_id, order_id)
        if not order.is_open:
            raise OrderRejectedError(f'order is already in "{order.status}" state', code=42210000, status=422)
        self._close(order, OrderStatus.CANCELED, TradeEvent.CANCELED)
        return order.snapshot()

    def cancel_all(self, account_id: str) -> list[Order]:
        self.advance()
        open_orders = self.book.open_orders(account_id)
        open_parents = [o for o in open_orders if not o.parent_id]
        open_legs = [o for o in open_orders if o.parent_id]
        for order in open_parents + open_legs:
            if order.is_open:
                self._close(order, OrderStatus.CANCELED, TradeEvent.CANCELED)
        return [o.snapshot() for o in open_parents + open_legs]

    def replace(self, account_id: str, order_id: str, change: ReplaceRequest) -> Order:
        self.advance()
        old = self.book.get(account_id, order_id)
        if not old.is_open or old.status is OrderStatus.HELD:
            raise OrderRejectedError(f'order is in "{old.status}" state and cannot be replaced')
        if old.filled_qty:
            raise OrderRejectedError("a partially filled order cannot be replaced")
        request = old.request
        fields = {
            "qty": change.qty if change.qty is not None else old.qty,
            "time_in_force": change.time_in_force or request.time_in_force,
            "limit_price": change.limit_price if change.limit_price is not None else old.limit_price,
            "stop_price": change.stop_price if change.stop_price is not None else old.stop_price,
            "client_order_id": change.client_order_id,
            "notional": request.notional if change.qty is None else None,
        }
        if change.trail is not None:
            fields["trail_price" if request.trail_price is not None else "trail_percent"] = change.trail
        new_request = replace(request, **fields)  # type: ignore[arg-type]
        self.book.check_client_order_id(account_id, new_request.client_order_id)
        now = self.now()
        holds, expires_at = ZERO, old.expires_at  # an exit leg lives and dies with its parent
        if old.parent_id is None:  # the same checks as a new order, the old one's share counted free
            instrument = self._instrument(request.symbol)
            validate_request(
                new_request, fractionable=instrument.fractionable, is_option=instrument.contract is not None
            )
            account = self._account(account_id)
            holds = risk.check_order(
                account, new_request, instrument, self.book, self._quote, self._buying_power, replacing=old
            )
            expires_at = self._session_close(now) if new_request.time_in_force is TimeInForce.DAY else None
        new = PaperOrder(
            account_id,
            new_request,
            old.asset_class,
            old.multiplier,
            OrderStatus.NEW,
            now,
            replaces=old.id,
            parent_id=old.parent_id,
            expires_at=expires_at,
            hwm=old.hwm,
        )
        new.reserved = holds
        new.legs, old.legs = old.legs, ()
        for leg in new.legs:  # the exits now belong to the new order, and expire with it
            leg.parent_id = new.id
            if leg.expires_at != expires_at:
                leg.expires_at = expires_at
                self.book.expires(leg)
        old.replaced_by, old.replaced_at = new.id, now
        self._close(old, OrderStatus.REPLACED, TradeEvent.REPLACED, cascade=False)
        if old.parent_id:
            parent = self.book.get(account_id, old.parent_id)
            parent.legs = tuple(new if leg is old else leg for leg in parent.legs)
        self.book.add(new)
        self._arrive(new, [new])
        return self._snapshot(new)

    def close_position(
        self, account_id: str, symbol: str, *, qty: Decimal | None = None, percentage: Decimal | None = None
    ) -> Order:
        self.advance()
        held = self._account(account_id).position_qty(symbol)
        if held == 0:
            raise NotFoundError("position")
        if qty is not None and percentage is not None:
            raise OrderRejectedError("give qty or percentage, not both", field="qty")
        amount = abs(held)
        if percentage is not None:
            if not 0 < percentage <= 100:
                raise OrderRejectedError("percentage must be between 0 and 100", field="percentage")
            amount = canonical_decimal((amount * percentage / 100).quantize(QTY_PLACES))
        elif qty is not None:
            if not 0 < qty <= amount:
                raise InsufficientQtyError(qty, amount)
            amount = qty
        side = OrderSide.SELL if held > 0 else OrderSide.BUY
        return self.submit(account_id, OrderRequest(symbol=symbol, side=side, qty=amount))

    # ----- time and matching ----------------------------------------------------------

    def advance(self) -> None:
        """Bring the exchange to the clock's present, working open orders step by step."""
        target = self.market.current_step()
        if target <= self._step:
            return
        if self.book:
            stride = max(1, (target - self._step) // MAX_MATCHED_STEPS)
            step = self._step
            while step < target:
                step = min(target, step + stride)
                self._reach(step)
                self._run_step()
        self._reach(target)
        self._settle_expired_options(self.market.time_of_step(target))

    def _reach(self, step: int) -> None:
        if step != self._step:
            self._step = step
            self._generation += 1
            self._quotes.clear()
            self._prices.clear()
            self._open_now = self._session_open(self.market.time_of_step(step))

    def _settle_expired_options(self, moment: datetime) -> None:
        """Past 16:00 New York on expiration day: open orders expire, positions settle in cash."""
        for order in self.book.open_options():
            contract = self.instruments.contract(order.symbol)
            if contract is not None and moment >= options.expiry_moment(contract.expiration):
                self._close(order, OrderStatus.EXPIRED, TradeEvent.EXPIRED)
        for account in self._accounts.values():
            for symbol in sorted(account.option_symbols):  # at every step: not every holding, only options
                contract = self.instruments.contract(symbol)
                if contract is not None and moment >= options.expiry_moment(contract.expiration):
                    account.settle(symbol, self.instruments.intrinsic_value(contract))

    def _run_step(self) -> None:
        for order in self.book.expiring(self.market.time_of_step(self._step)):
            if order.is_open:
                self._close(order, OrderStatus.EXPIRED, TradeEvent.EXPIRED)
        if not self._open_now:
            return
        reachable = self.book.resting.take(self._quote)
        try:
            for order in reachable:
                self._work(order)
        finally:  # a listener raising must not leave the rest of them out of the index
            self.book.resting.put_back(reachable)

    def _current_session(self, moment: datetime) -> tuple[datetime, datetime] | None:
        """The session open at `moment`, or the next one (cached until it closes)."""
        if self._session is None or moment >= self._session[1] or moment < self._session[0] - _DAY:
            upcoming = sessions_from(self.calendar, moment)
            self._session = upcoming[0] if upcoming else None
        return self._session

    def _session_open(self, moment: datetime) -> bool:
        session = self._current_session(moment)
        return session is not None and session[0] <= moment < session[1]

    def _session_close(self, moment: datetime) -> datetime:
        session = self._current_session(moment)
        return session[1] if session is not None else session_close(self.calendar, moment)

    def _work(self, order: PaperOrder, *, immediate: bool = False) -> None:
        """Trade the order against the quote at the step the exchange has reached."""
        if order.status is OrderStatus.HELD or not order.is_open:
            return
        market_open = self._open_now
        quote = self._quote(order.symbol)
        tif = order.time_in_force
        if tif is TimeInForce.FOK and immediate and not (market_open and matching.fully_fillable(order, quote)):
            self._close(order, OrderStatus.CANCELED, TradeEvent.CANCELED)
            return
        triggered = order.triggered
        fill = matching.match(order, quote) if market_open else None
        if order.triggered is not triggered and order.is_open:  # a stop now trades as market or limit
            self.book.resting.refile(order)
        if fill is not None:
            self._fill(order, fill, quote.timestamp)
        if immediate and (tif is TimeInForce.IOC or tif is TimeInForce.FOK) and order.is_open:
            self._close(order, OrderStatus.CANCELED, TradeEvent.CANCELED)

    def _fill(self, order: PaperOrder, fill: matching.Fill, when: datetime) -> None:
        account = self._account(order.account_id)
        self.book.filled(order, fill.qty, order.remaining)
        if order.qty is None:
            order.qty = fill.qty
        position_qty = account.apply_fill(
            order.symbol,
            order.asset_class,
            order.side,
            fill.qty,
            fill.price,
            order.multiplier,
            mark=(self._generation, self.price_of(order.symbol)),
        )
        order.filled_qty += fill.qty
        order.filled_value += fill.qty * fill.price
        order.updated_at = when
        done = order.filled_qty == order.qty
        order.status = OrderStatus.FILLED if done else OrderStatus.PARTIALLY_FILLED
        if done:
            order.filled_at = when
            self.book.closed(order)
        self._emit(order, TradeEvent.FILL if done else TradeEvent.PARTIAL_FILL, fill=fill, position_qty=position_qty)
        if order.parent_id or order.legs:
            self._after_fill(order, done)

    def _after_fill(self, order: PaperOrder, done: bool) -> None:
        """What a fill does to the rest of its order class: an exit leg's or an OCO's siblings
        go, and a filled entry's held exits start working."""
        if order.parent_id:  # an exit leg traded: its sibling (the other side of the OCO) goes
            parent = self.book.get(order.account_id, order.parent_id)
            siblings = [parent, *parent.legs] if parent.request.order_class is OrderClass.OCO else parent.legs
            for sibling in siblings:
                if sibling is not order and sibling.is_open:
                    self._close(sibling, OrderStatus.CANCELED, TradeEvent.CANCELED, cascade=False)
        elif order.request.order_class is OrderClass.OCO:
            for leg in order.legs:
                if leg.is_open:
                    self._close(leg, OrderStatus.CANCELED, TradeEvent.CANCELED)
        elif done:
            for leg in order.legs:
                if leg.status is OrderStatus.HELD:
                    leg.status, leg.updated_at = OrderStatus.NEW, self.now()
                    self.book.resting.refile(leg)  # held, it was counted but not filed
                    self._emit(leg, TradeEvent.NEW)
                    self._work(leg)

    def _close(self, order: PaperOrder, status: OrderStatus, event: TradeEvent, *, cascade: bool = True) -> None:
        now = self.now()
        order.status, order.updated_at = status, now
        if status is OrderStatus.CANCELED:
            order.canceled_at = now
        elif status is OrderStatus.EXPIRED:
            order.expired_at = now
        self.book.closed(order)
        self._emit(order, event)
        if cascade:
            for leg in order.legs:
                if leg.is_open:
                    self._close(leg, status, event)

    def _emit(
        self,
        order: PaperOrder,
        event: TradeEvent,
        *,
        fill: matching.Fill | None = None,
        position_qty: Decimal | None = None,
    ) -> None:
        if not self._listeners:
            self._last_emitted = None
            return
        snapshot = order.snapshot()
        self._last_emitted = (order, snapshot)
        timestamp = order.updated_at or self.now()
        if fill is None:
            update = TradeUpdate(event, snapshot, timestamp, None, None, None, position_qty)
        else:
            update = TradeUpdate(event, snapshot, timestamp, new_id(), fill.price, fill.qty, position_qty)
        for listener in self._listeners:
            listener(order.account_id, update)


def _flat(order: PaperOrder) -> Order:
    return order.snapshot()._replace(legs=())
