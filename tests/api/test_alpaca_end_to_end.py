"""The whole product on an Alpaca connection: the server configured for Alpaca and pointed
at the paper exchange's Alpaca-compatible facade (real uvicorn on both sides), driven
through GraphQL only: register with Alpaca keys, test the connection, quote, place, fill,
cancel, and the orderUpdates and quotes subscriptions."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from server.brokers.alpaca.broker import AlpacaBroker
from server.brokers.paper.clock import ManualClock
from tests.utils.accounts import SignedIn, register
from tests.utils.facade import KEY_ID, SECRET_KEY, Facade, serve_facade
from tests.utils.paper import paper_world
from tests.utils.streams import Stream, StreamingServer, eventually, streaming_server, ws_session
from tests.utils.trading import CANCEL, PLACE

pytestmark = pytest.mark.anyio
STEP_WAIT_SECONDS = 0.2
TEST_CONNECTION = """{ testConnection { connection { kind isDefault } reachable accountStatus accountNumber
  marketData marketOpen stockFeed optionFeed problemCode } }"""
POSITIONS = "{ positions { symbol qty side quote { symbol bidPrice askPrice } } account { cash realizedPl } }"
ORDER_UPDATES = "subscription { orderUpdates { event order { id clientOrderId status filledQty } } }"
QUOTES = 'subscription { quotes(symbols: ["AAPL"]) { symbol bidPrice askPrice timestamp } }'


@dataclass
class AlpacaWorld:
    server: StreamingServer
    facade: Facade
    user: SignedIn

    async def run(self, query: str, **variables: Any) -> dict[str, Any]:
        return await self.server.run(self.user, query, **variables)

    def broker(self, connection_id: str) -> AlpacaBroker:
        broker = self.server.services.brokers.built(connection_id)
        assert isinstance(broker, AlpacaBroker)
        return broker


@pytest.fixture
async def world(tmp_path: Path, clock: ManualClock) -> AsyncIterator[AlpacaWorld]:
    async with serve_facade(paper_world()) as facade:
        settings = {
            "alpaca_trading_url": facade.url,
            "alpaca_data_url": facade.url,
            "alpaca_data_stream_url": f"ws://{facade.address}",
            "stream_grace_seconds": 0,
            "broker_timeout_seconds": 2,
        }
        async with streaming_server(tmp_path / "data", clock, **settings) as server:
            user = await register(server.http, "ada", alpacaApiKey=KEY_ID, alpacaSecretKey=SECRET_KEY)
            yield AlpacaWorld(server, facade, user)


async def _listening(world: AlpacaWorld) -> str:
    """The Alpaca connection's id, once its broker's trade-updates stream is listening."""
    data = await world.run("{ me { brokerConnections { id kind isDefault } } }")
    (connection,) = [c for c in data["me"]["brokerConnections"] if c["isDefault"]]
    assert connection["kind"] == "ALPACA_PAPER"
    await world.run("{ account { cash } }")  # builds the broker, which starts its stream
    broker = world.broker(connection["id"])
    await eventually(lambda: broker.stream.connects >= 1)
    return connection["id"]


async def test_test_connection_reports_the_alpaca_account_and_feed(world: AlpacaWorld) -> None:
    checks = (await world.run(TEST_CONNECTION))["testConnection"]
    alpaca = next(check for check in checks if check["connection"]["kind"] == "ALPACA_PAPER")
    paper = next(check for check in checks if check["connection"]["kind"] == "PAPER")
    account = world.facade.world.exchange.account(world.facade.world.account_id)
    assert alpaca == {
        "connection": {"kind": "ALPACA_PAPER", "isDefault": True},
        "reachable": True,
        "accountStatus": "ACTIVE",
        "accountNumber": account.account_number,
        "marketData": True,
        "marketOpen": True,
        "stockFeed": "iex",
        "optionFeed": "indicative",
        "problemCode": None,
    }
    assert paper["reachable"]
    assert paper["stockFeed"] == "paper"


async def test_revoked_keys_show_in_test_connection_with_a_code(world: AlpacaWorld) -> None:
    world.facade.keys.revoke(KEY_ID)
    checks = (await world.run(TEST_CONNECTION))["testConnection"]
    alpaca = next(check for check in checks if check["connection"]["kind"] == "ALPACA_PAPER")
    assert alpaca["reachable"] is False
    assert alpaca["problemCode"] == "BROKER_AUTH_FAILED"
    answer = await _raw(world, "{ account { cash } }")  # on a plain query: a coded GraphQL error
    assert answer["errors"][0]["extensions"]["code"] == "BROKER_AUTH_FAILED"
    assert KEY_ID not in str(answer)
    assert SECRET_KEY not in str(answer)


async def _raw(world: AlpacaWorld, query: str) -> dict[str, Any]:
    response = await world.server.http.post("/graphql", json={"query": query}, headers=world.user.headers)
    return response.json()


async def test_place_fill_and_cancel_through_graphql(world: AlpacaWorld) -> None:
    await _listening(world)
    bought = (await world.run(PLACE, input={"symbol": "AAPL", "side": "BUY", "qty": "3"}))["placeOrder"]
    assert bought["userErrors"] == []
    assert bought["order"]["status"] == "FILLED"
    facade_orders = world.facade.world.exchange.list_orders(world.facade.world.account_id)
    assert [o.client_order_id for o in facade_orders] == [bought["order"]["clientOrderId"]]

    data = await world.run(POSITIONS)
    (position,) = data["positions"]
    expected = world.facade.world.exchange.quote("AAPL")  # the facade's market, not the server's own
    assert position["qty"] == "3"
    assert position["quote"]["bidPrice"] == format(expected.bid_price, "f")
    assert data["account"]["realizedPl"] is None  # Alpaca does not report it
    assert Decimal(data["account"]["cash"]) < Decimal(100000)

    below = (expected.bid_price * Decimal("0.95")).quantize(Decimal("0.01"))  # inside the price band, never reached
    resting = {"symbol": "AAPL", "side": "BUY", "qty": "1", "type": "LIMIT", "limitPrice": str(below)}
    placed = (await world.run(PLACE, input=resting))["placeOrder"]
    assert placed["order"]["status"] == "NEW"
    canceled = (await world.run(CANCEL, id=placed["order"]["id"]))["cancelOrder"]
    assert canceled["userErrors"] == []
    assert canceled["order"]["status"] == "CANCELED"


async def test_order_updates_and_quotes_arrive_over_websockets(world: AlpacaWorld) -> None:
    await _listening(world)
    async with ws_session(world.server.address, world.user.access_token) as session:
        updates = Stream(session, ORDER_UPDATES)
        updates.start()
        await eventually(lambda: world.server.services.order_updates.subscriber_count(world.user.user_id) == 1)
        placed = (await world.run(PLACE, input={"symbol": "MSFT", "side": "BUY", "qty": "2"}))["placeOrder"]
        new, fill = (await updates.next())["orderUpdates"], (await updates.next())["orderUpdates"]
        assert [new["event"], fill["event"]] == ["new", "fill"]
        assert fill["order"]["id"] == placed["order"]["id"]
        assert fill["order"]["filledQty"] == "2"
        await updates.close()

        quotes = Stream(session, QUOTES)
        quote = await _next_while_stepping(quotes, world.facade)
        assert quote["quotes"]["symbol"] == "AAPL"
        assert quote["quotes"]["bidPrice"] == format(world.facade.world.exchange.quote("AAPL").bid_price, "f")
        await quotes.close()


async def _next_while_stepping(stream: Stream, facade: Facade) -> dict[str, Any]:
    """Step the facade's market until the subscription delivers (the facade pushes each new step)."""
    async with asyncio.timeout(5):
        while True:
            try:
                return await stream.next(within=STEP_WAIT_SECONDS)
            except TimeoutError:
                facade.world.step()


