from __future__ import annotations

import asyncio
import contextlib
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from server import services
from server.brokers.domain import OrderRequest, OrderSide, OrderStatus, OrderType, TimeInForce
from server.quick_reads import QuickReads, SQLiteQuickReads, open_quick_reads
from server.services import run_ticker
from tests.utils.factories import make_settings
from tests.utils.paper import lowest_bid_ahead, paper_world

pytestmark = pytest.mark.anyio
WAIT_SECONDS = 5.0


async def test_the_ticker_works_open_orders_without_being_asked() -> None:
    world = paper_world()
    exchange = world.exchange
    target = lowest_bid_ahead(world, "AAPL", 600)
    bid = exchange.quote("AAPL").bid_price
    buy = exchange.submit(
        world.account_id,
        OrderRequest(
            "AAPL", OrderSide.BUY, OrderType.LIMIT, TimeInForce.GTC, qty=Decimal(1), limit_price=(bid + target) / 2
        ),
    )
    assert buy.status is OrderStatus.NEW
    filled = asyncio.Event()
    exchange.add_listener(lambda _a, u: filled.set() if u.order.id == buy.id and u.event.value == "fill" else None)

    ticker = asyncio.create_task(run_ticker(exchange, 0.001))
    try:
        for _ in range(600):
            world.clock.advance(1)
            await asyncio.sleep(0.002)
            if filled.is_set():
                break
        await asyncio.wait_for(filled.wait(), WAIT_SECONDS)
    finally:
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
    assert exchange.get_order(world.account_id, buy.id).status is OrderStatus.FILLED


async def test_a_start_up_that_fails_part_way_leaves_no_connection_or_task_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[QuickReads] = []

    async def recording(engine: AsyncEngine) -> QuickReads:
        opened.append(await open_quick_reads(engine))
        return opened[-1]

    def refusing(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("the broker registry could not be built")

    monkeypatch.setattr(services, "open_quick_reads", recording)
    monkeypatch.setattr(services, "BrokerRegistry", refusing)
    with pytest.raises(RuntimeError, match="broker registry"):
        async with services.run_services(make_settings(tmp_path / "data")):  # the wall clock: a ticker
            pass

    [quick] = opened
    assert isinstance(quick, SQLiteQuickReads)
    assert all(connection._connection is None for connection in quick._connections)  # closed
    assert [task for task in asyncio.all_tasks() if getattr(task.get_coro(), "__name__", "") == "run_ticker"] == []
