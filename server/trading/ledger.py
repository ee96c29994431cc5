"""The order ledger: every order a user places here, as the broker last reported it.

A row is written (status `pending_new`, no broker id) and committed before the order is
sent. One writer task writes those rows and applies everything the broker says about
orders: the answer to a submission, each trade update, each sync. One writer means no two
changes to a row ever race, and a batch of them, new rows included, shares one transaction
(on SQLite, whose single writing connection is the bottleneck under load, one commit and
one hold of that connection serve every order of the batch). Changes only move forward (an
order never goes back from filled to new, nor un-fills), so a late or repeated report
changes nothing. Every change appends an order event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Insert, bindparam, insert, select, update
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

from server.brokers.domain import CLOSED_STATUS_VALUES, Order, OrderRequest, OrderStatus, TradeUpdate
from server.brokers.registry import ConnectionRef
from server.decimals import canonical_decimal
from server.metrics import Metrics
from server.models import Order as OrderRow
from server.models import OrderEvent

logger = logging.getLogger(__name__)

IN_FLIGHT = OrderStatus.PENDING_NEW.value
MAX_BATCH = 256
_ORDERS = OrderRow.__table__  # type: ignore[attr-defined]
_EVENTS = OrderEvent.__table__  # type: ignore[attr-defined]
# What a report can change in a row (merge, and the links): what a batch writes back.
_REPORTED_COLUMNS = (
    "broker_order_id",
    "status",
    "filled_qty",
    "filled_avg_price",
    "qty",
    "limit_price",
    "stop_price",
    "submitted_at",
    "filled_at",
    "canceled_at",
    "reject_reason",
    "updated_at",
    "parent_order_id",
    "replaces_order_id",
)
# Built once: every order writes its row and events (a statement's cache key costs more than reusing it).
_INSERT_ORDERS = insert(_ORDERS)
_INSERT_EVENTS = insert(_EVENTS)
_UPDATE_REPORTED = update(_ORDERS).where(_ORDERS.c.id == bindparam("row_id"))


def events_once_each(dialect_name: str) -> Insert:
    """An insert of order events that skips a fill the ledger already holds (the same order
    and execution id: a stream resent it, or a batch holds it twice), in the database, in
    the same statement: no query first. Every other error is raised, which rules out
    MariaDB's INSERT IGNORE (it lets off nearly all of them); its no-op ON DUPLICATE KEY
    UPDATE lets off a clash on any unique key, and the events' only other one is their id,
    which is never given."""
    fill = [_EVENTS.c.order_id, _EVENTS.c.execution_id]
    if dialect_name == "sqlite":
        return sqlite_insert(_EVENTS).on_conflict_do_nothing(index_elements=fill)
    if dialect_name == "postgresql":
        return postgresql_insert(_EVENTS).on_conflict_do_nothing(index_elements=fill)
    if dialect_name in {"mysql", "mariadb"}:
        statement = mysql_insert(_EVENTS)
        return statement.on_duplicate_key_update(order_id=statement.inserted.order_id)  # changes nothing
    raise ValueError(f"no order ledger on {dialect_name}")


def is_in_flight(row: OrderRow) -> bool:
    """Written here, and not (yet) known to have reached the broker."""
    return row.broker_order_id is None and row.status == IN_FLIGHT


def placed_row(
    ref: ConnectionRef,
    request: OrderRequest,
    client_order_id: str,
    asset_class: str,
    now: datetime,
    **fields: Any,
) -> OrderRow:
    """A new order's row as placing writes it: its values alone, as the ledger hands rows out
    (it writes them with Core statements), so no session can take it and setting an
    attribute fails: `fields` gives what differs at once."""
    return OrderRow.model_construct(**(_row_values(ref, request, client_order_id, asset_class, now) | fields))


def _row_values(
    ref: ConnectionRef, request: OrderRequest, client_order_id: str, asset_class: str, now: datetime
) -> dict[str, Any]:
    return {
        "user_id": ref.user_id,
        "connection_id": ref.connection_id,
        "client_order_id": client_order_id,
        "symbol": request.symbol,
        "asset_class": asset_class,
        "side": request.side.value,
        "order_type": request.type.value,
        "time_in_force": request.time_in_force.value,
        "order_class": request.order_class.value,
        "qty": _stored(request.qty),
        "notional": _stored(request.notional),
        "limit_price": _stored(request.limit_price),
        "stop_price": _stored(request.stop_price),
        "trail_price": _stored(request.trail_price),
        "trail_percent": _stored(request.trail_percent),
        "extended_hours": request.extended_hours,
        "status": IN_FLIGHT,
        "created_at": now,
        "updated_at": now,
    }


def _stored(value: Decimal | None) -> Decimal | None:
    """A money column's value as the database gives it back (230.0400 is read as 230.04), so
    a row answers the same before and after it is read again."""
    return None if value is None else canonical_decimal(value)


class _Draft(SimpleNamespace):
    """A row's values while a batch changes them: read and set as an OrderRow's attributes,
    written back with Core (no ORM unit of work), handed out as a plain row (`frozen`)."""

    def frozen(self) -> OrderRow:
        return OrderRow.model_construct(**vars(self))


def _draft_from_order(ref: ConnectionRef, order: Order, now: datetime) -> _Draft:
    """An order the ledger has not seen: an exit leg, or one placed outside this server."""
    request = OrderRequest(
        symbol=order.symbol,
        side=order.side,
        type=order.type,
        time_in_force=order.time_in_force,
        qty=order.qty,
        notional=order.notional,
        limit_price=order.limit_price,
        stop_price=order.stop_price,
        trail_price=order.trail_price,
        trail_percent=order.trail_percent,
        extended_hours=order.extended_hours,
        order_class=order.order_class,
    )
    values = placed_row(ref, request, order.client_order_id, order.asset_class.value, order.created_at).model_dump()
    draft = _Draft(**values)
    merge(draft, order, now)
    return draft


def merge(row: OrderRow | _Draft, order: Order, now: datetime) -> bool:
    """Bring `row` up to `order` unless `order` is older than what the row says; True if it moved."""
    if row.status in CLOSED_STATUS_VALUES:
        return False
    if order.filled_qty < row.filled_qty:
        return False
    moved = (row.status, row.filled_qty, row.broker_order_id) != (order.status.value, order.filled_qty, order.id)
    row.broker_order_id = order.id
    row.status = order.status.value
    row.filled_qty = canonical_decimal(order.filled_qty)
    row.filled_avg_price = _stored(order.filled_avg_price)
    row.qty = _stored(order.qty) if order.qty is not None else row.qty
    row.limit_price = _stored(order.limit_price)
    row.stop_price = _stored(order.stop_price)
    row.submitted_at = order.submitted_at
    row.filled_at = order.filled_at
    row.canceled_at = order.canceled_at or order.expired_at or order.replaced_at
    if order.reject_reason:
        row.reject_reason = order.reject_reason
    if moved:
        row.updated_at = now
    return moved


class LedgerClosedError(RuntimeError):
    """The ledger writer has stopped (the server is shutting down): nothing more is written."""


@dataclass(frozen=True, slots=True)
class OrderChange:
    """A broker's report about an order, once the ledger has committed it."""

    user_id: str
    connection_id: str
    event: str
    order: OrderRow


