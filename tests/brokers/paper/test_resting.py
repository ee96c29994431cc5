"""The resting-order index changes how fast a step is worked, never what happens in it.

Each script runs twice on twin markets: once as the exchange runs, and once with the index
and the expiry schedule replaced by the plain rule they stand for (every open order worked
at every step, in arrival order; every open order checked for expiry). The two must emit
the same trade updates, in the same order, with the same fills.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.brokers.base import BrokerError
from server.brokers.domain import (
    NEW_YORK,
    AssetClass,
    OrderClass,
    OrderRequest,
    OrderSide,
    OrderStatus,
    OrderType,
    ReplaceRequest,
    StopLoss,
    TakeProfit,
    TimeInForce,
    TradeUpdate,
)
from server.brokers.paper.book import OrderBook
from server.brokers.paper.calendar import AlwaysOpenCalendar, MarketCalendar, NyseCalendar
from server.brokers.paper.orders import PaperOrder
from server.brokers.paper.resting import COMPACT_SLACK, RestingOrders
from tests.utils.paper import PaperWorld, lowest_bid_ahead, paper_world

SYMBOLS = ["AAPL", "F", "SPY"]
CENT = Decimal("0.01")
NEAR_CLOSE = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)  # a Monday


class EveryOpenOrder(RestingOrders):
    """The rule the index stands for: every open order, at every step, in arrival order."""

    def __init__(self, book: OrderBook) -> None:
        super().__init__()
        self._book = book

    def take(self, quote_of: object) -> list[PaperOrder]:
        return self._book.open_orders()

    def put_back(self, orders: list[PaperOrder]) -> None:
        pass


def rich_world(seed: int, calendar: MarketCalendar) -> PaperWorld:
    """A world that starts 40 minutes before its session closes (day orders expire in the run)."""
    session = calendar.session(NEAR_CLOSE.astimezone(NEW_YORK).date())
    assert session is not None
    return paper_world(
        seed=seed, calendar=calendar, starting_cash=Decimal(10**8), start=session[1] - timedelta(minutes=40)
    )


def plain_world(seed: int, calendar: MarketCalendar) -> PaperWorld:
    world = rich_world(seed, calendar)
    book = world.exchange.book
    book.resting = EveryOpenOrder(book)

    def expiring(moment: datetime) -> list[PaperOrder]:
        return [o for o in book.open_orders() if o.expires_at is not None and o.expires_at <= moment]

    book.expiring = expiring  # type: ignore[method-assign]
    return world


@st.composite
def orders(draw: st.DrawFn) -> tuple[str, OrderSide, OrderType, TimeInForce, int, int, str, int]:
    """An order described relative to the quote at the moment it is placed."""
    return (
        draw(st.sampled_from(SYMBOLS)),
        draw(st.sampled_from(list(OrderSide))),
        draw(st.sampled_from(list(OrderType))),
        draw(st.sampled_from([TimeInForce.DAY, TimeInForce.GTC, TimeInForce.GTC, TimeInForce.IOC])),
        draw(st.integers(min_value=-30, max_value=30)),  # price offset, in tenths of a percent
        draw(st.integers(min_value=-30, max_value=30)),  # second offset (stop_limit's limit, exits)
        draw(st.sampled_from(["simple", "simple", "bracket", "oco"])),
        draw(st.sampled_from([1, 3, 400, 2500])),
    )


def request_for(
    world: PaperWorld, drawn: tuple[str, OrderSide, OrderType, TimeInForce, int, int, str, int]
) -> OrderRequest:
    symbol, side, kind, tif, offset, second, order_class, qty = drawn
    if tif is TimeInForce.IOC and kind not in {OrderType.MARKET, OrderType.LIMIT}:
        tif = TimeInForce.DAY
    mid = world.exchange.price_of(symbol)

    def price(tenths: int) -> Decimal:
        return (mid * (1 + Decimal(tenths) / 1000)).quantize(CENT)

    fields: dict[str, object] = {}
    if kind in {OrderType.LIMIT, OrderType.STOP_LIMIT}:
        fields["limit_price"] = price(offset if kind is OrderType.LIMIT else second)
    if kind in {OrderType.STOP, OrderType.STOP_LIMIT}:
        fields["stop_price"] = price(offset)
    if kind is OrderType.TRAILING_STOP:
        fields["trail_percent"] = Decimal(abs(offset) + 1) / 10
    if order_class == "bracket" and kind in {OrderType.MARKET, OrderType.LIMIT}:
        up, down = (abs(second) + 1, -abs(second) - 1) if side is OrderSide.BUY else (-abs(second) - 1, abs(second) + 1)
        base = offset if kind is OrderType.LIMIT else 0
        fields.update(
            order_class=OrderClass.BRACKET,
            take_profit=TakeProfit(price(base + up)),
            stop_loss=StopLoss(price(base + down)),
        )
        tif = TimeInForce.GTC if tif is TimeInForce.IOC else tif
    if order_class == "oco" and kind is OrderType.LIMIT:
        fields.update(
            order_class=OrderClass.OCO, take_profit=TakeProfit(price(offset)), stop_loss=StopLoss(price(second))
        )
        tif = TimeInForce.GTC if tif is TimeInForce.IOC else tif
    return OrderRequest(symbol, side, kind, tif, qty=Decimal(qty), **fields)  # type: ignore[arg-type]


actions = st.lists(
    st.one_of(
        st.tuples(st.just("submit"), orders()),
        st.tuples(st.just("submit"), orders()),
        st.tuples(st.just("step"), st.sampled_from([1, 1, 1, 5, 30, 300, 1800])),
        st.tuples(st.just("cancel"), st.integers(min_value=0, max_value=30)),
        st.tuples(st.just("replace"), st.tuples(st.integers(0, 30), st.integers(-30, 30))),
    ),
    min_size=20,
    max_size=80,
)


def run(world: PaperWorld, script: list[tuple[str, object]]) -> list[tuple[object, ...]]:
    ids: dict[str, int] = {}
    placed: list[str] = []
    for action, argument in script:
        try:
            if action == "submit":
                placed.append(world.exchange.submit(world.account_id, request_for(world, argument)).id)  # type: ignore[arg-type]
            elif action == "step":
                world.step(argument)  # type: ignore[arg-type]
            elif action == "cancel" and placed:
                world.exchange.cancel(world.account_id, placed[int(argument) % len(placed)])  # type: ignore[call-overload]
            elif action == "replace" and placed:
                which, tenths = argument  # type: ignore[misc]
                placed.append(replace_one(world, placed[which % len(placed)], tenths))
        except BrokerError:
            pass
    return [described(update, ids) for update in world.updates]


def replace_one(world: PaperWorld, order_id: str, tenths: int) -> str:
    """Replace the order's price (limit, stop or trail), `tenths` of a percent from the mid."""
    order = world.exchange.get_order(world.account_id, order_id)
    price = (world.exchange.price_of(order.symbol) * (1 + Decimal(tenths) / 1000)).quantize(CENT)
    if order.type is OrderType.TRAILING_STOP:
        change = ReplaceRequest(trail=Decimal(abs(tenths) + 1) / 10)
    elif order.type in {OrderType.STOP, OrderType.STOP_LIMIT}:
        change = ReplaceRequest(stop_price=price)
    elif order.type is OrderType.LIMIT:
        change = ReplaceRequest(limit_price=price)
    else:
        change = ReplaceRequest(qty=(order.qty or Decimal(1)) + 1)
    return world.exchange.replace(world.account_id, order_id, change).id


