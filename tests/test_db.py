"""SQLite's read connections: they read beside an open write, see only what is committed,
and never write."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from server.db import create_engine, create_read_engine

pytestmark = pytest.mark.anyio

BOUND_SECONDS = 5.0


async def test_readers_read_beside_an_open_write_see_only_commits_and_never_write(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'read.db'}"
    writer = create_engine(url)
    reader = create_read_engine(url)
    assert reader is not None
    try:
        async with writer.begin() as connection:
            await connection.execute(text("CREATE TABLE t (name TEXT NOT NULL)"))
            await connection.execute(text("INSERT INTO t VALUES ('committed')"))
        async with writer.connect() as writing:  # the writer's one connection, in a write transaction
            await writing.execute(text("INSERT INTO t VALUES ('pending')"))
            async with asyncio.timeout(BOUND_SECONDS), reader.connect() as reading:
                names = (await reading.execute(text("SELECT name FROM t"))).scalars().all()
                assert names == ["committed"]
                with pytest.raises(OperationalError, match="readonly"):
                    await reading.execute(text("INSERT INTO t VALUES ('from a reader')"))
            await writing.commit()
        async with reader.connect() as reading:
            names = (await reading.execute(text("SELECT name FROM t ORDER BY name"))).scalars().all()
        assert names == ["committed", "pending"]
    finally:
        await writer.dispose()
        await reader.dispose()


@pytest.mark.parametrize(
    "url", ["sqlite+aiosqlite:///:memory:", "postgresql+asyncpg://u@127.0.0.1/db", "mysql+aiomysql://u@127.0.0.1/db"]
)
def test_other_databases_read_through_the_main_engine(url: str) -> None:
    assert create_read_engine(url) is None