ChangeSink = Callable[[OrderChange], None]


@dataclass(slots=True)
class _Report:
    ref: ConnectionRef
    order: Order
    event: str
    update: TradeUpdate | None = None
    done: asyncio.Future[OrderRow] | None = None


@dataclass(slots=True)
class _NewRow:
    """An order row to write, with its first event, before the order is sent."""

    row: OrderRow
    event: dict[str, Any]
    done: asyncio.Future[None]


_Item = _Report | _NewRow


@dataclass(slots=True)
class _Batch:
    """One transaction's worth of reports: the rows they touch are read in one query up front,
    the ones they change written back in one statement, and their events after them in one
    insert. All of it with Core on the writer's connection: what the ORM's unit of work would
    add (identity map, instrumented attributes, change tracking) costs more than the writes."""

    connection: AsyncConnection
    rows: dict[tuple[str, str], _Draft] = field(default_factory=dict)
    stored: dict[str, dict[str, Any]] = field(default_factory=dict)  # by row id: the values in the database
    events: list[dict[str, Any]] = field(default_factory=list)  # column values
    statuses: list[tuple[str, str | None]] = field(default_factory=list)  # (status, reject code) reached
    # New rows for orders that replaced another (the broker's id of it): linked once every
    # report is in, so the replaced row's own report may come later in the batch.
    replacing: list[tuple[_Draft, str]] = field(default_factory=list)

    async def load(self, reports: list[_Report]) -> None:
        keys = {key for report in reports for key in _keys(report.ref.user_id, report.order)}
        query = select(_ORDERS).where(
            _ORDERS.c.user_id.in_({user_id for user_id, _ in keys}),
            _ORDERS.c.client_order_id.in_({cid for _, cid in keys}),
        )
        for values in (await self.connection.execute(query)).mappings():
            key = (values["user_id"], values["client_order_id"])
            if key in keys:
                self.rows[key] = _Draft(**values)
                self.stored[values["id"]] = dict(values)

    async def insert(self, draft: _Draft) -> None:
        values = vars(draft)
        await self.connection.execute(_INSERT_ORDERS, values)
        self.stored[draft.id] = dict(values)

    async def write_changes(self) -> None:
        """The columns each row's reports moved, and only those (as the ORM would: another
        writer's change to the rest stands), in one executemany per set of columns."""
        by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for draft in self.rows.values():
            stored = self.stored[draft.id]
            moved = tuple(name for name in _REPORTED_COLUMNS if getattr(draft, name) != stored[name])
            if moved:
                values = {name: getattr(draft, name) for name in moved}
                by_columns.setdefault(moved, []).append({"row_id": draft.id, **values})
        for changes in by_columns.values():
            await self.connection.execute(_UPDATE_REPORTED, changes)

    async def link_replacements(self) -> None:
        """Point each new row at the row it replaced: one of this batch's (its broker id
        perhaps not written yet), or else one the database holds."""
        for draft, broker_order_id in self.replacing:
            key = (draft.user_id, broker_order_id)
            in_batch = [row.id for row in self.rows.values() if (row.user_id, row.broker_order_id) == key]
            draft.replaces_order_id = in_batch[0] if in_batch else await _find_by_broker_id(self.connection, *key)

    async def add_events(self, insert_events: Insert) -> None:
        if self.events:
            await self.connection.execute(insert_events, self.events)


