"""Order entry and order management through the ledger.

Placing an order: validate (nothing reaches the broker when the input is wrong), run the
risk checks (a refusal is recorded as a rejected order), write the order row and commit
it, send it, and record the answer. The same clientOrderId always comes back to the
same row: concurrent calls here wait on a per-order lock, and the database's unique key
settles a race between server processes.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy import Select, and_, bindparam
from sqlalchemy import select as sa_select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.brokers.base import (
    Broker,
    BrokerAuthError,
    BrokerRateLimitedError,
    BrokerUnavailableError,
    NotFoundError,
    OrderRejectedError,
)
from server.brokers.domain import (
    CLOSED_STATUS_VALUES,
    NEW_YORK,
    AssetClass,
    OrderRequest,
    OrderSide,
    OrderStatus,
    Position,
    PositionSide,
    ReplaceRequest,
    multiplier_of,
)
from server.brokers.registry import BrokerRegistry, ConnectionRef
from server.metrics import Metrics
from server.models import BrokerConnection, User
from server.models import Order as OrderRow
from server.plain_rows import PlainRows
from server.quick_reads import QuickReads
from server.trading import ledger
from server.trading.ledger import LedgerWriter, insert_events, is_in_flight, local_event
from server.trading.locks import KeyedLocks
from server.trading.requests import broker_refusal, closing_qty, replaced_request, same_order
from server.trading.risk import KILL_SWITCH, Exposure, limits_for, risk_problems
from server.trading.validation import asset_problems, order_problems, symbol_problem
from server.users.admin import RiskLimits
from server.users.problems import UserProblem, require_active

logger = logging.getLogger(__name__)
T = TypeVar("T")
CLIENT_ORDER_ID_BYTES = 12

NOT_SENT = "NOT_SENT"
SUBMIT_BUDGET_CALLS = 3  # send, look up by clientOrderId, send again
CLIENT_ORDER_ID_REUSED = UserProblem(
    "CLIENT_ORDER_ID_REUSED",
    "This clientOrderId belongs to a different order; that order is returned unchanged.",
    "clientOrderId",
)
OUTCOME_UNKNOWN = UserProblem(
    "BROKER_UNAVAILABLE",
    "The broker did not answer in time: the order may or may not have been placed. "
    "Sending it again with the same clientOrderId is safe.",
)


@dataclass(frozen=True, slots=True)
class OrderOutcome:
    order: OrderRow | None
    problems: list[UserProblem]


@dataclass(frozen=True, slots=True)
class SyncReport:
    checked: int
    updated: int


# Built once: order entry runs these for every order.
_USER_CONNECTIONS = select(BrokerConnection).where(BrokerConnection.user_id == bindparam("user_id"))
_CONNECTIONS = BrokerConnection.__table__  # type: ignore[attr-defined]
_DEFAULT_FIRST = (_CONNECTIONS.c.is_default.desc(), _CONNECTIONS.c.created_at)  # a user's default
_DEFAULT_CONNECTION = _USER_CONNECTIONS.order_by(*_DEFAULT_FIRST).limit(1)
_CONNECTION = _USER_CONNECTIONS.where(BrokerConnection.id == bindparam("connection_id")).limit(1)
_BY_CLIENT_ORDER_ID = select(OrderRow).where(
    OrderRow.user_id == bindparam("user_id"), OrderRow.client_order_id == bindparam("client_order_id")
)


_ENTRY_ROWS = PlainRows(User, BrokerConnection, OrderRow)


def _entry_statement(*, chosen_connection: bool) -> Select[Any]:
    """What placing an order reads, in one Core statement: the user; their connection (the
    one asked for, or their default one); the order already holding the clientOrderId. The
    outer joins leave the missing ones None, so each absence still has its own answer."""
    users, connections, orders = User.__table__, _CONNECTIONS, OrderRow.__table__  # type: ignore[attr-defined]
    holds_connection = connections.c.user_id == users.c.id
    if chosen_connection:
        holds_connection = and_(holds_connection, connections.c.id == bindparam("connection_id"))
    holds_client_order_id = and_(
        orders.c.user_id == users.c.id, orders.c.client_order_id == bindparam("client_order_id")
    )
    return (
        sa_select(*_ENTRY_ROWS.columns)
        .select_from(users)
        .outerjoin(connections, holds_connection)
        .outerjoin(orders, holds_client_order_id)
        .where(users.c.id == bindparam("user_id"))
        .order_by(*_DEFAULT_FIRST)
        .limit(1)
    )


_ENTRY_DEFAULT_CONNECTION = _entry_statement(chosen_connection=False)
_ENTRY_CHOSEN_CONNECTION = _entry_statement(chosen_connection=True)


def refusal_fields(problem: UserProblem) -> dict[str, str]:
    """A new order row's fields when a check here refused the order."""
    return {"status": OrderStatus.REJECTED.value, "reject_code": problem.code, "reject_reason": problem.message}


