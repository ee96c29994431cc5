"""The broker seam: domain types and the protocols every broker adapter implements.

Money and quantities are Decimal; times are aware UTC. Nothing here knows about GraphQL,
the database or alpaca-py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Quote:
    symbol: str
    bid_price: Decimal
    bid_size: Decimal
    ask_price: Decimal
    ask_size: Decimal
    timestamp: datetime


class BrokerError(Exception):
    """Base of the errors a broker adapter raises; the API layer maps them to codes."""


class UnknownSymbolError(BrokerError):
    def __init__(self, symbols: Sequence[str]) -> None:
        self.symbols = tuple(symbols)
        listed = ", ".join(self.symbols)
        super().__init__(f"Unknown symbol{'s' if len(self.symbols) > 1 else ''}: {listed}")


class BrokerUnavailableError(BrokerError):
    """The broker could not be reached or did not answer in time."""


class QuoteSource(Protocol):
    async def get_quotes(self, symbols: Sequence[str]) -> Mapping[str, Quote]:
        """Latest quotes for many symbols in one call; raises UnknownSymbolError naming every unknown one."""
        ...

    async def ping(self) -> None:
        """Raise BrokerUnavailableError when the source cannot answer."""
        ...
