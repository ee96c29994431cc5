"""Where the paper exchange keeps its orders, and the running totals its checks need.

Open orders are kept per account in arrival order (the order they are worked in). Two
totals are kept as orders arrive, fill and close, so that checking a new order costs the
same with ten open orders or ten thousand: the buying power each account's open orders
hold, and the quantity committed per account, symbol and side. A step of the market costs
the same way: open orders are indexed by the price that lets them trade (`resting`) and by
the moment they expire, so a step touches only the orders it can fill or expire.
"""

from __future__ import annotations

import heapq
import itertools
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal

from server.brokers.base import NotFoundError, OrderRejectedError
from server.brokers.domain import AssetClass, OrderSide
from server.brokers.paper.orders import PaperOrder
from server.brokers.paper.resting import RestingOrders, by_arrival

ZERO = Decimal(0)


class OrderBook:
    def __init__(self) -> None:
        self._orders: dict[str, dict[str, PaperOrder]] = defaultdict(dict)
        self._by_client_id: dict[str, dict[str, PaperOrder]] = defaultdict(dict)
        self._open: dict[str, PaperOrder] = {}
        self._open_by_account: dict[str, dict[str, PaperOrder]] = defaultdict(dict)
        self._committed: dict[tuple[str, str, OrderSide], Decimal] = defaultdict(Decimal)
        self._reserved: dict[str, Decimal] = defaultdict(Decimal)
        self._open_options: dict[str, PaperOrder] = {}
        self._expiries: list[tuple[datetime, int, PaperOrder]] = []
        self._arrivals = itertools.count()
        self.resting = RestingOrders()

    def check_client_order_id(self, account_id: str, client_order_id: str | None) -> None:
        if client_order_id and client_order_id in self._by_client_id[account_id]:
            raise OrderRejectedError("client_order_id must be unique", field="client_order_id")

    def add(self, order: PaperOrder) -> None:
        """Keep a new order and count what it commits; an open order is filed for the market
        steps with `file`, once its arrival has been worked (most market orders close there)."""
        order.seq = next(self._arrivals)
        self._orders[order.account_id][order.id] = order
        self._by_client_id[order.account_id][order.client_order_id] = order
        if order.is_open:
            self._open[order.id] = order
            self._open_by_account[order.account_id][order.id] = order
            if order.asset_class is AssetClass.US_OPTION:
                self._open_options[order.id] = order
            if _counts(order):
                self._committed[(order.account_id, order.symbol, order.side)] += order.remaining or ZERO
                self._reserved[order.account_id] += order.reserved

    def file(self, order: PaperOrder) -> None:
        """Index an open order for the market steps: by the price that lets it trade, and by its expiry."""
        if order.is_open and not order.indexed:
            self.resting.add(order)
            self.expires(order)

    def filled(self, order: PaperOrder, qty: Decimal, remaining_before: Decimal | None) -> None:
        """Book a fill against the running totals (call before the order's fields change)."""
        if not _counts(order):
            return
        if remaining_before:
            self._committed[(order.account_id, order.symbol, order.side)] -= qty
            released = order.reserved * qty / remaining_before
        else:
            released = order.reserved
        order.reserved -= released
        self._reserved[order.account_id] -= released

    def closed(self, order: PaperOrder) -> None:
        if self._open.pop(order.id, None) is None:
            return
        del self._open_by_account[order.account_id][order.id]
        self._open_options.pop(order.id, None)
        self.resting.closed(order)
        if _counts(order):
            self._committed[(order.account_id, order.symbol, order.side)] -= order.remaining or ZERO
            self._reserved[order.account_id] -= order.reserved
            order.reserved = ZERO

    def committed(self, account_id: str, symbol: str, side: OrderSide) -> Decimal:
        return self._committed.get((account_id, symbol, side), ZERO)

    def reserved(self, account_id: str) -> Decimal:
        return self._reserved.get(account_id, ZERO)

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

    def expires(self, order: PaperOrder) -> None:
        """Schedule the open order's expiry (call again whenever `expires_at` changes).

        Entries tie on (expires_at, seq) only when they are the same order's, so the heap
        never compares two orders."""
        if order.expires_at is not None:
            heapq.heappush(self._expiries, (order.expires_at, order.seq, order))

    def expiring(self, moment: datetime) -> list[PaperOrder]:
        """The open orders whose expiry has come by `moment`, in arrival order."""
        due: dict[int, PaperOrder] = {}  # an expiry moved away and back is scheduled twice
        expiries = self._expiries
        while expiries and expiries[0][0] <= moment:
            expires_at, seq, order = heapq.heappop(expiries)
            if order.is_open and order.expires_at == expires_at:
                due[seq] = order
        return sorted(due.values(), key=by_arrival)

    def open_options(self) -> list[PaperOrder]:
        return list(self._open_options.values())

    def open_orders(self, account_id: str | None = None) -> list[PaperOrder]:
        """Open orders in arrival order (the order they are worked in)."""
        source = self._open if account_id is None else self._open_by_account[account_id]
        return list(source.values())

    def __bool__(self) -> bool:
        return bool(self._open)


def _counts(order: PaperOrder) -> bool:
    """Exit legs add no exposure and commit nothing of their own (only exit legs are ever held)."""
    return order.parent_id is None
