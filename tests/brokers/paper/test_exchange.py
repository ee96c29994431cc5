from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from server.brokers.base import (
    InsufficientBuyingPowerError,
    InsufficientQtyError,
    NotFoundError,
    OrderRejectedError,
    UnknownSymbolError,
)
from server.brokers.domain import (
    OrderClass,
    OrderRequest,
    OrderSide,
    OrderStatus,
    OrderType,
    PositionSide,
    ReplaceRequest,
    StopLoss,
    TakeProfit,
    TimeInForce,
    TradeEvent,
)
from server.brokers.paper.calendar import NyseCalendar
from tests.utils.paper import PaperWorld, lowest_bid_ahead, paper_world

D = Decimal


@pytest.fixture
def world() -> PaperWorld:
    return paper_world()


def buy(symbol: str = "AAPL", qty: str | None = "10", **fields: object) -> OrderRequest:
    return OrderRequest(symbol=symbol, side=OrderSide.BUY, qty=D(qty) if qty else None, **fields)  # type: ignore[arg-type]


def sell(symbol: str = "AAPL", qty: str = "10", **fields: object) -> OrderRequest:
    return OrderRequest(symbol=symbol, side=OrderSide.SELL, qty=D(qty), **fields)  # type: ignore[arg-type]


def test_market_buy_fills_at_the_ask(world: PaperWorld) -> None:
    ask = world.exchange.quote("AAPL").ask_price
    order = world.exchange.submit(world.account_id, buy())
    assert order.status is OrderStatus.FILLED
    assert order.filled_qty == 10
    assert order.filled_avg_price == ask
    assert world.events(order.id) == ["new", "fill"]
    position = world.exchange.position(world.account_id, "AAPL")
    assert (position.qty, position.avg_entry_price) == (10, ask)
    account = world.exchange.account(world.account_id)
    assert account.cash == D(100000) - 10 * ask


def test_orders_larger_than_the_displayed_size_fill_in_parts(world: PaperWorld) -> None:
    displayed = world.exchange.quote("F").ask_size
    order = world.exchange.submit(world.account_id, buy("F", "5000"))
    assert order.status is OrderStatus.PARTIALLY_FILLED
    assert order.filled_qty == displayed
    world.step(times=60)
    done = world.exchange.get_order(world.account_id, order.id)
    assert done.status is OrderStatus.FILLED
    assert done.filled_qty == 5000
    events = world.events(order.id)
    assert events[0] == "new"
    assert events[-1] == "fill"
    assert set(events[1:-1]) == {"partial_fill"}


def test_limit_order_waits_then_fills_at_the_quote_or_better(world: PaperWorld) -> None:
    ask = world.exchange.quote("TSLA").ask_price
    order = world.exchange.submit(world.account_id, buy("TSLA", "1", type=OrderType.LIMIT, limit_price=ask - D("0.50")))
    assert order.status is OrderStatus.NEW
    world.step_until(lambda: world.status(order.id) is OrderStatus.FILLED, limit=3600)
    filled = world.exchange.get_order(world.account_id, order.id)
    assert filled.status is OrderStatus.FILLED
    assert filled.filled_avg_price is not None
    assert filled.filled_avg_price <= ask - D("0.50")


def test_stop_order_triggers_when_the_price_is_reached(world: PaperWorld) -> None:
    world.exchange.submit(world.account_id, buy("NVDA", "10"))
    bid = world.exchange.quote("NVDA").bid_price
    stop_price = (bid + lowest_bid_ahead(world, "NVDA", 3600)) / 2
    assert stop_price < bid
    stop = world.exchange.submit(world.account_id, sell("NVDA", "10", type=OrderType.STOP, stop_price=stop_price))
    assert stop.status is OrderStatus.NEW
    world.step(times=3600)
    filled = world.exchange.get_order(world.account_id, stop.id)
    assert filled.status is OrderStatus.FILLED
    assert filled.filled_avg_price is not None
    assert filled.filled_avg_price <= stop_price


