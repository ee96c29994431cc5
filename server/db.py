"""Async engine and sessions, and alembic migrations run from code."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from alembic.config import Config
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from alembic import command
from server.sqlite_driver import OneTripDBAPI

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "alembic"
MIGRATION_TIMEOUT_SECONDS = 120.0
SQLITE_POOL_TIMEOUT = 30.0
SQLITE_READERS = 4  # read connections beside the one writer


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers run beside the writer; FULL sync keeps every committed order on disk.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def _sqlite_reader_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA query_only=ON")  # a reader never writes, whatever asks it to
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def ensure_sqlite_directory(url: str) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)


def create_engine(url: str, *, echo: bool = False) -> AsyncEngine:
    ensure_sqlite_directory(url)
    if make_url(url).get_backend_name() != "sqlite":
        return create_async_engine(url, echo=echo, pool_pre_ping=True)
    # SQLite has one writer at a time. Several connections writing at once do not run in
    # parallel: the losers sleep in SQLite's busy handler (in steps of up to 100 ms),
    # which under load cost ten times the work itself. One connection, taken in turn
    # from the pool, queues the transactions in the event loop instead, at no cost.
    engine = create_async_engine(
        url,
        echo=echo,
        pool_size=1,
        max_overflow=0,
        pool_timeout=SQLITE_POOL_TIMEOUT,
        **({"module": OneTripDBAPI()} if make_url(url).get_driver_name() == "aiosqlite" else {}),
    )
    event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def create_read_engine(url: str) -> AsyncEngine | None:
    """SQLite files only: connections that only read, beside the one that writes.

    In WAL mode readers run while the writer writes, each statement seeing what was
    committed before it began. Reads from them never queue behind a write transaction on
    the writer's single connection, whose holder may be waiting its turn on a busy event
    loop. None elsewhere: other databases read from the main engine's pool."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    engine = create_async_engine(
        url,
        pool_size=SQLITE_READERS,
        max_overflow=0,
        pool_timeout=SQLITE_POOL_TIMEOUT,
        **({"module": OneTripDBAPI()} if parsed.get_driver_name() == "aiosqlite" else {}),
    )
    event.listen(engine.sync_engine, "connect", _sqlite_reader_pragmas)
    return engine


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


@asynccontextmanager
async def session_scope(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One unit of work: committed when the block ends, rolled back when it raises."""
    async with factory() as session, session.begin():
        yield session


async def ping(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # configparser interpolation: a literal % in a password must be doubled.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade_database(url: str, revision: str = "head") -> None:
    """Apply migrations; blocking (alembic drives its own event loop), so call it off the loop."""
    ensure_sqlite_directory(url)
    command.upgrade(alembic_config(url), revision)


def downgrade_database(url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(url), revision)


async def upgrade_database_async(url: str) -> None:
    await asyncio.wait_for(asyncio.to_thread(upgrade_database, url), MIGRATION_TIMEOUT_SECONDS)
