"""Order entry's quick reads: on a SQLite file, connections of their own that answer exactly
as the engine does; elsewhere, the engine."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import bindparam, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from server.db import create_engine, create_read_engine
from server.models import User
from server.quick_reads import EngineQuickReads, SQLiteQuickReads, open_quick_reads
from tests.utils.databases import sqlite_with_tables

pytestmark = pytest.mark.anyio

CREATED = datetime(2026, 3, 2, 14, 30, 15, 250000, tzinfo=UTC)
USERS = User.__table__  # type: ignore[attr-defined]
BY_NAME = select(USERS).where(USERS.c.username == bindparam("username")).order_by(USERS.c.id).limit(1)


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    async with sqlite_with_tables(tmp_path / "quick.db") as engine:
        async with AsyncSession(engine) as session:
            session.add(
                User(
                    id="u1",
                    username="ada",
                    email="ada@example.com",
                    password_hash="x",
                    kill_switch=True,
                    max_order_notional=Decimal("2500.50"),
                    created_at=CREATED,
                )
            )
            await session.commit()
        yield engine


@pytest.fixture
async def quick(engine: AsyncEngine) -> AsyncIterator[SQLiteQuickReads]:
    reads = await open_quick_reads(engine)
    assert isinstance(reads, SQLiteQuickReads)
    yield reads
    await reads.close()


async def test_a_row_reads_exactly_as_through_the_engine(engine: AsyncEngine, quick: SQLiteQuickReads) -> None:
    through_engine = await EngineQuickReads(engine).first(BY_NAME, {"username": "ada"})
    row = await quick.first(BY_NAME, {"username": "ada"})
    assert through_engine is not None
    assert row is not None
    assert tuple(row) == tuple(through_engine)
    values = dict(zip(USERS.columns.keys(), row, strict=True))
    assert (values["id"], values["kill_switch"], values["is_active"]) == ("u1", True, True)
    assert values["max_order_notional"] == Decimal("2500.50")
    assert values["created_at"] == CREATED  # parsed by the column's type, in UTC
    assert values["price_band_percent"] is None


async def test_no_row_is_none(quick: SQLiteQuickReads) -> None:
    assert await quick.first(BY_NAME, {"username": "nobody"}) is None


async def test_it_sees_what_is_committed_and_never_writes(engine: AsyncEngine, quick: SQLiteQuickReads) -> None:
    async with engine.connect() as writing:
        await writing.execute(text("UPDATE users SET username = 'grace' WHERE id = 'u1'"))
        assert await quick.first(BY_NAME, {"username": "grace"}) is None  # not committed yet
        await writing.commit()
    assert await quick.first(BY_NAME, {"username": "grace"}) is not None
    for connection in quick._connections:
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            await connection.execute("DELETE FROM users")


async def test_a_database_error_is_raised_as_sqlalchemy_raises_it(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}")
    reads = await open_quick_reads(engine)
    try:
        with pytest.raises(OperationalError, match="no such table"):
            await reads.first(BY_NAME, {"username": "ada"})
    finally:
        await reads.close()
        await engine.dispose()


@pytest.mark.parametrize(
    "url", ["sqlite+aiosqlite:///:memory:", "postgresql+asyncpg://u@127.0.0.1/db", "mysql+aiomysql://u@127.0.0.1/db"]
)
async def test_other_databases_read_through_their_engine(url: str) -> None:
    engine = create_async_engine(url)
    try:
        assert isinstance(await open_quick_reads(engine), EngineQuickReads)
    finally:
        await engine.dispose()


async def test_the_read_engine_of_a_sqlite_file_gets_connections_of_its_own(tmp_path: Path) -> None:
    read_engine = create_read_engine(f"sqlite+aiosqlite:///{tmp_path / 'quick.db'}")
    assert read_engine is not None
    reads = await open_quick_reads(read_engine)
    try:
        assert isinstance(reads, SQLiteQuickReads)
    finally:
        await reads.close()
        await read_engine.dispose()


async def test_a_statement_whose_sql_is_finished_at_execution_is_refused(quick: SQLiteQuickReads) -> None:
    """An expanding IN is rendered per execution: compiled once, it would send a placeholder."""
    with pytest.raises(ValueError, match="expanding"):
        await quick.first(select(USERS).where(USERS.c.id.in_(bindparam("ids", expanding=True))), {"ids": ["u1"]})
