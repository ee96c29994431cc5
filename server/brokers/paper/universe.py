"""The paper exchange's built-in universe: liquid US stocks and ETFs.

Starting prices are round figures near where these traded in late 2025; volatilities are
annualised; spreads are typical quoted spreads in basis points (never under one cent).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum


class Exchange(StrEnum):
    NASDAQ = "NASDAQ"
    NYSE = "NYSE"
    ARCA = "ARCA"
    BATS = "BATS"


@dataclass(frozen=True, slots=True)
class AssetSpec:
    symbol: str
    name: str
    exchange: Exchange
    price: Decimal
    volatility: float
    spread_bps: float
    is_etf: bool = False
    shortable: bool = True
    easy_to_borrow: bool = True
    fractionable: bool = True


def _stock(
    symbol: str, name: str, exchange: Exchange, price: str, vol: float, spread: float, **flags: bool
) -> AssetSpec:
    return AssetSpec(symbol, name, exchange, Decimal(price), vol, spread, **flags)


def _etf(symbol: str, name: str, price: str, vol: float, spread: float) -> AssetSpec:
    return AssetSpec(symbol, name, Exchange.ARCA, Decimal(price), vol, spread, is_etf=True)


N, Y = Exchange.NASDAQ, Exchange.NYSE

UNIVERSE: tuple[AssetSpec, ...] = (
    _stock("AAPL", "Apple Inc. Common Stock", N, "230.00", 0.25, 0.5),
    _stock("MSFT", "Microsoft Corporation Common Stock", N, "420.00", 0.23, 0.5),
    _stock("NVDA", "NVIDIA Corporation Common Stock", N, "140.00", 0.50, 0.7),
    _stock("AMZN", "Amazon.com, Inc. Common Stock", N, "200.00", 0.32, 0.6),
    _stock("GOOGL", "Alphabet Inc. Class A Common Stock", N, "170.00", 0.29, 0.6),
    _stock("GOOG", "Alphabet Inc. Class C Capital Stock", N, "172.00", 0.29, 0.6),
    _stock("META", "Meta Platforms, Inc. Class A Common Stock", N, "580.00", 0.38, 0.6),
    _stock("TSLA", "Tesla, Inc. Common Stock", N, "250.00", 0.60, 0.6),
    _stock("AVGO", "Broadcom Inc. Common Stock", N, "170.00", 0.45, 0.8),
    _stock("AMD", "Advanced Micro Devices, Inc. Common Stock", N, "150.00", 0.48, 0.8),
    _stock("NFLX", "Netflix, Inc. Common Stock", N, "750.00", 0.35, 1.0),
    _stock("ADBE", "Adobe Inc. Common Stock", N, "500.00", 0.32, 1.0),
    _stock("CRM", "Salesforce, Inc. Common Stock", Y, "300.00", 0.33, 1.0),
    _stock("ORCL", "Oracle Corporation Common Stock", Y, "180.00", 0.34, 1.0),
    _stock("INTC", "Intel Corporation Common Stock", N, "22.00", 0.45, 4.5),
    _stock("CSCO", "Cisco Systems, Inc. Common Stock", N, "57.00", 0.22, 1.8),
    _stock("QCOM", "QUALCOMM Incorporated Common Stock", N, "160.00", 0.36, 1.0),
    _stock("IBM", "International Business Machines Corporation", Y, "210.00", 0.24, 1.0),
    _stock("JPM", "JPMorgan Chase & Co. Common Stock", Y, "230.00", 0.24, 0.8),
    _stock("BAC", "Bank of America Corporation Common Stock", Y, "42.00", 0.27, 2.4),
    _stock("WFC", "Wells Fargo & Company Common Stock", Y, "68.00", 0.28, 1.5),
    _stock("GS", "The Goldman Sachs Group, Inc. Common Stock", Y, "560.00", 0.28, 1.0),
    _stock("MS", "Morgan Stanley Common Stock", Y, "125.00", 0.27, 1.0),
    _stock("V", "Visa Inc. Class A Common Stock", Y, "300.00", 0.19, 0.7),
    _stock("MA", "Mastercard Incorporated Class A Common Stock", Y, "510.00", 0.20, 0.8),
    _stock("BRK.B", "Berkshire Hathaway Inc. Class B Common Stock", Y, "460.00", 0.16, 0.8),
    _stock("JNJ", "Johnson & Johnson Common Stock", Y, "155.00", 0.16, 0.8),
    _stock("UNH", "UnitedHealth Group Incorporated Common Stock", Y, "590.00", 0.27, 1.0),
    _stock("LLY", "Eli Lilly and Company Common Stock", Y, "800.00", 0.33, 1.0),
    _stock("PFE", "Pfizer Inc. Common Stock", Y, "26.00", 0.24, 3.8),
    _stock("MRK", "Merck & Co., Inc. Common Stock", Y, "100.00", 0.22, 1.0),
    _stock("ABBV", "AbbVie Inc. Common Stock", Y, "175.00", 0.23, 1.0),
    _stock("PG", "Procter & Gamble Company Common Stock", Y, "170.00", 0.15, 0.8),
    _stock("KO", "Coca-Cola Company Common Stock", Y, "64.00", 0.14, 1.6),
    _stock("PEP", "PepsiCo, Inc. Common Stock", N, "155.00", 0.16, 0.8),
    _stock("WMT", "Walmart Inc. Common Stock", N, "90.00", 0.18, 1.1),
    _stock("COST", "Costco Wholesale Corporation Common Stock", N, "900.00", 0.20, 1.0),
    _stock("HD", "Home Depot, Inc. Common Stock", Y, "400.00", 0.22, 0.8),
    _stock("MCD", "McDonald's Corporation Common Stock", Y, "290.00", 0.17, 0.8),
    _stock("NKE", "Nike, Inc. Common Stock", Y, "78.00", 0.32, 1.3),
    _stock("DIS", "Walt Disney Company Common Stock", Y, "110.00", 0.27, 0.9),
    _stock("XOM", "Exxon Mobil Corporation Common Stock", Y, "118.00", 0.23, 0.9),
    _stock("CVX", "Chevron Corporation Common Stock", Y, "155.00", 0.23, 0.9),
    _stock("BA", "Boeing Company Common Stock", Y, "155.00", 0.38, 1.0),
    _stock("CAT", "Caterpillar Inc. Common Stock", Y, "380.00", 0.28, 1.0),
    _stock("GE", "GE Aerospace Common Stock", Y, "180.00", 0.30, 1.0),
    _stock("UBER", "Uber Technologies, Inc. Common Stock", Y, "70.00", 0.40, 1.4),
    _stock("PLTR", "Palantir Technologies Inc. Class A Common Stock", N, "60.00", 0.65, 1.7),
    _stock("COIN", "Coinbase Global, Inc. Class A Common Stock", N, "280.00", 0.75, 2.0),
    _stock("F", "Ford Motor Company Common Stock", Y, "10.50", 0.35, 9.5),
    _stock("GME", "GameStop Corporation Common Stock", Y, "27.00", 0.90, 3.7, shortable=True, easy_to_borrow=False),
    _stock(
        "SIRI", "Sirius XM Holdings Inc. Common Stock", N, "25.00", 0.45, 4.0, shortable=False, easy_to_borrow=False
    ),
    _etf("SPY", "SPDR S&P 500 ETF Trust", "590.00", 0.15, 0.2),
    _etf("QQQ", "Invesco QQQ Trust, Series 1", "505.00", 0.20, 0.2),
    _etf("IWM", "iShares Russell 2000 ETF", "230.00", 0.22, 0.5),
    _etf("DIA", "SPDR Dow Jones Industrial Average ETF Trust", "440.00", 0.14, 0.5),
    _etf("VTI", "Vanguard Total Stock Market ETF", "290.00", 0.15, 0.4),
    _etf("VOO", "Vanguard S&P 500 ETF", "540.00", 0.15, 0.3),
    _etf("TLT", "iShares 20+ Year Treasury Bond ETF", "92.00", 0.16, 1.1),
    _etf("GLD", "SPDR Gold Shares", "245.00", 0.15, 0.5),
    _etf("XLF", "Financial Select Sector SPDR Fund", "48.00", 0.19, 2.1),
    _etf("XLE", "Energy Select Sector SPDR Fund", "92.00", 0.22, 1.1),
    _etf("ARKK", "ARK Innovation ETF", "55.00", 0.45, 1.8),
)

ASSETS_BY_SYMBOL: dict[str, AssetSpec] = {asset.symbol: asset for asset in UNIVERSE}
