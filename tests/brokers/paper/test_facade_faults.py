"""Alpaca's rate limit and the faults tests can inject into the facade."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import httpx
import pytest

from server.brokers.paper.facade.access import KeyPair
from tests.utils.facade import FAULT_TOKEN, KEY_ID, SECRET_KEY, Facade, serve_facade
from tests.utils.paper import paper_world

pytestmark = pytest.mark.anyio
AUTH = {"APCA-API-KEY-ID": KEY_ID, "APCA-API-SECRET-KEY": SECRET_KEY}


OTHER = KeyPair("PKOTHER000000000002", "another-secret-for-tests-0002", "other-account")


@pytest.fixture
async def facade() -> AsyncIterator[Facade]:
    async with serve_facade(paper_world(), rate_limit_per_minute=5, more_keys=(OTHER,)) as served:
        yield served


@pytest.fixture
async def http(facade: Facade) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=facade.url, headers=AUTH, timeout=10) as client:
        yield client


async def inject(http: httpx.AsyncClient, **faults: object) -> None:
    response = await http.post("/_faults", json=faults, headers={"x-fault-token": FAULT_TOKEN})
    assert response.status_code == 200, response.text


async def test_more_than_the_limit_per_minute_gets_429(http: httpx.AsyncClient) -> None:
    statuses = [(await http.get("/v2/clock")).status_code for _ in range(6)]
    assert statuses == [200, 200, 200, 200, 200, 429]
    refused = await http.get("/v2/clock")
    assert refused.json() == {"code": 42910000, "message": "rate limit exceeded"}


async def test_the_limit_is_per_key(facade: Facade, http: httpx.AsyncClient) -> None:
    for _ in range(5):
        await http.get("/v2/clock")
    assert (await http.get("/v2/clock")).status_code == 429
    other = {"APCA-API-KEY-ID": OTHER.key_id, "APCA-API-SECRET-KEY": OTHER.secret_key}
    assert (await http.get("/v2/clock", headers=other)).status_code == 200  # its own allowance


async def test_a_revoked_key_is_refused_at_once(facade: Facade, http: httpx.AsyncClient) -> None:
    assert (await http.get("/v2/clock")).status_code == 200
    facade.keys.revoke(KEY_ID)
    assert (await http.get("/v2/clock")).status_code == 401


async def test_5xx_and_429_bursts(http: httpx.AsyncClient) -> None:
    await inject(http, errors_5xx=2, errors_429=1)
    statuses = [(await http.get("/v2/account")).status_code for _ in range(4)]
    assert statuses == [503, 503, 429, 200]


async def test_latency(http: httpx.AsyncClient) -> None:
    await inject(http, latency_seconds=0.3)
    started = time.perf_counter()
    assert (await http.get("/v2/clock")).status_code == 200
    assert time.perf_counter() - started >= 0.3


async def test_a_hung_response_never_answers(http: httpx.AsyncClient) -> None:
    await inject(http, hangs=1)
    with pytest.raises(httpx.ReadTimeout):
        await http.get("/v2/account", timeout=0.5)
    assert (await http.get("/v2/account")).status_code == 200


async def test_fault_injection_needs_the_token(http: httpx.AsyncClient) -> None:
    refused = await http.post("/_faults", json={"errors_5xx": 1})
    assert refused.status_code == 403
    bad = await http.post("/_faults", json={"errors_5xx": -1}, headers={"x-fault-token": FAULT_TOKEN})
    assert bad.status_code == 422
    assert (await http.get("/v2/clock")).status_code == 200


async def test_a_hung_request_changes_nothing(facade: Facade, http: httpx.AsyncClient) -> None:
    low = facade.world.exchange.quote("SPY").bid_price / 2
    order = {"symbol": "SPY", "qty": "1", "side": "buy", "type": "limit", "time_in_force": "gtc"}
    placed = (await http.post("/v2/orders", json={**order, "limit_price": str(low)})).json()
    await inject(http, hangs=1)
    with pytest.raises(httpx.ReadTimeout):
        await http.delete(f"/v2/orders/{placed['id']}", timeout=0.5)
    # The client gave up; the cancel it sent must not have happened behind its back.
    assert (await http.get(f"/v2/orders/{placed['id']}")).json()["status"] == "new"


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b'{"latency_seconds": NaN}',
        b'{"errors_5xx": 1e400}',
        b'{"errors_5xx": 2, "hangs": -1}',
        b'{"hangs": true}',
    ],
)
async def test_bad_fault_requests_are_refused_and_change_nothing(http: httpx.AsyncClient, body: bytes) -> None:
    response = await http.post("/_faults", content=body, headers={"x-fault-token": FAULT_TOKEN})
    assert response.status_code in {400, 422}
    assert set(response.json()) == {"code", "message"}
    assert (await http.get("/v2/clock")).status_code == 200  # no fault took effect, no hang


@pytest.mark.parametrize("limit", ["²", "9" * 5000, "-1", "1.5"])
async def test_odd_page_sizes_are_answered_not_crashed(http: httpx.AsyncClient, limit: str) -> None:
    orders = await http.get("/v2/orders", params={"limit": limit})
    assert orders.status_code == 422
    bars = await http.get("/v2/stocks/bars", params={"symbols": "AAPL", "timeframe": "1Min", "limit": limit})
    assert bars.status_code == 200  # the data API falls back to its default page size
