"""Listed options on the paper market: OCC symbols, chains, Black-Scholes prices and greeks.

Each underlying lists weekly expirations (Fridays, or the Thursday before a holiday) for
the next few weeks and monthly ones (third Friday) for the next months. Strikes sit on
the usual grid around the underlying's starting price, so a contract symbol means the
same thing for the life of the market. Prices come from Black-Scholes on the
underlying's simulated mid with a volatility smile; the model runs in float, prices
leave as Decimal on the penny grid.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from server.brokers.domain import OPTION_MULTIPLIER, OptionType, Quote
from server.brokers.domain import OptionGreeks as Greeks
from server.brokers.paper.calendar import NEW_YORK, nyse_holidays
from server.brokers.paper.universe import AssetSpec

MULTIPLIER = OPTION_MULTIPLIER
RISK_FREE_RATE = 0.04
WEEKLY_EXPIRATIONS = 6
MONTHLY_EXPIRATIONS = 6
STRIKE_RANGE = 0.3
SMILE_CURVATURE = 0.8
SKEW = 0.15
MIN_VOLATILITY = 0.05
CENT = Decimal("0.01")
_OCC = re.compile(r"^(?P<root>[A-Z]{1,6})(?P<date>\d{6})(?P<type>[CP])(?P<strike>\d{8})$")


@dataclass(frozen=True, slots=True)
class ContractSpec:
    symbol: str
    underlying: str
    type: OptionType
    strike: Decimal
    expiration: date

    @property
    def root(self) -> str:
        return self.underlying.replace(".", "")


def occ_symbol(underlying: str, expiration: date, option_type: OptionType, strike: Decimal) -> str:
    millis = int(strike * 1000)
    return (
        f"{underlying.replace('.', '')}{expiration:%y%m%d}{'C' if option_type is OptionType.CALL else 'P'}{millis:08d}"
    )


def parse_occ(symbol: str) -> tuple[str, date, OptionType, Decimal] | None:
    match = _OCC.match(symbol)
    if match is None:
        return None
    try:
        expiration = datetime.strptime(match["date"], "%y%m%d").date()  # noqa: DTZ007 - a date, no time
    except ValueError:
        return None
    option_type = OptionType.CALL if match["type"] == "C" else OptionType.PUT
    return match["root"], expiration, option_type, Decimal(match["strike"]) / 1000


def _trading_day_on_or_before(day: date) -> date:
    while day.weekday() >= 5 or day in nyse_holidays(day.year):
        day -= timedelta(days=1)
    return day


def is_expiration_day(day: date) -> bool:
    """Options expire on Fridays, or on the trading day before a Friday holiday."""
    friday = day + timedelta(days=(4 - day.weekday()) % 7)
    return day.weekday() <= 4 and _trading_day_on_or_before(friday) == day


def expirations(today: date) -> list[date]:
    """Weekly Fridays for the next weeks and the third Friday of the next months."""
    fridays = [today + timedelta(days=(4 - today.weekday()) % 7 + 7 * week) for week in range(WEEKLY_EXPIRATIONS)]
    monthly = []
    year, month = today.year, today.month
    while len(monthly) < MONTHLY_EXPIRATIONS:
        first = date(year, month, 1)
        third_friday = first + timedelta(days=(4 - first.weekday()) % 7 + 14)
        if third_friday >= today:
            monthly.append(third_friday)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return sorted({_trading_day_on_or_before(day) for day in fridays + monthly if day >= today})


def strike_increment(price: Decimal) -> Decimal:
    if price < 25:
        return Decimal("0.5")
    if price < 100:
        return Decimal(1)
    if price < 250:
        return Decimal("2.5")
    if price < 500:
        return Decimal(5)
    return Decimal(10)


def strikes(price: Decimal) -> list[Decimal]:
    step = strike_increment(price)
    low = (price * Decimal(1 - STRIKE_RANGE) / step).to_integral_value(ROUND_CEILING) * step
    high = (price * Decimal(1 + STRIKE_RANGE) / step).to_integral_value(ROUND_FLOOR) * step
    count = int((high - low) / step) + 1
    return [low + step * i for i in range(count)]


def chain(asset: AssetSpec, today: date) -> list[ContractSpec]:
    contracts = []
    for expiration in expirations(today):
        for strike in strikes(asset.price):
            for option_type in (OptionType.CALL, OptionType.PUT):
                symbol = occ_symbol(asset.symbol, expiration, option_type, strike)
                contracts.append(ContractSpec(symbol, asset.symbol, option_type, strike, expiration))
    return contracts


def expiry_moment(expiration: date) -> datetime:
    return datetime.combine(expiration, datetime.min.time().replace(hour=16), NEW_YORK)


def years_to_expiry(expiration: date, now: datetime) -> float:
    return max((expiry_moment(expiration) - now).total_seconds(), 0.0) / (365 * 24 * 3600)


def implied_volatility(base: float, spot: float, strike: float) -> float:
    """A smile: higher away from the money, and higher for low strikes (equity skew)."""
    moneyness = math.log(strike / spot)
    return max(MIN_VOLATILITY, base * (1 + SMILE_CURVATURE * moneyness * moneyness - SKEW * moneyness))


def _cdf(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def _pdf(x: float) -> float:
    return math.exp(-x * x / 2) / math.sqrt(2 * math.pi)


def black_scholes(
    option_type: OptionType, spot: float, strike: float, years: float, vol: float, rate: float = RISK_FREE_RATE
) -> tuple[float, Greeks]:
    """Price and greeks (theta per day, vega and rho per 1 percentage point)."""
    call = option_type is OptionType.CALL
    if years <= 0:
        intrinsic = max(spot - strike, 0.0) if call else max(strike - spot, 0.0)
        delta = (1.0 if spot > strike else 0.0) if call else (-1.0 if spot < strike else 0.0)
        return intrinsic, Greeks(delta, 0.0, 0.0, 0.0, 0.0)
    root = math.sqrt(years)
    d1 = (math.log(spot / strike) + (rate + vol * vol / 2) * years) / (vol * root)
    d2 = d1 - vol * root
    discount = math.exp(-rate * years)
    if call:
        price = spot * _cdf(d1) - strike * discount * _cdf(d2)
        delta = _cdf(d1)
        theta = -spot * _pdf(d1) * vol / (2 * root) - rate * strike * discount * _cdf(d2)
        rho = strike * years * discount * _cdf(d2)
    else:
        price = strike * discount * _cdf(-d2) - spot * _cdf(-d1)
        delta = _cdf(d1) - 1
        theta = -spot * _pdf(d1) * vol / (2 * root) + rate * strike * discount * _cdf(-d2)
        rho = -strike * years * discount * _cdf(-d2)
    gamma = _pdf(d1) / (spot * vol * root)
    vega = spot * _pdf(d1) * root
    return price, Greeks(delta, gamma, theta / 365, vega / 100, rho / 100)


def option_quote(contract: ContractSpec, underlying: Quote, base_vol: float, now: datetime) -> Quote:
    spot = float((underlying.bid_price + underlying.ask_price) / 2)
    vol = implied_volatility(base_vol, spot, float(contract.strike))
    price, _ = black_scholes(
        contract.type, spot, float(contract.strike), years_to_expiry(contract.expiration, now), vol
    )
    fair = Decimal(repr(round(price, 4)))
    half_spread = max(CENT, fair * Decimal("0.02")).quantize(CENT)
    bid = max(Decimal(0), (fair - half_spread).quantize(CENT, ROUND_FLOOR))
    ask = max(CENT, (fair + half_spread).quantize(CENT, ROUND_CEILING))
    if ask <= bid:
        ask = bid + CENT
    depth = 10 + int(underlying.bid_size) // 10
    return Quote(
        symbol=contract.symbol,
        bid_price=bid,
        bid_size=Decimal(depth if bid > 0 else 0),
        ask_price=ask,
        ask_size=Decimal(depth),
        timestamp=underlying.timestamp,
    )
