"""Column types that behave the same on SQLite, PostgreSQL and MariaDB.

- `Money` keeps `Decimal` exact everywhere. SQLite has no decimal type (SQLAlchemy would
  round-trip through float), so there the value is stored as canonical text.
- `UTCDateTime` only accepts aware datetimes, stores UTC, and gives back aware UTC
  datetimes even where the database drops the zone (SQLite, MariaDB).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import DateTime, Dialect, Numeric, String
from sqlalchemy.dialects.mysql import DATETIME as MYSQL_DATETIME
from sqlalchemy.types import TypeDecorator, TypeEngine

from server.decimals import canonical_decimal

_NAIVE_DIALECTS = frozenset({"mysql", "mariadb"})
MONEY_PRECISION = 28
MONEY_SCALE = 9
MONEY_LIMIT = Decimal(10) ** (MONEY_PRECISION - MONEY_SCALE)


class Money(TypeDecorator[Decimal]):
    impl = Numeric(MONEY_PRECISION, MONEY_SCALE, asdecimal=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(64))
        return dialect.type_descriptor(Numeric(MONEY_PRECISION, MONEY_SCALE, asdecimal=True))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, Decimal):
            raise TypeError(f"Money columns take Decimal, not {type(value).__name__}")
        value = canonical_decimal(value)
        # Refuse here what PostgreSQL/MariaDB would round silently or reject late, so every
        # dialect stores exactly the same values.
        if value.as_tuple().exponent < -MONEY_SCALE:  # type: ignore[operator]
            raise ValueError(f"{value} has more than {MONEY_SCALE} decimal places")
        if abs(value) >= MONEY_LIMIT:
            raise ValueError(f"{value} is out of range for a money column")
        return format(value, "f") if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return canonical_decimal(Decimal(str(value)))


class UTCDateTime(TypeDecorator[datetime]):
    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name in _NAIVE_DIALECTS:
            # MariaDB's DATETIME keeps whole seconds unless asked for microseconds.
            return dialect.type_descriptor(MYSQL_DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: times must be timezone-aware")
        utc = value.astimezone(UTC)
        # These databases keep no zone: hand them naive UTC rather than let a driver guess.
        return utc.replace(tzinfo=None) if dialect.name in _NAIVE_DIALECTS | {"sqlite"} else utc

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)
