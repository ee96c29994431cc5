"""Alpaca's rate limit and the faults tests can inject into the facade."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.utils.facade import FAULT_TOKEN, KEY_ID, SECRET_KEY, Facade, serve_facade
from tests.utils.paper import paper_world

pytestmark = pytest.mark.anyio
AUTH = {"APCA-API-KEY-ID": KEY_ID, "APCA-API-SECRET-KEY": SECRET_KEY}


@pytest.fixture
async def facade() -> AsyncIterator[Facade]:
    async with serve_facade(paper_world(), rate_limit_per_minute=5) as served:
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
    stranger = await http.get("/v2/clock", headers={"APCA-API-KEY-ID": "PKOTHER", "APCA-API-SECRET-KEY": "x"})
    assert stranger.status_code == 401  # not counted against, nor limited by, another key


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