def test_fok_that_cannot_fill_whole_is_canceled_untouched(world: PaperWorld) -> None:
    order = world.exchange.submit(world.account_id, buy("F", "5000", time_in_force=TimeInForce.FOK))
    assert order.status is OrderStatus.CANCELED
    assert order.filled_qty == 0
    small = world.exchange.submit(world.account_id, buy("F", "100", time_in_force=TimeInForce.FOK))
    assert small.status is OrderStatus.FILLED


def test_day_orders_expire_and_gtc_orders_stay(world: PaperWorld) -> None:
    low = world.exchange.quote("SPY").bid_price / 2
    day = world.exchange.submit(world.account_id, buy("SPY", "1", type=OrderType.LIMIT, limit_price=low))
    gtc = world.exchange.submit(
        world.account_id,
        buy("SPY", "1", type=OrderType.LIMIT, limit_price=low, time_in_force=TimeInForce.GTC),
    )
    world.step(timedelta(hours=15).total_seconds())  # past midnight in New York, where "always" days end
    assert world.exchange.get_order(world.account_id, day.id).status is OrderStatus.EXPIRED
    assert world.exchange.get_order(world.account_id, gtc.id).status is OrderStatus.NEW
    assert world.events(day.id) == ["new", "expired"]


def test_nyse_hours_hold_orders_until_the_open() -> None:
    saturday = datetime(2026, 11, 28, 15, tzinfo=UTC)
    world = paper_world(calendar=NyseCalendar(), start=saturday)
    clock = world.exchange.clock()
    assert not clock.is_open
    assert clock.next_open == datetime(2026, 11, 30, 14, 30, tzinfo=UTC)
    order = world.exchange.submit(world.account_id, buy("AAPL", "1"))
    assert order.status is OrderStatus.NEW
    world.step(timedelta(days=2).total_seconds() - 1800)  # Monday 14:30 UTC, the open
    world.step(1)
    filled = world.exchange.get_order(world.account_id, order.id)
    assert filled.status is OrderStatus.FILLED
    assert filled.filled_at is not None
    assert filled.filled_at >= datetime(2026, 11, 30, 14, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (buy("AAPL", "1.5", type=OrderType.LIMIT, limit_price=D(200)), "market day"),
        (buy("AAPL", "1", time_in_force=TimeInForce.OPG), "not supported"),
        (buy("AAPL", "1", type=OrderType.LIMIT), "limit_price is required"),
        (buy("AAPL", "1", type=OrderType.STOP), "stop_price is required"),
        (buy("AAPL", "1", stop_price=D(1)), "only for stop"),
        (buy("AAPL", "0"), "qty must be > 0"),
        (buy("AAPL", None), "qty or notional"),
        (buy("AAPL", "1", notional=D(10)), "qty or notional"),
        (buy("AAPL", "1", type=OrderType.TRAILING_STOP), "trail"),
        (buy("AAPL", "1", type=OrderType.STOP, stop_price=D(300), time_in_force=TimeInForce.IOC), "market or limit"),
        (buy("AAPL", "1", order_class=OrderClass.BRACKET, take_profit=TakeProfit(D(300))), "both"),
        (
            buy(
                "AAPL", "1", order_class=OrderClass.BRACKET, take_profit=TakeProfit(D(200)), stop_loss=StopLoss(D(300))
            ),
            "above",
        ),
        (buy("ZZZZ", "1"), "not found"),
        (buy("AAPL", "1", client_order_id="x" * 129), "client_order_id"),
    ],
)
def test_invalid_orders_are_rejected_with_a_reason(world: PaperWorld, request_: OrderRequest, message: str) -> None:
    with pytest.raises(OrderRejectedError, match=message) as raised:
        world.exchange.submit(world.account_id, request_)
    assert raised.value.status == 422
    assert world.exchange.list_orders(world.account_id) == []


def test_buying_power_is_enforced(world: PaperWorld) -> None:
    with pytest.raises(InsufficientBuyingPowerError) as raised:
        world.exchange.submit(world.account_id, buy("AAPL", "1000"))
    assert (raised.value.status, raised.value.code) == (403, 40310000)
    world.exchange.submit(world.account_id, buy("AAPL", "800"))  # ~184k of 200k
    with pytest.raises(InsufficientBuyingPowerError):
        world.exchange.submit(world.account_id, buy("AAPL", "100"))


