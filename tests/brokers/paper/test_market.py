from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.brokers.base import UnknownSymbolError
from server.brokers.paper.market import MAX_CATCHUP_STEPS, MarketSimulator, aggregate, tick_size
from server.brokers.paper.universe import UNIVERSE
from tests.utils.factories import MARKET_OPEN, make_clock

SYMBOLS = [asset.symbol for asset in UNIVERSE]


def make_market(seed: int = 1) -> MarketSimulator:
    return MarketSimulator(make_clock(), seed=seed)


def test_universe_is_broad_and_unique() -> None:
    assert len(UNIVERSE) >= 50
    assert len(set(SYMBOLS)) == len(SYMBOLS)
    assert sum(asset.is_etf for asset in UNIVERSE) >= 5
    assert any(not asset.shortable for asset in UNIVERSE)


def test_first_quote_is_at_the_starting_price() -> None:
    market = make_market()
    for asset in UNIVERSE:
        quote = market.quote(asset.symbol)
        assert abs(quote.bid_price - asset.price) / asset.price < Decimal("0.005")


def test_same_seed_same_path_whatever_the_order_of_questions() -> None:
    one, other = make_market(seed=5), make_market(seed=5)
    path_one, path_other = [], []
    for _ in range(20):
        one.clock.advance(7)  # type: ignore[attr-defined]
        other.clock.advance(7)  # type: ignore[attr-defined]
        path_one.append(one.quote("AAPL"))
        other.quotes(["MSFT", "SPY"])  # asking about other symbols must not disturb AAPL
        path_other.append(other.quotes(["TSLA", "AAPL"])["AAPL"])
    assert path_one == path_other


def test_different_seeds_give_different_paths() -> None:
    one, other = make_market(seed=1), make_market(seed=2)
    one.clock.advance(600)  # type: ignore[attr-defined]
    other.clock.advance(600)  # type: ignore[attr-defined]
    assert one.quote("AAPL") != other.quote("AAPL")


def test_quotes_only_change_on_a_new_step() -> None:
    market = make_market()
    first = market.quote("NVDA")
    market.clock.advance(0.4)  # type: ignore[attr-defined]
    assert market.quote("NVDA") == first
    market.clock.advance(0.6)  # type: ignore[attr-defined]
    moved = market.quote("NVDA")
    assert moved.timestamp == MARKET_OPEN + timedelta(seconds=1)


def test_long_gaps_catch_up_in_one_draw() -> None:
    market = make_market()
    market.clock.advance(timedelta(days=3))  # type: ignore[attr-defined]
    quote = market.quote("SPY")
    assert quote.timestamp == MARKET_OPEN + timedelta(days=3)
    assert quote.bid_price > 0
    assert MAX_CATCHUP_STEPS < 3 * 86400


def test_unknown_symbols_are_all_named() -> None:
    market = make_market()
    with pytest.raises(UnknownSymbolError) as raised:
        market.quotes(["AAPL", "NOPE", "ZZZZ", "NOPE"])
    assert raised.value.symbols == ("NOPE", "ZZZZ")


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(min_value=0, max_value=2**32),
    steps=st.lists(st.integers(min_value=0, max_value=5000), min_size=1, max_size=15),
    symbol=st.sampled_from(SYMBOLS),
)
def test_quotes_are_always_well_formed(seed: int, steps: list[int], symbol: str) -> None:
    market = make_market(seed)
    for step in steps:
        market.clock.advance(step)  # type: ignore[attr-defined]
        quote = market.quote(symbol)
        tick = tick_size(quote.bid_price)
        assert Decimal(0) < quote.bid_price < quote.ask_price
        assert quote.bid_price % tick == 0
        assert quote.ask_price % tick_size(quote.ask_price) == 0
        assert quote.bid_size > 0
        assert quote.ask_size > 0
        assert quote.bid_size % 100 == 0
        assert quote.timestamp.tzinfo is not None


def test_trades_print_at_the_quote_and_build_minute_bars() -> None:
    market = make_market()
    market.clock.advance(600)  # type: ignore[attr-defined]
    trade = market.latest_trade("AAPL")
    assert trade is not None
    assert trade.timestamp <= market.clock.now()
    bars = [bar for bar in market.minute_bars("AAPL") if bar.timestamp >= MARKET_OPEN]
    assert [bar.timestamp for bar in bars] == [MARKET_OPEN + timedelta(minutes=m) for m in range(10)]
    for bar in bars:
        assert bar.low <= min(bar.open, bar.close) <= max(bar.open, bar.close) <= bar.high
        assert bar.low <= bar.vwap <= bar.high
        assert bar.volume > 0
        assert bar.trade_count > 0


def test_history_ends_at_the_starting_price_and_is_deterministic() -> None:
    one, other = make_market(seed=3), make_market(seed=3)
    daily = one.daily_bars("SPY")
    assert daily == other.daily_bars("SPY")
    history = [bar for bar in daily if bar.timestamp < MARKET_OPEN.replace(hour=0)]
    assert len(history) >= 365
    assert history[-1].close == Decimal("590.00")
    minutes = one.minute_bars("SPY")
    assert minutes[0].timestamp < MARKET_OPEN - timedelta(days=4)
    assert all(a.timestamp < b.timestamp for a, b in pairwise(minutes))


def test_aggregated_bars_keep_ohlc_and_volume() -> None:
    market = make_market()
    market.clock.advance(900)  # type: ignore[attr-defined]
    minutes = [bar for bar in market.minute_bars("AAPL") if bar.timestamp >= MARKET_OPEN]
    [first, second, third] = aggregate(minutes, timedelta(minutes=5))
    assert first.open == minutes[0].open
    assert third.close == minutes[14].close
    assert first.high == max(bar.high for bar in minutes[:5])
    assert second.volume == sum((bar.volume for bar in minutes[5:10]), Decimal(0))


def test_stepping_every_symbol_each_tick_keeps_the_tape_whole() -> None:
    # Past MAX_CATCHUP_STEPS a symbol nobody asked about jumps in one draw and prints no bars;
    # the server's ticker calls advance_all() every tick so that never happens.
    symbols = [spec for spec in UNIVERSE if spec.symbol in {"AAPL", "KO"}]
    ticked = MarketSimulator(make_clock(), seed=1, universe=symbols)
    idle = MarketSimulator(make_clock(), seed=1, universe=symbols)
    minutes = MAX_CATCHUP_STEPS // 60 + 5
    for _ in range(minutes * 60):
        ticked.clock.advance(1)  # type: ignore[attr-defined]
        idle.clock.advance(1)  # type: ignore[attr-defined]
        ticked.advance_all()
    live = [bar for bar in ticked.minute_bars("KO") if bar.timestamp >= MARKET_OPEN]
    gappy = [bar for bar in idle.minute_bars("KO") if bar.timestamp >= MARKET_OPEN]
    assert [bar.timestamp for bar in live] == [MARKET_OPEN + timedelta(minutes=m) for m in range(minutes)]
    assert len(gappy) < 2
