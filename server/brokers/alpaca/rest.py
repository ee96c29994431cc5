"""alpaca-py's REST clients made fit for an asyncio server.

alpaca-py's clients are blocking (`requests`), set no request timeout, and retry 429s by
sleeping 3 s in the calling thread. Here every call runs in a worker thread from a
bounded pool, with alpaca-py's own retries off and a timeout on each HTTP request; this
module retries instead, on the event loop: 429 and 5xx with backoff and jitter,
honouring Retry-After, all within one deadline per call. A per-account limiter keeps
the account under Alpaca's 200 requests a minute. Errors become the broker seam's:
bad keys -> BrokerAuthError, refusals -> OrderRejectedError with the broker's reason,
everything that leaves us without an answer -> BrokerUnavailableError. No URL, key or
traceback from alpaca-py or requests travels further than the log line that names the
error's type.

`requests.Session` is not thread-safe by contract, so each account keeps a small stack
of client sets and a thread takes one for the length of its call.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TypeVar

import requests
from aiolimiter import AsyncLimiter
from alpaca.common.exceptions import APIError
from alpaca.common.rest import RESTClient
from alpaca.data.historical.option import OptionHistoricalDataClient
from alpaca.data.historical.stock import StockHistoricalDataClient
from alpaca.trading.client import TradingClient
from pydantic import ValidationError

from server.brokers.base import (
    BrokerAuthError,
    BrokerRateLimitedError,
    BrokerUnavailableError,
    NotFoundError,
    OrderRejectedError,
    outcome_of,
)
from server.streams.backoff import Backoff
from server.threads import WorkerSlots, WorkerTimeoutError

logger = logging.getLogger(__name__)
T = TypeVar("T")

AUTH_FAILURE_STATUSES = frozenset({401})
MAX_RETRY_AFTER_SECONDS = 60.0
MAX_REASON_LENGTH = 200
_URL = re.compile(r"\b\w+://\S+")
# A leaky bucket of C calls per T seconds lets through at most C + 60*C/T in any rolling
# minute; with T = 6 and C = limit // 11 that stays under Alpaca's limit.
LIMITER_PERIOD_SECONDS = 6.0


def tame(client: RESTClient, timeout_seconds: float) -> None:
    """No retries by sleeping in a pool thread, and no request that waits forever.

    alpaca-py has no public knobs for either (retry_attempts=0 is read as "default").
    """
    client._retry = 0
    client._session.request = partial(client._session.request, timeout=timeout_seconds)  # type: ignore[method-assign]


def account_limiter(requests_per_minute: int) -> AsyncLimiter:
    return AsyncLimiter(max(1, requests_per_minute // 11), LIMITER_PERIOD_SECONDS)


@dataclass(frozen=True, slots=True)
class AlpacaEndpoints:
    """Where Alpaca is; None means alpaca-py's own default (paper or live by the connection)."""

    trading_url: str | None = None
    data_url: str | None = None
    trading_stream_url: str | None = None
    data_stream_url: str = "wss://stream.data.alpaca.markets"
    stock_feed: str = "iex"
    option_feed: str = "indicative"


@dataclass(frozen=True, slots=True)
class CallPolicy:
    timeout_seconds: float = 10.0
    max_attempts: int = 4
    backoff: Backoff = field(default_factory=lambda: Backoff(first_seconds=0.25, max_seconds=4.0))
    # Hears how each attempt ended (`attempt_outcome`): the metrics. It must not raise.
    on_attempt: Callable[[str], None] | None = None


@dataclass(slots=True)
class AlpacaClients:
    trading: TradingClient
    stocks: StockHistoricalDataClient
    options: OptionHistoricalDataClient


@dataclass(frozen=True, slots=True)
class AlpacaKeys:
    api_key: str = field(repr=False)
    secret_key: str = field(repr=False)
    paper: bool = True


def build_clients(endpoints: AlpacaEndpoints, keys: AlpacaKeys, timeout_seconds: float) -> AlpacaClients:
    clients = AlpacaClients(
        TradingClient(keys.api_key, keys.secret_key, paper=keys.paper, url_override=endpoints.trading_url),
        StockHistoricalDataClient(keys.api_key, keys.secret_key, url_override=endpoints.data_url),
        OptionHistoricalDataClient(keys.api_key, keys.secret_key, url_override=endpoints.data_url),
    )
    for client in (clients.trading, clients.stocks, clients.options):
        tame(client, timeout_seconds)
    return clients


def broker_reason(error: APIError) -> tuple[int | None, str]:
    """The broker's error code and message, without URLs, cut short; never raises."""
    try:
        body = json.loads(str(error))
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return None, "the broker refused the request"
    code = body.get("code")
    message = _URL.sub("", str(body.get("message") or "the broker refused the request")).strip()
    return (code if isinstance(code, int) else None), message[:MAX_REASON_LENGTH]


def _retry_after(error: APIError) -> float | None:
    response = error.response
    value = response.headers.get("Retry-After") if response is not None else None
    try:
        return min(MAX_RETRY_AFTER_SECONDS, max(0.0, float(value))) if value is not None else None
    except ValueError:
        return None


class _Retry(Exception):
    """A failure worth another attempt (if the call allows it and the deadline has room)."""

    def __init__(self, failure: BrokerUnavailableError) -> None:
        super().__init__(str(failure))
        self.failure = failure


