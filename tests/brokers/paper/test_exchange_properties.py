"""Invariants of the paper exchange under random orders, cancels and clock steps."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.brokers.base import BrokerError
from server.brokers.domain import OrderRequest, OrderSide, OrderType, TimeInForce, TradeEvent
from tests.utils.paper import PaperWorld, paper_world

SYMBOLS = ["AAPL", "F", "SPY", "GME", "SIRI"]
FILL_EVENTS = {TradeEvent.FILL, TradeEvent.PARTIAL_FILL}
FINAL_EVENTS = {TradeEvent.FILL, TradeEvent.CANCELED, TradeEvent.EXPIRED, TradeEvent.REPLACED, TradeEvent.REJECTED}


@st.composite
def order_requests(draw: st.DrawFn) -> OrderRequest:
    order_type = draw(st.sampled_from([OrderType.MARKET, OrderType.LIMIT, OrderType.STOP, OrderType.TRAILING_STOP]))
    offset = Decimal(draw(st.integers(min_value=-50, max_value=50))) / 100
    fields: dict[str, object] = {}
    if order_type is OrderType.LIMIT:
        fields["limit_price"] = Decimal(20) + offset * 10 if draw(st.booleans()) else Decimal(250) + offset
    if order_type is OrderType.STOP:
        fields["stop_price"] = Decimal(230) + offset
    if order_type is OrderType.TRAILING_STOP:
        fields["trail_percent"] = Decimal("0.1") + abs(offset)
    tif = draw(st.sampled_from([TimeInForce.DAY, TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK]))
    if order_type in {OrderType.STOP, OrderType.TRAILING_STOP} and tif in {TimeInForce.IOC, TimeInForce.FOK}:
        tif = TimeInForce.GTC
    return OrderRequest(
        symbol=draw(st.sampled_from(SYMBOLS)),
        side=draw(st.sampled_from(list(OrderSide))),
        type=order_type,
        time_in_force=tif,
        qty=Decimal(draw(st.sampled_from([1, 5, 50, 300, 1500]))),
        **fields,  # type: ignore[arg-type]
    )


actions = st.lists(
    st.one_of(
        st.tuples(st.just("submit"), order_requests()),
        st.tuples(st.just("step"), st.integers(min_value=1, max_value=400)),
        st.tuples(st.just("cancel"), st.integers(min_value=0, max_value=50)),
    ),
    min_size=1,
    max_size=40,
)


def check_invariants(world: PaperWorld) -> None:
    exchange = world.exchange
    account = exchange._account(world.account_id)  # the books themselves, not rounded snapshots
    cost = sum((h.cost_basis for h in account.holdings.values()), Decimal(0))
    assert account.cash + cost - account.realized_pl == account.starting_cash

    # The valuation carried forward fill by fill equals one made from scratch.
    marks = [Decimal(0)] * 3
    for holding in account.holdings.values():
        value = holding.market_value(exchange.price_of(holding.symbol))
        marks[holding.bucket(value)] += value
    if account._marked_at == exchange._generation:  # only a kept valuation has been carried forward
        assert tuple(account._marks) == tuple(marks)
    assert account.market_values(exchange.price_of, exchange._generation) == tuple(marks)

    # The book's running totals equal a full recount over the open orders.
    open_top = [o for o in exchange.book.open_orders(world.account_id) if o.parent_id is None]
    assert exchange.book.reserved(world.account_id) == sum((o.reserved for o in open_top), Decimal(0))
    assert all(o.reserved >= 0 for o in open_top)
    for symbol in SYMBOLS:
        for side in OrderSide:
            expected = sum((o.remaining or 0 for o in open_top if o.symbol == symbol and o.side is side), Decimal(0))
            assert exchange.book.committed(world.account_id, symbol, side) == expected

    orders = exchange.list_orders(world.account_id)
    for order in orders:
        assert order.qty is None or 0 <= order.filled_qty <= order.qty
    # Exactly one state each: the book works an order if and only if its status is open.
    worked = {o.id for o in exchange.book.open_orders(world.account_id)}
    assert worked == {o.id for o in orders if o.status.is_open}

    finished: dict[str, TradeEvent] = {}
    for update in world.updates:
        order_id = update.order.id
        assert order_id not in finished, f"{update.event} after {finished.get(order_id)} for {order_id}"
        if update.event in FINAL_EVENTS:
            finished[order_id] = update.event


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(min_value=0, max_value=1000), script=actions)
def test_books_balance_and_orders_keep_their_lifecycle(seed: int, script: list[tuple[str, object]]) -> None:
    world = paper_world(seed=seed)
    submitted: list[str] = []
    for action, argument in script:
        try:
            if action == "submit":
                assert isinstance(argument, OrderRequest)
                placed = world.exchange.submit(world.account_id, argument)
                # The answer is the order as it now stands, however it was produced.
                assert placed == world.exchange.get_order(world.account_id, placed.id)
                submitted.append(placed.id)
            elif action == "step":
                world.step(argument)  # type: ignore[arg-type]
            elif submitted:
                world.exchange.cancel(world.account_id, submitted[int(argument) % len(submitted)])  # type: ignore[call-overload]
        except BrokerError:
            pass  # rejections are fine; they must leave the books untouched
        check_invariants(world)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(min_value=0, max_value=1000), steps=st.integers(min_value=1, max_value=3000))
def test_a_canceled_order_never_fills(seed: int, steps: int) -> None:
    world = paper_world(seed=seed)
    order = world.exchange.submit(
        world.account_id,
        OrderRequest("AAPL", OrderSide.BUY, OrderType.LIMIT, TimeInForce.GTC, qty=Decimal(1), limit_price=Decimal(231)),
    )
    if order.status.is_open:
        world.exchange.cancel(world.account_id, order.id)
    world.step(1, times=min(steps, 300))
    world.step(steps)
    final = world.exchange.get_order(world.account_id, order.id)
    events = world.events(order.id)
    assert final.filled_qty == (order.filled_qty)
    assert events.count("canceled") <= 1
    if "canceled" in events:
        assert not {"fill", "partial_fill"} & set(events[events.index("canceled") :])
