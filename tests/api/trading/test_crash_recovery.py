"""SIGKILL in the middle of a burst of orders, then a restart: the ledger holds every
acknowledged order exactly once, and every other one is absent or reconciled (never
doubled, never left in flight). Real server process, real SQLite file."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.utils.accounts import PASSWORD, REGISTER, bearer
from tests.utils.processes import clean_environment, run_server
from tests.utils.trading import PLACE

pytestmark = pytest.mark.anyio

CLIENTS = 8
BURST = 400
KILL_AFTER_ACKS = 60
ORDERS = """query($after: String) {
  orders(status: ALL, first: 100, after: $after) {
    edges { node { clientOrderId status brokerOrderId rejectCode } }
    pageInfo { hasNextPage endCursor }
  }
}"""


def _environment(data_dir: Path) -> dict[str, str]:
    return clean_environment(
        DATA_DIR=str(data_dir),
        MARKET_HOURS="always",
        RATE_LIMIT_ORDERS_PER_MINUTE="100000",
        RATE_LIMIT_USER_PER_MINUTE="100000",
        PASSWORD_HASH_TIME_COST="1",
        PASSWORD_HASH_MEMORY_KIB="8192",
    )


async def _burst(base_url: str, token: str, acknowledged: set[str], kill: asyncio.Event) -> None:
    """Place orders from several clients until the server dies; note each acknowledged one."""
    pending = iter(range(BURST))

    async def client() -> None:
        async with httpx.AsyncClient(base_url=base_url, headers=bearer(token), timeout=10) as http:
            for number in pending:
                cid = f"burst-{number}"
                order = {"symbol": "AAPL", "side": "BUY", "qty": "1", "clientOrderId": cid}
                try:
                    response = await http.post("/graphql", json={"query": PLACE, "variables": {"input": order}})
                except httpx.TransportError:
                    return  # the server is gone
                payload = response.json()["data"]["placeOrder"]
                if payload["order"] is not None and not payload["userErrors"]:
                    acknowledged.add(cid)
                    if len(acknowledged) >= KILL_AFTER_ACKS:
                        kill.set()

    await asyncio.gather(*(client() for _ in range(CLIENTS)))


async def _all_orders(http: httpx.AsyncClient) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    after = None
    while True:
        response = await http.post("/graphql", json={"query": ORDERS, "variables": {"after": after}})
        page = response.json()["data"]["orders"]
        rows += [edge["node"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            return rows
        after = page["pageInfo"]["endCursor"]


async def test_a_killed_server_loses_and_doubles_no_order(tmp_path: Path) -> None:
    env = _environment(tmp_path / "data")
    acknowledged: set[str] = set()
    with run_server(tmp_path, env=env) as server:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
            registered = await http.post(
                "/graphql",
                json={
                    "query": REGISTER,
                    "variables": {"input": {"username": "ada", "email": "ada@example.com", "password": PASSWORD}},
                },
            )
        token = registered.json()["data"]["register"]["accessToken"]
        kill = asyncio.Event()
        burst = asyncio.create_task(_burst(server.base_url, token, acknowledged, kill))
        await asyncio.wait_for(kill.wait(), 60)
        server.process.send_signal(signal.SIGKILL)
        await asyncio.wait_for(burst, 30)
        assert server.process.wait(timeout=10) == -signal.SIGKILL

    assert KILL_AFTER_ACKS <= len(acknowledged) < BURST
    with run_server(tmp_path, env=env) as restarted:
        async with httpx.AsyncClient(base_url=restarted.base_url, headers=bearer(token), timeout=10) as http:
            rows = await _all_orders(http)
            retried = await http.post(
                "/graphql",
                json={
                    "query": PLACE,
                    "variables": {"input": {"symbol": "AAPL", "side": "BUY", "qty": "1", "clientOrderId": "burst-0"}},
                },
            )

    counts = Counter(row["clientOrderId"] for row in rows)
    assert all(count == 1 for count in counts.values()), counts.most_common(3)
    assert acknowledged <= set(counts)
    by_cid = {row["clientOrderId"]: row for row in rows}
    assert all(by_cid[cid]["status"] == "FILLED" for cid in acknowledged)
    for cid in set(counts) - acknowledged:  # reached the ledger, not the client: reconciled, never in flight
        row = by_cid[cid]
        assert (row["status"], row["rejectCode"]) in {("FILLED", None), ("REJECTED", "NOT_SENT")}, row
    again = retried.json()["data"]["placeOrder"]
    assert again["order"]["clientOrderId"] == "burst-0"
    assert again["order"]["status"] == by_cid["burst-0"]["status"]
