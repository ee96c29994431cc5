"""A paper exchange on a manual clock, and helpers to step it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from server.brokers.domain import OrderStatus, TradeUpdate
from server.brokers.paper.calendar import AlwaysOpenCalendar, MarketCalendar
from server.brokers.paper.clock import ManualClock
from server.brokers.paper.exchange import PaperExchange
from server.brokers.paper.market import MarketSimulator
from tests.utils.factories import MARKET_OPEN, TEST_SEED


@dataclass
class PaperWorld:
    clock: ManualClock
    exchange: PaperExchange
    account_id: str
    updates: list[TradeUpdate] = field(default_factory=list)

    def step(self, seconds: float = 1, times: int = 1) -> None:
        for _ in range(times):
            self.clock.advance(seconds)
            self.exchange.advance()

    def step_until(self, done: Callable[[], bool], *, limit: int) -> None:
        """Step one second at a time until `done()`; fail if `limit` steps go by first."""
        for _ in range(limit):
            self.step()
            if done():
                return
        raise AssertionError(f"not done after {limit} steps")

    def status(self, order_id: str) -> OrderStatus:
        return self.exchange.get_order(self.account_id, order_id).status

    def events(self, order_id: str) -> list[str]:
        return [u.event.value for u in self.updates if u.order.id == order_id]


def paper_world(
    *,
    seed: int = TEST_SEED,
    calendar: MarketCalendar | None = None,
    starting_cash: Decimal = Decimal(100000),
    start=MARKET_OPEN,
) -> PaperWorld:
    clock = ManualClock(start)
    exchange = PaperExchange(
        MarketSimulator(clock, seed=seed), calendar or AlwaysOpenCalendar(), starting_cash=starting_cash
    )
    world = PaperWorld(clock=clock, exchange=exchange, account_id=exchange.open_account())
    exchange.add_listener(lambda _account, update: world.updates.append(update))
    return world


def lowest_bid_ahead(world: PaperWorld, symbol: str, steps: int, *, seed: int = TEST_SEED) -> Decimal:
    """The lowest bid `symbol` will show over the next `steps` one-second steps.

    A twin market with the same seed walks the same path, so tests can place prices the
    market is certain to reach instead of hoping it drifts their way.
    """
    twin_clock = ManualClock(world.clock.now())
    twin = MarketSimulator(twin_clock, seed=seed)
    twin.epoch = world.exchange.market.epoch
    start_step = world.exchange.market.current_step()
    return min(twin.quote_at_step(symbol, start_step + offset).bid_price for offset in range(steps + 1))
