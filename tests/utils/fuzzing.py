"""Fuzzing the GraphQL API with Schemathesis, in-process over ASGI: the settings it runs
under, the account and orders it works on, values worth sending, and what every answer must be."""

from __future__ import annotations

import json
import logging
import socket
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import strategies as st
from schemathesis.graphql import nodes
from starlette.applications import Starlette

from server.api.errors import ErrorCode
from server.settings import Settings
from tests.utils.accounts import PASSWORD, bearer
from tests.utils.factories import make_settings

GRAPHQL_PATH = "/graphql"
USERNAME = "fuzzer"
NO_LIMIT = 1_000_000
CODES = frozenset(code.value for code in ErrorCode)
# Codes that mean the operation never ran as the signed-in user: none may appear.
NOT_RUN = frozenset({ErrorCode.RATE_LIMITED.value, ErrorCode.UNAUTHENTICATED.value})

# Listed and unlisted stocks, hard-to-borrow and unshortable ones, listed, expired and
# off-grid option contracts, and symbols the server must refuse.
SYMBOLS = [
    "AAPL",
    "MSFT",
    "SPY",
    "BRK.B",
    "GME",
    "SIRI",
    "AAPL261218C00230000",
    "SPY261218P00590000",
    "AAPL201218C00230000",
    "AAPL261218C00230001",
    "aapl",
    "ZZZZ",
]
# Decimal literals at the edges: ones the scalar must refuse, and valid ones no order can hold.
EDGE_DECIMALS = [
    "0",
    "-0",
    "-1",
    "0.0000001",
    "1E+999999",
    "-1E+999999",
    "1E-999999",
    "0E-1000000",
    "9" * 40,
    "9" * 41,
    "NaN",
    "-Infinity",
    "sNaN",
    "1_000",
    " 5 ",
    "",
    "abc",
]
EDGE_DATETIMES = [
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-12:00",
    "9999-12-31T23:59:59.999999",
    "2026-11-23T15:00:00Z",
    "2026-11-23",
    "now",
    "",
]
EDGE_DATES = ["0001-01-01", "9999-12-31", "2026-12-18", "2026-11-20", "2026-13-01", ""]
ZONES = [None, UTC, timezone(timedelta(hours=14)), timezone(timedelta(hours=-12)), timezone(timedelta(hours=5.5))]


def register_scalars() -> None:
    """Schemathesis generates only the scalars it knows; these replace its plain dates
    with naive, far-offset and out-of-range ones, and give Decimal prices, sizes and edges.
    (Its registry is process-wide: registering again replaces the same entries.)"""
    decimals = st.one_of(
        st.integers(min_value=1, max_value=20).map(str),
        st.decimals(min_value=1, max_value=1000, places=2).map(str),
        st.sampled_from(EDGE_DECIMALS),
        st.decimals(allow_nan=False, allow_infinity=False).map(str),
    )
    schemathesis.graphql.scalar(
        "Decimal", st.one_of(decimals.map(nodes.String), st.integers(min_value=-1, max_value=10**12).map(nodes.Int))
    )
    datetimes = st.datetimes(timezones=st.sampled_from(ZONES))  # years 1 to 9999, naive or at any offset
    schemathesis.graphql.scalar(
        "DateTime", st.one_of(datetimes.map(datetime.isoformat), st.sampled_from(EDGE_DATETIMES)).map(nodes.String)
    )
    schemathesis.graphql.scalar("Date", st.one_of(st.dates().map(str), st.sampled_from(EDGE_DATES)).map(nodes.String))


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def fuzz_settings(data_dir: Path) -> Settings:
    """Limits meant for floods are lifted so every generated operation really runs, and
    Alpaca is a closed loopback port: connecting it fails at once, and offline."""
    alpaca = f"127.0.0.1:{closed_port()}"
    return make_settings(
        data_dir,
        rate_limit_user_per_minute=NO_LIMIT,
        rate_limit_anonymous_per_minute=NO_LIMIT,
        rate_limit_orders_per_minute=NO_LIMIT,
        login_attempts_per_username=NO_LIMIT,
        login_attempts_per_ip=NO_LIMIT,
        alpaca_trading_url=f"http://{alpaca}",
        alpaca_data_url=f"http://{alpaca}",
        alpaca_trading_stream_url=f"ws://{alpaca}",
        alpaca_data_stream_url=f"ws://{alpaca}",
        broker_timeout_seconds=2,
    )


