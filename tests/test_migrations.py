"""The migrations build the models' schema on SQLite, PostgreSQL and MariaDB, and undo it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel, select

from server.db import create_engine, downgrade_database, session_factory, upgrade_database
from server.models import BrokerConnection, Order, OrderEvent, User
from tests.utils.databases import DATABASE_KINDS, throwaway_database
from tests.utils.factories import make_order_row

pytestmark = pytest.mark.anyio

TABLES = {"users", "broker_connections", "refresh_tokens", "orders", "order_events", "audit_events"}


@pytest.fixture(params=DATABASE_KINDS)
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    async with throwaway_database(request.param, tmp_path) as url:
        yield url


async def _tables(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as connection:
        return set(await connection.run_sync(lambda sync: inspect(sync).get_table_names()))


async def _schema_drift(engine: AsyncEngine) -> list[object]:
    def compare(sync_connection: object) -> list[object]:
        context = MigrationContext.configure(sync_connection, opts={"compare_type": True})  # type: ignore[arg-type]
        return compare_metadata(context, SQLModel.metadata)

    async with engine.connect() as connection:
        return await connection.run_sync(compare)


async def test_migrations_build_the_models_schema_and_undo_it(database_url: str) -> None:
    await asyncio.to_thread(upgrade_database, database_url)
    engine = create_engine(database_url)
    try:
        assert await _tables(engine) == TABLES | {"alembic_version"}
        assert await _schema_drift(engine) == []

        await asyncio.to_thread(downgrade_database, database_url)
        assert await _tables(engine) <= {"alembic_version"}

        await asyncio.to_thread(upgrade_database, database_url)
        assert await _tables(engine) == TABLES | {"alembic_version"}
    finally:
        await engine.dispose()


async def test_money_and_times_round_trip_exactly(database_url: str) -> None:
    await asyncio.to_thread(upgrade_database, database_url)
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    submitted = datetime(2026, 11, 23, 14, 30, 1, 123456, tzinfo=UTC)
    try:
        async with sessions() as session:
            user = User(username="ada", email="ada@example.com", password_hash="x")
            connection = BrokerConnection(user_id=user.id, kind="PAPER", label="paper", is_default=True)
            order = make_order_row(
                user_id=user.id,
                connection_id=connection.id,
                qty=Decimal("0.123456789"),
                limit_price=Decimal("187.25"),
                notional=Decimal("123456789012345678.5"),
                status="new",
                submitted_at=submitted,
            )
            for row in (user, connection, order):  # parents first: these models declare no relationships
                session.add(row)
                await session.flush()
            session.add(OrderEvent(order_id=order.id, event="new", status="new", detail={"source": "test"}))
            await session.commit()

        async with sessions() as session:
            stored = (await session.exec(select(Order))).one()
            event = (await session.exec(select(OrderEvent))).one()
        assert stored.qty == Decimal("0.123456789")
        assert stored.limit_price == Decimal("187.25")
        assert stored.notional == Decimal("123456789012345678.5")
        assert stored.filled_qty == Decimal(0)
        assert stored.submitted_at == submitted
        assert stored.submitted_at is not None
        assert stored.submitted_at.tzinfo is not None
        assert event.detail == {"source": "test"}
        assert event.id is not None

        async with sessions() as session:
            duplicate = Order(**{**stored.model_dump(exclude={"id", "created_at", "updated_at"}), "qty": Decimal(1)})
            session.add(duplicate)
            with pytest.raises(IntegrityError):
                await session.commit()
    finally:
        await engine.dispose()
