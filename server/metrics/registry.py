"""The server's Prometheus metrics: one registry per app, and the only ways to move them.

Every recording method is cheap, synchronous and never raises: a metric is not worth a
failed request. Label values are bounded (see labels.py); none carries a user, an
address, a symbol, an order id or anything secret.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import ParamSpec

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, PlatformCollector, ProcessCollector

from server.brokers.base import outcome_of
from server.brokers.domain import OrderStatus
from server.metrics.labels import CODE, NAME, OTHER, BoundedLabel, provider_of

logger = logging.getLogger(__name__)
P = ParamSpec("P")

MAX_OPERATION_NAMES = 100
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
OPERATION_TYPES = frozenset({"query", "mutation", "subscription"})
LIMITERS = ("user", "anonymous", "login_username", "login_ip", "orders", "alpaca", "alpaca_account")
UPSTREAM_STREAMS = frozenset({"market_stocks", "market_options", "trade_updates"})
ALPACA_OUTCOMES_LIMITED = {"rate_limited": "alpaca", "throttled": "alpaca_account"}


def _never_raises(method: Callable[P, None]) -> Callable[P, None]:
    reported = False

    @functools.wraps(method)
    def record(*args: P.args, **kwargs: P.kwargs) -> None:
        nonlocal reported
        try:
            method(*args, **kwargs)
        except Exception:
            if not reported:  # once: a broken metric must not flood the log either
                reported = True
                logger.exception("recording a metric failed", extra={"metric": method.__name__})

    return record


class UpstreamStream:
    """One upstream connection's share of the stream gauges. `up` and `down` balance
    whatever order and however often they come, so the gauge never drifts."""

    def __init__(self, metrics: Metrics, broker: str, stream: str) -> None:
        self._metrics = metrics
        self._labels = (broker, stream)
        self._active = metrics._upstream.labels(broker, stream)
        self._up = False

    @_never_raises
    def up(self) -> None:
        if not self._up:
            self._up = True
            self._active.inc()
            self._metrics._upstream_connects.labels(*self._labels).inc()

    @_never_raises
    def down(self) -> None:
        if self._up:
            self._up = False
            self._active.dec()

    @_never_raises
    def failed(self, reason: str) -> None:
        self._metrics._upstream_failures.labels(*self._labels, self._metrics._reasons(reason)).inc()


class Metrics:
    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        self._operation_names = BoundedLabel(NAME, MAX_OPERATION_NAMES)
        self._codes = BoundedLabel(CODE, 50)
        self._fields = BoundedLabel(NAME, 50)
        self._methods = BoundedLabel(NAME, 50)
        self._statuses = BoundedLabel(NAME, 30)
        self._reasons = BoundedLabel(NAME, 20)

        self._operations = Counter(
            "graphql_operations",
            "GraphQL operations by type, operation name and outcome (ok, or the first error's code).",
            ["type", "operation", "outcome"],
            registry=registry,
        )
        self._operation_seconds = Histogram(
            "graphql_operation_duration_seconds",
            "Time to answer a query or mutation, parsing and validation included.",
            ["type", "operation"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self._subscriptions = Gauge(
            "graphql_subscriptions_active", "Subscriptions running now, by root field.", ["field"], registry=registry
        )
        self._websockets = Gauge(
            "websocket_connections_active",
            "WebSocket connections open now, by subprotocol.",
            ["protocol"],
            registry=registry,
        )
        self._http = Counter(
            "http_requests",
            "HTTP requests by route, method and status.",
            ["route", "method", "status"],
            registry=registry,
        )
        self._http_seconds = Histogram(
            "http_request_duration_seconds",
            "Time until an HTTP response starts, by route.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self._upstream = Gauge(
            "upstream_streams_active",
            "Live connections to brokers' streams (market data, trade updates), by broker and stream.",
            ["broker", "stream"],
            registry=registry,
        )
        self._upstream_connects = Counter(
            "upstream_stream_connects",
            "Connections made to brokers' streams, reconnections included.",
            ["broker", "stream"],
            registry=registry,
        )
        self._upstream_failures = Counter(
            "upstream_stream_failures",
            "Broker streams refused or given up, by reason.",
            ["broker", "stream", "reason"],
            registry=registry,
        )
        self._broker_calls = Counter(
            "broker_calls",
            "Calls to brokers by broker, method and outcome.",
            ["broker", "method", "outcome"],
            registry=registry,
        )
        self._broker_seconds = Histogram(
            "broker_call_duration_seconds",
            "Time a broker call took, retries included.",
            ["broker", "method"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self._alpaca_requests = Counter(
            "alpaca_requests",
            "Attempts at Alpaca's REST APIs by outcome (rate_limited: Alpaca answered 429; "
            "throttled: this server's per-account limit left no room before the deadline).",
            ["outcome"],
            registry=registry,
        )
        self._order_statuses = Counter(
            "orders_status_changes",
            "Orders reaching a status in the ledger (a new order counts its first status).",
            ["status"],
            registry=registry,
        )
        self._order_rejections = Counter(
            "orders_rejected", "Orders rejected, by reason code.", ["code"], registry=registry
        )
        self._rate_limited = Counter(
            "rate_limit_rejections", "Calls refused by a rate limit, by limiter.", ["limiter"], registry=registry
        )
        for limiter in LIMITERS:  # present at zero, so a rate() over them works from the start
            self._rate_limited.labels(limiter)

    # ----- GraphQL and transports -----------------------------------------------------

    @_never_raises
    def operation(
        self, kind: str, name: str | None, outcome: str, seconds: float | None, *, new_names: bool = True
    ) -> None:
        """`new_names`: whether this caller's operation name may take one of the bounded slots
        (signed-in callers only, so strangers cannot use them up and hide real operations)."""
        kind = kind if kind in OPERATION_TYPES else "unknown"
        operation = "anonymous" if name is None else self._operation_names(name, admit=new_names)
        self._operations.labels(kind, operation, outcome if outcome == "ok" else self._codes(outcome)).inc()
        if seconds is not None:
            self._operation_seconds.labels(kind, operation).observe(seconds)

    def subscription_field(self, field: str | None) -> str:
        return self._fields(field)

    @_never_raises
    def subscription_started(self, field: str) -> None:
        self._subscriptions.labels(field).inc()

    @_never_raises
    def subscription_ended(self, field: str) -> None:
        self._subscriptions.labels(field).dec()

    @_never_raises
    def websocket_opened(self, protocol: str) -> None:
        self._websockets.labels(protocol).inc()

    @_never_raises
    def websocket_closed(self, protocol: str) -> None:
        self._websockets.labels(protocol).dec()

    @_never_raises
    def http_request(self, route: str, method: str, status: int, seconds: float) -> None:
        self._http.labels(route, method, str(status)).inc()
        self._http_seconds.labels(route).observe(seconds)

    # ----- brokers --------------------------------------------------------------------

    def upstream(self, broker: str, stream: str) -> UpstreamStream:
        return UpstreamStream(self, broker, stream if stream in UPSTREAM_STREAMS else OTHER)

    @_never_raises
    def broker_call(self, call: object, error: BaseException | None, seconds: float) -> None:
        """`call`: the coroutine handed to the broker (`broker.get_quotes(...)`), named by its
        qualified name: "PaperMarket.get_quotes" is the paper broker's get_quotes."""
        owner, _, method = str(getattr(call, "__qualname__", "")).partition(".")
        broker, method = provider_of(owner), self._methods(method.rpartition(".")[2])
        self._broker_calls.labels(broker, method, outcome_of(error)).inc()
        self._broker_seconds.labels(broker, method).observe(seconds)

    @_never_raises
    def alpaca_request(self, outcome: str) -> None:
        self._alpaca_requests.labels(self._codes(outcome)).inc()
        limiter = ALPACA_OUTCOMES_LIMITED.get(outcome)
        if limiter is not None:
            self._rate_limited.labels(limiter).inc()

    # ----- orders and limits ----------------------------------------------------------

    @_never_raises
    def order_reached(self, status: str, reject_code: str | None = None) -> None:
        """An order in the ledger reached `status`; a rejection is counted by its code too
        (none: the broker refused it after answering, with no code of ours)."""
        self._order_statuses.labels(self._statuses(status)).inc()
        if status == OrderStatus.REJECTED.value:
            self._order_rejections.labels(self._codes(reject_code or "BROKER_REJECTED")).inc()

    @_never_raises
    def rate_limited(self, limiter: str) -> None:
        self._rate_limited.labels(limiter if limiter in LIMITERS else OTHER).inc()
