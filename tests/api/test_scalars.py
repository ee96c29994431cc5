from __future__ import annotations

import json
import logging
from decimal import Decimal
from typing import Any

import httpx
import pytest
from graphql import FloatValueNode, IntValueNode, ListValueNode, StringValueNode

from server.api.http import TradingGraphQL
from server.api.scalars import parse_decimal, parse_decimal_literal, serialize_decimal
from tests.utils.graphql import error_codes, execute


def test_literals_keep_every_digit() -> None:
    assert parse_decimal_literal(FloatValueNode(value="0.10000000000000000001")) == Decimal("0.10000000000000000001")
    assert parse_decimal_literal(IntValueNode(value="12")) == Decimal(12)
    assert parse_decimal_literal(StringValueNode(value="187.25")) == Decimal("187.25")
    with pytest.raises(ValueError, match="strings"):
        parse_decimal_literal(ListValueNode(values=()))


def test_json_numbers_arrive_as_exact_decimals() -> None:
    decoded = TradingGraphQL.decode_json(None, b'{"qty": 0.10000000000000000001, "n": 3}')  # type: ignore[arg-type]
    assert decoded == {"qty": Decimal("0.10000000000000000001"), "n": 3}
    assert parse_decimal(decoded["qty"]) == Decimal("0.10000000000000000001")  # type: ignore[index]
    assert json.loads("1") == 1


@pytest.mark.parametrize("value", [1.5, True, None, [], "NaN", "Infinity", "1e", "x" * 41])
def test_bad_decimals_are_refused(value: object) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each has its own message
        parse_decimal(value)


def test_serialisation_never_uses_exponents() -> None:
    assert serialize_decimal(Decimal("1E+2")) == "100"
    assert serialize_decimal(Decimal("1E-9")) == "0.000000001"


CHAIN_FROM = 'query($min: Decimal) { optionChain(underlying: "AAPL", minStrike: $min) { symbol } }'


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("query", "variables"),
    [
        pytest.param('{ optionChain(underlying: "AAPL", minStrike: "Infinity") { symbol } }', None, id="infinite"),
        pytest.param('{ optionChain(underlying: "AAPL", minStrike: "abc") { symbol } }', None, id="not-a-number"),
        pytest.param('{ optionChain(underlying: "AAPL", minStrike: [1]) { symbol } }', None, id="a-list"),
        pytest.param(CHAIN_FROM, {"min": "NaN"}, id="variable-nan"),
        pytest.param(CHAIN_FROM, {"min": "1" * 41}, id="variable-too-long"),
        pytest.param(CHAIN_FROM, {"min": True}, id="variable-boolean"),
    ],
)
async def test_a_refused_decimal_argument_is_bad_user_input(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture, query: str, variables: dict[str, Any] | None
) -> None:
    """Found by the fuzzer: the scalar's refusal was masked as INTERNAL_SERVER_ERROR (and, in
    the query text, logged with a traceback)."""
    result = await execute(client, query, variables)
    assert error_codes(result) == ["BAD_USER_INPUT"], result
    assert [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info] == []