async def test_a_slow_and_failing_alpaca_broker_never_stalls_another_users_paper_quotes(world: AlpacaWorld) -> None:
    """Faults on one user's Alpaca broker (latency, 429s, 5xx, a hang) while another user
    quotes on a paper connection: the paper quotes stay fast, so the loop never blocked."""
    await _listening(world)
    bob = await register(world.server.http, "bob")
    faults = world.facade.faults
    faults.latency_seconds, faults.errors_429, faults.errors_5xx, faults.hangs = 0.2, 3, 3, 2
    alpaca_load = asyncio.gather(*(_raw(world, "{ account { cash } positions { symbol } }") for _ in range(12)))
    latencies = []
    for _ in range(60):
        started = time.perf_counter()
        result = await world.server.run(bob, '{ quote(symbol: "AAPL") { bidPrice } }')
        latencies.append(time.perf_counter() - started)
        assert result["quote"]["bidPrice"]
    answers = await alpaca_load
    latencies.sort()
    assert latencies[int(len(latencies) * 0.99) - 1] < 0.1, latencies[-5:]
    for answer in answers:  # each Alpaca request ends in data or a coded error, never a 500
        codes = {error["extensions"]["code"] for error in answer.get("errors", [])}
        assert codes <= {"BROKER_UNAVAILABLE", "RATE_LIMITED"}, answer


