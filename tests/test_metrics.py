"""/metrics: what the server counts as it works (driven through the real app), who may
read it, and what never appears in it."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from starlette.applications import Starlette

from server.api.graphiql import STATIC_PATH, assets
from server.app import create_app
from server.brokers.paper.clock import ManualClock
from server.metrics import Metrics
from server.metrics.labels import NAME, OTHER, BoundedLabel
from server.metrics.registry import MAX_OPERATION_NAMES
from tests.utils.accounts import PASSWORD, as_user, login, register
from tests.utils.factories import make_settings
from tests.utils.graphql import error_codes, execute
from tests.utils.metrics import parse, scrape, value
from tests.utils.trading import place

pytestmark = pytest.mark.anyio

METRICS_TOKEN = "metrics-token-for-tests-0123456789"
QUOTE = 'query Quote { quote(symbol: "AAPL") { bidPrice } }'
ME = "{ me { id } }"
PLACE_UNSIGNED = 'mutation Place { placeOrder(input: {symbol: "AAPL", side: BUY, qty: "1"}) { order { id } } }'
REMOTE = ("203.0.113.9", 40000)  # TEST-NET-3: never a real peer
LOOPBACK = ("127.0.0.1", 40000)


@asynccontextmanager
async def serving(
    tmp_path: Path, clock: ManualClock, *, client: tuple[str, int] = LOOPBACK, **settings: Any
) -> AsyncIterator[tuple[Starlette, httpx.AsyncClient]]:
    app = create_app(make_settings(tmp_path / "data", **settings), clock=clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=client)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield app, http


# ----- what is counted ----------------------------------------------------------------


async def test_operations_are_counted_by_type_name_and_outcome(client: httpx.AsyncClient) -> None:
    user = await register(client, "metrics-namer")
    assert "errors" not in await as_user(client, user.access_token, QUOTE)  # a signed-in caller names it
    assert "errors" not in await execute(client, QUOTE)
    assert "errors" not in await execute(client, ME)
    assert error_codes(await execute(client, PLACE_UNSIGNED)) == ["UNAUTHENTICATED"]
    assert error_codes(await execute(client, "{ quote(")) == ["GRAPHQL_PARSE_FAILED"]
    assert error_codes(await execute(client, "{ nope }")) == ["GRAPHQL_VALIDATION_FAILED"]

    samples = await scrape(client)

    counted = "graphql_operations_total"
    assert value(samples, counted, type="query", operation="Quote", outcome="ok") == 2
    assert value(samples, counted, type="query", operation="anonymous", outcome="ok") == 1
    # A name only strangers have sent takes no slot: they cannot use them up.
    assert value(samples, counted, type="mutation", operation=OTHER, outcome="UNAUTHENTICATED") == 1
    assert value(samples, counted, operation="anonymous", outcome="GRAPHQL_PARSE_FAILED") == 1
    assert value(samples, counted, type="query", outcome="GRAPHQL_VALIDATION_FAILED") == 1
    assert value(samples, "graphql_operation_duration_seconds_count", type="query", operation="Quote") == 2
    assert value(samples, "graphql_operation_duration_seconds_sum", type="query", operation="Quote") > 0
    assert value(samples, "http_requests_total", route="/graphql", method="POST", status="200") == 7


async def test_odd_or_endless_operation_names_fall_under_other(client: httpx.AsyncClient) -> None:
    long_name = "Q" + "x" * 80  # a valid GraphQL name, longer than a label may be
    assert "errors" not in await execute(client, f'query {long_name} {{ quote(symbol: "AAPL") {{ bidPrice }} }}')
    await client.get("/no-such-page")

    samples = await scrape(client)

    assert value(samples, "graphql_operations_total", type="query", operation=OTHER, outcome="ok") == 1
    assert not any(long_name in dict(tags).values() for _, tags in samples)
    assert value(samples, "http_requests_total", route=OTHER, method="GET", status="404") == 1


async def test_routes_are_labelled_from_the_apps_route_table(client: httpx.AsyncClient) -> None:
    stylesheet = assets().stylesheet
    assert (await client.get(f"{STATIC_PATH}/{stylesheet}")).status_code == 200
    assert (await client.get(f"{STATIC_PATH}/nothing-here.js")).status_code == 404
    assert (await client.get("/healthz")).status_code == 200

    samples = await scrape(client)

    assert value(samples, "http_requests_total", route=STATIC_PATH, method="GET", status="200") == 1
    assert value(samples, "http_requests_total", route=STATIC_PATH, method="GET", status="404") == 1
    assert value(samples, "http_requests_total", route="/healthz", method="GET", status="200") == 1
    assert not any(stylesheet in dict(tags).values() for _, tags in samples)


def test_label_values_are_bounded() -> None:
    names = BoundedLabel(NAME, 3)
    assert [names(n) for n in ("a", "b", "a", "c", "d", "has space", "x@example.com", None)] == [
        "a",
        "b",
        "a",
        "c",
        OTHER,
        OTHER,
        OTHER,
        OTHER,
    ]

    metrics = Metrics()
    for i in range(MAX_OPERATION_NAMES + 50):
        metrics.operation("query", f"Op{i}", "ok", 0.001)
    samples = parse(generate(metrics))
    seen = {dict(tags)["operation"] for name, tags in samples if name == "graphql_operations_total"}
    assert len(seen) == MAX_OPERATION_NAMES + 1
    assert value(samples, "graphql_operations_total", operation=OTHER) == 50


def generate(metrics: Metrics) -> str:
    from prometheus_client import generate_latest

    return generate_latest(metrics.registry).decode()


async def test_placing_orders_counts_broker_calls_statuses_and_rejections(client: httpx.AsyncClient) -> None:
    user = await register(client, "metrics-trader")
    filled = await place(client, user.access_token, symbol="AAPL", side="BUY", qty="1")
    assert filled["userErrors"] == []
    refused = await place(client, user.access_token, symbol="AAPL", side="BUY", qty="5000")
    [problem, *_] = refused["userErrors"]

    samples = await scrape(client)

    calls = "broker_calls_total"
    assert value(samples, calls, broker="paper", method="submit_order", outcome="ok") == 1
    assert value(samples, calls, broker="paper", method="get_asset", outcome="ok") == 2
    assert value(samples, "broker_call_duration_seconds_count", broker="paper", method="submit_order") == 1
    statuses = "orders_status_changes_total"
    assert value(samples, statuses, status="pending_new") == 1
    assert value(samples, statuses, status=filled["order"]["status"].lower()) == 1
    assert value(samples, statuses, status="rejected") == 1
    assert value(samples, "orders_rejected_total", code=problem["code"]) == 1


async def test_rate_limit_rejections_are_counted_by_limiter(tmp_path: Path, clock: ManualClock) -> None:
    async with serving(tmp_path, clock, rate_limit_anonymous_per_minute=2) as (_, http):
        codes = [error_codes(await execute(http, ME)) for _ in range(3)]
        samples = await scrape(http)

    assert codes == [[], [], ["RATE_LIMITED"]]
    limited = "rate_limit_rejections_total"
    assert value(samples, limited, limiter="anonymous") == 1
    assert samples[(limited, frozenset({("limiter", "orders")}))] == 0  # there before the first refusal
    assert value(samples, "graphql_operations_total", operation="anonymous", outcome="RATE_LIMITED") == 1


async def test_sign_in_refusals_are_counted_as_rate_limits(tmp_path: Path, clock: ManualClock) -> None:
    async with serving(tmp_path, clock, login_attempts_per_username=1) as (_, http):
        await register(http, "metrics-limited")
        first = await login(http, "metrics-limited", password="not-" + PASSWORD)
        second = await login(http, "metrics-limited", password="not-" + PASSWORD)
        samples = await scrape(http)

    assert "errors" not in first
    assert error_codes(second) == ["RATE_LIMITED"]
    assert value(samples, "rate_limit_rejections_total", limiter="login_username") == 1


async def test_each_app_has_its_own_registry(tmp_path: Path, clock: ManualClock) -> None:
    async with serving(tmp_path / "a", clock) as (_, first), serving(tmp_path / "b", clock) as (_, second):
        await execute(first, QUOTE)
        assert value(await scrape(first), "graphql_operations_total", type="query") == 1
        assert value(await scrape(second), "graphql_operations_total", type="query") == 0


async def test_no_user_data_or_secret_reaches_the_metrics(tmp_path: Path, clock: ManualClock) -> None:
    async with serving(tmp_path, clock, metrics_token=METRICS_TOKEN) as (_, http):
        user = await register(http, "metrics-private")
        order = await place(http, user.access_token, symbol="MSFT", side="BUY", qty="1", clientOrderId="cid-secret-1")
        await as_user(http, user.access_token, "query ByUser { me { email } }")
        response = await http.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})

    text = response.text
    assert "graphql_operations_total" in text
    for private in (
        "metrics-private",
        "example.com",
        user.user_id,
        user.access_token,
        user.refresh_token,
        PASSWORD,
        METRICS_TOKEN,
        order["order"]["id"],
        "cid-secret-1",
        "MSFT",
    ):
        assert private not in text


def test_recording_never_raises_into_the_caller(caplog: pytest.LogCaptureFixture) -> None:
    metrics = Metrics()
    with caplog.at_level(logging.ERROR, logger="server.metrics.registry"):
        metrics.http_request("/", "GET", 200, "not a number")  # type: ignore[arg-type]
        metrics.http_request("/", "GET", 200, "still not")  # type: ignore[arg-type]
    assert len([r for r in caplog.records if r.message == "recording a metric failed"]) == 1


def test_upstream_gauges_balance_however_often_they_are_told() -> None:
    metrics = Metrics()
    stream = metrics.upstream("paper", "market_stocks")
    stream.up()
    stream.up()
    assert value(parse(generate(metrics)), "upstream_streams_active", broker="paper", stream="market_stocks") == 1
    stream.down()
    stream.down()
    stream.failed("auth_failed")
    samples = parse(generate(metrics))
    assert value(samples, "upstream_streams_active", broker="paper", stream="market_stocks") == 0
    assert value(samples, "upstream_stream_connects_total", broker="paper") == 1
    assert value(samples, "upstream_stream_failures_total", reason="auth_failed") == 1


# ----- who may read it ----------------------------------------------------------------


async def test_without_a_token_only_loopback_may_read(tmp_path: Path, clock: ManualClock) -> None:
    async with serving(tmp_path / "remote", clock, client=REMOTE) as (_, remote):
        refused = await remote.get("/metrics")
    async with serving(tmp_path / "local", clock) as (_, local):
        allowed = await local.get("/metrics")
        proxied = await local.get("/metrics", headers={"X-Forwarded-For": "198.51.100.7"})

    assert refused.status_code == 403
    assert refused.content == b""
    assert allowed.status_code == 200
    # A proxy on this host that is not a trusted one would make every visitor look local.
    assert proxied.status_code == 403


async def test_a_trusted_proxy_is_judged_by_the_client_it_forwards(tmp_path: Path, clock: ManualClock) -> None:
    proxy = ("10.0.0.2", 40000)
    async with serving(tmp_path, clock, client=proxy, trusted_proxies="10.0.0.2") as (_, http):
        from_outside = await http.get("/metrics", headers={"X-Forwarded-For": "127.0.0.1, 198.51.100.7"})
        from_this_host = await http.get("/metrics", headers={"X-Forwarded-For": "127.0.0.1"})

    assert from_outside.status_code == 403  # the forged first hop is not believed
    assert from_this_host.status_code == 200


@pytest.mark.parametrize("headers", [{}, {"X-Real-IP": "198.51.100.7"}, {"X-Forwarded-For": "127.0.0.1"}])
async def test_a_trusted_proxy_that_names_no_caller_is_refused(
    tmp_path: Path, clock: ManualClock, headers: dict[str, str]
) -> None:
    # nginx on this host, trusted, passing the visitor only as X-Real-IP (or not at all):
    # the proxy's own loopback address must not let every visitor in.
    local_proxy = ("127.0.0.1", 40000)
    async with serving(tmp_path, clock, client=local_proxy, trusted_proxies="127.0.0.1") as (_, http):
        answer = await http.get("/metrics", headers=headers)

    assert answer.status_code == 403


async def test_the_token_is_required_when_set(tmp_path: Path, clock: ManualClock) -> None:
    async with serving(tmp_path, clock, client=REMOTE, metrics_token=METRICS_TOKEN) as (_, http):
        missing = await http.get("/metrics")
        wrong = await http.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN[:-1]}x"})
        other_scheme = await http.get("/metrics", headers={"Authorization": f"Basic {METRICS_TOKEN}"})
        right = await http.get("/metrics", headers={"Authorization": f"bearer {METRICS_TOKEN}"})

    for refused in (missing, wrong, other_scheme):
        assert refused.status_code == 401
        assert refused.content == b""
        assert refused.headers["www-authenticate"] == "Bearer"
    assert right.status_code == 200
    assert "graphql_operations_total" in right.text


async def test_allowed_clients_and_the_token_both_apply(tmp_path: Path, clock: ManualClock) -> None:
    bearer = {"Authorization": f"Bearer {METRICS_TOKEN}"}
    settings: Mapping[str, Any] = {"metrics_allowed_clients": "10.0.0.0/8", "metrics_token": METRICS_TOKEN}
    async with serving(tmp_path / "in", clock, client=("10.1.2.3", 40000), **settings) as (_, inside):
        inside_with, inside_without = await inside.get("/metrics", headers=bearer), await inside.get("/metrics")
    async with serving(tmp_path / "out", clock, **settings) as (_, outside):
        loopback_with = await outside.get("/metrics", headers=bearer)

    assert inside_with.status_code == 200
    assert inside_without.status_code == 401
    assert loopback_with.status_code == 403  # not in the list, token or not


async def test_metrics_can_be_switched_off(tmp_path: Path, clock: ManualClock) -> None:
    async with serving(tmp_path, clock, metrics_enabled=False) as (_, http):
        assert (await http.get("/metrics")).status_code == 404


def test_production_keeps_unauthenticated_metrics_on_loopback(tmp_path: Path) -> None:
    production = {"environment": "production", "metrics_allowed_clients": "10.0.0.0/8"}
    with pytest.raises(ValidationError, match="METRICS_TOKEN"):
        make_settings(tmp_path, **production)
    assert make_settings(tmp_path, **production, metrics_token=METRICS_TOKEN).metrics_allowed_clients == ["10.0.0.0/8"]
    assert make_settings(tmp_path, environment="production", metrics_allowed_clients="127.0.0.1, ::1")


def test_allowed_clients_must_be_addresses_or_networks(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="IP addresses or networks"):
        make_settings(tmp_path, metrics_allowed_clients="127.0.0.1, metrics.example")
    assert make_settings(tmp_path, metrics_allowed_clients="127.0.0.1").metrics_allowed_clients == ["127.0.0.1/32"]