def _keys(user_id: str, order: Order) -> list[tuple[str, str]]:
    """The rows a report about `order` touches: its own and its legs'."""
    return [(user_id, order.client_order_id)] + [key for leg in order.legs for key in _keys(user_id, leg)]


class LedgerWriter:
    def __init__(
        self,
        engine: AsyncEngine,
        now: Callable[[], datetime],
        on_change: ChangeSink | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._engine = engine
        self._insert_events = events_once_each(engine.dialect.name)
        self._now = now
        self._on_change = on_change
        self._metrics = metrics
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def start(self) -> None:
        self._closed = False
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="ledger-writer")

    async def stop(self) -> None:
        """Refuse anything new, write what is queued, then stop."""
        self._closed = True
        if self._task is None:
            return
        await self.flush()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    def push(self, ref: ConnectionRef, update: TradeUpdate) -> None:
        """A trade update from a broker (called from the broker's listener, never blocks).
        Once stopped, dropped: the next start-up's reconciliation asks the broker instead."""
        if not self._closed:
            self._queue.put_nowait(_Report(ref, update.order, update.event.value, update))

    async def record(self, ref: ConnectionRef, order: Order, event: str) -> OrderRow:
        """Apply what the broker answered (to a submission, a cancel, a sync) and return the row."""
        done: asyncio.Future[OrderRow] = asyncio.get_running_loop().create_future()
        self._enqueue(_Report(ref, order, event, done=done))
        return await done

    async def insert(self, row: OrderRow, first_event: dict[str, Any]) -> None:
        """Write a new order's row and its first event; returns once they are committed.
        IntegrityError: the row's clientOrderId is taken (by another server process)."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._enqueue(_NewRow(row, first_event, done))
        await done

    def _enqueue(self, item: _Item) -> None:
        if self._closed:  # nothing would ever write it, and its caller would wait for ever
            raise LedgerClosedError("the ledger is closed: the server is shutting down")
        self._queue.put_nowait(item)

    async def flush(self) -> None:
        await self._queue.join()

    async def _run(self) -> None:
        while True:
            items = [await self._queue.get()]
            while len(items) < MAX_BATCH and not self._queue.empty():
                items.append(self._queue.get_nowait())
            try:
                await self._write_batch(items)
            finally:
                for _ in items:
                    self._queue.task_done()

    async def _write_batch(self, items: list[_Item]) -> None:
        try:
            await self._write(items)
        except Exception as error:
            if isinstance(error, IntegrityError) and len(items) > 1 and any(isinstance(i, _NewRow) for i in items):
                # A new row refused (its clientOrderId taken by another process) fails only its
                # own order: the batch is rolled back whole, so each item is written again alone.
                for item in items:
                    await self._write_batch([item])
                return
            if any(isinstance(item, _Report) for item in items):  # a new row's failure reaches its caller
                logger.exception("ledger batch of %d items failed; sync will catch up", len(items))
            for item in items:
                if item.done is not None and not item.done.done():
                    item.done.set_exception(error)

    async def _write(self, items: list[_Item]) -> None:
        new_rows = [item for item in items if isinstance(item, _NewRow)]
        reports = [item for item in items if isinstance(item, _Report)]
        results: list[tuple[_Report, _Draft]] = []
        changes: list[tuple[_Report, _Draft, OrderRow | None]] = []  # the row as the change left it, when moved on
        last_touch = (
            {key: i for i, report in enumerate(reports) for key in _keys(report.ref.user_id, report.order)}
            if self._on_change is not None
            else {}
        )
        async with self._engine.begin() as connection:
            batch = _Batch(connection)
            if new_rows:
                await connection.execute(_INSERT_ORDERS, [new.row.model_dump() for new in new_rows])
                batch.events += [new.event for new in new_rows]
            if reports:
                await batch.load(reports)
            for i, report in enumerate(reports):
                draft = await self._apply(batch, report.ref, report.order, report)
                results.append((report, draft))
                if report.update is not None and self._on_change is not None:
                    moved_on = last_touch[(draft.user_id, draft.client_order_id)] > i  # by a later report
                    changes.append((report, draft, draft.frozen() if moved_on else None))
            await batch.link_replacements()
            await batch.write_changes()
            await batch.add_events(self._insert_events)
        if self._metrics is not None:
            for status, reject_code in batch.statuses:
                self._metrics.order_reached(status, reject_code)
        for new in new_rows:
            if not new.done.done():
                new.done.set_result(None)
        final = {id(draft): draft.frozen() for draft in batch.rows.values()}
        for report, draft in results:
            if report.done is not None and not report.done.done():
                report.done.set_result(final[id(draft)])
        for report, draft, then in changes:
            row = then if then is not None else final[id(draft)]
            self._publish(OrderChange(report.ref.user_id, report.ref.connection_id, report.event, row))

    def _publish(self, change: OrderChange) -> None:
        try:
            self._on_change(change)  # type: ignore[misc]
        except Exception:
            logger.exception("order change listener failed")

    async def _apply(
        self, batch: _Batch, ref: ConnectionRef, order: Order, report: _Report | None, parent: _Draft | None = None
    ) -> _Draft:
        now = self._now()
        key = (ref.user_id, order.client_order_id)
        draft = batch.rows.get(key)
        if draft is None:
            draft = _draft_from_order(ref, order, now)
            draft.parent_order_id = parent.id if parent is not None else None
            if order.replaces:
                batch.replacing.append((draft, order.replaces))
            # Written at once: a later report of this batch may point another row (a leg
            # reported before its parent) at this one.
            await batch.insert(draft)
            batch.rows[key] = draft
            batch.statuses.append((draft.status, draft.reject_code))
            moved = True
        else:
            before = draft.status
            moved = merge(draft, order, now)
            if draft.status != before:
                batch.statuses.append((draft.status, draft.reject_code))
            if parent is not None and draft.parent_order_id is None:
                draft.parent_order_id = parent.id
        if report is not None and (moved or report.update is not None):
            batch.events.append(_event(draft, report, now))
        for leg in order.legs:
            await self._apply(batch, ref, leg, None, parent=draft)
        return draft


async def _find_by_broker_id(connection: AsyncConnection, user_id: str, broker_order_id: str) -> str | None:
    """The id of the user's row for the broker's order `broker_order_id`, if the ledger has one."""
    query = select(_ORDERS.c.id).where(_ORDERS.c.user_id == user_id, _ORDERS.c.broker_order_id == broker_order_id)
    return (await connection.execute(query)).scalars().first()


def _event(row: _Draft, report: _Report, now: datetime) -> dict[str, Any]:
    update = report.update
    if update is None:
        return _event_values(row.id, report.event, report.order.status.value, report.order.filled_qty, now)
    return _event_values(
        row.id,
        report.event,
        report.order.status.value,
        report.order.filled_qty,
        now,
        occurred_at=update.timestamp,
        execution_id=update.execution_id,
        qty=update.qty,
        price=update.price,
    )


def local_event(row: OrderRow, now: datetime, *, event: str = "created") -> dict[str, Any]:
    """The event of a change made here rather than reported by the broker."""
    detail = {"code": row.reject_code} if row.reject_code else None
    return _event_values(row.id, event, row.status, row.filled_qty, now, detail=detail)


def _event_values(
    order_id: str,
    event: str,
    status: str,
    filled_qty: Decimal,
    now: datetime,
    *,
    occurred_at: datetime | None = None,
    execution_id: str | None = None,
    qty: Decimal | None = None,
    price: Decimal | None = None,
    detail: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An order event's columns, for a Core insert: every key always present (one executemany)."""
    return {
        "order_id": order_id,
        "event": event,
        "status": status,
        "execution_id": execution_id,
        "qty": qty,
        "price": price,
        "filled_qty": filled_qty,
        "detail": detail,
        "occurred_at": occurred_at or now,
        "recorded_at": now,
    }


async def insert_events(session: AsyncSession, values: dict[str, Any] | list[dict[str, Any]]) -> None:
    """Order events, written with Core (nothing reads them back); the session's pending rows go first."""
    await session.flush()
    connection = await session.connection()
    await connection.execute(_INSERT_EVENTS, values)