def described(update: TradeUpdate, ids: dict[str, int]) -> tuple[object, ...]:
    """The update with order ids replaced by the order's place in the run (ids differ between runs)."""
    order = update.order
    number = ids.setdefault(order.id, len(ids))
    return (
        number,
        update.event,
        update.timestamp,
        update.price,
        update.qty,
        update.position_qty,
        order.status,
        order.filled_qty,
        order.filled_avg_price,
        order.stop_price,
        order.hwm,
        tuple(ids.setdefault(leg.id, len(ids)) for leg in order.legs),
    )


@pytest.mark.parametrize("calendar", [AlwaysOpenCalendar(), NyseCalendar()], ids=["always", "nyse"])
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(min_value=0, max_value=1000), script=actions)
def test_the_index_works_the_orders_every_open_order_would(
    calendar: MarketCalendar, seed: int, script: list[tuple[str, object]]
) -> None:
    world = rich_world(seed, calendar)
    indexed = run(world, script)
    plain = run(plain_world(seed, calendar), script)
    assert indexed == plain
    assert_index_consistent(world)


def assert_index_consistent(world: PaperWorld) -> None:
    """Between steps: each open order is indexed with exactly one live entry (a held leg none), the
    counts match what the symbol holds, and no symbol is kept without open orders."""
    open_orders = world.exchange.book.open_orders()
    index = world.exchange.book.resting._symbols
    assert all(order.indexed for order in open_orders)
    assert set(index) == {order.symbol for order in open_orders}
    live: Counter[int] = Counter()
    for symbol, orders in index.items():
        heaps = (orders.buy_limits, orders.sell_limits, orders.buy_stops, orders.sell_stops)
        assert orders.entries == sum(map(len, heaps)) + len(orders.every_step)
        assert orders.open_count == sum(order.symbol == symbol for order in open_orders)
        live.update(seq for heap in heaps for _, seq, filed, order in heap if order.is_open and filed == order.filed)
        live.update(seq for seq, order in orders.every_step.items() if order.is_open)
    assert {order.seq: live[order.seq] for order in open_orders} == {
        order.seq: 0 if order.status is OrderStatus.HELD else 1 for order in open_orders
    }


