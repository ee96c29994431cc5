"""Trades and bars: what printed on the tape, and the bars built from it.

Live minute bars come from the simulated trades as they print. Before the market
started there was no tape, so history is drawn deterministically (per symbol, per day,
from the market seed) as a walk that ends exactly at the symbol's starting price.
"""

from __future__ import annotations

import math
import random
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from server.brokers.domain import Bar, Trade

MINUTE = timedelta(minutes=1)
LIVE_BARS_KEPT = 2 * 24 * 60
HISTORY_MINUTES = 5 * 24 * 60
HISTORY_DAYS = 400
MINUTES_PER_TRADING_YEAR = 252 * 6.5 * 60
TRADING_DAYS_PER_YEAR = 252


def _floor_minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


@dataclass(slots=True)
class _OpenBar:
    start: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    value: Decimal
    count: int

    def add(self, price: Decimal, size: Decimal) -> None:
        self.high = max(self.high, price)
        self.low = min(self.low, price)
        self.close = price
        self.volume += size
        self.value += price * size
        self.count += 1

    def close_bar(self, symbol: str) -> Bar:
        return Bar(
            symbol=symbol,
            open=self.open,
            high=self.high,
            low=self.low,
            close=self.close,
            volume=self.volume,
            trade_count=self.count,
            vwap=(self.value / self.volume).quantize(Decimal("0.0001")),
            timestamp=self.start,
        )


class Tape:
    """One symbol's prints and the minute bars they make."""

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.last_trade: Trade | None = None
        self.bars: deque[Bar] = deque(maxlen=LIVE_BARS_KEPT)
        self._open: _OpenBar | None = None
        self._next_id = 1

    def print_trade(self, price: Decimal, size: Decimal, moment: datetime) -> Trade:
        trade = Trade(self.symbol, price, size, moment, self._next_id)
        self._next_id += 1
        self.last_trade = trade
        minute = _floor_minute(moment)
        if self._open is not None and self._open.start != minute:
            self.bars.append(self._open.close_bar(self.symbol))
            self._open = None
        if self._open is None:
            self._open = _OpenBar(minute, price, price, price, price, Decimal(0), Decimal(0), 0)
        self._open.add(price, size)
        return trade

    def completed_bars(self, now: datetime) -> list[Bar]:
        """Finished minute bars, oldest first (the open minute closes once the clock passes it)."""
        self._close_minute(now)
        return list(self.bars)

    def last_completed_bar(self, now: datetime) -> Bar | None:
        self._close_minute(now)
        return self.bars[-1] if self.bars else None

    def _close_minute(self, now: datetime) -> None:
        if self._open is not None and self._open.start + MINUTE <= now:
            self.bars.append(self._open.close_bar(self.symbol))
            self._open = None

    def current_bar(self) -> Bar | None:
        return self._open.close_bar(self.symbol) if self._open else None


def history_bars(
    symbol: str, *, seed: int, start_price: Decimal, volatility: float, epoch: datetime, daily: bool
) -> list[Bar]:
    """Bars before the market started, oldest first, ending at `start_price` at `epoch`.

    Minute bars cover the last few days, daily bars a year and more; both come from
    their own seeded walk, run backwards from the starting price.
    """
    step = timedelta(days=1) if daily else MINUTE
    count = HISTORY_DAYS if daily else HISTORY_MINUTES
    periods = TRADING_DAYS_PER_YEAR if daily else MINUTES_PER_TRADING_YEAR
    sigma = volatility / math.sqrt(periods)
    rng = random.Random(f"{seed}:{symbol}:history:{'day' if daily else 'minute'}")
    anchor = (epoch - step).replace(hour=0, minute=0, second=0, microsecond=0) if daily else _floor_minute(epoch) - step
    close = math.log(float(start_price))
    tick = Decimal("0.01") if start_price >= 1 else Decimal("0.0001")
    bars: list[Bar] = []
    for index in range(count):
        open_ = close - sigma * rng.gauss(0.0, 1.0)
        wiggle = abs(sigma * rng.gauss(0.0, 1.0)) / 2
        high, low = max(open_, close) + wiggle, min(open_, close) - wiggle
        prices = [Decimal(repr(math.exp(x))).quantize(tick) for x in (open_, high, low, close)]
        volume = Decimal(rng.randint(20, 400) * (100 if not daily else 39000))
        bars.append(
            Bar(
                symbol=symbol,
                open=prices[0],
                high=prices[1],
                low=prices[2],
                close=prices[3],
                volume=volume,
                trade_count=int(volume // 100),
                vwap=((prices[0] + prices[1] + prices[2] + prices[3]) / 4).quantize(Decimal("0.0001")),
                timestamp=anchor - index * step,
            )
        )
        close = open_
    bars.reverse()
    return bars