def load_schema(app: Starlette, config: dict[str, Any] | None = None) -> schemathesis.BaseSchema:
    """The schema as the running app introspects it. The first request starts the app's
    lifespan, which Schemathesis keeps running until `shutdown_lifespans()`."""
    # An explicit config: a schemathesis.toml found on disk must not change what runs.
    return schemathesis.graphql.from_asgi(GRAPHQL_PATH, app, config=schemathesis.Config.from_dict(config or {}))


def literal(value: str) -> str:
    return json.dumps(value)  # a JSON string of ASCII text is a GraphQL string literal too


def run_operation(schema: schemathesis.BaseSchema, label: str, query: str, token: str | None = None) -> Any:
    """One written (not generated) operation, which must succeed; its field's data."""
    type_name, field_name = label.split(".")
    case = schema[type_name][field_name].Case(body=query)
    response = case.call(headers=bearer(token) if token else None)
    assert response.status_code == 200, response.text
    result = response.json()
    assert "errors" not in result, result
    return result["data"][field_name]


@dataclass(frozen=True, slots=True)
class FuzzAccount:
    """The signed-in user every generated operation runs as, and what it already holds."""

    token: str
    user_id: str
    connection_id: str
    order_ids: list[str]
    client_order_ids: list[str]


SEED_ORDERS = {
    "fuzz-resting": 'symbol: "AAPL", side: BUY, type: LIMIT, qty: "5", limitPrice: "220", timeInForce: GTC',
    "fuzz-filled": 'symbol: "MSFT", side: BUY, qty: "10"',
    "fuzz-bracket": 'symbol: "SPY", side: BUY, type: LIMIT, qty: "2", limitPrice: "580", timeInForce: GTC, '
    'orderClass: BRACKET, takeProfit: {limitPrice: "620"}, stopLoss: {stopPrice: "560"}',
}


def open_account(schema: schemathesis.BaseSchema) -> FuzzAccount:
    """Sign up, then place a resting order, a filled one (a position) and a bracket, so that
    cancel, replace and close have something real to act on."""
    signed_up = run_operation(
        schema,
        "Mutation.register",
        f"mutation {{ register(input: {{username: {literal(USERNAME)}, email: {literal(USERNAME + '@example.com')}, "
        f"password: {literal(PASSWORD)}}}) {{ accessToken user {{ id brokerConnections {{ id }} }} }} }}",
    )
    token = signed_up["accessToken"]
    order_ids: list[str] = []
    for client_order_id, fields in SEED_ORDERS.items():
        placed = run_operation(
            schema,
            "Mutation.placeOrder",
            f"mutation {{ placeOrder(input: {{{fields}, clientOrderId: {literal(client_order_id)}}}) "
            "{ order { id status legs { id } } userErrors { code message } } }",
            token,
        )
        assert placed["userErrors"] == [], placed
        assert placed["order"]["status"] in {"NEW", "ACCEPTED", "FILLED"}, placed
        order_ids += [placed["order"]["id"], *(leg["id"] for leg in placed["order"]["legs"])]
    return FuzzAccount(
        token=token,
        user_id=signed_up["user"]["id"],
        connection_id=signed_up["user"]["brokerConnections"][0]["id"],
        order_ids=order_ids,
        client_order_ids=list(SEED_ORDERS),
    )


def _bind(dictionary: str, probability: float) -> dict[str, Any]:
    return {"dictionary": dictionary, "probability": probability}