def test_a_step_takes_only_the_orders_its_quote_can_fill() -> None:
    world = paper_world()
    exchange = world.exchange
    ask = exchange.quote("AAPL").ask_price
    for _ in range(200):
        exchange.submit(
            world.account_id,
            OrderRequest("AAPL", OrderSide.BUY, OrderType.LIMIT, TimeInForce.GTC, qty=Decimal(1), limit_price=ask / 2),
        )
    near = exchange.submit(
        world.account_id,
        OrderRequest("AAPL", OrderSide.BUY, OrderType.LIMIT, TimeInForce.GTC, qty=Decimal(1), limit_price=ask * 2),
    )
    assert near.status == "filled"
    reached = exchange.book.resting.take(exchange._quote)
    exchange.book.resting.put_back(reached)
    assert reached == []  # 200 resting buys at half the ask, and a filled one: none is taken
    assert exchange.book.resting._symbols["AAPL"].open_count == 200


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("kind", [OrderType.STOP, OrderType.STOP_LIMIT])
def test_a_stop_triggered_on_arrival_trades_as_what_it_became(seed: int, kind: OrderType) -> None:
    """Triggered at once but not filled whole, it must be worked as a market (stop) or limit
    (stop-limit) order from then on, also once the price is back on the other side of its stop."""

    def run_stop(world: PaperWorld) -> list[tuple[object, ...]]:
        ask = world.exchange.quote("AAPL").ask_price
        limits = {"limit_price": ask - Decimal("0.05")} if kind is OrderType.STOP_LIMIT else {}
        qty = Decimal(1) if kind is OrderType.STOP_LIMIT else Decimal(100000)  # a stop far over the displayed size
        request = OrderRequest("AAPL", OrderSide.BUY, kind, TimeInForce.GTC, qty=qty, stop_price=ask, **limits)
        world.exchange.submit(world.account_id, request)
        world.step(1, times=300)
        return [described(update, {}) for update in world.updates]

    calendar = AlwaysOpenCalendar()
    assert run_stop(rich_world(seed, calendar)) == run_stop(plain_world(seed, calendar))


