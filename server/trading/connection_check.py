"""Testing a user's broker connections (the seed's test-connection): can the broker be
reached with the stored keys, what does it say about the account, and does market data
come through on the connection's feed. Every check runs with the broker timeout; a failure
is reported with a code, never raised."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from server.brokers.base import (
    Broker,
    BrokerAuthError,
    BrokerError,
    BrokerRateLimitedError,
    BrokerUnavailableError,
)
from server.models import BrokerConnection

T = TypeVar("T")
PROBE_SYMBOL = "AAPL"  # listed by Alpaca and by the paper exchange alike


@dataclass(frozen=True, slots=True)
class Feeds:
    stocks: str
    options: str


@dataclass(frozen=True, slots=True)
class ConnectionCheck:
    connection: BrokerConnection
    reachable: bool
    latency_ms: float | None = None
    account_status: str | None = None
    account_number: str | None = None
    market_data: bool = False
    market_open: bool | None = None
    stock_feed: str | None = None
    option_feed: str | None = None
    problem_code: str | None = None
    problem: str | None = None


def problem_of(error: BaseException) -> tuple[str, str]:
    if isinstance(error, BrokerAuthError):
        return "BROKER_AUTH_FAILED", "The broker refused this connection's API keys."
    if isinstance(error, BrokerRateLimitedError):
        return "RATE_LIMITED", "The broker is rate limiting this account; try again shortly."
    if isinstance(error, BrokerUnavailableError):
        return "BROKER_UNAVAILABLE", "The broker could not be reached or did not answer in time."
    return "BROKER_ERROR", "The broker refused the check."


async def check_connection(
    connection: BrokerConnection,
    broker: Broker,
    feeds: Feeds,
    call: Callable[[Awaitable[T]], Awaitable[T]],
) -> ConnectionCheck:
    started = time.perf_counter()
    try:
        account = await call(broker.get_account())
    except BrokerError as error:
        code, message = problem_of(error)
        return ConnectionCheck(connection, reachable=False, problem_code=code, problem=message)
    latency_ms = round((time.perf_counter() - started) * 1000, 1)
    clock, quotes = await asyncio.gather(
        call(broker.clock()), call(broker.get_quotes([PROBE_SYMBOL])), return_exceptions=True
    )
    problem = next((r for r in (clock, quotes) if isinstance(r, BaseException)), None)
    if problem is not None and not isinstance(problem, BrokerError):
        raise problem
    code, message = problem_of(problem) if problem is not None else (None, None)
    return ConnectionCheck(
        connection,
        reachable=True,
        latency_ms=latency_ms,
        account_status=account.status,
        account_number=account.account_number,
        market_data=not isinstance(quotes, BaseException),
        market_open=None if isinstance(clock, BaseException) else clock.is_open,
        stock_feed=feeds.stocks,
        option_feed=feeds.options,
        problem_code=code,
        problem=message,
    )