def fuzz_config(account: FuzzAccount) -> dict[str, Any]:
    """Schemathesis config: the bearer token on every operation, and arguments that often
    (not always) name real symbols, the user's connection and orders, and sane page sizes,
    so that operations get past the first lookup into the code behind it."""
    return {
        "headers": bearer(account.token),
        "dictionaries": {
            "symbols": {"values": SYMBOLS},
            "connections": {"values": [account.connection_id]},
            "orders": {"values": account.order_ids},
            "client_order_ids": {"values": account.client_order_ids},
            "users": {"values": [account.user_id]},
            "usernames": {"values": [USERNAME]},
            "page_sizes": {"values": [1, 2, 50, 200, 500]},
        },
        "parameters": {
            "*.*.symbol": _bind("symbols", 0.8),
            "*.*.symbols[*]": _bind("symbols", 0.8),
            "*.*.underlying": _bind("symbols", 0.8),
            "*.*.search": _bind("symbols", 0.5),
            "*.*.input.symbol": _bind("symbols", 0.8),
            "*.*.connectionId": _bind("connections", 0.7),
            "*.*.input.connectionId": _bind("connections", 0.7),
            "*.*.id": _bind("orders", 0.7),
            "*.*.clientOrderId": _bind("client_order_ids", 0.5),
            "*.*.input.clientOrderId": _bind("client_order_ids", 0.3),
            "*.*.userId": _bind("users", 0.5),
            "*.*.input.username": _bind("usernames", 0.3),
            "*.*.first": _bind("page_sizes", 0.7),
        },
    }


def is_problem_record(record: logging.LogRecord) -> bool:
    return (
        record.levelno >= logging.ERROR
        or record.exc_info is not None
        or record.stack_info is not None
        or "Traceback" in record.getMessage()
    )


def _answer_problems(status_code: int, text: str, payload: Any) -> list[str]:
    if status_code >= 500:
        return [f"HTTP {status_code}"]
    if "Traceback" in text:
        return ["a traceback in the answer"]
    if not isinstance(payload, dict) or not ({"data", "errors"} & payload.keys()):
        return ["not a GraphQL answer (a JSON object with data or errors)"]
    problems = []
    for error in payload.get("errors") or []:
        code = (error.get("extensions") or {}).get("code")
        if code not in CODES:
            problems.append(f"an error without a known code: {code!r}")
        elif code == ErrorCode.INTERNAL_SERVER_ERROR.value:
            problems.append("INTERNAL_SERVER_ERROR")
        elif code in NOT_RUN:
            problems.append(f"{code}: the operation did not run as the signed-in user")
    return problems


@dataclass
class FuzzRun:
    """Sends generated cases one at a time and keeps what went wrong, with the log records
    each one produced, so one run reports every problem instead of stopping at the first."""

    caplog: pytest.LogCaptureFixture
    sent: int = 0
    answered_cleanly: int = 0
    labels: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)

    def send(self, case: schemathesis.Case) -> None:
        logged_before = len(self.caplog.records)
        response = case.call()
        self.sent += 1
        self.labels[case.operation.label] += 1
        try:
            payload = response.json()
        except ValueError:
            payload = None
        found = _answer_problems(response.status_code, response.text, payload)
        found += [
            f"logged {record.levelname}: {record.getMessage()}"
            for record in self.caplog.records[logged_before:]
            if is_problem_record(record)
        ]
        if found:
            self.problems.append(
                f"{case.operation.label}: {'; '.join(found)}\n{case.body}\n-> {response.status_code} {response.text}"
            )
        elif isinstance(payload, dict) and not payload.get("errors"):
            self.answered_cleanly += 1

    def report(self, limit: int = 10) -> str:
        shown = "\n\n".join(self.problems[:limit])
        return f"{len(self.problems)} of {self.sent} operations went wrong; the first {limit}:\n\n{shown}"
