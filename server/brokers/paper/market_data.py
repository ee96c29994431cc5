"""The paper exchange's market, without an account: quotes (stocks and listed option
contracts), the clock, the asset list and option chains. Public market data when the
server has no Alpaca keys, and the market half of every PaperBroker."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date

from server.brokers.domain import Asset, AssetClass, MarketClock, OptionContract, OptionType, Quote
from server.brokers.paper import options
from server.brokers.paper.exchange import PaperExchange
from server.brokers.paper.options import ContractSpec
from server.brokers.paper.universe import AssetSpec


def stock_asset(spec: AssetSpec) -> Asset:
    return Asset(
        symbol=spec.symbol,
        name=spec.name,
        exchange=spec.exchange.value,
        asset_class=AssetClass.US_EQUITY,
        tradable=True,
        shortable=spec.shortable,
        easy_to_borrow=spec.easy_to_borrow,
        fractionable=spec.fractionable,
    )


def option_asset(contract: ContractSpec) -> Asset:
    return Asset(
        symbol=contract.symbol,
        name=f"{contract.underlying} {contract.expiration:%b %d %Y} {contract.strike} {contract.type.value.title()}",
        exchange="OPRA",
        asset_class=AssetClass.US_OPTION,
        tradable=True,
        shortable=False,
        easy_to_borrow=False,
        fractionable=False,
    )


class PaperMarket:
    def __init__(self, exchange: PaperExchange) -> None:
        self._exchange = exchange

    async def get_quotes(self, symbols: Sequence[str]) -> Mapping[str, Quote]:
        return self._exchange.quotes(symbols)

    async def ping(self) -> None:
        self._exchange.now()

    async def clock(self) -> MarketClock:
        return self._exchange.clock()

    async def list_assets(self) -> list[Asset]:
        return [stock_asset(spec) for spec in self._exchange.market.assets.values()]

    async def get_asset(self, symbol: str) -> Asset | None:
        spec = self._exchange.market.assets.get(symbol)
        if spec is not None:
            return stock_asset(spec)
        contract = self._exchange.instruments.contract(symbol)
        return option_asset(contract) if contract is not None else None

    async def option_chain(
        self, underlying: str, *, expiration: date | None = None, option_type: OptionType | None = None
    ) -> list[OptionContract]:
        instruments = self._exchange.instruments
        if underlying not in self._exchange.market.assets:
            return []
        now = self._exchange.now()
        chain = []
        for contract in instruments.chain(underlying, expiration=expiration, option_type=option_type):
            volatility, greeks = instruments.greeks(contract, now)
            chain.append(
                OptionContract(
                    symbol=contract.symbol,
                    underlying=contract.underlying,
                    type=contract.type,
                    strike=contract.strike,
                    expiration=contract.expiration,
                    multiplier=options.MULTIPLIER,
                    implied_volatility=volatility,
                    greeks=greeks,
                )
            )
        return chain
