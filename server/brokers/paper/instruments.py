"""What can be traded on the paper exchange: the stock universe and its listed options."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from server.brokers.domain import AssetClass, OptionType, Quote
from server.brokers.domain import OptionGreeks as Greeks
from server.brokers.paper import options
from server.brokers.paper.calendar import NEW_YORK
from server.brokers.paper.market import MarketSimulator
from server.brokers.paper.options import ContractSpec


@dataclass(frozen=True, slots=True)
class Instrument:
    symbol: str
    asset_class: AssetClass
    multiplier: int
    fractionable: bool
    shortable: bool
    contract: ContractSpec | None = None


class Instruments:
    def __init__(self, market: MarketSimulator) -> None:
        self.market = market
        self._roots = {spec.symbol.replace(".", ""): spec.symbol for spec in market.assets.values()}
        # Bounded by the symbols that exist (the universe and its listed contracts): misses
        # are not kept, or any client could grow it with made-up symbols.
        self._resolved: dict[str, Instrument] = {}

    def today(self) -> date:
        return self.market.clock.now().astimezone(NEW_YORK).date()

    def contract(self, symbol: str) -> ContractSpec | None:
        parsed = options.parse_occ(symbol)
        if parsed is None:
            return None
        root, expiration, option_type, strike = parsed
        underlying = self._roots.get(root)
        if underlying is None or strike not in options.strikes(self.market.assets[underlying].price):
            return None
        if not options.is_expiration_day(expiration):
            return None
        return ContractSpec(symbol, underlying, option_type, strike, expiration)

    def resolve(self, symbol: str) -> Instrument | None:
        instrument = self._resolved.get(symbol)
        if instrument is None:
            instrument = self._resolve(symbol)
            if instrument is not None:
                self._resolved[symbol] = instrument
        return instrument

    def _resolve(self, symbol: str) -> Instrument | None:
        asset = self.market.assets.get(symbol)
        if asset is not None:
            shortable = asset.shortable and asset.easy_to_borrow
            return Instrument(symbol, AssetClass.US_EQUITY, 1, asset.fractionable, shortable)
        contract = self.contract(symbol)
        if contract is None:
            return None
        return Instrument(symbol, AssetClass.US_OPTION, options.MULTIPLIER, False, False, contract)

    def chain(
        self, underlying: str, *, expiration: date | None = None, option_type: OptionType | None = None
    ) -> list[ContractSpec]:
        asset = self.market.assets[underlying]
        return [
            contract
            for contract in options.chain(asset, self.today())
            if (expiration is None or contract.expiration == expiration)
            and (option_type is None or contract.type is option_type)
        ]

    def quote_at_step(self, symbol: str, step: int) -> Quote:
        contract = self.contract(symbol) if not self.market.has_symbol(symbol) else None
        if contract is None:
            return self.market.quote_at_step(symbol, step)
        underlying = self.market.quote_at_step(contract.underlying, step)
        volatility = self.market.assets[contract.underlying].volatility
        return options.option_quote(contract, underlying, volatility, underlying.timestamp)

    def greeks(self, contract: ContractSpec, now: datetime) -> tuple[float, Greeks]:
        """(implied volatility, greeks) of a contract at the underlying's current mid."""
        quote = self.market.quote(contract.underlying)
        spot = float((quote.bid_price + quote.ask_price) / 2)
        base = self.market.assets[contract.underlying].volatility
        vol = options.implied_volatility(base, spot, float(contract.strike))
        years = options.years_to_expiry(contract.expiration, now)
        _, greeks = options.black_scholes(contract.type, spot, float(contract.strike), years, vol)
        return vol, greeks

    def intrinsic_value(self, contract: ContractSpec) -> Decimal:
        quote = self.market.quote_at_step(contract.underlying, self.market.current_step())
        spot = (quote.bid_price + quote.ask_price) / 2
        value = spot - contract.strike if contract.type is OptionType.CALL else contract.strike - spot
        return max(Decimal(0), value).quantize(options.CENT)
