from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.dialects import mysql, postgresql, sqlite

from server.db_types import Money, UTCDateTime
from server.decimals import canonical_decimal


@pytest.mark.parametrize(
    ("value", "text"),
    [("100.000", "100"), ("1E+2", "100"), ("0.10", "0.1"), ("-3.500", "-3.5"), ("0.000000001", "1E-9")],
)
def test_canonical_decimal_drops_trailing_zeros(value: str, text: str) -> None:
    assert str(canonical_decimal(Decimal(value))) == text


@given(st.decimals(allow_nan=False, allow_infinity=False, places=9, min_value=-(10**18), max_value=10**18))
def test_money_is_exact_as_sqlite_text(value: Decimal) -> None:
    money = Money()
    dialect = sqlite.dialect()
    stored = money.process_bind_param(value, dialect)
    assert isinstance(stored, str)
    assert "E" not in stored
    assert money.process_result_value(stored, dialect) == value


def test_money_refuses_floats_and_nan() -> None:
    with pytest.raises(TypeError):
        Money().process_bind_param(1.5, postgresql.dialect())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="finite"):
        Money().process_bind_param(Decimal("NaN"), postgresql.dialect())


@pytest.mark.parametrize("value", ["1.0000000001", "10000000000000000000", "-10000000000000000000"])
@pytest.mark.parametrize("dialect", [sqlite.dialect(), postgresql.dialect(), mysql.dialect()])
def test_money_refuses_what_a_dialect_would_round_or_reject(value: str, dialect: object) -> None:
    with pytest.raises(ValueError, match=r"decimal places|out of range"):
        Money().process_bind_param(Decimal(value), dialect)  # type: ignore[arg-type]


def test_datetimes_must_be_aware() -> None:
    with pytest.raises(ValueError, match="aware"):
        UTCDateTime().process_bind_param(datetime(2026, 1, 1), sqlite.dialect())  # noqa: DTZ001


def test_datetimes_come_back_aware_utc_from_zoneless_databases() -> None:
    value = UTCDateTime().process_result_value(datetime(2026, 1, 1, 12), mysql.dialect())  # noqa: DTZ001
    assert value is not None
    assert value.utcoffset() is not None
    assert value.isoformat() == "2026-01-01T12:00:00+00:00"


def test_canonical_decimal_copes_with_huge_integers() -> None:
    assert canonical_decimal(Decimal("1E+40")) == Decimal("1E+40")