def test_open_orders_hold_buying_power(world: PaperWorld) -> None:
    before = world.exchange.account(world.account_id).buying_power
    world.exchange.submit(world.account_id, buy("SPY", "10", type=OrderType.LIMIT, limit_price=D(100)))
    after = world.exchange.account(world.account_id).buying_power
    assert before - after == D(1000)


def test_the_account_adds_up_to_its_positions(world: PaperWorld) -> None:
    exchange, account_id = world.exchange, world.account_id
    fractions = ["1.333", "0.777", "0.125", "0.333", "7.777", "0.555", "1.999"]  # values in fractions of cents
    for symbol, qty in zip(["AAPL", "MSFT", "SPY", "QQQ", "F", "NVDA", "AMD"], fractions, strict=True):
        exchange.submit(account_id, buy(symbol, qty))
    exchange.submit(account_id, sell("KO", "5"))  # a short
    for steps in range(6):  # first as the fills left it (its valuation carried forward), then as prices move
        world.step(seconds=60, times=min(steps, 1))
        account, positions = exchange.account(account_id), exchange.positions(account_id)
        assert account.unrealized_pl == sum(p.unrealized_pl for p in positions)
        assert abs(account.equity - account.cash - sum(p.market_value for p in positions)) <= D("0.01") * 8
    long_value = sum(p.market_value for p in positions if p.side is PositionSide.LONG)
    short_value = sum(p.market_value for p in positions if p.side is PositionSide.SHORT)
    cents = D("0.01") * len(positions)  # the account rounds its totals, each position its own value
    assert abs(account.long_market_value - long_value) <= cents
    assert abs(account.short_market_value - short_value) <= cents
    assert abs(account.equity - (account.cash + long_value + short_value)) <= cents
    assert account.multiplier == 2
    # Reg T on a 2x account: twice the equity, less what the positions use (shorts count at their size).
    used = long_value - short_value
    assert abs(account.buying_power - (2 * account.equity - used)) <= 3 * cents


def test_selling_more_than_held_is_refused(world: PaperWorld) -> None:
    world.exchange.submit(world.account_id, buy("AAPL", "5"))
    with pytest.raises(InsufficientQtyError, match=r"requested: 6, available: 5"):
        world.exchange.submit(world.account_id, sell("AAPL", "6"))


def test_short_selling_only_shortable_assets(world: PaperWorld) -> None:
    short = world.exchange.submit(world.account_id, sell("AAPL", "10"))
    assert short.status is OrderStatus.FILLED
    position = world.exchange.position(world.account_id, "AAPL")
    assert (position.side.value, position.qty) == ("short", 10)
    with pytest.raises(OrderRejectedError, match="cannot be sold short"):
        world.exchange.submit(world.account_id, sell("SIRI", "10"))


def test_bracket_legs_wait_for_the_entry_then_one_cancels_the_other(world: PaperWorld) -> None:
    ask = world.exchange.quote("MSFT").ask_price
    order = world.exchange.submit(
        world.account_id,
        buy(
            "MSFT",
            "10",
            order_class=OrderClass.BRACKET,
            take_profit=TakeProfit(ask + D("0.30")),
            stop_loss=StopLoss(ask - D("0.30")),
        ),
    )
    assert order.status is OrderStatus.FILLED
    take_profit, stop_loss = order.legs
    assert take_profit.type is OrderType.LIMIT
    assert stop_loss.type is OrderType.STOP
    assert take_profit.status is OrderStatus.NEW
    world.step_until(
        lambda: any(
            leg.status is OrderStatus.FILLED for leg in world.exchange.get_order(world.account_id, order.id).legs
        ),
        limit=7200,
    )
    statuses = sorted(leg.status.value for leg in world.exchange.get_order(world.account_id, order.id).legs)
    assert statuses == ["canceled", "filled"]
    assert world.exchange.positions(world.account_id) == []


def resting_bracket(ask: Decimal, *, take_profit: Decimal, stop: Decimal) -> OrderRequest:
    """A bracket buy of 10 MSFT whose entry rests well below the ask."""
    return buy(
        "MSFT",
        "10",
        type=OrderType.LIMIT,
        limit_price=ask - 20,
        order_class=OrderClass.BRACKET,
        take_profit=TakeProfit(take_profit),
        stop_loss=StopLoss(stop),
    )


