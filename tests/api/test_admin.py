"""Admin-only operations, and that everyone else is refused them."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from sqlmodel import select
from starlette.applications import Starlette

from server.models import AuditEvent, BrokerConnection, Order
from tests.utils.accounts import as_user, login, make_admin, register
from tests.utils.graphql import error_codes
from tests.utils.trading import PLACE, orders_at_the_exchange, place

pytestmark = pytest.mark.anyio
USERS = "query($after: String) { users(first: 2, after: $after) { username isActive } }"
DISABLE = "mutation($id: ID!) { disableUser(userId: $id) { user { isActive } userErrors { field code } } }"
ENABLE = "mutation($id: ID!) { enableUser(userId: $id) { user { isActive } userErrors { code } } }"
LIMITS = """mutation($id: ID!, $input: RiskLimitsInput!) {
  setRiskLimits(userId: $id, input: $input) {
    user { riskLimits { killSwitch maxOrderNotional maxPositionNotional priceBandPercent } }
    userErrors { field code }
  }
}"""
KILL = """mutation($id: ID!, $on: Boolean!) {
  setKillSwitch(userId: $id, engaged: $on) { user { riskLimits { killSwitch } } }
}"""


async def test_admin_operations_are_forbidden_to_users_and_need_sign_in(client: httpx.AsyncClient) -> None:
    ada = await register(client, "ada")
    for query, variables in [
        (USERS, {}),
        (DISABLE, {"id": ada.user_id}),
        (KILL, {"id": ada.user_id, "on": True}),
        (LIMITS, {"id": ada.user_id, "input": {}}),
    ]:
        assert error_codes(await as_user(client, ada.access_token, query, variables)) == ["FORBIDDEN"]
        response = await client.post("/graphql", json={"query": query, "variables": variables})
        assert error_codes(response.json()) == ["UNAUTHENTICATED"]


async def test_admin_lists_users_a_page_at_a_time(client: httpx.AsyncClient, app: Starlette) -> None:
    root = await register(client, "root")
    await make_admin(app, root.user_id)
    for name in ("ada", "grace", "linus"):
        await register(client, name)
    first = (await as_user(client, root.access_token, USERS))["data"]["users"]
    assert [u["username"] for u in first] == ["ada", "grace"]
    second = (await as_user(client, root.access_token, USERS, {"after": "grace"}))["data"]["users"]
    assert [u["username"] for u in second] == ["linus", "root"]


async def test_a_disabled_user_is_signed_out_everywhere(client: httpx.AsyncClient, app: Starlette) -> None:
    root = await register(client, "root")
    await make_admin(app, root.user_id)
    ada = await register(client, "ada")
    disabled = await as_user(client, root.access_token, DISABLE, {"id": ada.user_id})
    assert disabled["data"]["disableUser"] == {"user": {"isActive": False}, "userErrors": []}

    # Her unexpired access token stops working at once, and so does her refresh token.
    assert error_codes(await as_user(client, ada.access_token, "{ me { id } }")) == ["UNAUTHENTICATED"]
    refresh = "mutation($t: String!) { refreshToken(refreshToken: $t) { accessToken userErrors { code } } }"
    refused = await client.post("/graphql", json={"query": refresh, "variables": {"t": ada.refresh_token}})
    assert refused.json()["data"]["refreshToken"]["accessToken"] is None
    assert [e["code"] for e in (await login(client, "ada"))["data"]["login"]["userErrors"]] == ["ACCOUNT_DISABLED"]
    # Order entry reads her with the rest of what it reads: refused the same, and nothing is recorded or sent.
    order = {"symbol": "AAPL", "side": "BUY", "qty": "1", "clientOrderId": "after-disable"}
    assert error_codes(await as_user(client, ada.access_token, PLACE, {"input": order})) == ["UNAUTHENTICATED"]
    async with app.state.services.sessions() as session:
        assert (await session.exec(select(Order).where(Order.user_id == ada.user_id))).all() == []
    assert orders_at_the_exchange(app.state.services) == []

    await as_user(client, root.access_token, ENABLE, {"id": ada.user_id})
    assert (await login(client, "ada"))["data"]["login"]["userErrors"] == []

    async with app.state.services.sessions() as session:
        actions = (await session.exec(select(AuditEvent.action).where(AuditEvent.user_id == root.user_id))).all()
    assert {"disable_user", "enable_user"} <= set(actions)


async def test_risk_limits_and_kill_switch(client: httpx.AsyncClient, app: Starlette) -> None:
    root = await register(client, "root")
    await make_admin(app, root.user_id)
    ada = await register(client, "ada")
    limits = {"maxOrderNotional": "25000", "maxPositionNotional": "100000.50", "priceBandPercent": "5"}
    result = await as_user(client, root.access_token, LIMITS, {"id": ada.user_id, "input": limits})
    assert result["data"]["setRiskLimits"] == {  # decimals come back canonical: no trailing zeros
        "user": {"riskLimits": {"killSwitch": False, **limits, "maxPositionNotional": "100000.5"}},
        "userErrors": [],
    }
    bad = await as_user(client, root.access_token, LIMITS, {"id": ada.user_id, "input": {"priceBandPercent": "0"}})
    assert bad["data"]["setRiskLimits"]["userErrors"] == [
        {"field": ["input", "priceBandPercent"], "code": "INVALID_LIMIT"}
    ]
    engaged = await as_user(client, root.access_token, KILL, {"id": ada.user_id, "on": True})
    assert engaged["data"]["setKillSwitch"]["user"]["riskLimits"]["killSwitch"] is True
    me = await as_user(client, ada.access_token, "{ me { riskLimits { killSwitch maxOrderNotional } } }")
    assert me["data"]["me"]["riskLimits"] == {"killSwitch": True, "maxOrderNotional": "25000"}


async def test_acting_on_an_unknown_user_is_a_user_error(client: httpx.AsyncClient, app: Starlette) -> None:
    root = await register(client, "root")
    await make_admin(app, root.user_id)
    result = await as_user(client, root.access_token, DISABLE, {"id": "no-such-user"})
    assert result["data"]["disableUser"] == {
        "user": None,
        "userErrors": [{"field": ["userId"], "code": "USER_NOT_FOUND"}],
    }


async def test_the_kill_switch_can_cancel_every_open_order(client: httpx.AsyncClient, app: Starlette) -> None:
    root = await register(client, "root")
    await make_admin(app, root.user_id)
    ada = await register(client, "ada")
    for cid in ("a", "b"):
        placed = await place(
            client, ada.access_token, symbol="KO", side="BUY", type="LIMIT", qty="1", limitPrice="60", clientOrderId=cid
        )
        assert placed["order"]["status"] == "NEW"
    kill = """mutation($id: ID!) {
      setKillSwitch(userId: $id, engaged: true, cancelOpenOrders: true) {
        user { riskLimits { killSwitch } } canceledOrders { clientOrderId status } userErrors { code }
      }
    }"""

    result = (await as_user(client, root.access_token, kill, {"id": ada.user_id}))["data"]["setKillSwitch"]

    assert result["user"]["riskLimits"]["killSwitch"] is True
    assert sorted((o["clientOrderId"], o["status"]) for o in result["canceledOrders"]) == [
        ("a", "CANCELED"),
        ("b", "CANCELED"),
    ]
    open_orders = await as_user(client, ada.access_token, "{ orders { nodes { id } } }")
    assert open_orders["data"]["orders"]["nodes"] == []


async def test_the_kill_switch_cancels_on_the_other_connections_when_one_broker_fails(
    client: httpx.AsyncClient, app: Starlette
) -> None:
    root = await register(client, "root")
    await make_admin(app, root.user_id)
    ada = await register(client, "ada")
    placed = await place(
        client, ada.access_token, symbol="KO", side="BUY", type="LIMIT", qty="1", limitPrice="60", clientOrderId="a"
    )
    assert placed["order"]["status"] == "NEW"
    # A live connection made while live trading was allowed, listed first: its broker cannot be built now.
    async with app.state.services.sessions() as session:
        session.add(
            BrokerConnection(
                user_id=ada.user_id, kind="ALPACA_LIVE", label="live", created_at=datetime(2020, 1, 1, tzinfo=UTC)
            )
        )
        await session.commit()
    kill = """mutation($id: ID!) {
      setKillSwitch(userId: $id, engaged: true, cancelOpenOrders: true) {
        canceledOrders { clientOrderId status } userErrors { code field }
      }
    }"""

    result = (await as_user(client, root.access_token, kill, {"id": ada.user_id}))["data"]["setKillSwitch"]

    assert [(o["clientOrderId"], o["status"]) for o in result["canceledOrders"]] == [("a", "CANCELED")]
    assert result["userErrors"] == [{"code": "BROKER_UNAVAILABLE", "field": ["connectionId"]}]
