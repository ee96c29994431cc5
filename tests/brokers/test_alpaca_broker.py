"""AlpacaBroker behaviour beyond the shared contract: how it pages Alpaca's order lists."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

import server.brokers.alpaca.broker as alpaca_broker_module
from server.brokers.domain import OrderRequest, OrderSide, OrderType, TimeInForce
from tests.utils.alpaca import alpaca_broker
from tests.utils.facade import serve_facade
from tests.utils.paper import PaperWorld, paper_world

pytestmark = pytest.mark.anyio

PAGE = 5


def rest_orders(world: PaperWorld, count: int) -> None:
    """`count` resting buys submitted in the same instant of the manual clock."""
    low = (world.exchange.quote("SPY").bid_price / 2).quantize(Decimal("0.01"))
    for _ in range(count):
        request = OrderRequest("SPY", OrderSide.BUY, OrderType.LIMIT, TimeInForce.GTC, qty=Decimal(1), limit_price=low)
        world.exchange.submit(world.account_id, request)


@pytest.mark.parametrize(
    "instants",
    [[3, 4], [2, 5], [5, 3], [1, 4, 4, 2]],
    ids=["group across the page edge", "a full page", "older group after a full page", "several pages"],
)
async def test_every_order_is_listed_whatever_the_page_edges(
    monkeypatch: pytest.MonkeyPatch, instants: list[int]
) -> None:
    monkeypatch.setattr(alpaca_broker_module, "ORDERS_PAGE", PAGE)
    world = paper_world()
    for count in instants:  # each group shares one submission time; groups a second apart
        rest_orders(world, count)
        world.clock.advance(timedelta(seconds=1))

    async with serve_facade(world) as facade, alpaca_broker(facade) as broker:
        listed = await broker.list_orders(open_only=True)

    assert len({order.id for order in listed}) == sum(instants)
    assert [o.created_at for o in listed] == sorted((o.created_at for o in listed), reverse=True)