class AlpacaRest:
    """Every REST call of one Alpaca account."""

    def __init__(
        self,
        make_clients: Callable[[], AlpacaClients],
        workers: WorkerSlots,
        limiter: AsyncLimiter,
        policy: CallPolicy,
        in_flight: asyncio.Semaphore,
    ) -> None:
        """`in_flight`: the account's share of the worker threads, so one account whose
        calls hang cannot take every thread from the others."""
        self._make_clients = make_clients
        self._idle: list[AlpacaClients] = []
        self._workers = workers
        self._limiter = limiter
        self._in_flight = in_flight
        self._policy = policy

    async def call(self, action: Callable[[AlpacaClients], T], *, retry_failures: bool = True) -> T:
        """`action` in a worker thread with a set of clients, retried within the deadline.

        `action` both calls alpaca-py and converts its answer, so the conversion's work is
        off the loop too and an answer the domain cannot represent is a mapped error.
        `retry_failures=False` for calls that must not run twice (placing an order): only a
        429, which Alpaca answers before doing anything, is retried for them.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._policy.timeout_seconds
        attempt = 0
        while True:
            attempt += 1
            try:
                result = await self._attempt(action, deadline)
            except _Retry as retry:
                self._observe(retry)
                failure = retry.failure
                rate_limited = isinstance(failure, BrokerRateLimitedError)
                if attempt >= self._policy.max_attempts or not (retry_failures or rate_limited):
                    raise failure from None
                told = failure.retry_after if isinstance(failure, BrokerRateLimitedError) else None
                wait = told if told is not None else self._policy.backoff.delay(attempt)
                if loop.time() + wait >= deadline:
                    raise failure from None
                await asyncio.sleep(wait)
            except Exception as error:
                self._observe(error)
                raise
            else:
                self._observe(None)
                return result

    def _observe(self, error: Exception | None) -> None:
        if self._policy.on_attempt is not None:
            self._policy.on_attempt(attempt_outcome(error))

    async def _attempt(self, action: Callable[[AlpacaClients], T], deadline: float) -> T:
        """One request: a place among the account's calls, then a token of its rate, then a thread.

        Waiting for the first two sends nothing, so running out of time there is this
        server's own limit (BrokerRateLimitedError: certainly not sent), not the broker's silence.
        """
        try:
            async with asyncio.timeout_at(deadline):
                await self._in_flight.acquire()
        except TimeoutError:
            raise BrokerRateLimitedError() from None
        try:
            try:
                async with asyncio.timeout_at(deadline):
                    await self._limiter.acquire()
            except TimeoutError:
                raise BrokerRateLimitedError() from None
            try:
                async with asyncio.timeout_at(deadline):
                    return await self._run(action)
            except TimeoutError:
                raise BrokerUnavailableError("the broker did not answer in time") from None
        finally:
            self._in_flight.release()

    async def _run(self, action: Callable[[AlpacaClients], T]) -> T:
        try:
            return await self._workers.run(self._with_clients, action)
        except WorkerTimeoutError:
            raise BrokerUnavailableError("the broker did not answer in time") from None
        except APIError as error:
            raise _mapped(error) from None
        except requests.RequestException as error:
            logger.warning("broker request failed", extra={"error": type(error).__name__})
            raise _Retry(BrokerUnavailableError("the broker could not be reached")) from None
        except (ValidationError, ValueError, KeyError, TypeError) as error:
            logger.warning("broker answer not understood", extra={"error": type(error).__name__})
            raise BrokerUnavailableError("the broker's answer was not understood") from None

    def _with_clients(self, action: Callable[[AlpacaClients], T]) -> T:
        try:
            clients = self._idle.pop()  # atomic: two threads never take the same set
        except IndexError:
            clients = self._make_clients()
        try:
            return action(clients)
        finally:
            self._idle.append(clients)


def attempt_outcome(error: Exception | None) -> str:
    """How one attempt ended: as any broker call (`outcome_of`), except that a retried 429 is
    rate_limited, a retried failure unavailable, and a refusal by this server's own per-account
    limit (no room in time) throttled."""
    if isinstance(error, _Retry):
        return "rate_limited" if isinstance(error.failure, BrokerRateLimitedError) else "unavailable"
    if isinstance(error, BrokerRateLimitedError):
        return "throttled"
    return outcome_of(error)


def _mapped(error: APIError) -> Exception:
    status = error.status_code or 0
    code, reason = broker_reason(error)
    if status in AUTH_FAILURE_STATUSES or (status == 403 and code is None and "subscription" not in reason):
        # Alpaca answers bad or revoked keys with 401, or with a bare 403 "forbidden."; its
        # refusals of orders (buying power) carry a code, a data plan's refusal says so.
        return BrokerAuthError("the broker refused the connection's API keys")
    if status == 429:
        return _Retry(BrokerRateLimitedError(_retry_after(error)))
    if status >= 500:
        logger.warning("broker answered %s", status)
        return _Retry(BrokerUnavailableError(f"the broker answered {status}"))
    if status == 404:
        return NotFoundError(_what_was_missing(reason))
    return OrderRejectedError(reason, code=code or status * 100000, status=status)


def _what_was_missing(reason: str) -> str:
    return reason.removesuffix(" not found").removesuffix(" does not exist") or "resource"
