"""The broker seam: domain types and the protocols every broker adapter implements.

Money and quantities are Decimal; times are aware UTC. Nothing here knows about GraphQL,
the database or alpaca-py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from server.brokers.domain import Quote


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


class NotFoundError(BrokerError):
    def __init__(self, what: str) -> None:
        super().__init__(f"{what} not found")
        self.what = what


class OrderRejectedError(BrokerError):
    """The broker refused an order or an order action, with its reason.

    `code` and `status` are Alpaca's (e.g. 40310000/403 for buying power, 42210000/422
    for an invalid order), so the facade can answer exactly as Alpaca does.
    """

    def __init__(self, message: str, *, code: int = 42210000, status: int = 422, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.field = field


class InsufficientBuyingPowerError(OrderRejectedError):
    def __init__(self, message: str = "insufficient buying power") -> None:
        super().__init__(message, code=40310000, status=403)


class InsufficientQtyError(OrderRejectedError):
    def __init__(self, requested: object, available: object) -> None:
        super().__init__(
            f"insufficient qty available for order (requested: {requested}, available: {available})",
            code=40310000,
            status=403,
        )
