"""SQLAlchemy's aiosqlite adapter, with each statement run in one trip to the driver's thread.

aiosqlite runs a SQLite connection in a thread of its own, and every call is a trip there
and back: SQLAlchemy's adapter makes three or four per statement (open a cursor, execute,
fetch the rows, close the cursor). Each trip wakes the thread and then the event loop, and
under load those wake-ups cost more CPU than the statements themselves. Here a statement
is one trip: the thread opens a cursor, executes, fetches every row, notes the
description, row count and last row id, and closes the cursor; the answer is read from
memory afterwards. Server-side cursors and rollbacks are aiosqlite's own, but a rollback
with no transaction open (the pool rolls back every connection it takes back, after a
commit or after reads, which open none) makes no trip at all.

A COMMIT that fails rolls the transaction back in the same trip. SQLite keeps the
transaction open after a failed COMMIT (a deferred constraint broken, the database busy),
while SQLAlchemy takes it as ended and hands the connection back to the pool without a
rollback: the writer's one connection would carry it into every later transaction, whose
commits would then fail with it, or commit writes whose callers were told they failed.
"""

from __future__ import annotations

import collections
import sqlite3
from collections.abc import Sequence
from typing import Any

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.util import await_

Description = tuple[tuple[Any, ...], ...] | None


Outcome = tuple[Description, list[Any], int, int | None]  # description, rows, rowcount, lastrowid


def _run(connection: sqlite3.Connection, operation: str, parameters: Any, many: bool) -> Outcome:
    """In the driver's thread: the whole statement, its rows included."""
    cursor = connection.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        elif parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else []
        return description, rows, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


async def run_statement(
    driver: aiosqlite.Connection, operation: str, parameters: Any, *, many: bool = False
) -> Outcome:
    """One statement, rows and all, in one trip to `driver`'s thread."""
    return await driver._execute(_run, driver._conn, operation, parameters, many)


def _commit_or_roll_back(connection: sqlite3.Connection) -> None:
    """In the driver's thread: COMMIT, and when it fails, ROLLBACK before the error is raised."""
    try:
        connection.commit()
    except Exception:
        if connection.in_transaction:
            connection.rollback()
        raise


class OneTripCursor(AsyncAdapt_aiosqlite_cursor):
    __slots__ = ("_description", "_lastrowid", "_rowcount", "arraysize")

    def __init__(self, adapt_connection: AsyncAdapt_aiosqlite_connection) -> None:
        # No driver cursor is opened here: each statement opens and closes its own.
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = None  # type: ignore[assignment]
        self._soft_closed_memoized = {}  # type: ignore[assignment]
        self._rows = collections.deque()
        self._description: Description = None
        self._rowcount = -1
        self._lastrowid: int | None = None
        self.arraysize = 1  # the DBAPI's default for fetchmany() without a size

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> Any:
        return self._lastrowid

    def nextset(self) -> None:  # SQLite statements have one result set
        return None

    def setinputsizes(self, *sizes: Any) -> None:
        return None

    async def _async_soft_close(self) -> None:
        return None

    def close(self) -> None:
        self._rows.clear()

    def execute(self, operation: Any, parameters: Any = None) -> None:
        self._one_trip(operation, parameters, many=False)

    def executemany(self, operation: Any, seq_of_parameters: Sequence[Any]) -> None:
        self._one_trip(operation, seq_of_parameters, many=True)

    def _one_trip(self, operation: str, parameters: Any, *, many: bool) -> None:
        try:
            outcome = await_(self._trip(operation, parameters, many))
        except Exception as error:  # noqa: BLE001 - translated to the DBAPI's errors, as SQLAlchemy's own cursor does
            self._adapt_connection._handle_exception(error)
        self._description, rows, self._rowcount, self._lastrowid = outcome
        self._rows = collections.deque(rows)

    async def _trip(self, operation: str, parameters: Any, many: bool) -> Outcome:
        driver: aiosqlite.Connection = self._connection  # type: ignore[assignment]
        async with self._adapt_connection._execute_mutex:
            return await run_statement(driver, operation, parameters, many=many)


class _OneTripConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ()
    _cursor_cls = OneTripCursor

    def commit(self) -> None:
        driver: aiosqlite.Connection = self._connection  # type: ignore[assignment]
        if driver._connection is None:  # closed: nothing to commit, as SQLAlchemy's adapter has it
            return
        try:
            await_(driver._execute(_commit_or_roll_back, driver._conn))
        except Exception as error:  # noqa: BLE001 - translated to the DBAPI's errors, as the adapter does
            self._handle_exception(error)

    def rollback(self) -> None:
        # The pool rolls back every connection it takes back: after a commit, or after reads
        # that never opened a transaction, there is nothing to undo, and no trip is made.
        driver: sqlite3.Connection | None = self._connection._connection  # type: ignore[attr-defined]
        if driver is not None and not driver.in_transaction:
            return
        super().rollback()


class OneTripDBAPI(AsyncAdapt_aiosqlite_dbapi):
    """Pass as `module=` to `create_async_engine` for a `sqlite+aiosqlite` URL."""

    def __init__(self) -> None:
        super().__init__(aiosqlite, sqlite3)

    def connect(self, *args: Any, **kwargs: Any) -> AsyncAdapt_aiosqlite_connection:
        adapted = super().connect(*args, **kwargs)
        return _OneTripConnection(self, adapted._connection)
