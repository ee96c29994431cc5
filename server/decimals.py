"""Decimal helpers shared by every layer."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

QTY_PLACES = Decimal("0.000000001")  # share quantities: Alpaca's nine decimal places


def canonical_decimal(value: Decimal) -> Decimal:
    """Drop trailing zeros without switching to exponent notation (100.000 -> 100, 10.0 -> 10)."""
    if not value.is_finite():
        raise ValueError(f"not a finite decimal: {value}")
    if value == value.to_integral_value():
        try:
            return value.quantize(Decimal(1))
        except InvalidOperation:  # more integer digits than the context holds: leave it be
            return value
    return value.normalize()