@pytest.mark.parametrize("seed", range(6))
def test_exit_legs_released_in_a_step_have_their_turn_in_it(seed: int) -> None:
    """An entry filling in a step releases its held legs, which are worked at once and then,
    like every order open when the step began, in their turn (here a stop-loss triggered at
    once and larger than the displayed size), though the index does not file held legs."""

    def run_bracket(world: PaperWorld) -> list[tuple[object, ...]]:
        drawn = ("AAPL", OrderSide.BUY, OrderType.LIMIT, TimeInForce.DAY, 1, 0, "bracket", 2500)
        world.exchange.submit(world.account_id, request_for(world, drawn))  # fills over a few steps
        world.step(1, times=30)
        ids: dict[str, int] = {}
        return [described(update, ids) for update in world.updates]

    calendar = AlwaysOpenCalendar()
    assert run_bracket(rich_world(seed, calendar)) == run_bracket(plain_world(seed, calendar))


def test_a_listener_failing_mid_step_leaves_every_order_to_be_worked_on() -> None:
    world = paper_world(starting_cash=Decimal(10**9))
    exchange = world.exchange
    ask = exchange.quote("AAPL").ask_price
    big = OrderRequest(
        "AAPL", OrderSide.BUY, OrderType.LIMIT, TimeInForce.GTC, qty=Decimal(100000), limit_price=ask * 2
    )
    orders = [exchange.submit(world.account_id, big).id for _ in range(2)]
    failing = [True]

    def fail_once(_account: str, update: TradeUpdate) -> None:
        if failing[0] and update.event == "partial_fill":
            failing[0] = False
            raise RuntimeError("a listener failed")

    exchange.add_listener(fail_once)
    with pytest.raises(RuntimeError, match="a listener failed"):
        world.step()
    before = [exchange.get_order(world.account_id, order_id).filled_qty for order_id in orders]
    world.step()
    after = [exchange.get_order(world.account_id, order_id).filled_qty for order_id in orders]
    assert all(a > b for a, b in zip(after, before, strict=True))


def fail_on_the_next_new(world: PaperWorld) -> None:
    failing = [True]

    def fail_once(_account: str, update: TradeUpdate) -> None:
        if failing[0] and update.event == "new":
            failing[0] = False
            raise RuntimeError("a listener failed")

    world.exchange.add_listener(fail_once)


def test_an_order_whose_new_event_raised_is_still_worked_and_expires() -> None:
    world = paper_world(starting_cash=Decimal(10**9))
    exchange = world.exchange
    quote = exchange.quote("AAPL")
    big = OrderRequest(  # larger than the displayed size: it rests after its first fill
        "AAPL", OrderSide.BUY, OrderType.LIMIT, TimeInForce.GTC, qty=Decimal(100000), limit_price=quote.ask_price * 2
    )
    low = (quote.bid_price / 2).quantize(Decimal("0.01"))
    day = OrderRequest("AAPL", OrderSide.BUY, OrderType.LIMIT, TimeInForce.DAY, qty=Decimal(1), limit_price=low)
    for request in (big, day):
        fail_on_the_next_new(world)
        with pytest.raises(RuntimeError, match="a listener failed"):
            exchange.submit(world.account_id, request)
    big_id, day_id = (exchange.list_orders(world.account_id)[i].id for i in (1, 0))
    world.step(times=3)
    assert exchange.get_order(world.account_id, big_id).filled_qty > 0
    world.step_until(lambda: world.status(day_id) is OrderStatus.EXPIRED, limit=3 * 24 * 3600)


def test_a_replacement_whose_new_event_raised_is_still_worked() -> None:
    world = paper_world(starting_cash=Decimal(10**9))
    exchange = world.exchange
    quote = exchange.quote("AAPL")
    low = (quote.bid_price / 2).quantize(Decimal("0.01"))
    far = OrderRequest("AAPL", OrderSide.BUY, OrderType.LIMIT, TimeInForce.GTC, qty=Decimal(100000), limit_price=low)
    placed = exchange.submit(world.account_id, far)
    fail_on_the_next_new(world)
    with pytest.raises(RuntimeError, match="a listener failed"):
        exchange.replace(world.account_id, placed.id, ReplaceRequest(limit_price=quote.ask_price * 2))
    replacement = exchange.get_order(world.account_id, placed.id).replaced_by
    assert replacement is not None
    world.step(times=3)
    assert exchange.get_order(world.account_id, replacement).filled_qty > 0


