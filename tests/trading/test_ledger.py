"""The ledger only moves forward, records each fill once, and adopts orders it has not seen."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy.exc import IntegrityError
from sqlmodel import select
from starlette.applications import Starlette

from server.brokers.domain import (
    AssetClass,
    Order,
    OrderClass,
    OrderRequest,
    OrderSide,
    OrderStatus,
    OrderType,
    TimeInForce,
    TradeEvent,
    TradeUpdate,
)
from server.brokers.registry import ConnectionRef
from server.models import BrokerConnection, OrderEvent, User
from server.models import Order as OrderRow
from server.settings import Settings
from server.trading.ledger import (
    IN_FLIGHT,
    LedgerClosedError,
    LedgerWriter,
    OrderChange,
    _Batch,
    _Draft,
    local_event,
    merge,
    placed_row,
)
from server.trading.service import refusal_fields
from server.users.problems import UserProblem
from tests.utils.databases import DATABASE_KINDS, throwaway_database
from tests.utils.factories import make_order_row, make_settings

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 11, 23, 15, tzinfo=UTC)


@pytest.fixture(params=DATABASE_KINDS)
async def settings(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Settings]:
    """The ledger writes with Core statements of its own: every test here runs on every database."""
    async with throwaway_database(request.param, tmp_path) as url:
        yield make_settings(tmp_path / "data", database_url=url)


def _order(status: OrderStatus, filled: str = "0", **changes: object) -> Order:
    order = Order(
        id="broker-1",
        client_order_id="cid-1",
        symbol="AAPL",
        asset_class=AssetClass.US_EQUITY,
        side=OrderSide.BUY,
        type=OrderType.LIMIT,
        time_in_force=TimeInForce.DAY,
        order_class=OrderClass.SIMPLE,
        status=status,
        qty=Decimal(10),
        notional=None,
        filled_qty=Decimal(filled),
        filled_avg_price=Decimal("230.00") if filled != "0" else None,
        limit_price=Decimal("230.00"),
        stop_price=None,
        trail_price=None,
        trail_percent=None,
        hwm=None,
        extended_hours=False,
        created_at=NOW,
        updated_at=NOW,
        submitted_at=NOW,
    )
    return order._replace(**changes)


def _row() -> OrderRow:
    return make_order_row(status=IN_FLIGHT)


def test_an_answer_brings_an_in_flight_row_up_to_date() -> None:
    row = _row()
    assert merge(row, _order(OrderStatus.NEW), NOW) is True
    assert (row.status, row.broker_order_id) == ("new", "broker-1")


@pytest.mark.parametrize(
    ("current", "stale"),
    [
        (_order(OrderStatus.FILLED, "10"), _order(OrderStatus.NEW)),
        (_order(OrderStatus.PARTIALLY_FILLED, "4"), _order(OrderStatus.NEW)),
        (_order(OrderStatus.CANCELED, "4"), _order(OrderStatus.PARTIALLY_FILLED, "4")),
        (_order(OrderStatus.PARTIALLY_FILLED, "6"), _order(OrderStatus.PARTIALLY_FILLED, "4")),
    ],
)
def test_a_late_report_never_moves_a_row_back(current: Order, stale: Order) -> None:
    row = _row()
    merge(row, current, NOW)
    assert merge(row, stale, NOW) is False
    assert (row.status, row.filled_qty) == (current.status.value, current.filled_qty)


def test_a_terminal_row_keeps_its_ending() -> None:
    row = _row()
    merge(row, _order(OrderStatus.CANCELED), NOW)
    assert merge(row, _order(OrderStatus.FILLED, "10"), NOW) is False
    assert row.status == "canceled"


async def _user_and_connection(app: Starlette) -> ConnectionRef:
    async with app.state.services.sessions() as session:
        user = User(username="ada", email="ada@example.com", password_hash="x")
        session.add(user)
        await session.flush()
        connection = BrokerConnection(user_id=user.id, kind="PAPER", label="paper", is_default=True)
        session.add(connection)
        await session.commit()
    return ConnectionRef(user.id, connection.id)


async def test_a_fill_reported_twice_is_recorded_once_and_an_unknown_order_is_adopted(app: Starlette) -> None:
    writer = app.state.services.trading._ledger
    ref = await _user_and_connection(app)
    fill = TradeUpdate(
        event=TradeEvent.FILL,
        order=_order(OrderStatus.FILLED, "10"),
        timestamp=NOW,
        execution_id="exec-1",
        price=Decimal("230.00"),
        qty=Decimal(10),
    )
    writer.push(ref, fill)
    writer.push(ref, fill)
    writer.push(ref, fill._replace(event=TradeEvent.NEW, order=_order(OrderStatus.NEW), execution_id=None))  # late
    await writer.flush()

    async with app.state.services.sessions() as session:
        [row] = (await session.exec(select(OrderRow))).all()
        events = (await session.exec(select(OrderEvent).where(OrderEvent.order_id == row.id))).all()
    assert (row.client_order_id, row.broker_order_id, row.status, row.filled_qty) == ("cid-1", "broker-1", "filled", 10)
    assert [(e.event, e.execution_id, e.status) for e in events] == [("fill", "exec-1", "filled"), ("new", None, "new")]


async def test_a_rejection_the_broker_reports_is_counted_as_a_rejected_order(app: Starlette) -> None:
    writer = app.state.services.trading._ledger
    ref = await _user_and_connection(app)
    writer.push(ref, TradeUpdate(event=TradeEvent.REJECTED, order=_order(OrderStatus.REJECTED), timestamp=NOW))
    await writer.flush()

    registry = app.state.services.metrics.registry
    assert registry.get_sample_value("orders_status_changes_total", {"status": "rejected"}) == 1
    assert registry.get_sample_value("orders_rejected_total", {"code": "BROKER_REJECTED"}) == 1


@pytest.mark.parametrize("execution_id", ["exec-1", ""])
async def test_a_fill_resent_in_a_later_batch_is_recorded_once(app: Starlette, execution_id: str) -> None:
    writer = app.state.services.trading._ledger
    ref = await _user_and_connection(app)
    fill = TradeUpdate(
        event=TradeEvent.FILL, order=_order(OrderStatus.FILLED, "10"), timestamp=NOW, execution_id=execution_id
    )
    writer.push(ref, fill)
    await writer.flush()
    writer.push(ref, fill)
    await writer.flush()

    async with app.state.services.sessions() as session:
        events = (await session.exec(select(OrderEvent))).all()
    assert [(e.event, e.execution_id) for e in events] == [("fill", execution_id)]


async def test_each_change_of_a_batch_carries_the_order_as_its_own_update_left_it(app: Starlette) -> None:
    changes: list[OrderChange] = []
    writer = LedgerWriter(app.state.services.engine, lambda: NOW, on_change=changes.append)
    writer.start()
    ref = await _user_and_connection(app)
    new = TradeUpdate(event=TradeEvent.NEW, order=_order(OrderStatus.NEW), timestamp=NOW)
    partial = TradeUpdate(
        event=TradeEvent.PARTIAL_FILL,
        order=_order(OrderStatus.PARTIALLY_FILLED, "4"),
        timestamp=NOW,
        execution_id="exec-1",
    )
    fill = TradeUpdate(event=TradeEvent.FILL, order=_order(OrderStatus.FILLED, "10"), timestamp=NOW, execution_id="e2")
    for update in (new, partial, fill):  # queued together: one batch
        writer.push(ref, update)
    try:
        await writer.flush()
    finally:
        await writer.stop()

    assert [(c.event, c.order.status, c.order.filled_qty) for c in changes] == [
        ("new", "new", 0),
        ("partial_fill", "partially_filled", 4),
        ("fill", "filled", 10),
    ]
    assert len({c.order.id for c in changes}) == 1


async def test_a_placed_row_holds_the_values_the_database_gives_back_and_cannot_be_changed(app: Starlette) -> None:
    """Placing builds its rows without the ORM: the same values as the row read back."""
    ref = await _user_and_connection(app)
    request = OrderRequest(
        symbol="AAPL",
        side=OrderSide.SELL,
        type=OrderType.LIMIT,
        time_in_force=TimeInForce.GTC,
        qty=Decimal("2.50"),
        limit_price=Decimal("230.0400"),
        extended_hours=True,
    )
    placed = placed_row(ref, request, "cid-1", "us_equity", NOW, replaces_order_id="order-0")
    await app.state.services.trading._ledger.insert(placed, local_event(placed, NOW))
    async with app.state.services.sessions() as session:
        stored = (await session.exec(select(OrderRow))).one()

    assert placed.model_dump() == stored.model_dump()
    assert (placed.limit_price, placed.filled_qty, placed.status) == (Decimal("230.04"), 0, IN_FLIGHT)
    with pytest.raises(AttributeError):
        placed.status = "filled"


async def test_an_order_refused_here_is_recorded_with_its_code_and_an_accepted_one_without(app: Starlette) -> None:
    trading = app.state.services.trading
    ref = await _user_and_connection(app)
    request = OrderRequest(symbol="AAPL", side=OrderSide.BUY, qty=Decimal(1))
    kill_switch = refusal_fields(UserProblem("KILL_SWITCH", "Trading is halted."))
    refused = await trading._insert_rejected(placed_row(ref, request, "cid-refused", "us_equity", NOW, **kill_switch))
    accepted = await trading._insert(placed_row(ref, request, "cid-accepted", "us_equity", NOW))

    async with app.state.services.sessions() as session:
        events = {e.order_id: e for e in (await session.exec(select(OrderEvent))).all()}
        rows = {r.client_order_id: r for r in (await session.exec(select(OrderRow))).all()}
    assert (rows["cid-refused"].status, rows["cid-refused"].reject_code) == ("rejected", "KILL_SWITCH")
    assert (events[refused.id].event, events[refused.id].status) == ("created", "rejected")
    assert events[refused.id].detail == {"code": "KILL_SWITCH"}
    assert (events[accepted.id].event, events[accepted.id].status, events[accepted.id].detail) == (
        "created",
        IN_FLIGHT,
        None,
    )


@pytest.mark.parametrize("same_batch", [True, False], ids=["same batch", "earlier batch"])
async def test_a_leg_reported_before_its_parent_is_linked_to_the_parent_once_it_comes(
    app: Starlette, same_batch: bool
) -> None:
    """Orders placed elsewhere are adopted as they are reported, legs possibly first."""
    writer = app.state.services.trading._ledger
    ref = await _user_and_connection(app)
    leg = _order(OrderStatus.HELD, id="broker-leg", client_order_id="cid-leg", side=OrderSide.SELL)
    parent = _order(OrderStatus.NEW, order_class=OrderClass.BRACKET, legs=(leg,))
    writer.push(ref, TradeUpdate(event=TradeEvent.NEW, order=leg, timestamp=NOW))
    if not same_batch:
        await writer.flush()
    writer.push(ref, TradeUpdate(event=TradeEvent.NEW, order=parent, timestamp=NOW))
    await writer.flush()

    async with app.state.services.sessions() as session:
        rows = {r.client_order_id: r for r in (await session.exec(select(OrderRow))).all()}
    assert set(rows) == {"cid-1", "cid-leg"}
    assert rows["cid-leg"].parent_order_id == rows["cid-1"].id
    assert rows["cid-1"].parent_order_id is None


async def test_new_rows_share_a_batch_and_a_taken_client_order_id_fails_only_its_own(app: Starlette) -> None:
    """New order rows are written with the reports queued beside them, in one transaction; a
    row whose clientOrderId is taken (by another server process) is refused alone."""
    writer = app.state.services.trading._ledger
    ref = await _user_and_connection(app)
    request = OrderRequest(symbol="AAPL", side=OrderSide.BUY, qty=Decimal(1))

    def insert(cid: str) -> tuple[OrderRow, asyncio.Task[None]]:
        row = placed_row(ref, request, cid, "us_equity", NOW)
        return row, asyncio.create_task(writer.insert(row, local_event(row, NOW)))

    taken, first = insert("cid-taken")
    await first
    writer.push(ref, TradeUpdate(event=TradeEvent.NEW, order=_order(OrderStatus.NEW), timestamp=NOW))
    await asyncio.sleep(0)  # the writer takes that report and starts its batch
    fill = TradeUpdate(event=TradeEvent.FILL, order=_order(OrderStatus.FILLED, "10"), timestamp=NOW, execution_id="e")
    writer.push(ref, fill)
    (fresh, fresh_written), (_, again_written) = insert("cid-fresh"), insert("cid-taken")  # queued with the fill
    outcomes = await asyncio.gather(fresh_written, again_written, return_exceptions=True)
    await writer.flush()

    assert outcomes[0] is None
    assert isinstance(outcomes[1], IntegrityError)
    async with app.state.services.sessions() as session:
        rows = {r.client_order_id: r for r in (await session.exec(select(OrderRow))).all()}
        created = (await session.exec(select(OrderEvent).where(OrderEvent.event == "created"))).all()
    assert set(rows) == {"cid-taken", "cid-fresh", "cid-1"}
    assert rows["cid-taken"].id == taken.id
    assert (rows["cid-1"].status, rows["cid-1"].filled_qty) == ("filled", 10)
    assert sorted(event.order_id for event in created) == sorted([taken.id, fresh.id])


async def test_a_batch_failing_for_another_reason_fails_whole_without_retrying_each_item(
    app: Starlette, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only a refused row is worth writing the rest again without it; a database that is down
    fails the batch at once instead of once an item."""
    writer = app.state.services.trading._ledger
    ref = await _user_and_connection(app)
    attempts: list[int] = []

    async def down(items: list[object]) -> None:
        attempts.append(len(items))
        raise ConnectionError("database unreachable")

    monkeypatch.setattr(writer, "_write", down)
    row = placed_row(ref, OrderRequest(symbol="AAPL", side=OrderSide.BUY, qty=Decimal(1)), "cid-down", "us_equity", NOW)
    recorded = asyncio.create_task(writer.record(ref, _order(OrderStatus.NEW), "submitted"))
    inserted = asyncio.create_task(writer.insert(row, local_event(row, NOW)))
    outcomes = await asyncio.gather(recorded, inserted, return_exceptions=True)

    assert attempts == [2]
    assert all(isinstance(outcome, ConnectionError) for outcome in outcomes)


