"""The hottest one-row reads (order entry's), run with as little as possible between the
statement and the database.

Through SQLAlchemy, a one-row read on SQLite costs several times the query itself: the
pool's check-out and return, the statement's cache key (a walk over the whole statement,
each time), the execution context and the result. Measured by stubbing order entry's read
in a running server (see bench/notes/orders.md), those came to more CPU than everything
else the read does. On a SQLite file, `SQLiteQuickReads` keeps read-only connections of
its own beside the engine's and runs a statement compiled once, its parameters and
columns converted by the same column types SQLAlchemy uses, in one trip to a connection's
thread. Elsewhere `EngineQuickReads` runs the same statement through the engine, so
callers are written once.
"""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import aiosqlite
from sqlalchemy import Select
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from server.sqlite_driver import run_statement

SQLITE_QUICK_READERS = 2
_BUSY_TIMEOUT_MS = 5000

Processor = Callable[[Any], Any] | None


class QuickReads(Protocol):
    async def first(self, statement: Select[Any], parameters: Mapping[str, Any]) -> Sequence[Any] | None:
        """The statement's first row, or None."""
        ...

    async def close(self) -> None: ...


class EngineQuickReads:
    """The statement through the engine: for every database but a SQLite file."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def first(self, statement: Select[Any], parameters: Mapping[str, Any]) -> Sequence[Any] | None:
        async with self._engine.connect() as connection:
            return (await connection.execute(statement, dict(parameters))).first()

    async def close(self) -> None:
        return None  # the engine is the caller's


class PreparedSelect:
    """A Core SELECT compiled once for `dialect`: its SQL, its parameters in the order the
    SQL takes them with their types' bind processors, and its columns' result processors."""

    def __init__(self, statement: Select[Any], dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        if compiled.positiontup is None:
            raise ValueError("a positional paramstyle is needed")
        if compiled.post_compile_params or compiled.literal_execute_params:  # rendered at execution time
            raise ValueError("expanding (IN) and literal-execute parameters are not supported")
        self.sql = compiled.string
        self._compiled = compiled
        self._names = list(compiled.positiontup)
        self._binds = [compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect) for name in self._names]
        self._results: list[Processor] = [
            column.type.dialect_impl(dialect).result_processor(dialect, None) for column in statement.selected_columns
        ]

    def parameters(self, values: Mapping[str, Any]) -> tuple[Any, ...]:
        given = self._compiled.construct_params(dict(values))  # with the statement's own (its LIMIT)
        return tuple(
            value if process is None else process(value)
            for value, process in zip((given[name] for name in self._names), self._binds, strict=True)
        )

    def row(self, raw: Sequence[Any]) -> tuple[Any, ...]:
        pairs = zip(raw, self._results, strict=True)
        return tuple(value if process is None else process(value) for value, process in pairs)


class SQLiteQuickReads:
    """Read-only connections of its own to a SQLite file in WAL mode, each in its thread:
    every statement is one trip, and sees what was committed before it began."""

    def __init__(self, connections: list[aiosqlite.Connection], dialect: Dialect) -> None:
        self._connections = connections
        self._turns = itertools.cycle(connections)
        self._dialect = dialect
        self._prepared: dict[int, tuple[Select[Any], PreparedSelect]] = {}

    @classmethod
    async def open(cls, path: str, dialect: Dialect, readers: int = SQLITE_QUICK_READERS) -> SQLiteQuickReads:
        connections: list[aiosqlite.Connection] = []
        try:
            for _ in range(readers):
                connection = await aiosqlite.connect(path)
                connections.append(connection)
                await connection.execute("PRAGMA query_only=ON")  # it never writes, whatever asks it to
                await connection.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
        except BaseException:
            await asyncio.gather(*(connection.close() for connection in connections), return_exceptions=True)
            raise
        return cls(connections, dialect)

    def _prepare(self, statement: Select[Any]) -> PreparedSelect:
        # Keyed by identity, the statement kept with it: hot statements are built once, at import.
        known = self._prepared.get(id(statement))
        if known is None or known[0] is not statement:
            known = self._prepared[id(statement)] = (statement, PreparedSelect(statement, self._dialect))
        return known[1]

    async def first(self, statement: Select[Any], parameters: Mapping[str, Any]) -> Sequence[Any] | None:
        prepared = self._prepare(statement)
        values = prepared.parameters(parameters)
        connection = next(self._turns)
        try:
            _, rows, _, _ = await run_statement(connection, prepared.sql, values)
        except sqlite3.Error as error:  # as SQLAlchemy would raise it
            raise DBAPIError.instance(prepared.sql, values, error, sqlite3.Error, hide_parameters=True) from error
        return prepared.row(rows[0]) if rows else None

    async def close(self) -> None:
        await asyncio.gather(*(connection.close() for connection in self._connections), return_exceptions=True)


async def open_quick_reads(engine: AsyncEngine) -> QuickReads:
    """Its own connections for a SQLite file (aiosqlite); the engine itself elsewhere."""
    url = engine.url
    if url.get_backend_name() != "sqlite" or url.get_driver_name() != "aiosqlite" or url.query:
        return EngineQuickReads(engine)
    if url.database in (None, "", ":memory:"):
        return EngineQuickReads(engine)
    return await SQLiteQuickReads.open(url.database, engine.dialect)
