"""Decimal helpers shared by every layer."""

from __future__ import annotations

from decimal import Decimal


def canonical_decimal(value: Decimal) -> Decimal:
    """Drop trailing zeros without switching to exponent notation (100.000 -> 100, 10.0 -> 10)."""
    if not value.is_finite():
        raise ValueError(f"not a finite decimal: {value}")
    if value == value.to_integral_value():
        return value.quantize(Decimal(1))
    return value.normalize()