async def test_a_stopped_ledger_refuses_at_once_instead_of_leaving_its_caller_waiting(app: Starlette) -> None:
    writer = LedgerWriter(app.state.services.engine, lambda: NOW)
    writer.start()
    ref = await _user_and_connection(app)
    await writer.stop()
    row = placed_row(ref, OrderRequest(symbol="AAPL", side=OrderSide.BUY, qty=Decimal(1)), "cid-late", "us_equity", NOW)

    async with asyncio.timeout(5):
        with pytest.raises(LedgerClosedError):
            await writer.insert(row, local_event(row, NOW))
        with pytest.raises(LedgerClosedError):
            await writer.record(ref, _order(OrderStatus.NEW), "submitted")
    writer.push(ref, TradeUpdate(event=TradeEvent.NEW, order=_order(OrderStatus.NEW), timestamp=NOW))
    await writer.flush()  # nothing was queued, so nothing waits for a writer that is gone

    writer.start()
    try:
        await writer.insert(row, local_event(row, NOW))
    finally:
        await writer.stop()
    async with app.state.services.sessions() as session:
        assert [r.client_order_id for r in (await session.exec(select(OrderRow))).all()] == ["cid-late"]


@pytest.mark.parametrize("replacement_first", [False, True], ids=["original-first", "replacement-first"])
async def test_a_replacement_first_seen_links_to_an_order_that_got_its_broker_id_in_the_same_batch(
    app: Starlette, replacement_first: bool
) -> None:
    writer = app.state.services.trading._ledger
    ref = await _user_and_connection(app)
    request = OrderRequest(symbol="AAPL", side=OrderSide.BUY, qty=Decimal(10))
    placed = placed_row(ref, request, "cid-1", "us_equity", NOW)
    await writer.insert(placed, local_event(placed, NOW))
    reports = [
        _order(OrderStatus.NEW),
        _order(OrderStatus.NEW, id="broker-2", client_order_id="cid-2", replaces="broker-1"),
    ]
    for order in reversed(reports) if replacement_first else reports:  # queued together: one batch
        writer.push(ref, TradeUpdate(event=TradeEvent.NEW, order=order, timestamp=NOW))
    await writer.flush()

    async with app.state.services.sessions() as session:
        rows = {r.client_order_id: r for r in (await session.exec(select(OrderRow))).all()}
    assert rows["cid-1"].broker_order_id == "broker-1"
    assert rows["cid-2"].replaces_order_id == placed.id


async def test_a_batch_writes_back_only_the_columns_its_reports_moved() -> None:
    """What another writer changed in the rest of a row (TradingService._change) stands."""
    written: list[object] = []

    class Recording:
        async def execute(self, _statement: object, parameters: object = None) -> None:
            written.append(parameters)

    stored = make_order_row(id="row-1", status=IN_FLIGHT).model_dump()
    batch = _Batch(Recording())  # type: ignore[arg-type]
    batch.rows[("u", "cid-1")], batch.stored["row-1"] = _Draft(**stored), stored
    merge(batch.rows[("u", "cid-1")], _order(OrderStatus.NEW), NOW)
    await batch.write_changes()

    assert written == [
        [{"row_id": "row-1", "broker_order_id": "broker-1", "status": "new", "submitted_at": NOW, "updated_at": NOW}]
    ]
