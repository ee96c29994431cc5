"""Which open orders can trade at a step, found without looking at the others.

Working every open order at every step costs the same whether one order can trade or
none; with thousands of resting limits that is most of the exchange's time. Here each
symbol keeps its waiting orders in price-ordered heaps, so a step touches only the orders
its quote can reach:

- a buy limit can trade once the ask is at or below its limit, a sell limit once the bid
  is at or above it (the heap's top is the most generous limit);
- a buy stop triggers once the ask is at or above its stop, a sell stop once the bid is at
  or below it (the top is the nearest stop);
- market orders still resting (larger than the displayed size, or placed while the market
  was closed), triggered stops and trailing stops (whose water mark moves with every
  quote) are worked at every step.

An order enters the index once its arrival has been worked (an order that trades in full
or is canceled on arrival never does), under what it is then. Entries are taken out when
their order comes up and put back, reclassified, while it is still open. An order whose
class changes outside of that (a stop triggered while worked) is filed again under its new
class at once: each filing bumps the order's
`filed` number, an entry whose number is no longer the order's is skipped, and an order
refiled while it was taken out is not put back. Held exit legs cannot trade: they are
counted as open but filed only once released. Until then a step takes them with their
entry, whose fill can release them, so that a leg released in a step still has its turn
in it, as every open order has. An order closed while waiting stays in its
heap until it comes up or the symbol's heaps are compacted, so closing costs nothing here;
a symbol leaves the index with its last open order.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from decimal import Decimal
from operator import attrgetter

from server.brokers.domain import OrderSide, OrderStatus, OrderType, Quote
from server.brokers.paper.orders import PaperOrder

QuoteOf = Callable[[str], Quote]
# Heap entries: (key, arrival sequence, filing number, order); the sequence breaks ties
# before the order is ever compared.
Entry = tuple[Decimal, int, int, PaperOrder]
# Compact a symbol's heaps once they hold this many entries more than twice its open orders.
COMPACT_SLACK = 64
by_arrival = attrgetter("seq")


class _SymbolOrders:
    __slots__ = ("buy_limits", "buy_stops", "entries", "every_step", "open_count", "sell_limits", "sell_stops")

    def __init__(self) -> None:
        self.buy_limits: list[Entry] = []  # key: -limit
        self.sell_limits: list[Entry] = []  # key: limit
        self.buy_stops: list[Entry] = []  # key: stop
        self.sell_stops: list[Entry] = []  # key: -stop
        self.every_step: dict[int, PaperOrder] = {}
        self.open_count = 0
        self.entries = 0

    def add(self, order: PaperOrder) -> None:
        self.entries += 1
        order.filed += 1
        filed = order.filed
        if order.type is OrderType.MARKET or order.type is OrderType.TRAILING_STOP:
            self._every_step(order)
        elif order.type is OrderType.LIMIT or (order.triggered and order.type is OrderType.STOP_LIMIT):
            limit = order.limit_price
            assert limit is not None
            if order.side is OrderSide.BUY:
                heapq.heappush(self.buy_limits, (-limit, order.seq, filed, order))
            else:
                heapq.heappush(self.sell_limits, (limit, order.seq, filed, order))
        elif order.triggered:  # a stop that has triggered is a market order now
            self._every_step(order)
        else:
            stop = order.stop_price
            assert stop is not None
            if order.side is OrderSide.BUY:
                heapq.heappush(self.buy_stops, (stop, order.seq, filed, order))
            else:
                heapq.heappush(self.sell_stops, (-stop, order.seq, filed, order))

    def _every_step(self, order: PaperOrder) -> None:
        if order.seq in self.every_step:  # filed there again while still there: one entry
            self.entries -= 1
        self.every_step[order.seq] = order

    def take(self, quote: Quote, taken: list[PaperOrder]) -> None:
        """Move every order this quote can reach into `taken`."""
        self.entries -= len(self.every_step)
        taken.extend(self.every_step.values())
        self.every_step.clear()
        ask, bid = quote.ask_price, quote.bid_price
        self._pop_while(self.buy_limits, lambda key: -key >= ask, taken)
        self._pop_while(self.sell_limits, lambda key: key <= bid, taken)
        self._pop_while(self.buy_stops, lambda key: key <= ask, taken)
        self._pop_while(self.sell_stops, lambda key: -key >= bid, taken)

    def _pop_while(self, heap: list[Entry], reached: Callable[[Decimal], bool], taken: list[PaperOrder]) -> None:
        while heap and reached(heap[0][0]):
            _, _, filed, order = heapq.heappop(heap)
            self.entries -= 1
            if filed == order.filed:  # else it was filed again elsewhere since
                taken.append(order)

    def compact_if_sparse(self) -> None:
        if self.entries <= 2 * self.open_count + COMPACT_SLACK:
            return
        for heap in (self.buy_limits, self.sell_limits, self.buy_stops, self.sell_stops):
            heap[:] = [entry for entry in heap if entry[3].is_open and entry[2] == entry[3].filed]
            heapq.heapify(heap)
        for seq, order in list(self.every_step.items()):
            if not order.is_open:
                del self.every_step[seq]
        self.entries = sum(map(len, (self.buy_limits, self.sell_limits, self.buy_stops, self.sell_stops)))
        self.entries += len(self.every_step)


class RestingOrders:
    """Open orders waiting for the market, indexed by the price that lets them trade."""

    def __init__(self) -> None:
        self._symbols: dict[str, _SymbolOrders] = {}
        self._taken: dict[int, int] = {}  # seq -> `filed` number of each order `take` handed out

    def add(self, order: PaperOrder) -> None:
        """Index an open order (it stays counted until `closed`); a held exit leg is
        filed once released, with `refile`."""
        order.indexed = True
        orders = self._of(order.symbol)
        orders.open_count += 1
        if order.status is not OrderStatus.HELD:
            orders.add(order)

    def _of(self, symbol: str) -> _SymbolOrders:
        orders = self._symbols.get(symbol)
        if orders is None:
            orders = self._symbols[symbol] = _SymbolOrders()
        return orders

    def closed(self, order: PaperOrder) -> None:
        if not order.indexed:  # closed as it arrived: never counted here
            return
        order.indexed = False
        orders = self._symbols.get(order.symbol)
        if orders is not None:
            orders.open_count -= 1
            if orders.open_count <= 0:
                del self._symbols[order.symbol]
            else:
                orders.compact_if_sparse()

    def take(self, quote_of: QuoteOf) -> list[PaperOrder]:
        """The open orders the current quotes can reach, in arrival order, out of the
        index: give them back with `put_back` once they have been worked."""
        quotes = [(orders, quote_of(symbol)) for symbol, orders in self._symbols.items()]  # before any is taken
        taken: list[PaperOrder] = []
        for orders, quote in quotes:
            orders.take(quote, taken)
        taken = [order for order in taken if order.is_open]
        self._taken = {order.seq: order.filed for order in taken}
        taken += [leg for order in taken if order.legs for leg in order.legs if leg.status is OrderStatus.HELD]
        taken.sort(key=by_arrival)
        return taken

    def refile(self, order: PaperOrder) -> None:
        """File an open order again under what it is now: a stop once triggered (a market or
        limit order), an exit leg once released. An order not indexed yet is filed as it is
        when it enters."""
        if order.indexed:
            self._of(order.symbol).add(order)

    def put_back(self, orders: list[PaperOrder]) -> None:
        """Give back what `take` handed out, but for orders closed or refiled meanwhile (held
        legs, which were not filed, stay out)."""
        taken, self._taken = self._taken, {}
        for order in orders:
            if order.is_open and taken.get(order.seq) == order.filed:
                self._of(order.symbol).add(order)