def new_client_order_id() -> str:
    return f"gql-{secrets.token_hex(CLIENT_ORDER_ID_BYTES)}"


class TradingService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        read_sessions: async_sessionmaker[AsyncSession],
        quick_reads: QuickReads,
        registry: BrokerRegistry,
        ledger_writer: LedgerWriter,
        *,
        risk_defaults: RiskLimits,
        broker_timeout_seconds: float,
        now: Callable[[], datetime],
        metrics: Metrics | None = None,
    ) -> None:
        self._metrics = metrics
        self._sessions = sessions
        self._read_sessions = read_sessions  # for what only reads: beside the writer (see db.create_read_engine)
        self._quick_reads = quick_reads  # order entry's read
        self._registry = registry
        self._ledger = ledger_writer
        self._risk_defaults = risk_defaults
        self._timeout = broker_timeout_seconds
        self._now = now
        self._locks = KeyedLocks()

    # ----- connections ----------------------------------------------------------------

    async def connection(self, user_id: str, connection_id: str | None = None) -> BrokerConnection:
        """The user's connection `connection_id`, or their default one."""
        async with self._read_sessions() as session:
            return await _find_connection(session, user_id, connection_id)

    async def connection_by_id(self, connection_id: str) -> BrokerConnection:
        """A connection found by its id alone: for rows already known to be the caller's."""
        async with self._read_sessions() as session:
            found = await session.get(BrokerConnection, connection_id)
        if found is None:
            raise NotFoundError("broker connection")
        return found

    def broker(self, connection: BrokerConnection) -> Broker:
        return self._registry.broker_for(connection)

    async def call(self, action: Awaitable[T], *, budget_calls: int = 1) -> T:
        """A broker call with the broker timeout (times `budget_calls`, for an action that may
        need several calls to settle): past it, BrokerUnavailableError."""
        started = time.perf_counter()
        try:
            # In this task: a call the broker answers at once (the paper exchange) does not
            # give way to other tasks, so what follows it (the ledger's record) joins the
            # ledger batch its trade updates started.
            async with asyncio.timeout(self._timeout * budget_calls):
                result = await action
        except TimeoutError:
            failure = BrokerUnavailableError("the broker did not answer in time")
            self._observe(action, failure, started)
            raise failure from None
        except Exception as error:
            self._observe(action, error, started)
            raise
        self._observe(action, None, started)
        return result

    def _observe(self, action: Awaitable[object], error: Exception | None, started: float) -> None:
        if self._metrics is not None:
            self._metrics.broker_call(action, error, time.perf_counter() - started)

    # ----- placing --------------------------------------------------------------------

    async def place(
        self,
        user_id: str,
        connection_id: str | None,
        request: OrderRequest,
        *,
        admit: Callable[[User], Awaitable[None]] | None = None,
    ) -> OrderOutcome:
        """Place an order for the signed-in user `user_id` (InactiveUserError when they may no
        longer act) through their connection `connection_id` (None: their default one).
        `admit` is awaited with the user as soon as they are read, before anything else (the
        order rate limit): it refuses by raising."""
        return await self._place(user_id, request, connection_id=connection_id, admit=admit)

    async def _place(
        self,
        user_id: str,
        request: OrderRequest,
        *,
        connection_id: str | None = None,
        known: tuple[User, BrokerConnection] | None = None,
        admit: Callable[[User], Awaitable[None]] | None = None,
        closing: bool = False,
    ) -> OrderOutcome:
        """Through the `known` user and connection when the caller has them, else read here.
        `closing`: the order only reduces a position (closePosition), so the kill switch allows it."""
        cid = request.client_order_id or new_client_order_id()
        async with self._locks.hold((user_id, cid)):
            if known is None:
                user, connection, existing = await self._entry(user_id, connection_id, cid)
            else:
                (user, connection), existing = known, await self.find_by_client_id(user_id, cid)
            if admit is not None:
                await admit(user)
            symbol, problem = symbol_problem(request.symbol)
            if problem is not None or symbol is None:
                return OrderOutcome(None, [problem] if problem else [])
            request = replace(request, symbol=symbol, client_order_id=cid)
            if existing is not None and existing.connection_id != connection.id:
                if known is not None or connection_id is not None:  # asked of another account: not this order
                    return OrderOutcome(existing, [CLIENT_ORDER_ID_REUSED])
                connection = await self.connection_by_id(existing.connection_id)  # the order's own account
            broker = self.broker(connection)
            ref = ConnectionRef(user.id, connection.id)
            if existing is not None:
                return await self._again(user, ref, broker, existing, request)
            asset = await self.call(broker.get_asset(symbol))
            problems = asset_problems(symbol, asset, today=self._now().astimezone(NEW_YORK).date())
            if asset is not None:
                problems += order_problems(request, asset)
            if problems or asset is None:
                return OrderOutcome(None, problems)
            refusals = await self._risk(user, broker, request, asset.asset_class, closing=closing)
            refused = refusal_fields(refusals[0]) if refusals else {}
            row = ledger.placed_row(ref, request, cid, asset.asset_class.value, self._now(), **refused)
            if refusals:
                return OrderOutcome(await self._insert_rejected(row), refusals)
            try:
                row = await self._insert(row)
            except IntegrityError:  # another server process took this clientOrderId a moment ago
                existing = await self.find_by_client_id(user.id, cid)
                assert existing is not None
                return await self._again(user, ref, broker, existing, request)
            return await self._send(ref, broker, row, request)

    async def _risk(
        self, user: User, broker: Broker, request: OrderRequest, asset_class: AssetClass, *, closing: bool
    ) -> list[UserProblem]:
        if closing:  # only ever reduces a position: allowed under the kill switch and every limit
            return []
        if user.kill_switch:
            return [KILL_SWITCH]
        quotes, account, position = await asyncio.gather(
            self.call(broker.get_quotes([request.symbol])),
            self.call(broker.get_account()),
            self.call(broker.get_position(request.symbol)),
        )
        exposure = Exposure(quotes[request.symbol], account, position, multiplier_of(asset_class))
        return risk_problems(request, exposure, limits_for(user, self._risk_defaults))

    async def _send(self, ref: ConnectionRef, broker: Broker, row: OrderRow, request: OrderRequest) -> OrderOutcome:
        try:
            # A lost answer is settled by looking the order up and perhaps sending it again.
            order = await self.call(broker.submit_order(request), budget_calls=SUBMIT_BUDGET_CALLS)
        except OrderRejectedError as error:
            problem = broker_refusal(error)
            return OrderOutcome(await self._mark_rejected(row, problem), [problem])
        except BrokerRateLimitedError:  # refused before anything was done: a retry sends it
            problem = UserProblem(NOT_SENT, "The broker is rate limiting this account; the order was not sent.")
            return OrderOutcome(await self._mark_rejected(row, problem), [problem])
        except BrokerAuthError:  # refused at the door: the order certainly did not land
            problem = UserProblem("BROKER_AUTH_FAILED", "The broker refused this connection's API keys.")
            return OrderOutcome(await self._mark_rejected(row, problem), [problem])
        except BrokerUnavailableError:
            logger.warning("order %s: no answer from the broker; left for reconciliation", row.id)
            return OrderOutcome(row, [OUTCOME_UNKNOWN])
        return OrderOutcome(await self._ledger.record(ref, order, "submitted"), [])

    async def _again(
        self, user: User, ref: ConnectionRef, broker: Broker, row: OrderRow, request: OrderRequest
    ) -> OrderOutcome:
        """A clientOrderId seen before: the first order, never a second one."""
        if not same_order(row, request):
            return OrderOutcome(row, [CLIENT_ORDER_ID_REUSED])
        if is_in_flight(row):  # an earlier attempt got no answer: ask the broker before sending again
            try:
                found = await self.call(broker.get_order_by_client_id(row.client_order_id))
            except BrokerUnavailableError:
                return OrderOutcome(row, [OUTCOME_UNKNOWN])
            if found is None:
                return await self._send(ref, broker, row, request)
            return OrderOutcome(await self._ledger.record(ref, found, "reconciled"), [])
        if row.reject_code == NOT_SENT:  # it never reached the broker: this retry sends it, checked afresh
            refusals = await self._risk(user, broker, request, AssetClass(row.asset_class), closing=False)
            if refusals:
                return OrderOutcome(row, refusals)
            return await self._send(ref, broker, await self._revive(row), request)
        if row.status == OrderStatus.REJECTED.value and row.reject_code:
            return OrderOutcome(row, [UserProblem(row.reject_code, row.reject_reason or "The order was rejected.")])
        return OrderOutcome(row, [])

    async def close_position(
        self,
        user: User,
        connection: BrokerConnection,
        symbol: str,
        *,
        qty: Decimal | None = None,
        percentage: Decimal | None = None,
        client_order_id: str | None = None,
    ) -> OrderOutcome:
        clean, problem = symbol_problem(symbol)
        if problem is not None or clean is None:
            return OrderOutcome(None, [problem] if problem else [])
        position = await self.call(self.broker(connection).get_position(clean))
        if position is None:
            return OrderOutcome(None, [UserProblem("NO_POSITION", f"You hold no {clean}.", "symbol")])
        return await self._close(user, connection, position, qty, percentage, client_order_id)

    async def close_all_positions(self, user: User, connection: BrokerConnection) -> list[OrderOutcome]:
        positions = await self.call(self.broker(connection).list_positions())
        return [await self._close(user, connection, position) for position in positions]

    async def _close(
        self,
        user: User,
        connection: BrokerConnection,
        position: Position,
        qty: Decimal | None = None,
        percentage: Decimal | None = None,
        client_order_id: str | None = None,
    ) -> OrderOutcome:
        amount, problems = closing_qty(position.qty, position.asset_class, qty=qty, percentage=percentage)
        if problems:
            return OrderOutcome(None, problems)
        side = OrderSide.SELL if position.side is PositionSide.LONG else OrderSide.BUY
        request = OrderRequest(symbol=position.symbol, side=side, qty=amount, client_order_id=client_order_id)
        return await self._place(user.id, request, known=(user, connection), closing=True)

    # ----- managing -------------------------------------------------------------------

    async def cancel(self, user: User, order_id: str) -> OrderOutcome:
        row = await self.find(user.id, order_id)
        if row is None:
            return OrderOutcome(None, [ORDER_NOT_FOUND])
        if row.broker_order_id is None:
            return OrderOutcome(row, [_not_sent_yet(row)])
        connection = await self.connection(user.id, row.connection_id)
        broker = self.broker(connection)
        ref = ConnectionRef(user.id, connection.id)
        try:
            order = await self.call(broker.cancel_order(row.broker_order_id))
        except OrderRejectedError as error:
            current = await self.call(broker.get_order(row.broker_order_id))
            row = await self._ledger.record(ref, current, "synced")
            return OrderOutcome(row, [UserProblem("NOT_CANCELABLE", error.message, "id")])
        return OrderOutcome(await self._ledger.record(ref, order, "cancel_requested"), [])

    async def cancel_all(self, user: User, connection: BrokerConnection) -> list[OrderOutcome]:
        broker = self.broker(connection)
        open_orders = await self.call(broker.list_orders(open_only=True))
        outcomes = []
        ref = ConnectionRef(user.id, connection.id)
        for order in open_orders:
            try:
                canceled = await self.call(broker.cancel_order(order.id))
            except (OrderRejectedError, NotFoundError):  # closed meanwhile (a leg canceled with its parent)
                continue
            outcomes.append(OrderOutcome(await self._ledger.record(ref, canceled, "cancel_requested"), []))
        return outcomes

    async def replace(self, user: User, order_id: str, change: ReplaceRequest) -> OrderOutcome:
        row = await self.find(user.id, order_id)
        if row is None:
            return OrderOutcome(None, [ORDER_NOT_FOUND])
        if row.broker_order_id is None:
            return OrderOutcome(row, [_not_sent_yet(row)])
        if user.kill_switch:
            return OrderOutcome(row, [KILL_SWITCH])
        if not OrderStatus(row.status).is_open:
            message = f"The order is {row.status} and can no longer be replaced."
            return OrderOutcome(row, [UserProblem("NOT_REPLACEABLE", message, "id")])
        connection = await self.connection(user.id, row.connection_id)
        broker = self.broker(connection)
        ref = ConnectionRef(user.id, connection.id)
        change = replace(change, client_order_id=change.client_order_id or new_client_order_id())
        proposed = replaced_request(row, change)
        asset = await self.call(broker.get_asset(row.symbol))
        problems = order_problems(proposed, asset) if asset is not None else []
        if not problems and row.parent_order_id is None:
            problems = await self._risk(user, broker, proposed, AssetClass(row.asset_class), closing=False)
        if problems:
            return OrderOutcome(row, problems)
        pending = ledger.placed_row(
            ref,
            proposed,
            proposed.client_order_id or "",
            row.asset_class,
            self._now(),
            replaces_order_id=row.id,
            parent_order_id=row.parent_order_id,
        )
        try:
            pending = await self._insert(pending)
        except IntegrityError:
            return OrderOutcome(row, [_cid_taken()])
        try:
            new = await self.call(broker.replace_order(row.broker_order_id, change))
        except OrderRejectedError as error:
            problem = broker_refusal(error)
            await self._mark_rejected(pending, problem)
            return OrderOutcome(row, [problem])
        except BrokerUnavailableError:
            return OrderOutcome(pending, [OUTCOME_UNKNOWN])
        old = await self.call(broker.get_order(row.broker_order_id))
        await self._ledger.record(ref, old, "replaced")
        return OrderOutcome(await self._ledger.record(ref, new, "submitted"), [])

    # ----- keeping the ledger true ------------------------------------------------------

    async def sync(self, user_id: str) -> SyncReport:
        """Ask the broker about every order the ledger holds open, and adopt open orders it does not know."""
        checked = updated = 0
        async with self._read_sessions() as session:
            connections = list(
                (await session.exec(select(BrokerConnection).where(BrokerConnection.user_id == user_id))).all()
            )
        for connection in connections:
            done = await self.sync_connection(connection)
            checked, updated = checked + done.checked, updated + done.updated
        return SyncReport(checked, updated)

    async def sync_connection(self, connection: BrokerConnection, *, at_startup: bool = False) -> SyncReport:
        """Settle the connection's open orders with the broker. An order still in flight is
        left alone while its placing may be under way (the call that sends it settles it),
        except at start-up, when no call of this process can be sending it."""
        ref = ConnectionRef(connection.user_id, connection.id)
        broker = self.broker(connection)
        rows = await self._open_rows(connection.id)
        placing_window = timedelta(seconds=self._timeout * (SUBMIT_BUDGET_CALLS + 1))
        checked = updated = 0
        for row in rows:
            if not at_startup and is_in_flight(row) and self._now() - row.created_at < placing_window:
                continue
            checked += 1
            before = (row.status, row.filled_qty)
            try:
                if row.broker_order_id is None:
                    found = await self.call(broker.get_order_by_client_id(row.client_order_id))
                else:
                    found = await self.call(broker.get_order(row.broker_order_id))
            except NotFoundError:
                found = None
            if found is None:
                after = await self._lost(row)
            else:
                after = await self._ledger.record(ref, found, "synced")
            updated += (after.status, after.filled_qty) != before
        known = {row.broker_order_id for row in rows}
        for order in await self.call(broker.list_orders(open_only=True)):
            if order.id not in known:
                row = await self._ledger.record(ref, order, "synced")
                checked, updated = checked + 1, updated + 1
        return SyncReport(checked, updated)

    async def reconcile(self) -> SyncReport:
        """At start-up: settle every order left open or in flight, for every connection."""
        async with self._read_sessions() as session:
            query = (
                select(BrokerConnection)
                .join(OrderRow, col(OrderRow.connection_id) == col(BrokerConnection.id))
                .where(col(OrderRow.status).not_in(CLOSED_STATUS_VALUES))
                .distinct()
            )
            connections = list((await session.exec(query)).all())
        checked = updated = 0
        for connection in connections:
            try:
                done = await self.sync_connection(connection, at_startup=True)
            except Exception:
                logger.exception("reconciling connection %s failed; its orders stay as they were", connection.id)
                continue
            checked, updated = checked + done.checked, updated + done.updated
        if checked:
            logger.info("reconciled orders with the brokers", extra={"checked": checked, "updated": updated})
        return SyncReport(checked, updated)

    async def flush(self) -> None:
        await self._ledger.flush()

    # ----- rows -----------------------------------------------------------------------

    async def find(self, user_id: str, order_id: str) -> OrderRow | None:
        async with self._read_sessions() as session:
            row = await session.get(OrderRow, order_id)
        return row if row is not None and row.user_id == user_id else None

    async def find_by_client_id(self, user_id: str, client_order_id: str) -> OrderRow | None:
        async with self._read_sessions() as session:
            return await _find_by_client_id(session, user_id, client_order_id)

    async def _entry(
        self, user_id: str, connection_id: str | None, client_order_id: str
    ) -> tuple[User, BrokerConnection, OrderRow | None]:
        """What placing an order reads, in one statement (each trip to the database costs more
        than the query it runs): the user, who must still be active; the connection; the order
        already holding the clientOrderId, if any."""
        params = {"user_id": user_id, "client_order_id": client_order_id}
        if connection_id is None:
            statement = _ENTRY_DEFAULT_CONNECTION
        else:
            statement, params["connection_id"] = _ENTRY_CHOSEN_CONNECTION, connection_id
        found = await self._quick_reads.first(statement, params)
        user, connection, existing = _ENTRY_ROWS(found) if found is not None else (None, None, None)
        user = require_active(user)
        if connection is None:
            raise NotFoundError("broker connection")
        return user, connection, existing

    async def _open_rows(self, connection_id: str) -> list[OrderRow]:
        async with self._read_sessions() as session:
            query = select(OrderRow).where(
                OrderRow.connection_id == connection_id, col(OrderRow.status).not_in(CLOSED_STATUS_VALUES)
            )
            return list((await session.exec(query.order_by(col(OrderRow.created_at)))).all())

    async def _insert(self, row: OrderRow) -> OrderRow:
        await self._ledger.insert(row, local_event(row, self._now()))  # committed with the ledger's next batch
        if self._metrics is not None:
            self._metrics.order_reached(row.status, row.reject_code)
        return row

    async def _insert_rejected(self, row: OrderRow) -> OrderRow:
        """Record an order refused here (its row built with `refusal_fields`)."""
        try:
            return await self._insert(row)
        except IntegrityError:  # the same clientOrderId raced in from another process
            existing = await self.find_by_client_id(row.user_id, row.client_order_id)
            assert existing is not None
            return existing

    async def _mark_rejected(self, row: OrderRow, problem: UserProblem) -> OrderRow:
        """An order the broker refused outright (it never existed there, so nothing else writes it)."""
        return await self._change(
            row, "rejected", status=OrderStatus.REJECTED.value, reject_code=problem.code, reject_reason=problem.message
        )

    async def _revive(self, row: OrderRow) -> OrderRow:
        return await self._change(row, "retried", status=ledger.IN_FLIGHT, reject_code=None, reject_reason=None)

    async def _lost(self, row: OrderRow) -> OrderRow:
        """The broker has no such order: one never sent, or one the broker forgot (the
        embedded paper exchange keeps no orders across a restart)."""
        if is_in_flight(row):
            problem = UserProblem(NOT_SENT, "The server stopped before this order reached the broker.")
            return await self._mark_rejected(row, problem)
        return await self._change(
            row,
            "lost",
            status=OrderStatus.CANCELED.value,
            reject_code="BROKER_LOST",
            reject_reason="The broker no longer has this order.",
            canceled_at=self._now(),
        )

    async def _change(self, row: OrderRow, event: str, **fields: object) -> OrderRow:
        """A change the broker does not report (it does not know the order): made here, with its event."""
        async with self._sessions() as session:
            stored = await session.get(OrderRow, row.id)
            assert stored is not None
            before = stored.status
            for name, value in fields.items():
                setattr(stored, name, value)
            stored.updated_at = self._now()
            await insert_events(session, local_event(stored, self._now(), event=event))
            await session.commit()
        if self._metrics is not None and stored.status != before:
            self._metrics.order_reached(stored.status, stored.reject_code)
        return stored


async def _find_connection(session: AsyncSession, user_id: str, connection_id: str | None) -> BrokerConnection:
    if connection_id is None:
        found = (await session.exec(_DEFAULT_CONNECTION, params={"user_id": user_id})).first()
    else:
        params = {"user_id": user_id, "connection_id": connection_id}
        found = (await session.exec(_CONNECTION, params=params)).first()
    if found is None:
        raise NotFoundError("broker connection")
    return found


async def _find_by_client_id(session: AsyncSession, user_id: str, client_order_id: str) -> OrderRow | None:
    params = {"user_id": user_id, "client_order_id": client_order_id}
    return (await session.exec(_BY_CLIENT_ORDER_ID, params=params)).first()


ORDER_NOT_FOUND = UserProblem("ORDER_NOT_FOUND", "You have no order with that id.", "id")


def _not_sent_yet(row: OrderRow) -> UserProblem:
    return UserProblem("NOT_ACKNOWLEDGED", f"Order {row.id} has not been acknowledged by the broker yet.", "id")


def _cid_taken() -> UserProblem:
    return UserProblem("CLIENT_ORDER_ID_REUSED", "That clientOrderId is already used.", "clientOrderId")
