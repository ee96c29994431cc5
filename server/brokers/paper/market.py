"""A seeded, deterministic market: one geometric random walk per symbol.

Each symbol moves in fixed steps of `tick_seconds` from the moment the market was
created, drawing from its own generator (seeded by the market seed and the symbol), so a
symbol's path does not depend on which other symbols were asked for, or in what order.
The walk runs in float internally; everything handed out is Decimal on the price grid.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from types import MappingProxyType

from server.brokers.base import UnknownSymbolError
from server.brokers.domain import Bar, Quote, Trade
from server.brokers.paper.clock import Clock
from server.brokers.paper.tape import Tape, history_bars
from server.brokers.paper.universe import UNIVERSE, AssetSpec

TRADING_SECONDS_PER_YEAR = 252 * 6.5 * 3600
# Past this many steps behind, a symbol catches up in one draw (same distribution, less CPU,
# but no trades or bars for the gap). A running server steps every symbol each tick.
MAX_CATCHUP_STEPS = 3600
CENT = Decimal("0.01")
SUB_PENNY = Decimal("0.0001")
ROUND_LOT = 100
MAX_LOTS_DISPLAYED = 10
TRADE_PROBABILITY = 0.6


def tick_size(price: Decimal) -> Decimal:
    return CENT if price >= 1 else SUB_PENNY


class SymbolWalk:
    """The price path of one symbol, and the trades it prints."""

    def __init__(self, spec: AssetSpec, *, seed: int, tick_seconds: float, epoch: datetime) -> None:
        self.spec = spec
        self.tape = Tape(spec.symbol)
        self._rng = random.Random(f"{seed}:{spec.symbol}")
        self._sigma = spec.volatility * math.sqrt(tick_seconds / TRADING_SECONDS_PER_YEAR)
        self._log_mid = math.log(float(spec.price))
        self._bid_lots = self._ask_lots = 1
        self._epoch = epoch
        self._tick = timedelta(seconds=tick_seconds)
        self._cached: tuple[int, Quote] | None = None
        self.step = -1
        self.advance_to(0)

    def advance_to(self, step: int) -> None:
        gap = step - self.step
        if gap <= 0:
            return
        if gap > MAX_CATCHUP_STEPS:
            self._move(math.sqrt(gap))
            self._print(step)
        else:
            for moved_to in range(self.step + 1, step + 1):
                self._move(1.0)
                self._print(moved_to)
        self.step = step

    def _move(self, scale: float) -> None:
        sigma = self._sigma * scale
        self._log_mid += sigma * self._rng.gauss(0.0, 1.0) - sigma * sigma / 2
        self._bid_lots = self._rng.randint(1, MAX_LOTS_DISPLAYED)
        self._ask_lots = self._rng.randint(1, MAX_LOTS_DISPLAYED)

    def _print(self, step: int) -> None:
        """Maybe a trade at this step: a seller hits the bid or a buyer lifts the offer."""
        where, lots = self._rng.random(), self._rng.randint(1, 5)
        if where >= TRADE_PROBABILITY:
            return
        moment = self._epoch + step * self._tick
        quote = self.quote(moment)
        price = quote.bid_price if where < TRADE_PROBABILITY / 2 else quote.ask_price
        self.tape.print_trade(price, Decimal(lots * ROUND_LOT), moment)

    @property
    def mid(self) -> Decimal:
        return Decimal(repr(round(math.exp(self._log_mid), 6)))

    def current_quote(self) -> Quote:
        """The quote at the step reached, computed once per step."""
        if self._cached is None or self._cached[0] != self.step:
            self._cached = (self.step, self.quote(self._epoch + self.step * self._tick))
        return self._cached[1]

    def quote(self, timestamp: datetime) -> Quote:
        mid = self.mid
        tick = tick_size(mid)
        half_spread = max(tick / 2, mid * Decimal(repr(self.spec.spread_bps)) / 20000)
        bid = ((mid - half_spread) / tick).to_integral_value(ROUND_FLOOR) * tick
        ask = ((mid + half_spread) / tick).to_integral_value(ROUND_CEILING) * tick
        if ask <= bid:
            ask = bid + tick
        return Quote(
            symbol=self.spec.symbol,
            bid_price=max(bid, tick),
            bid_size=Decimal(self._bid_lots * ROUND_LOT),
            ask_price=ask,
            ask_size=Decimal(self._ask_lots * ROUND_LOT),
            timestamp=timestamp,
        )


class MarketSimulator:
    def __init__(
        self,
        clock: Clock,
        *,
        seed: int,
        tick_seconds: float = 1.0,
        universe: Iterable[AssetSpec] = UNIVERSE,
    ) -> None:
        if tick_seconds <= 0:
            raise ValueError("tick_seconds must be positive")
        self.clock = clock
        self.seed = seed
        self.tick = timedelta(seconds=tick_seconds)
        self.epoch = clock.now().replace(microsecond=0)
        self._history_cache: dict[tuple[str, bool], list[Bar]] = {}
        self._catch_up: Callable[[], None] | None = None
        self._assets = MappingProxyType({spec.symbol: spec for spec in universe})
        self._walks = {
            spec.symbol: SymbolWalk(spec, seed=seed, tick_seconds=tick_seconds, epoch=self.epoch)
            for spec in self._assets.values()
        }

    @property
    def assets(self) -> Mapping[str, AssetSpec]:
        return self._assets

    def current_step(self) -> int:
        return max(0, (self.clock.now() - self.epoch) // self.tick)

    def quotes(self, symbols: Sequence[str]) -> dict[str, Quote]:
        unknown = [symbol for symbol in dict.fromkeys(symbols) if symbol not in self._walks]
        if unknown:
            raise UnknownSymbolError(unknown)
        step = self.present_step()
        result: dict[str, Quote] = {}
        for symbol in symbols:
            walk = self._walks[symbol]
            walk.advance_to(step)
            result[symbol] = walk.current_quote()
        return result

    def quote(self, symbol: str) -> Quote:
        return self.quotes([symbol])[symbol]

    def has_symbol(self, symbol: str) -> bool:
        return symbol in self._walks

    def time_of_step(self, step: int) -> datetime:
        return self.epoch + step * self.tick

    def before_moving(self, catch_up: Callable[[], None]) -> None:
        """Have `catch_up` run whenever a reader is about to move the walks to the present.

        Each walk keeps only its latest quote, so once a reader has moved the market on,
        the steps in between are gone. The exchange registers its `advance` here, so it
        works every step (matching, stops, expiries) before any read skips past them."""
        self._catch_up = catch_up

    def present_step(self) -> int:
        """The present step, after letting the exchange catch up to it."""
        if self._catch_up is not None:
            self._catch_up()
        return self.current_step()

    def quote_at_step(self, symbol: str, step: int) -> Quote:
        """The quote at `step`, which must not be behind what the symbol has already reached."""
        walk = self._walks[symbol]
        walk.advance_to(step)
        return walk.current_quote()

    def advance_all(self) -> None:
        """Step every symbol to the present (a running server does this each tick)."""
        step = self.present_step()
        for walk in self._walks.values():
            walk.advance_to(step)

    def _walk(self, symbol: str) -> SymbolWalk:
        walk = self._walks.get(symbol)
        if walk is None:
            raise UnknownSymbolError([symbol])
        walk.advance_to(self.present_step())
        return walk

    def latest_trade(self, symbol: str) -> Trade | None:
        return self._walk(symbol).tape.last_trade

    def minute_bars(self, symbol: str) -> list[Bar]:
        """History and live minute bars, oldest first; the minute in progress is not included."""
        walk = self._walk(symbol)
        history = self._history(symbol, daily=False)
        return history + walk.tape.completed_bars(self.clock.now())

    def latest_minute_bar(self, symbol: str) -> Bar | None:
        """The last completed minute bar (what a bar stream sends as each minute closes)."""
        completed = self._walk(symbol).tape.last_completed_bar(self.clock.now())
        if completed is not None:
            return completed
        history = self._history(symbol, daily=False)
        return history[-1] if history else None

    def daily_bars(self, symbol: str) -> list[Bar]:
        """Daily history, then today's bar so far (built from the live minute bars)."""
        history = self._history(symbol, daily=True)
        live = [bar for bar in self.minute_bars(symbol) if bar.timestamp >= self.epoch]
        current = self._walks[symbol].tape.current_bar()
        if current is not None:
            live.append(current)
        return history + aggregate(live, timedelta(days=1)) if live else history

    def _history(self, symbol: str, *, daily: bool) -> list[Bar]:
        key = (symbol, daily)
        if key not in self._history_cache:
            spec = self._walks[symbol].spec
            self._history_cache[key] = history_bars(
                symbol,
                seed=self.seed,
                start_price=spec.price,
                volatility=spec.volatility,
                epoch=self.epoch,
                daily=daily,
            )
        return self._history_cache[key]


def aggregate(bars: Sequence[Bar], period: timedelta) -> list[Bar]:
    """Roll bars (oldest first) into longer bars aligned to `period` from midnight UTC."""
    rolled: list[Bar] = []
    for bar in bars:
        day = bar.timestamp.replace(hour=0, minute=0, second=0, microsecond=0)
        start = day + ((bar.timestamp - day) // period) * period
        if rolled and rolled[-1].timestamp == start:
            last = rolled[-1]
            volume = last.volume + bar.volume
            rolled[-1] = Bar(
                symbol=bar.symbol,
                open=last.open,
                high=max(last.high, bar.high),
                low=min(last.low, bar.low),
                close=bar.close,
                volume=volume,
                trade_count=last.trade_count + bar.trade_count,
                vwap=((last.vwap * last.volume + bar.vwap * bar.volume) / volume).quantize(Decimal("0.0001"))
                if volume
                else bar.vwap,
                timestamp=start,
            )
        else:
            rolled.append(Bar(**{**_fields(bar), "timestamp": start}))
    return rolled


def _fields(bar: Bar) -> dict[str, object]:
    return {name: getattr(bar, name) for name in Bar.__slots__}