def test_an_order_that_trades_in_full_on_arrival_is_never_filed() -> None:
    world = paper_world()
    exchange = world.exchange
    filled = exchange.submit(world.account_id, OrderRequest("AAPL", OrderSide.BUY, qty=Decimal(1)))
    assert filled.status is OrderStatus.FILLED
    assert "AAPL" not in exchange.book.resting._symbols
    assert exchange.book._expiries == []


def test_closed_orders_leave_the_index_once_it_is_mostly_stale() -> None:
    world = paper_world()
    exchange = world.exchange
    ask = exchange.quote("AAPL").ask_price
    far = OrderRequest("AAPL", OrderSide.BUY, OrderType.LIMIT, TimeInForce.GTC, qty=Decimal(1), limit_price=ask / 2)
    exchange.submit(world.account_id, far)  # stays open, so the symbol stays in the index
    for _ in range(300):
        order = exchange.submit(world.account_id, far)
        exchange.cancel(world.account_id, order.id)
    symbol_orders = exchange.book.resting._symbols["AAPL"]
    assert symbol_orders.open_count == 1
    # canceled far from the market, they were compacted away
    assert symbol_orders.entries <= 2 * symbol_orders.open_count + COMPACT_SLACK


def test_a_symbol_leaves_the_index_with_its_last_open_order() -> None:
    world = paper_world()
    exchange = world.exchange
    ask = exchange.quote("AAPL").ask_price
    far = OrderRequest("AAPL", OrderSide.BUY, OrderType.LIMIT, TimeInForce.GTC, qty=Decimal(1), limit_price=ask / 2)
    placed = [exchange.submit(world.account_id, far).id for _ in range(3)]
    assert exchange.book.resting._symbols["AAPL"].open_count == 3
    for order_id in placed:
        exchange.cancel(world.account_id, order_id)
    assert "AAPL" not in exchange.book.resting._symbols


def index_entries(world: PaperWorld, symbol: str) -> list[PaperOrder]:
    """Every order the symbol's index holds an entry for, stale entries included."""
    orders = world.exchange.book.resting._symbols[symbol]
    heaps = (orders.buy_limits, orders.sell_limits, orders.buy_stops, orders.sell_stops)
    return [entry[3] for heap in heaps for entry in heap] + list(orders.every_step.values())


def test_a_stop_triggered_during_a_step_is_filed_once() -> None:
    """Triggered while worked, it is filed under its new class there; putting the step's
    orders back must not file it a second time."""
    world = paper_world()
    exchange = world.exchange
    bid = exchange.quote("AAPL").bid_price
    stop = lowest_bid_ahead(world, "AAPL", 600)
    assert stop < bid  # not triggered on arrival: it triggers in one of the steps
    kind = OrderType.STOP_LIMIT  # once triggered, a sell limit at twice the bid: it never fills
    request = OrderRequest("AAPL", OrderSide.SELL, kind, qty=Decimal(1), stop_price=stop, limit_price=bid * 2)
    order = exchange.book.get(world.account_id, exchange.submit(world.account_id, request).id)
    assert order.filed == 1
    world.step_until(lambda: order.triggered, limit=600)
    assert order.filed == 2  # on arrival, and once triggered
    assert index_entries(world, "AAPL") == [order]
    assert exchange.book.resting._symbols["AAPL"].entries == 1


def test_an_order_filed_again_in_the_every_step_set_is_one_entry() -> None:
    """A trailing stop is worked at every step before and after it triggers (on arrival,
    say, when a replacement takes over a water mark the price has already left)."""
    request = OrderRequest(
        "AAPL", OrderSide.SELL, OrderType.TRAILING_STOP, TimeInForce.GTC, qty=Decimal(1), trail_price=Decimal(1)
    )
    order = PaperOrder("acct", request, AssetClass.US_EQUITY, 1, OrderStatus.NEW, NEAR_CLOSE, seq=1)
    resting = RestingOrders()
    resting.add(order)
    order.triggered = True
    resting.refile(order)
    symbol_orders = resting._symbols["AAPL"]
    assert list(symbol_orders.every_step.values()) == [order]
    assert symbol_orders.entries == 1


