"""Rows of several tables read by one Core join, as plain table models."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

from server.models import BrokerConnection, Order, User
from server.plain_rows import PlainRows
from tests.utils.databases import sqlite_with_tables
from tests.utils.factories import make_order_row

pytestmark = pytest.mark.anyio

CREATED = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)
ROWS = PlainRows(User, BrokerConnection, Order)
USERS, CONNECTIONS, ORDERS = User.__table__, BrokerConnection.__table__, Order.__table__  # type: ignore[attr-defined]


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    async with sqlite_with_tables(tmp_path / "plain.db") as engine:
        async with AsyncSession(engine) as session:
            session.add(User(id="u1", username="ada", email="ada@example.com", password_hash="x", created_at=CREATED))
            await session.flush()  # no relationships declared: the unit of work does not order the inserts
            session.add(BrokerConnection(id="c1", user_id="u1", kind="paper", label="paper", created_at=CREATED))
            await session.flush()
            order = make_order_row(id="o1", user_id="u1", connection_id="c1", status="new", created_at=CREATED)
            order.qty, order.limit_price = Decimal("2.5000"), Decimal("230.0400")
            session.add(order)
            await session.commit()
        yield engine


async def _read(engine: AsyncEngine, client_order_id: str) -> tuple[User | None, BrokerConnection | None, Order | None]:
    statement = (
        select(*ROWS.columns)
        .select_from(USERS)
        .outerjoin(CONNECTIONS, CONNECTIONS.c.user_id == USERS.c.id)
        .outerjoin(ORDERS, (ORDERS.c.user_id == USERS.c.id) & (ORDERS.c.client_order_id == client_order_id))
    )
    async with engine.connect() as connection:
        row = (await connection.execute(statement)).one()
    return ROWS(row)  # type: ignore[return-value]


async def test_each_table_gives_its_model_with_values_as_the_orm_reads_them(engine: AsyncEngine) -> None:
    user, connection, order = await _read(engine, "cid-1")
    assert isinstance(user, User)
    assert isinstance(connection, BrokerConnection)
    assert isinstance(order, Order)
    assert (user.id, user.username, user.created_at) == ("u1", "ada", CREATED)
    assert (connection.id, connection.user_id, connection.kind) == ("c1", "u1", "paper")
    assert (order.id, order.client_order_id, order.qty, order.limit_price) == (
        "o1",
        "cid-1",
        Decimal("2.5"),
        Decimal("230.04"),
    )
    assert order.created_at.tzinfo is not None  # converted by the column's type, as the ORM does


async def test_a_table_with_no_match_in_an_outer_join_is_none(engine: AsyncEngine) -> None:
    user, connection, order = await _read(engine, "no-such-order")
    assert user is not None
    assert connection is not None
    assert order is None


async def test_rows_are_read_only(engine: AsyncEngine) -> None:
    user, _, _ = await _read(engine, "cid-1")
    assert user is not None
    with pytest.raises(AttributeError):
        user.kill_switch = True
