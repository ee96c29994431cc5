"""AlpacaBroker under the faults the facade injects: 429 bursts, 5xx, a hung response
past the timeout, a dropped trade stream, revoked keys. Each ends in the documented
error or recovers by itself, and no order is doubled on the way."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from types import SimpleNamespace

import httpx
import pytest
from alpaca.common.exceptions import APIError

from server.brokers.alpaca.broker import AlpacaBroker, AlpacaBrokers
from server.brokers.alpaca.rest import AlpacaKeys, _Retry, _retry_after, account_limiter, attempt_outcome, broker_reason
from server.brokers.base import (
    BrokerAuthError,
    BrokerRateLimitedError,
    BrokerUnavailableError,
    NotFoundError,
    UnknownSymbolError,
)
from server.brokers.domain import OrderRequest, OrderSide, TradeEvent, TradeUpdate
from tests.utils.alpaca import alpaca_brokers
from tests.utils.facade import FAULT_TOKEN, KEY_ID, SECRET_KEY, Facade, serve_facade
from tests.utils.paper import paper_world
from tests.utils.streams import eventually

pytestmark = pytest.mark.anyio
TIMEOUT_SECONDS = 1.0


@pytest.fixture
async def facade() -> AsyncIterator[Facade]:
    async with serve_facade(paper_world()) as served:
        yield served


@pytest.fixture
def brokers(facade: Facade) -> AlpacaBrokers:
    return alpaca_brokers(facade, timeout_seconds=TIMEOUT_SECONDS)


@pytest.fixture
async def broker(brokers: AlpacaBrokers) -> AsyncIterator[AlpacaBroker]:
    resumed: list[float] = []

    async def resume() -> None:
        resumed.append(time.monotonic())

    built = brokers.broker(AlpacaKeys(KEY_ID, SECRET_KEY), on_resume=resume)
    built.resumed = resumed  # type: ignore[attr-defined]
    try:
        yield built
    finally:
        await built.close()


def _buy(cid: str) -> OrderRequest:
    return OrderRequest("AAPL", OrderSide.BUY, qty=Decimal(1), client_order_id=cid)


def _orders_with(facade: Facade, cid: str) -> int:
    world = facade.world
    return sum(1 for order in world.exchange.list_orders(world.account_id) if order.client_order_id == cid)


async def test_a_429_burst_is_retried_within_the_deadline(facade: Facade, broker: AlpacaBroker) -> None:
    facade.faults.errors_429 = 2
    account = await broker.get_account()
    assert account.status == "ACTIVE"
    assert facade.faults.errors_429 == 0


async def test_a_429_burst_longer_than_the_deadline_is_rate_limited(facade: Facade, broker: AlpacaBroker) -> None:
    facade.faults.errors_429 = 100
    started = time.monotonic()
    with pytest.raises(BrokerRateLimitedError):
        await broker.clock()
    assert time.monotonic() - started < TIMEOUT_SECONDS + 0.5


async def test_5xx_on_reads_is_retried(facade: Facade, broker: AlpacaBroker) -> None:
    facade.faults.errors_5xx = 2
    assert (await broker.get_quotes(["AAPL"]))["AAPL"].symbol == "AAPL"


async def test_5xx_on_an_order_places_it_exactly_once(facade: Facade, broker: AlpacaBroker) -> None:
    facade.faults.errors_5xx = 1
    order = await broker.submit_order(_buy("five-hundred"))
    assert order.client_order_id == "five-hundred"
    assert _orders_with(facade, "five-hundred") == 1


async def test_a_hung_response_ends_in_unavailable_at_the_timeout(facade: Facade, broker: AlpacaBroker) -> None:
    facade.faults.hangs = 1
    started = time.monotonic()
    with pytest.raises(BrokerUnavailableError):
        await broker.get_account()
    assert time.monotonic() - started < TIMEOUT_SECONDS + 0.5
    assert (await broker.clock()).is_open  # the next call is answered


async def test_a_hung_order_is_found_by_its_client_order_id_not_doubled(facade: Facade, broker: AlpacaBroker) -> None:
    facade.faults.hangs = 1  # the facade never reaches the exchange on a hung request
    try:
        order = await broker.submit_order(_buy("hung-order"))
    except BrokerUnavailableError:
        order = None  # the lookup may not fit in what is left of the deadline: the ledger reconciles
    assert _orders_with(facade, "hung-order") == (1 if order is not None else 0)
    again = await broker.submit_order(_buy("hung-order")) if order is None else order
    assert again.client_order_id == "hung-order"
    assert _orders_with(facade, "hung-order") == 1


async def test_bad_keys_are_an_auth_failure_without_the_keys(brokers: AlpacaBrokers) -> None:
    broker = brokers.broker(AlpacaKeys("PKWRONG000000000000", "wrong-secret-0000000000"))
    with pytest.raises(BrokerAuthError) as raised:
        await broker.get_account()
    assert "wrong-secret" not in str(raised.value)
    assert "PKWRONG" not in str(raised.value)
    await broker.close()


async def _drop_streams(facade: Facade) -> None:
    async with httpx.AsyncClient(base_url=facade.url, timeout=5) as http:
        response = await http.post("/_faults", json={"drop_streams": True}, headers={"x-fault-token": FAULT_TOKEN})
        assert response.status_code == 200


async def test_a_dropped_trade_stream_reconnects_and_catches_up(facade: Facade, broker: AlpacaBroker) -> None:
    updates: list[TradeUpdate] = []
    broker.on_trade_update(updates.append)
    await eventually(lambda: broker.stream.connects == 1)
    await eventually(lambda: len(broker.resumed) == 1)  # type: ignore[attr-defined]

    await _drop_streams(facade)
    await eventually(lambda: broker.stream.connects == 2)
    await eventually(lambda: len(broker.resumed) == 2)  # type: ignore[attr-defined]  # the ledger resyncs
    order = await broker.submit_order(_buy("after-the-drop"))
    await eventually(lambda: [u.event for u in updates if u.order.id == order.id] == [TradeEvent.NEW, TradeEvent.FILL])


async def test_revoked_keys_mid_stream_are_refused_on_reconnect_and_on_rest(
    facade: Facade, broker: AlpacaBroker
) -> None:
    broker.on_trade_update(lambda _update: None)
    await eventually(lambda: broker.stream.connects == 1)
    facade.keys.revoke(KEY_ID)
    await _drop_streams(facade)
    await eventually(lambda: broker.stream.refused)
    assert broker.stream.connects == 1  # no silent reconnect with refused keys
    with pytest.raises(BrokerAuthError):
        await broker.list_positions()


async def test_the_trade_stream_stops_within_a_second(broker: AlpacaBroker) -> None:
    broker.on_trade_update(lambda _update: None)
    await eventually(lambda: broker.stream.connects == 1)
    started = time.monotonic()
    await broker.close()
    assert time.monotonic() - started < 1.0


def _api_error(status: int, body: str, headers: dict[str, str] | None = None) -> APIError:
    response = SimpleNamespace(status_code=status, headers=headers or {})
    return APIError(body, SimpleNamespace(response=response, request=None))


def test_retry_after_is_honoured_and_capped() -> None:
    assert _retry_after(_api_error(429, "{}", {"Retry-After": "2"})) == 2.0
    assert _retry_after(_api_error(429, "{}", {"Retry-After": "99999"})) == 60.0
    assert _retry_after(_api_error(429, "{}", {"Retry-After": "soon"})) is None
    assert _retry_after(_api_error(429, "{}")) is None


def test_broker_reasons_lose_urls_and_survive_non_json() -> None:
    code, message = broker_reason(_api_error(403, '{"code": 40310000, "message": "see https://x.example/y?k=1 now"}'))
    assert code == 40310000
    assert "https://" not in message
    assert broker_reason(_api_error(502, "<html>bad gateway</html>")) == (None, "the broker refused the request")


async def test_calls_run_off_the_event_loop(facade: Facade, broker: AlpacaBroker) -> None:
    """While a call waits on a slow broker, the loop keeps turning."""
    facade.faults.latency_seconds = 0.5
    lags: list[float] = []

    async def measure() -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(0.01)
            lags.append(time.monotonic() - before - 0.01)

    ticker = asyncio.create_task(measure())
    try:
        await broker.clock()
    finally:
        ticker.cancel()
    assert len(lags) > 10
    assert max(lags) < 0.1


@pytest.mark.parametrize("per_minute", [200, 100, 11])
def test_the_account_limiter_never_allows_more_than_its_limit_in_a_rolling_minute(per_minute: int) -> None:
    """A leaky bucket lets through its burst and then its rate: at most burst + rate x 60 s."""
    limiter = account_limiter(per_minute)
    most_in_a_minute = limiter.max_rate + limiter.max_rate / limiter.time_period * 60
    assert most_in_a_minute <= per_minute
    assert most_in_a_minute >= per_minute * 0.9  # and it does not waste the account's budget


async def test_many_quotes_are_one_request(broker: AlpacaBroker, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = broker._rest.call

    async def counted(action, **options):  # type: ignore[no-untyped-def]
        calls.append(action)
        return await real(action, **options)

    monkeypatch.setattr(broker._rest, "call", counted)
    symbols = ["AAPL", "MSFT", "NVDA", "SPY", "QQQ", "TSLA", "AMZN", "META"]
    quotes = await broker.get_quotes(symbols)
    assert sorted(quotes) == sorted(symbols)
    assert len(calls) == 1


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (None, "ok"),
        (_Retry(BrokerRateLimitedError("429")), "rate_limited"),
        (_Retry(BrokerUnavailableError("503")), "unavailable"),
        (BrokerRateLimitedError("no room in this account's own limit"), "throttled"),
        (BrokerUnavailableError("timed out"), "unavailable"),
        (BrokerAuthError("401"), "auth_failed"),
        (NotFoundError("order"), "not_found"),
        (UnknownSymbolError("ZZZZ"), "unknown_symbol"),
        (ValueError("a bug"), "error"),
    ],
)
def test_each_attempt_is_counted_by_how_it_ended(error: Exception | None, outcome: str) -> None:
    assert attempt_outcome(error) == outcome
