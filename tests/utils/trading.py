"""Order entry through the API, for tests."""

from __future__ import annotations

from typing import Any

import httpx

from tests.utils.accounts import as_user

ORDER_FIELDS = (
    "id clientOrderId brokerOrderId symbol assetClass side type timeInForce orderClass qty notional "
    "limitPrice stopPrice status filledQty filledAvgPrice rejectCode rejectReason createdAt updatedAt"
)
USER_ERRORS = "userErrors { field message code }"
PLACE = f"""mutation($input: PlaceOrderInput!) {{
  placeOrder(input: $input) {{ order {{ {ORDER_FIELDS} }} {USER_ERRORS} }}
}}"""
CANCEL = f"mutation($id: ID!) {{ cancelOrder(id: $id) {{ order {{ {ORDER_FIELDS} }} {USER_ERRORS} }} }}"
REPLACE = f"""mutation($id: ID!, $input: ReplaceOrderInput!) {{
  replaceOrder(id: $id, input: $input) {{ order {{ {ORDER_FIELDS} replacesOrderId }} {USER_ERRORS} }}
}}"""
ORDER = f"query($id: ID, $cid: String) {{ order(id: $id, clientOrderId: $cid) {{ {ORDER_FIELDS} }} }}"


async def place(client: httpx.AsyncClient, token: str, **order: Any) -> dict[str, Any]:
    """placeOrder's payload (asserting the request itself raised no GraphQL error)."""
    result = await as_user(client, token, PLACE, {"input": order})
    assert "errors" not in result, result
    return result["data"]["placeOrder"]


async def order_by_id(client: httpx.AsyncClient, token: str, order_id: str) -> dict[str, Any]:
    result = await as_user(client, token, ORDER, {"id": order_id})
    assert "errors" not in result, result
    return result["data"]["order"]


def codes(payload: dict[str, Any]) -> list[str]:
    return [error["code"] for error in payload["userErrors"]]
