"""Throwaway databases on the real servers: SQLite files, PostgreSQL and MariaDB databases."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlmodel import SQLModel

from server.db import create_engine
from tests.utils.servers import unavailable

POSTGRES_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
MARIADB_ADMIN_URL = os.environ.get("TEST_MARIADB_URL", "mysql+aiomysql://root@127.0.0.1:3306/test")
CONNECT_TIMEOUT_SECONDS = 5

_ADMIN_URLS = {"postgresql": POSTGRES_ADMIN_URL, "mariadb": MARIADB_ADMIN_URL}
# For tests that run on every database the server supports (the servers' only with CI=true).
DATABASE_KINDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.database),
    pytest.param("mariadb", id="mariadb", marks=pytest.mark.database),
]


@asynccontextmanager
async def sqlite_with_tables(path: Path) -> AsyncIterator[AsyncEngine]:
    """The server's engine on a new SQLite file holding the project's tables, made from the models."""
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    try:
        async with engine.begin() as connection:
            await connection.run_sync(SQLModel.metadata.create_all)
        yield engine
    finally:
        await engine.dispose()


@asynccontextmanager
async def throwaway_database(kind: str, tmp_path: Path) -> AsyncIterator[str]:
    """Yield the URL of a new, empty database of `kind`; drop it afterwards."""
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'migrations.db'}"
        return
    admin_url = make_url(_ADMIN_URLS[kind])
    name = f"migtest_{uuid.uuid4().hex[:12]}"
    connect_args = (
        {"timeout": CONNECT_TIMEOUT_SECONDS} if kind == "postgresql" else {"connect_timeout": CONNECT_TIMEOUT_SECONDS}
    )
    admin = create_async_engine(admin_url, isolation_level="AUTOCOMMIT", connect_args=connect_args)
    try:
        try:
            async with admin.connect() as connection:
                await connection.execute(text(f"CREATE DATABASE {name}"))
        except (OSError, TimeoutError, OperationalError, InterfaceError) as error:
            unavailable(f"{kind} at {admin_url.host}:{admin_url.port}", error)
        try:
            yield admin_url.set(database=name).render_as_string(hide_password=False)
        finally:
            force = " WITH (FORCE)" if kind == "postgresql" else ""
            async with admin.connect() as connection:
                await connection.execute(text(f"DROP DATABASE IF EXISTS {name}{force}"))
    finally:
        await admin.dispose()
