"""Per-operation loaders of an order's legs and events: one query for every order of a page."""

from __future__ import annotations

from collections.abc import Sequence

from strawberry.dataloader import DataLoader

from server.models import Order as OrderRow
from server.models import OrderEvent
from server.trading.history import OrderHistory

LegsLoader = DataLoader[str, list[OrderRow]]
EventsLoader = DataLoader[str, list[OrderEvent]]


def legs_loader(history: OrderHistory) -> LegsLoader:
    async def load(parent_ids: list[str]) -> Sequence[list[OrderRow]]:
        found = await history.legs(parent_ids)
        return [found[parent] for parent in parent_ids]

    return DataLoader(load_fn=load)


def events_loader(history: OrderHistory) -> EventsLoader:
    async def load(order_ids: list[str]) -> Sequence[list[OrderEvent]]:
        found = await history.events(order_ids)
        return [found[order_id] for order_id in order_ids]

    return DataLoader(load_fn=load)