def test_bracket_legs_are_held_until_the_entry_fills(world: PaperWorld) -> None:
    ask = world.exchange.quote("MSFT").ask_price
    order = world.exchange.submit(world.account_id, resting_bracket(ask, take_profit=ask, stop=ask - 40))
    assert [leg.status for leg in order.legs] == [OrderStatus.HELD, OrderStatus.HELD]
    canceled = world.exchange.cancel(world.account_id, order.id)
    assert canceled.status is OrderStatus.CANCELED
    assert [leg.status for leg in canceled.legs] == [OrderStatus.CANCELED, OrderStatus.CANCELED]


def test_replace_makes_a_new_order_and_retires_the_old(world: PaperWorld) -> None:
    order = world.exchange.submit(world.account_id, buy("SPY", "1", type=OrderType.LIMIT, limit_price=D(100)))
    new = world.exchange.replace(world.account_id, order.id, ReplaceRequest(qty=D(2), limit_price=D(101)))
    old = world.exchange.get_order(world.account_id, order.id)
    assert (old.status, old.replaced_by) == (OrderStatus.REPLACED, new.id)
    assert (new.status, new.replaces, new.qty, new.limit_price) == (OrderStatus.NEW, order.id, 2, 101)
    assert world.events(order.id) == ["new", "replaced"]
    with pytest.raises(OrderRejectedError, match="replaced"):
        world.exchange.replace(world.account_id, order.id, ReplaceRequest(qty=D(3)))


def test_replacing_a_bracket_entry_keeps_its_exits_one_cancels_the_other(world: PaperWorld) -> None:
    ask = world.exchange.quote("MSFT").ask_price
    order = world.exchange.submit(world.account_id, resting_bracket(ask, take_profit=ask + D("0.30"), stop=ask - 25))
    entry = world.exchange.replace(world.account_id, order.id, ReplaceRequest(limit_price=ask + D("0.10")))
    assert entry.status is OrderStatus.FILLED
    assert all(leg.status is OrderStatus.NEW for leg in entry.legs)
    world.step_until(
        lambda: any(
            leg.status is OrderStatus.FILLED for leg in world.exchange.get_order(world.account_id, entry.id).legs
        ),
        limit=7200,
    )
    world.step(times=5)
    statuses = sorted(leg.status.value for leg in world.exchange.get_order(world.account_id, entry.id).legs)
    assert statuses == ["canceled", "filled"]
    assert world.exchange.positions(world.account_id) == []  # one exit, never both


def test_a_replacement_passes_the_same_checks_as_a_new_order(world: PaperWorld) -> None:
    world.exchange.submit(world.account_id, buy("AAPL", "5"))
    high = world.exchange.quote("AAPL").ask_price * 2
    sell_order = world.exchange.submit(world.account_id, sell("AAPL", "5", type=OrderType.LIMIT, limit_price=high))
    with pytest.raises(InsufficientQtyError):  # would sell 495 more than held
        world.exchange.replace(world.account_id, sell_order.id, ReplaceRequest(qty=D(500)))
    # Its own 5 shares count as free: replacing it with the same size is fine.
    same = world.exchange.replace(world.account_id, sell_order.id, ReplaceRequest(limit_price=high + 1))
    assert same.qty == 5
    limit = world.exchange.quote("SPY").bid_price / 2
    resting = world.exchange.submit(world.account_id, buy("SPY", "1", type=OrderType.LIMIT, limit_price=limit))
    with pytest.raises(InsufficientBuyingPowerError):
        world.exchange.replace(world.account_id, resting.id, ReplaceRequest(qty=D(10**6)))


def test_a_replacement_expires_by_its_own_time_in_force(world: PaperWorld) -> None:
    low = world.exchange.quote("SPY").bid_price / 2
    day = world.exchange.submit(world.account_id, buy("SPY", "1", type=OrderType.LIMIT, limit_price=low))
    gtc = world.exchange.replace(world.account_id, day.id, ReplaceRequest(time_in_force=TimeInForce.GTC))
    back = world.exchange.submit(
        world.account_id, buy("SPY", "1", type=OrderType.LIMIT, limit_price=low, time_in_force=TimeInForce.GTC)
    )
    now_day = world.exchange.replace(world.account_id, back.id, ReplaceRequest(time_in_force=TimeInForce.DAY))
    world.step(timedelta(hours=15).total_seconds())  # past the end of the day
    assert world.exchange.get_order(world.account_id, gtc.id).status is OrderStatus.NEW
    assert world.exchange.get_order(world.account_id, now_day.id).status is OrderStatus.EXPIRED