async def test_server_level_keys_serve_public_market_data_from_alpaca(tmp_path: Path, clock: ManualClock) -> None:
    async with serve_facade(paper_world()) as facade:
        settings = {
            "alpaca_trading_url": facade.url,
            "alpaca_data_url": facade.url,
            "alpaca_api_key": KEY_ID,
            "alpaca_secret_key": SECRET_KEY,
        }
        async with streaming_server(tmp_path / "data", clock, **settings) as server:
            facade.world.step(times=3)  # the facade's market moves; the server's own paper market does not
            response = await server.http.post("/graphql", json={"query": '{ quote(symbol: "AAPL") { bidPrice } }'})
            quote = response.json()["data"]["quote"]
            assert quote["bidPrice"] == format(facade.world.exchange.quote("AAPL").bid_price, "f")
            assert quote["bidPrice"] != format(server.services.paper_market._exchange.quote("AAPL").bid_price, "f")


async def test_orders_of_an_alpaca_connection_are_quoted_by_it_in_one_batch(world: AlpacaWorld) -> None:
    """Also after a restart, when nothing has built the connection's broker yet: the orders
    resolver finds it while the batch is held, so the page still makes one quote call."""
    connection_id = await _listening(world)
    for symbol in ("AAPL", "MSFT", "NVDA"):
        placed = (await world.run(PLACE, input={"symbol": symbol, "side": "BUY", "qty": "1"}))["placeOrder"]
        assert placed["userErrors"] == []
    registry = world.server.services.brokers
    await registry._brokers.pop(connection_id).close()  # as if the server had just started
    calls: list[list[str]] = []
    real = AlpacaBroker.get_quotes

    async def counted(broker: AlpacaBroker, symbols: Any) -> Any:
        calls.append(list(symbols))
        return await real(broker, symbols)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(AlpacaBroker, "get_quotes", counted)
        data = await world.run("{ orders(status: ALL) { edges { node { symbol quote { bidPrice } } } } }")
    nodes = [edge["node"] for edge in data["orders"]["edges"]]
    assert sorted(node["symbol"] for node in nodes) == ["AAPL", "MSFT", "NVDA"]
    facade_market = world.facade.world.exchange
    for node in nodes:
        assert node["quote"]["bidPrice"] == format(facade_market.quote(node["symbol"]).bid_price, "f")
    assert len(calls) == 1
    assert sorted(calls[0]) == ["AAPL", "MSFT", "NVDA"]
