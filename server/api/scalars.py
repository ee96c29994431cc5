"""The Decimal scalar: exact decimals as strings on the wire, never floats."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

import strawberry
from graphql import FloatValueNode, IntValueNode, StringValueNode, ValueNode

MAX_DECIMAL_LENGTH = 40


class InvalidDecimalError(ValueError):
    """A Decimal argument the client sent is not one: answered as bad input (see api_error_of)."""


def serialize_decimal(value: Decimal) -> str:
    return format(value, "f")


def parse_decimal(value: object) -> Decimal:
    """Variables: strings, integers, or JSON numbers (which the view decodes as exact Decimals).

    A float has already lost digits, so it is refused rather than guessed at.
    """
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise InvalidDecimalError('Decimal values are strings such as "12.34"')
    text = str(value).strip()
    if len(text) > MAX_DECIMAL_LENGTH:
        raise InvalidDecimalError("Decimal value is too long")
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise InvalidDecimalError("That is not a decimal number") from None
    if not number.is_finite():
        raise InvalidDecimalError("Decimal values must be finite")
    return number


def parse_decimal_literal(node: ValueNode, _variables: dict[str, object] | None = None) -> Decimal:
    """Literals in the query text: parsed from their own digits, never through float."""
    if isinstance(node, StringValueNode | IntValueNode | FloatValueNode):
        return parse_decimal(node.value)
    raise InvalidDecimalError('Decimal values are strings such as "12.34"')


DecimalScalar = strawberry.scalar(
    name="Decimal",
    description='An exact decimal number, sent as a string ("187.25") to keep every digit.',
    serialize=serialize_decimal,
    parse_value=parse_decimal,
    parse_literal=parse_decimal_literal,
)
