"""orderUpdates and portfolio: what the ledger recorded reaches its owner, and only them."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.utils.streams import Stream, StreamingServer, eventually, ws_session
from tests.utils.trading import PLACE

pytestmark = pytest.mark.anyio
# `quote` needs the per-event loaders: a WebSocket context outlives every operation's own.
ORDER_UPDATES = (
    "subscription { orderUpdates { event order { id clientOrderId status filledQty symbol quote { bidPrice } } } }"
)
PORTFOLIO = """subscription { portfolio {
  equity marketValue unrealizedPl account { cash }
  positions { symbol qty side avgEntryPrice marketValue unrealizedPl currentPrice }
} }"""


async def _place(server: StreamingServer, user: object, **order: object) -> dict[str, object]:
    payload = (await server.run(user, PLACE, input=order))["placeOrder"]  # type: ignore[arg-type]
    assert payload["userErrors"] == [], payload
    return payload["order"]


async def _listening(server: StreamingServer, stream: Stream, user_id: str) -> None:
    stream.start()
    await eventually(lambda: server.services.order_updates.subscriber_count(user_id) == 1)


async def test_an_order_reports_new_then_fill_to_its_owner_and_to_nobody_else(server: StreamingServer) -> None:
    ada, bob = await server.sign_up("ada"), await server.sign_up("bob")
    async with (
        ws_session(server.address, ada.access_token) as ada_ws,
        ws_session(server.address, bob.access_token) as bob_ws,
    ):
        adas, bobs = Stream(ada_ws, ORDER_UPDATES), Stream(bob_ws, ORDER_UPDATES)
        await _listening(server, adas, ada.user_id)
        await _listening(server, bobs, bob.user_id)
        order = await _place(server, ada, symbol="AAPL", side="BUY", qty="2", clientOrderId="ada-1")
        new, fill = (await adas.next())["orderUpdates"], (await adas.next())["orderUpdates"]
        assert (new["event"], fill["event"]) == ("new", "fill")
        assert new["order"]["id"] == fill["order"]["id"] == order["id"]
        assert new["order"]["status"] == "NEW"
        assert Decimal(fill["order"]["quote"]["bidPrice"]) > 0
        assert (fill["order"]["status"], Decimal(fill["order"]["filledQty"])) == ("FILLED", Decimal(2))
        # Bob's first update is his own order: Ada's never reached him.
        await _place(server, bob, symbol="MSFT", side="BUY", qty="1", clientOrderId="bob-1")
        first_for_bob = (await bobs.next())["orderUpdates"]
        assert first_for_bob["order"]["clientOrderId"] == "bob-1"
        await adas.close()
        await bobs.close()


async def test_a_resting_order_reports_its_cancel(server: StreamingServer) -> None:
    ada = await server.sign_up("ada")
    async with ws_session(server.address, ada.access_token) as session:
        updates = Stream(session, ORDER_UPDATES)
        await _listening(server, updates, ada.user_id)
        order = await _place(server, ada, symbol="AAPL", side="BUY", type="LIMIT", qty="1", limitPrice="220")
        assert (await updates.next())["orderUpdates"]["event"] == "new"
        await server.run(ada, "mutation($id: ID!) { cancelOrder(id: $id) { userErrors { code } } }", id=order["id"])
        canceled = (await updates.next())["orderUpdates"]
        assert canceled["event"] == "canceled"
        assert canceled["order"]["status"] == "CANCELED"
        await updates.close()


async def test_the_portfolio_follows_fills_and_quotes(server: StreamingServer) -> None:
    ada = await server.sign_up("ada")
    async with ws_session(server.address, ada.access_token) as session:
        portfolio = Stream(session, PORTFOLIO)
        empty = (await portfolio.next())["portfolio"]
        assert empty["positions"] == []
        assert Decimal(empty["equity"]) == Decimal(empty["account"]["cash"])
        await _place(server, ada, symbol="AAPL", side="BUY", qty="10")
        held = (await portfolio.next())["portfolio"]
        (position,) = held["positions"]
        assert (position["symbol"], Decimal(position["qty"]), position["side"]) == ("AAPL", Decimal(10), "LONG")
        for _ in range(30):  # until the price moves away from the entry
            server.tick()
            moved = (await portfolio.next())["portfolio"]
            (position,) = moved["positions"]
            if Decimal(position["unrealizedPl"]) != 0:
                break
        else:
            raise AssertionError("the price never moved")
        cost = Decimal(position["avgEntryPrice"]) * 10
        assert Decimal(position["marketValue"]) == (Decimal(position["currentPrice"]) * 10).quantize(Decimal("0.01"))
        assert Decimal(position["unrealizedPl"]) == (Decimal(position["marketValue"]) - cost).quantize(Decimal("0.01"))
        equity = Decimal(moved["account"]["cash"]) + Decimal(position["marketValue"])
        assert Decimal(moved["equity"]) == equity
        assert Decimal(moved["unrealizedPl"]) == Decimal(position["unrealizedPl"])
        await portfolio.close()


async def test_the_portfolio_is_throttled(server: StreamingServer) -> None:
    """Many ticks in a burst make a few snapshots, each at the latest prices."""
    ada = await server.sign_up("ada")
    async with ws_session(server.address, ada.access_token) as session:
        await _place(server, ada, symbol="AAPL", side="BUY", qty="1")
        portfolio = Stream(session, PORTFOLIO)
        await portfolio.next()
        for _ in range(20):
            server.tick()
        last_quote = server.services.exchange.quote("AAPL")
        mid = (last_quote.bid_price + last_quote.ask_price) / 2
        received = 0
        while True:
            snapshot = (await portfolio.next())["portfolio"]
            received += 1
            if Decimal(snapshot["positions"][0]["currentPrice"]) == mid:
                break
        assert received < 20
        await portfolio.close()
