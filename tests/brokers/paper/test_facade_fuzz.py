"""Malformed requests to the facade: Alpaca's status and body, never a 5xx, books still balanced."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.brokers.paper.facade.access import KeyPair, KeyStore
from server.brokers.paper.facade.app import create_facade
from tests.utils.facade import KEY_ID, SECRET_KEY
from tests.utils.paper import PaperWorld, paper_world

pytestmark = pytest.mark.anyio
AUTH = {"APCA-API-KEY-ID": KEY_ID, "APCA-API-SECRET-KEY": SECRET_KEY, "content-type": "application/json"}

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(
        [
            "AAPL",
            "buy",
            "sell",
            "market",
            "limit",
            "stop",
            "stop_limit",
            "trailing_stop",
            "day",
            "gtc",
            "ioc",
            "fok",
            "opg",
            "bracket",
            "oco",
            "oto",
            "1",
            "0.5",
            "-1",
            "1e309",
            "NaN",
            "",
            "x" * 200,
        ]
    ),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["limit_price", "stop_price"]), inner, max_size=2)
    ),
    max_leaves=6,
)
order_bodies = st.dictionaries(
    st.sampled_from(
        [
            "symbol",
            "qty",
            "notional",
            "side",
            "type",
            "time_in_force",
            "limit_price",
            "stop_price",
            "trail_price",
            "trail_percent",
            "extended_hours",
            "client_order_id",
            "order_class",
            "take_profit",
            "stop_loss",
        ]
    ),
    values,
    max_size=10,
)


def balanced(world: PaperWorld) -> bool:
    account = world.exchange._account(world.account_id)
    cost = sum((h.cost_basis for h in account.holdings.values()), Decimal(0))
    return account.cash + cost - account.realized_pl == account.starting_cash


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=order_bodies, raw=st.sampled_from(["json", "text"]))
async def test_random_order_bodies(body: dict[str, Any], raw: str) -> None:
    world = paper_world()
    app = create_facade(world.exchange, KeyStore([KeyPair(KEY_ID, SECRET_KEY, world.account_id)]))
    content = json.dumps(body, default=str).encode() if raw == "json" else repr(body).encode()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://facade") as http:
        response = await http.post("/v2/orders", content=content, headers=AUTH)
        replaced = await http.patch("/v2/orders/no-such-order", content=content, headers=AUTH)
    assert response.status_code in {200, 400, 403, 404, 422}, response.text
    if response.status_code != 200:
        assert set(response.json()) == {"code", "message"}
    assert replaced.status_code in {400, 404, 422}
    assert balanced(world)
