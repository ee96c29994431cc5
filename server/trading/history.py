"""Reading the ledger: a user's orders, filtered, newest first, in keyset pages.

A cursor is the (created_at, id) of the last order of a page; the next page starts
strictly after it, so pages neither repeat nor skip orders while new ones arrive.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import and_, or_
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.brokers.domain import CLOSED_STATUS_VALUES, OrderSide
from server.models import Order as OrderRow
from server.models import OrderEvent

MAX_PAGE = 500


class StatusFilter(StrEnum):
    OPEN = "open"
    CLOSED = "closed"
    ALL = "all"


@dataclass(frozen=True, slots=True)
class OrderFilter:
    status: StatusFilter = StatusFilter.OPEN
    symbols: tuple[str, ...] = ()
    side: OrderSide | None = None
    since: datetime | None = None
    until: datetime | None = None
    connection_id: str | None = None


@dataclass(frozen=True, slots=True)
class OrderPage:
    rows: list[OrderRow]
    has_next: bool


class InvalidCursorError(ValueError):
    pass


def encode_cursor(row: OrderRow) -> str:
    return base64.urlsafe_b64encode(f"{row.created_at.isoformat()}|{row.id}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        created, _, order_id = base64.urlsafe_b64decode(cursor.encode("ascii")).decode().partition("|")
        moment = datetime.fromisoformat(created)
    except (binascii.Error, UnicodeError, ValueError):
        raise InvalidCursorError("That cursor did not come from this list.") from None
    if moment.tzinfo is None or not order_id:
        raise InvalidCursorError("That cursor did not come from this list.")
    return moment, order_id


class OrderHistory:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def page(self, user_id: str, where: OrderFilter, *, first: int, after: str | None) -> OrderPage:
        first = max(1, min(first, MAX_PAGE))
        query = select(OrderRow).where(OrderRow.user_id == user_id)
        if where.status is StatusFilter.OPEN:
            query = query.where(col(OrderRow.status).not_in(CLOSED_STATUS_VALUES))
        elif where.status is StatusFilter.CLOSED:
            query = query.where(col(OrderRow.status).in_(CLOSED_STATUS_VALUES))
        if where.symbols:
            query = query.where(col(OrderRow.symbol).in_(where.symbols))
        if where.side is not None:
            query = query.where(OrderRow.side == where.side.value)
        if where.since is not None:
            query = query.where(col(OrderRow.created_at) >= where.since)
        if where.until is not None:
            query = query.where(col(OrderRow.created_at) < where.until)
        if where.connection_id is not None:
            query = query.where(OrderRow.connection_id == where.connection_id)
        if after is not None:
            created, order_id = decode_cursor(after)
            query = query.where(
                or_(
                    col(OrderRow.created_at) < created,
                    and_(col(OrderRow.created_at) == created, col(OrderRow.id) < order_id),
                )
            )
        query = query.order_by(col(OrderRow.created_at).desc(), col(OrderRow.id).desc()).limit(first + 1)
        async with self._sessions() as session:
            rows = list((await session.exec(query)).all())
        return OrderPage(rows[:first], len(rows) > first)

    async def legs(self, parent_ids: list[str]) -> dict[str, list[OrderRow]]:
        query = select(OrderRow).where(col(OrderRow.parent_order_id).in_(parent_ids))
        async with self._sessions() as session:
            rows = (await session.exec(query.order_by(col(OrderRow.created_at), col(OrderRow.id)))).all()
        found: dict[str, list[OrderRow]] = {parent: [] for parent in parent_ids}
        for row in rows:
            found[row.parent_order_id or ""].append(row)
        return found

    async def events(self, order_ids: list[str]) -> dict[str, list[OrderEvent]]:
        query = select(OrderEvent).where(col(OrderEvent.order_id).in_(order_ids))
        async with self._sessions() as session:
            rows = (await session.exec(query.order_by(col(OrderEvent.id)))).all()
        found: dict[str, list[OrderEvent]] = {order_id: [] for order_id in order_ids}
        for row in rows:
            found[row.order_id].append(row)
        return found