def test_cancel_and_cancel_again(world: PaperWorld) -> None:
    order = world.exchange.submit(world.account_id, buy("SPY", "1", type=OrderType.LIMIT, limit_price=D(100)))
    assert world.exchange.cancel(world.account_id, order.id).status is OrderStatus.CANCELED
    with pytest.raises(OrderRejectedError, match="canceled"):
        world.exchange.cancel(world.account_id, order.id)
    with pytest.raises(NotFoundError):
        world.exchange.cancel(world.account_id, "no-such-order")


def test_close_position_by_percentage_and_qty(world: PaperWorld) -> None:
    world.exchange.submit(world.account_id, buy("AAPL", "10"))
    half = world.exchange.close_position(world.account_id, "AAPL", percentage=D(50))
    assert (half.side, half.qty, half.status) == (OrderSide.SELL, 5, OrderStatus.FILLED)
    world.exchange.close_position(world.account_id, "AAPL", qty=D(5))
    assert world.exchange.positions(world.account_id) == []
    with pytest.raises(NotFoundError):
        world.exchange.close_position(world.account_id, "AAPL")


def test_client_order_ids_are_unique_per_account(world: PaperWorld) -> None:
    first = world.exchange.submit(world.account_id, buy("AAPL", "1", client_order_id="mine-1"))
    assert world.exchange.get_order_by_client_id(world.account_id, "mine-1").id == first.id
    with pytest.raises(OrderRejectedError, match="unique"):
        world.exchange.submit(world.account_id, buy("AAPL", "1", client_order_id="mine-1"))
    other = world.exchange.open_account()
    assert world.exchange.submit(other, buy("AAPL", "1", client_order_id="mine-1")).status is OrderStatus.FILLED


def test_accounts_are_isolated(world: PaperWorld) -> None:
    order = world.exchange.submit(world.account_id, buy("AAPL", "1"))
    other = world.exchange.open_account()
    with pytest.raises(NotFoundError):
        world.exchange.get_order(other, order.id)
    assert world.exchange.positions(other) == []


def test_realized_pl_on_a_round_trip(world: PaperWorld) -> None:
    bought = world.exchange.submit(world.account_id, buy("AAPL", "10"))
    world.step(times=600)
    sold = world.exchange.submit(world.account_id, sell("AAPL", "10"))
    assert bought.filled_avg_price is not None
    assert sold.filled_avg_price is not None
    account = world.exchange.account(world.account_id)
    assert account.realized_pl == 10 * (sold.filled_avg_price - bought.filled_avg_price)
    assert account.cash == D(100000) + account.realized_pl


def test_a_reader_moving_the_market_on_does_not_skip_the_exchange_past_steps(world: PaperWorld) -> None:
    displayed = world.exchange.quote("SIRI").ask_size
    order = world.exchange.submit(world.account_id, buy("SIRI", str(displayed * 20)))
    world.clock.advance(10)
    world.exchange.market.quotes(["SIRI"])  # a quote query arrives before the exchange has caught up
    world.exchange.advance()
    fills = [
        u for u in world.updates if u.order.id == order.id and u.event in {TradeEvent.FILL, TradeEvent.PARTIAL_FILL}
    ]
    # One fill per step, each at its own step's quote: none of the steps was skipped.
    assert len(fills) > 3
    assert len({fill.timestamp for fill in fills}) == len(fills)
    assert fills[-1].event is TradeEvent.FILL


def test_made_up_symbols_leave_nothing_behind(world: PaperWorld) -> None:
    for number in range(50):
        with pytest.raises(UnknownSymbolError):
            world.exchange.quote(f"ZZ{number}")
    assert len(world.exchange.instruments._resolved) <= len(world.exchange.market.assets) + 1
