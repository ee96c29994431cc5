"""Where the paper exchange keeps its orders: by account, by client order id, and the open ones."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from server.brokers.base import NotFoundError, OrderRejectedError
from server.brokers.paper.orders import PaperOrder


class OrderBook:
    def __init__(self) -> None:
        self._orders: dict[str, dict[str, PaperOrder]] = defaultdict(dict)
        self._by_client_id: dict[str, dict[str, PaperOrder]] = defaultdict(dict)
        self._open: dict[str, PaperOrder] = {}

    def check_client_order_id(self, account_id: str, client_order_id: str | None) -> None:
        if client_order_id and client_order_id in self._by_client_id[account_id]:
            raise OrderRejectedError("client_order_id must be unique", field="client_order_id")

    def add(self, order: PaperOrder) -> None:
        self._orders[order.account_id][order.id] = order
        self._by_client_id[order.account_id][order.client_order_id] = order
        if order.is_open:
            self._open[order.id] = order

    def closed(self, order: PaperOrder) -> None:
        self._open.pop(order.id, None)

    def get(self, account_id: str, order_id: str) -> PaperOrder:
        order = self._orders[account_id].get(order_id)
        if order is None:
            raise NotFoundError("order")
        return order

    def by_client_id(self, account_id: str, client_order_id: str) -> PaperOrder:
        order = self._by_client_id[account_id].get(client_order_id)
        if order is None:
            raise NotFoundError("order")
        return order

    def all(self, account_id: str) -> Iterable[PaperOrder]:
        return self._orders[account_id].values()

    def open_orders(self, account_id: str | None = None) -> list[PaperOrder]:
        """Open orders, oldest first (the order they are worked in)."""
        chosen = [o for o in self._open.values() if account_id is None or o.account_id == account_id]
        return sorted(chosen, key=lambda o: (o.created_at, o.id))

    def __bool__(self) -> bool:
        return bool(self._open)
