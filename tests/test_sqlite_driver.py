from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiosqlite
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from server.db import create_engine
from server.sqlite_driver import OneTripCursor

pytestmark = pytest.mark.anyio


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'one-trip.db'}")
    async with engine.begin() as connection:
        await connection.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL)"))
    yield engine
    await engine.dispose()


@pytest.fixture
def trips(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The name of every function sent to a driver thread."""
    sent: list[str] = []
    original = aiosqlite.Connection._execute

    async def counting(self: aiosqlite.Connection, fn: object, *args: object, **kwargs: object) -> object:
        sent.append(getattr(fn, "__name__", repr(fn)))
        return await original(self, fn, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counting)
    return sent


async def test_the_engine_uses_one_trip_cursors(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        raw = await connection.get_raw_connection()
        assert isinstance(raw.dbapi_connection.cursor(), OneTripCursor)  # type: ignore[union-attr]


async def test_a_query_is_one_trip_with_its_rows_and_columns(engine: AsyncEngine, trips: list[str]) -> None:
    async with engine.begin() as connection:
        await connection.execute(text("INSERT INTO t (name) VALUES ('a'), ('b'), ('c')"))
        del trips[:]
        result = await connection.execute(text("SELECT id, name FROM t WHERE name != 'b' ORDER BY id"))
        assert trips == ["_run"]
        assert list(result.keys()) == ["id", "name"]
        assert [tuple(row) for row in result] == [(1, "a"), (3, "c")]


async def test_writes_report_row_counts_and_row_ids(engine: AsyncEngine, trips: list[str]) -> None:
    async with engine.begin() as connection:
        inserted = await connection.execute(text("INSERT INTO t (name) VALUES ('x')"))
        assert inserted.lastrowid == 1
        many = await connection.execute(text("INSERT INTO t (name) VALUES (:name)"), [{"name": "y"}, {"name": "z"}])
        assert many.rowcount == 2
        updated = await connection.execute(text("UPDATE t SET name = name || '!' WHERE name != 'x'"))
        assert updated.rowcount == 2
    assert trips.count("_run") == 3


async def test_driver_errors_become_sqlalchemy_errors(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        await connection.execute(text("INSERT INTO t (name) VALUES ('same')"))
        with pytest.raises(IntegrityError):
            await connection.execute(text("INSERT INTO t (name) VALUES ('same')"))
        await connection.rollback()
        rows = (await connection.execute(text("SELECT count(*) FROM t"))).scalar_one()
    assert rows == 0


async def test_a_result_read_later_is_still_whole(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.execute(text("INSERT INTO t (name) VALUES (:name)"), [{"name": f"n{i}"} for i in range(500)])
        result = await connection.execute(text("SELECT name FROM t ORDER BY id"))
        first = result.fetchmany(2)
        await connection.execute(text("DELETE FROM t"))
        rest = result.fetchall()
    assert [row.name for row in first] == ["n0", "n1"]
    assert len(rest) == 498


async def test_results_can_be_read_in_default_sized_batches(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.execute(text("INSERT INTO t (name) VALUES ('a'), ('b'), ('c')"))
        result = await connection.execute(text("SELECT name FROM t ORDER BY id"))
        assert [row.name for row in result.fetchmany()] == ["a"]  # the DBAPI's arraysize: 1
        assert [[row.name for row in part] for part in result.partitions()] == [["b"], ["c"]]


async def test_reads_and_their_return_to_the_pool_are_one_trip(engine: AsyncEngine, trips: list[str]) -> None:
    """A read opens no transaction, so the rollbacks of closing it and of the pool taking the
    connection back have nothing to undo and make no trip."""
    async with engine.connect() as connection:
        await connection.execute(text("SELECT count(*) FROM t"))
    assert trips == ["_run"]


async def test_a_commit_is_not_followed_by_a_rollback_trip(engine: AsyncEngine, trips: list[str]) -> None:
    async with engine.begin() as connection:
        await connection.execute(text("INSERT INTO t (name) VALUES ('kept')"))
    assert trips == ["_run", "_commit_or_roll_back"]


async def test_an_open_write_transaction_is_still_rolled_back(engine: AsyncEngine, trips: list[str]) -> None:
    async with engine.connect() as connection:
        await connection.execute(text("INSERT INTO t (name) VALUES ('dropped')"))
        await connection.rollback()
        assert trips == ["_run", "rollback"]
        assert (await connection.execute(text("SELECT count(*) FROM t"))).scalar_one() == 0
    async with engine.connect() as connection:  # the pool's own rollback, of a transaction left open
        await connection.execute(text("INSERT INTO t (name) VALUES ('left open')"))
    async with engine.connect() as connection:
        assert (await connection.execute(text("SELECT count(*) FROM t"))).scalar_one() == 0


async def test_a_failed_commit_rolls_back_so_the_next_transaction_starts_clean(engine: AsyncEngine) -> None:
    """SQLite keeps a transaction open when its COMMIT fails, and SQLAlchemy does not roll it
    back: left so, the writer's one connection would carry it into every later transaction."""
    async with engine.begin() as connection:
        await connection.execute(text("CREATE TABLE parent (id INTEGER PRIMARY KEY)"))
        await connection.execute(text("CREATE TABLE child (id INTEGER PRIMARY KEY, parent INTEGER REFERENCES parent)"))
    sessions = async_sessionmaker(engine, class_=AsyncSession)
    async with sessions() as session:
        await session.execute(text("PRAGMA defer_foreign_keys=ON"))  # the foreign key is checked at COMMIT
        await session.execute(text("INSERT INTO t (name) VALUES ('refused with its transaction')"))
        await session.execute(text("INSERT INTO child (parent) VALUES (99)"))
        with pytest.raises(IntegrityError, match="FOREIGN KEY"):
            await session.commit()
    async with sessions() as session:
        await session.execute(text("INSERT INTO t (name) VALUES ('next')"))
        await session.commit()
    async with engine.connect() as connection:
        names = (await connection.execute(text("SELECT name FROM t"))).scalars().all()
        raw = await connection.get_raw_connection()
        assert not raw.driver_connection._connection.in_transaction  # type: ignore[union-attr]
    assert names == ["next"]
