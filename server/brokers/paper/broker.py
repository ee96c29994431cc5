"""PaperBroker: one paper-exchange account behind the Broker protocol.

The exchange runs in this process and every call is microseconds of work on the event
loop, so the methods call it directly (no threads, no timeouts to manage).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from server.brokers.base import NotFoundError, TradeUpdateListener
from server.brokers.domain import (
    Account,
    Order,
    OrderRequest,
    OrderSide,
    Position,
    ReplaceRequest,
    TradeUpdate,
)
from server.brokers.paper.exchange import PaperExchange
from server.brokers.paper.market_data import PaperMarket
from server.brokers.paper.streams import PaperStreams


class PaperBrokers:
    """The exchange's accounts as brokers, with one exchange listener routing trade updates
    to each account's own listeners (so an update costs the same with one user or many)."""

    def __init__(self, exchange: PaperExchange) -> None:
        self.exchange = exchange
        self.streams = PaperStreams(exchange)
        self._listeners: dict[str, list[TradeUpdateListener]] = {}
        exchange.add_listener(self._route)

    def broker(self, account_id: str) -> PaperBroker:
        return PaperBroker(self, account_id)

    def listen(self, account_id: str, listener: TradeUpdateListener) -> Callable[[], None]:
        listeners = self._listeners.setdefault(account_id, [])
        listeners.append(listener)

        def stop() -> None:
            listeners.remove(listener)
            if not listeners:
                self._listeners.pop(account_id, None)

        return stop

    def _route(self, account_id: str, update: TradeUpdate) -> None:
        for listener in list(self._listeners.get(account_id, ())):
            listener(update)


class PaperBroker(PaperMarket):
    def __init__(self, brokers: PaperBrokers, account_id: str) -> None:
        super().__init__(brokers.exchange)
        self._brokers = brokers
        self.account_id = self._exchange.open_account(account_id)

    async def get_account(self) -> Account:
        return self._exchange.account(self.account_id)

    async def list_positions(self) -> list[Position]:
        return self._exchange.positions(self.account_id)

    async def get_position(self, symbol: str) -> Position | None:
        try:
            return self._exchange.position(self.account_id, symbol)
        except NotFoundError:
            return None

    def restore_fill(self, symbol: str, side: OrderSide, qty: Decimal, price: Decimal) -> None:
        self._exchange.restore_fill(self.account_id, symbol, side, qty, price)

    async def submit_order(self, request: OrderRequest) -> Order:
        return self._exchange.submit(self.account_id, request)

    async def get_order(self, order_id: str) -> Order:
        return self._exchange.get_order(self.account_id, order_id)

    async def get_order_by_client_id(self, client_order_id: str) -> Order | None:
        try:
            return self._exchange.get_order_by_client_id(self.account_id, client_order_id)
        except NotFoundError:
            return None

    async def list_orders(self, *, open_only: bool) -> list[Order]:
        # Flat: exit legs are listed as orders of their own, open while their parent is done.
        orders = self._exchange.list_orders(self.account_id)
        return [order for order in orders if order.status.is_open] if open_only else orders

    async def cancel_order(self, order_id: str) -> Order:
        return self._exchange.cancel(self.account_id, order_id)

    async def replace_order(self, order_id: str, change: ReplaceRequest) -> Order:
        return self._exchange.replace(self.account_id, order_id, change)

    def on_trade_update(self, listener: TradeUpdateListener) -> Callable[[], None]:
        return self._brokers.listen(self.account_id, listener)
