"""The broker seam: domain types and the protocols every broker adapter implements.

Money and quantities are Decimal; times are aware UTC. Nothing here knows about GraphQL,
the database or alpaca-py.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import date
from typing import Protocol

from server.brokers.domain import (
    Account,
    Asset,
    MarketClock,
    OptionContract,
    OptionType,
    Order,
    OrderRequest,
    Position,
    Quote,
    ReplaceRequest,
    TradeUpdate,
)

TradeUpdateListener = Callable[[TradeUpdate], None]


class BrokerError(Exception):
    """Base of the errors a broker adapter raises; the API layer maps them to codes."""


class UnknownSymbolError(BrokerError):
    def __init__(self, symbols: Sequence[str]) -> None:
        self.symbols = tuple(symbols)
        listed = ", ".join(self.symbols)
        super().__init__(f"Unknown symbol{'s' if len(self.symbols) > 1 else ''}: {listed}")


class BrokerUnavailableError(BrokerError):
    """The broker could not be reached or did not answer in time."""


class BrokerRateLimitedError(BrokerUnavailableError):
    """The broker refused for too many requests, longer than the call could wait."""

    def __init__(self, retry_after: float | None = None) -> None:
        super().__init__("the broker is rate limiting this account")
        self.retry_after = retry_after


class BrokerAuthError(BrokerError):
    """The broker refused the connection's keys (revoked, or never valid)."""


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


def outcome_of(error: BaseException | None) -> str:
    """How a broker call ended, as a short bounded word (for metrics)."""
    if error is None:
        return "ok"
    for kind, outcome in (
        (BrokerRateLimitedError, "rate_limited"),
        (BrokerUnavailableError, "unavailable"),
        (BrokerAuthError, "auth_failed"),
        (OrderRejectedError, "rejected"),
        (UnknownSymbolError, "unknown_symbol"),
        (NotFoundError, "not_found"),
    ):
        if isinstance(error, kind):
            return outcome
    return "error"


class Broker(QuoteSource, Protocol):
    """One broker account: what the trading service and the API need of any broker.

    Errors: NotFoundError for a missing order or position, OrderRejectedError (with the
    broker's reason) for a refused order or action, BrokerUnavailableError when the
    broker cannot be reached or does not answer in time.
    """

    async def get_account(self) -> Account: ...

    async def list_positions(self) -> list[Position]: ...

    async def get_position(self, symbol: str) -> Position | None: ...

    async def clock(self) -> MarketClock: ...

    async def list_assets(self) -> list[Asset]: ...

    async def get_asset(self, symbol: str) -> Asset | None:
        """A stock or an option contract; None when the broker does not list it."""
        ...

    async def option_chain(
        self, underlying: str, *, expiration: date | None = None, option_type: OptionType | None = None
    ) -> list[OptionContract]: ...

    async def submit_order(self, request: OrderRequest) -> Order: ...

    async def get_order(self, order_id: str) -> Order: ...

    async def get_order_by_client_id(self, client_order_id: str) -> Order | None: ...

    async def list_orders(self, *, open_only: bool) -> list[Order]: ...

    async def cancel_order(self, order_id: str) -> Order: ...

    async def replace_order(self, order_id: str, change: ReplaceRequest) -> Order: ...

    def on_trade_update(self, listener: TradeUpdateListener) -> Callable[[], None]:
        """Call `listener` with every trade update of this account; returns the way to stop."""
        ...
