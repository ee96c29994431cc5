"""A broker that does not answer in time: the order is kept in flight and reported as
BROKER_UNAVAILABLE, and a retry with the same clientOrderId never makes a second order."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from starlette.applications import Starlette

from server.app import create_app
from server.brokers.domain import Order, OrderRequest
from server.brokers.paper.broker import PaperBroker
from server.brokers.paper.clock import ManualClock
from tests.utils.accounts import as_user, register
from tests.utils.factories import make_settings
from tests.utils.trading import codes, in_process, orders_at_the_exchange, place

pytestmark = pytest.mark.anyio

TIMEOUT = 0.2
ORDER = {"symbol": "AAPL", "side": "BUY", "qty": "1", "clientOrderId": "slow-1"}
Submit = Callable[[PaperBroker, OrderRequest], Awaitable[Order]]


@pytest.fixture
def app(tmp_path: Path, clock: ManualClock) -> Starlette:
    return create_app(make_settings(tmp_path / "data", broker_timeout_seconds=TIMEOUT), clock=clock)


def _stall(monkeypatch: pytest.MonkeyPatch, *, after_reaching_the_exchange: bool) -> None:
    real: Submit = PaperBroker.submit_order

    async def slow(broker: PaperBroker, request: OrderRequest) -> Order:
        order = await real(broker, request) if after_reaching_the_exchange else None
        await asyncio.sleep(TIMEOUT * 5)
        assert order is not None
        return order

    monkeypatch.setattr(PaperBroker, "submit_order", slow)


@pytest.mark.parametrize("reached", [False, True], ids=["lost-on-the-way", "answer-lost"])
async def test_a_timed_out_order_is_retried_safely(
    app: Starlette, monkeypatch: pytest.MonkeyPatch, reached: bool
) -> None:
    async with in_process(app) as http:
        ada = await register(http, "ada")
        with monkeypatch.context() as patch:
            _stall(patch, after_reaching_the_exchange=reached)
            first = await place(http, ada.access_token, **ORDER)
        assert codes(first) == ["BROKER_UNAVAILABLE"]
        assert (first["order"]["status"], first["order"]["brokerOrderId"]) == ("PENDING_NEW", None)

        again = await place(http, ada.access_token, **ORDER)

        assert again["userErrors"] == []
        assert again["order"]["id"] == first["order"]["id"]
        assert again["order"]["status"] == "FILLED"
        assert len(orders_at_the_exchange(app.state.services)) == 1


async def test_a_sync_while_an_order_is_on_its_way_leaves_it_to_its_placing(
    app: Starlette, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ledger's resync (syncOrders, or a trade stream coming back) must not declare an
    order lost while the call placing it is still waiting for the broker."""
    sending, synced = asyncio.Event(), asyncio.Event()
    real: Submit = PaperBroker.submit_order

    async def after_the_sync(broker: PaperBroker, request: OrderRequest) -> Order:
        sending.set()
        async with asyncio.timeout(TIMEOUT):
            await synced.wait()
        return await real(broker, request)

    monkeypatch.setattr(PaperBroker, "submit_order", after_the_sync)
    async with in_process(app) as http:
        ada = await register(http, "ada")
        placing = asyncio.create_task(place(http, ada.access_token, **ORDER))
        async with asyncio.timeout(2):
            await sending.wait()
        sync = await as_user(http, ada.access_token, "mutation { syncOrders { checked updated } }")
        synced.set()
        placed = await placing

    assert sync["data"]["syncOrders"] == {"checked": 0, "updated": 0}
    assert placed["userErrors"] == []
    assert placed["order"]["status"] == "FILLED"
