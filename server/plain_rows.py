"""Table rows read with Core, as plain table models: a hot read with no ORM session.

An ORM session, its identity map and its instance loading cost several times the query of
a one-row read. Rows built here are what `model_construct` builds: the columns' values,
already converted by their column types, and none of the ORM's bookkeeping, so no session
can take them and setting an attribute fails. Read them; change them through the ORM.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Column
from sqlmodel import SQLModel


class PlainRows:
    """Several tables' rows side by side in one result row (a join), each as its model."""

    def __init__(self, *models: type[SQLModel]) -> None:
        self.columns: list[Column[Any]] = []
        self._layout: list[tuple[type[SQLModel], list[str], int, int]] = []
        for model in models:
            table = model.__table__  # type: ignore[attr-defined]
            start = len(self.columns)
            keys = [column.key for column in table.columns]
            (primary_key,) = table.primary_key.columns
            self._layout.append((model, keys, start, start + keys.index(primary_key.key)))
            self.columns += list(table.columns)

    def __call__(self, row: Sequence[Any]) -> tuple[Any, ...]:
        """One model per table; None for a table the row has no match in (an outer join's
        missing side, whose primary key reads NULL)."""
        return tuple(
            None if row[key_at] is None else model.model_construct(**dict(zip(keys, row[start:], strict=False)))
            for model, keys, start, key_at in self._layout
        )
