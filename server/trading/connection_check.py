"""Testing a user's broker connections (the seed's test-connection): can the broker be
reached with the stored keys, what does it say about the account, and does market data
come through on the connection's feed. Every check runs with the broker timeout; a failure
is reported, never raised."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from server.brokers.base import Broker, BrokerError
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
    failure: BrokerError | None = None  # the first check that failed


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
        return ConnectionCheck(connection, reachable=False, failure=error)
    latency_ms = round((time.perf_counter() - started) * 1000, 1)
    clock, quotes = await asyncio.gather(
        call(broker.clock()), call(broker.get_quotes([PROBE_SYMBOL])), return_exceptions=True
    )
    failure = next((r for r in (clock, quotes) if isinstance(r, BaseException)), None)
    if failure is not None and not isinstance(failure, BrokerError):
        raise failure
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
        failure=failure,
    )