def test_held_exit_legs_are_filed_only_once_released() -> None:
    world = paper_world()
    exchange = world.exchange
    ask = exchange.quote("AAPL").ask_price
    held = exchange.submit(  # the entry never fills; its take-profit is within reach at every step
        world.account_id,
        far_bracket(ask, TimeInForce.GTC),
    )
    parent = exchange.book.get(world.account_id, held.id)
    world.step(1, times=5)
    assert [leg.status for leg in parent.legs] == ["held", "held"]
    assert [leg.filed for leg in parent.legs] == [0, 0]
    assert index_entries(world, "AAPL") == [parent]
    assert exchange.book.resting._symbols["AAPL"].open_count == 3  # held legs are open all the same

    released = exchange.submit(  # the entry fills at once and releases its legs, both out of reach
        world.account_id,
        OrderRequest(
            "SPY",
            OrderSide.BUY,
            OrderType.MARKET,
            TimeInForce.GTC,
            qty=Decimal(1),
            order_class=OrderClass.BRACKET,
            take_profit=TakeProfit((exchange.quote("SPY").ask_price * Decimal("1.5")).quantize(CENT)),
            stop_loss=StopLoss((exchange.quote("SPY").bid_price * Decimal("0.5")).quantize(CENT)),
        ),
    )
    legs = exchange.book.get(world.account_id, released.id).legs
    assert [leg.status for leg in legs] == ["new", "new"]
    assert [leg.filed for leg in legs] == [1, 1]
    symbol_orders = exchange.book.resting._symbols["SPY"]
    assert [entry[3] for entry in symbol_orders.sell_limits] == [legs[0]]
    assert [entry[3] for entry in symbol_orders.sell_stops] == [legs[1]]


def far_bracket(ask: Decimal, time_in_force: TimeInForce) -> OrderRequest:
    """An AAPL bracket whose entry rests at half the ask, with both exits out of reach."""
    return OrderRequest(
        "AAPL",
        OrderSide.BUY,
        OrderType.LIMIT,
        time_in_force,
        qty=Decimal(1),
        limit_price=(ask / 2).quantize(CENT),
        order_class=OrderClass.BRACKET,
        take_profit=TakeProfit((ask * Decimal("0.6")).quantize(CENT)),
        stop_loss=StopLoss((ask * Decimal("0.4")).quantize(CENT)),
    )


def test_replacing_an_entry_leaves_its_legs_expiry_scheduled_once() -> None:
    world = paper_world()
    exchange = world.exchange
    ask = exchange.quote("AAPL").ask_price
    bracket = exchange.submit(
        world.account_id,
        far_bracket(ask, TimeInForce.DAY),
    )
    assert len(exchange.book._expiries) == 3
    exchange.replace(world.account_id, bracket.id, ReplaceRequest(limit_price=(ask * Decimal("0.55")).quantize(CENT)))
    assert len(exchange.book._expiries) == 4  # the replacement's; the legs' expiry did not change


def test_a_leg_whose_expiry_comes_back_is_due_once() -> None:
    """A leg's expiry moved away and back to the same moment is scheduled twice, but due once."""
    world = rich_world(0, NyseCalendar())
    exchange = world.exchange
    ask = exchange.quote("AAPL").ask_price
    bracket = exchange.submit(
        world.account_id,
        far_bracket(ask, TimeInForce.DAY),
    )
    gtc = exchange.replace(world.account_id, bracket.id, ReplaceRequest(time_in_force=TimeInForce.GTC))
    day = exchange.replace(world.account_id, gtc.id, ReplaceRequest(time_in_force=TimeInForce.DAY))
    entry = exchange.book.get(world.account_id, day.id)
    assert entry.expires_at is not None
    assert all(leg.expires_at == entry.expires_at for leg in entry.legs)
    assert exchange.book.expiring(entry.expires_at) == [*entry.legs, entry]  # in arrival order, each once
