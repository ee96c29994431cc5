"""The WebSocket handlers: set-up slots (a few subscriptions at a time, fairly between
callers), and handed-over operations racing the client's complete, a reused id and the
connection's close, on both protocols."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, cast

import pytest
from starlette.routing import WebSocketRoute
from strawberry.asgi import ASGIWebSocketAdapter
from strawberry.extensions import ParserCache

from server.api.extensions import CACHE_SIZE, cached_parse
from server.api.http import TradingGraphQL
from server.api.ws_handlers import SETUPS_AT_ONCE, SetupSlots, TransportWSHandler, is_subscription
from server.brokers.paper.market_data import PaperMarket
from tests.utils.streams import LEGACY_WS, RAW_QUOTES, TRANSPORT_WS, StreamingServer, eventually, raw_session

pytestmark = pytest.mark.anyio
SYMBOLS = ["AAPL", "MSFT", "SPY", "QQQ", "IWM", "TSLA", "NVDA", "AMD"]
SET_UP_SECONDS = 0.05


def graphql_view(server: StreamingServer) -> TradingGraphQL:
    (route,) = [route for route in server.app.routes if isinstance(route, WebSocketRoute)]
    return cast(TradingGraphQL, route.app)


class SetUps:
    """Slows every subscription's set-up (its check of the symbols) and counts how many are
    under way at once, per symbol's owner."""

    def __init__(self) -> None:
        self.running = 0
        self.most = 0
        self.by_symbol: dict[str, int] = {}
        self.gate = asyncio.Event()
        self.gate.set()

    @contextmanager
    def installed(self, monkeypatch: pytest.MonkeyPatch) -> Iterator[SetUps]:
        original = PaperMarket.get_quotes

        async def get_quotes(market: PaperMarket, symbols: list[str]) -> Any:
            self.running += 1
            self.most = max(self.most, self.running)
            try:
                await self.gate.wait()
                await asyncio.sleep(SET_UP_SECONDS)
            finally:
                self.running -= 1
            return await original(market, symbols)

        monkeypatch.setattr(PaperMarket, "get_quotes", get_quotes)
        yield self


def problems(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING]


# ----- set-up slots ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "name", "expected"),
    [
        (RAW_QUOTES, None, True),
        ('{ quote(symbol: "AAPL") { symbol } }', None, False),
        ("mutation { logout }", None, False),
        ("query Q { a } subscription S { quotes(symbols: []) { symbol } }", "S", True),
        ("query Q { a } subscription S { quotes(symbols: []) { symbol } }", "Q", False),
        ("query Q { a } subscription S { quotes(symbols: []) { symbol } }", None, False),  # the first runs
        ("subscription S { quotes(symbols: []) { symbol } } query Q { a }", None, True),
        ("fragment F on Quote { symbol } subscription { quotes(symbols: []) { ...F } }", None, True),
        ("subscription {", None, False),  # Strawberry reports it
        ("subscription { " + "a " * 3000 + "}", None, False),  # past the token limit: refused
    ],
)
def test_only_subscriptions_take_set_up_slots(query: str, name: str | None, expected: bool) -> None:
    assert is_subscription(query, name, 2000) is expected


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_a_burst_is_set_up_a_few_at_a_time(
    server: StreamingServer, protocol: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    slots = graphql_view(server).setup_slots = SetupSlots(3, per_caller=3)
    user = await server.sign_up("ada")
    with SetUps().installed(monkeypatch) as set_ups:
        async with raw_session(server.address, user.access_token, protocol) as session:
            for number, symbol in enumerate(SYMBOLS):
                await session.start(str(number), [symbol])
            got = {(await session.message())["payload"]["data"]["quotes"]["symbol"] for _ in SYMBOLS}
    assert got == set(SYMBOLS)
    assert set_ups.most == 3
    assert slots.free == 3
    assert slots.callers == 0


async def test_one_callers_set_ups_leave_slots_to_the_others(
    server: StreamingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    slots = graphql_view(server).setup_slots = SetupSlots(4, per_caller=2)
    ada, bob = await server.sign_up("ada"), await server.sign_up("bob")
    with SetUps().installed(monkeypatch) as set_ups:
        set_ups.gate.clear()  # ada's set-ups hang (a slow broker, say)
        async with (
            raw_session(server.address, ada.access_token, TRANSPORT_WS) as slow,
            raw_session(server.address, bob.access_token, TRANSPORT_WS) as quick,
        ):
            for number, symbol in enumerate(SYMBOLS):
                await slow.start(str(number), [symbol])
            await eventually(lambda: set_ups.running == 2)  # ada holds two slots, no more
            set_ups.gate.set()  # bob's set-up, and ada's from now on, go through
            await quick.start("1", ["AAPL"])
            assert (await quick.message())["payload"]["data"]["quotes"]["symbol"] == "AAPL"
            for _ in SYMBOLS:
                await slow.message()
    assert set_ups.most <= 3  # ada's two and bob's one
    assert slots.free == 4


@pytest.mark.parametrize(
    ("protocol", "answered"),
    [
        (TRANSPORT_WS, lambda message: message["payload"]["data"] == {"quote": {"symbol": "AAPL"}}),
        (LEGACY_WS, lambda message: message["type"] == "error"),  # legacy graphql-ws refuses queries at once
    ],
)
async def test_queries_over_a_websocket_are_not_held_back(
    server: StreamingServer, protocol: str, answered: Callable[[dict[str, Any]], bool]
) -> None:
    slots = graphql_view(server).setup_slots = SetupSlots(1, per_caller=1)
    release = await slots.take("someone else")  # every slot taken
    user = await server.sign_up("ada")
    async with raw_session(server.address, user.access_token, protocol) as session:
        await session.send("1", '{ quote(symbol: "AAPL") { symbol } }')
        answer = await session.message()
    release()
    assert answered(answer)


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_every_subscription_gives_its_set_up_slot_back(server: StreamingServer, protocol: str) -> None:
    slots = graphql_view(server).setup_slots
    user = await server.sign_up("ada")
    subscriptions = [
        RAW_QUOTES,
        'subscription { trades(symbols: ["MSFT"]) { symbol } }',
        'subscription { bars(symbols: ["SPY"]) { symbol } }',
        "subscription { orderUpdates { event } }",
        "subscription { portfolio { equity } }",
        'subscription { quotes(symbols: ["NOPE"]) { symbol } }',  # refused
    ]
    async with raw_session(server.address, user.access_token, protocol) as session:
        for number, query in enumerate(subscriptions):
            await session.send(str(number), query, {"symbols": ["AAPL"]} if query is RAW_QUOTES else None)
        await session.message()  # something has arrived: the operations are under way
        await eventually(lambda: slots.free == SETUPS_AT_ONCE)  # those still open hold none
    assert slots.callers == 0


async def test_a_legacy_stop_while_waiting_for_a_slot_is_answered(server: StreamingServer) -> None:
    slots = graphql_view(server).setup_slots = SetupSlots(1, per_caller=1)
    release = await slots.take("someone else")
    user = await server.sign_up("ada")
    async with raw_session(server.address, user.access_token, LEGACY_WS) as session:
        await session.start("1", ["AAPL"])
        await eventually(lambda: slots.callers == 2)  # it waits
        await session.stop("1")
        assert await session.message() == {"type": "complete", "id": "1"}
    release()
    await eventually(lambda: slots.callers == 0)


# ----- handed-over operations racing the client ----------------------------------------


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_a_connection_closed_while_subscriptions_are_set_up_leaves_no_stream(
    server: StreamingServer, protocol: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    user = await server.sign_up("ada")
    with SetUps().installed(monkeypatch) as set_ups:
        async with raw_session(server.address, user.access_token, protocol) as session:
            for number in range(12):
                await session.start(str(number), [SYMBOLS[number % len(SYMBOLS)]])
            await eventually(lambda: set_ups.running > 0)
        # the socket closed with set-ups under way: they end, or are handed over and closed
        await eventually(lambda: set_ups.running == 0)
    await eventually(lambda: server.services.streams._users == {})
    slots = graphql_view(server).setup_slots
    await eventually(lambda: slots.free == SETUPS_AT_ONCE and slots.callers == 0)
    assert problems(caplog) == []


def slow_failure_messages(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sending a stream's failure waits a little, as a send does to a slow reader."""
    original = ASGIWebSocketAdapter.send_json

    async def send_json(adapter: ASGIWebSocketAdapter, message: Any) -> None:
        payload = message.get("payload") if isinstance(message, dict) else None
        if isinstance(payload, dict) and payload.get("errors"):
            await asyncio.sleep(0.2)
        await original(adapter, message)

    monkeypatch.setattr(ASGIWebSocketAdapter, "send_json", send_json)


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_a_complete_racing_a_streams_failure_is_quiet(
    server: StreamingServer, protocol: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    slow_failure_messages(monkeypatch)
    user = await server.sign_up("ada")
    async with raw_session(server.address, user.access_token, protocol) as session:
        await session.start("1", ["AAPL"])
        await session.message()
        server.tick(16 * 60)  # the token expires: the writer starts sending the failure
        await asyncio.sleep(0.05)
        await session.stop("1")  # and the client completes meanwhile
        failed = await session.message()
        assert failed["payload"]["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        if protocol == LEGACY_WS:  # legacy graphql-ws answers a stop
            assert await session.message() == {"type": "complete", "id": "1"}
        await session.start("1", ["MSFT"])  # the id is free again, and the connection alive
        again = await session.message()
    assert again["id"] == "1"
    assert again["payload"]["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"  # the same expired token
    assert problems(caplog) == []


async def test_a_close_racing_a_streams_failure_still_cleans_up_the_rest(
    server: StreamingServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    slow_failure_messages(monkeypatch)
    user = await server.sign_up("ada")
    async with raw_session(server.address, user.access_token, TRANSPORT_WS) as session:
        await session.start("1", ["AAPL"])
        await session.message()
        await session.send("2", "subscription { orderUpdates { event } }")
        await eventually(lambda: server.services.order_updates.subscriber_count(user.user_id) == 1)
        server.tick(16 * 60)
        await asyncio.sleep(0.05)  # the failure is being sent as the socket closes
    await eventually(lambda: server.services.order_updates.subscriber_count(user.user_id) == 0)
    await eventually(lambda: server.services.streams._users == {})
    assert problems(caplog) == []


async def test_a_legacy_start_reusing_an_id_completes_the_old_operation(server: StreamingServer) -> None:
    user = await server.sign_up("ada")
    async with raw_session(server.address, user.access_token, LEGACY_WS) as session:
        await session.start("1", ["AAPL"])
        assert (await session.message())["payload"]["data"]["quotes"]["symbol"] == "AAPL"
        await session.start("1", ["MSFT"])
        assert await session.message() == {"type": "complete", "id": "1"}
        assert (await session.message())["payload"]["data"]["quotes"]["symbol"] == "MSFT"
    await eventually(lambda: server.services.streams._users == {})


def test_the_gate_parses_through_the_operations_own_parser_cache() -> None:
    query = RAW_QUOTES.replace("subscription(", "subscription ParsedOnce(")
    assert is_subscription(query, None, 2000)
    assert cached_parse(query, 2000) is cached_parse(query, 2000)  # what Strawberry's ParserCache will find
    assert ParserCache(maxsize=CACHE_SIZE).cached_parse_document(query, max_tokens=2000) is cached_parse(query, 2000)


async def test_a_legacy_set_up_finishing_as_the_connection_closes_is_not_handed_over(
    server: StreamingServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The connection's cleanup cancels its operations one at a time; one whose set-up ends
    meanwhile must not be handed over (its stream would outlive the connection)."""
    original = PaperMarket.get_quotes
    calls: list[int] = []

    async def get_quotes(market: PaperMarket, symbols: list[str]) -> Any:
        calls.append(len(calls))
        first = len(calls) == 1
        try:
            await asyncio.sleep(0.3 if first else 0.1)
        except asyncio.CancelledError:
            if first:
                await asyncio.sleep(0.2)  # the first one takes its time to stop
            raise
        return await original(market, symbols)

    monkeypatch.setattr(PaperMarket, "get_quotes", get_quotes)
    user = await server.sign_up("ada")
    async with raw_session(server.address, user.access_token, LEGACY_WS) as session:
        await session.start("0", ["AAPL"])
        await session.start("1", ["MSFT"])
        await eventually(lambda: len(calls) == 2)
    await asyncio.sleep(0.4)  # the second set-up ends while the first is being cancelled
    await eventually(lambda: server.services.streams._users == {})
    assert problems(caplog) == []


async def test_a_cancel_swallowed_after_a_complete_hands_over_nothing_under_the_reused_id(
    server: StreamingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """wait_for can swallow a cancel that lands as its result arrives: the completed
    operation's set-up then goes on, and must not take over the new operation of that id."""
    original = PaperMarket.get_quotes
    answer: list[asyncio.Future[None]] = []

    async def get_quotes(market: PaperMarket, symbols: list[str]) -> Any:
        if not answer:
            answer.append(asyncio.get_running_loop().create_future())
            await answer[0]
        return await original(market, symbols)

    cleanup = TransportWSHandler.cleanup_operation

    async def cleanup_as_the_broker_answers(handler: TransportWSHandler, operation_id: str) -> None:
        if answer and not answer[0].done():
            answer[0].set_result(None)  # the broker answers in the very step the client completes
        await cleanup(handler, operation_id)

    monkeypatch.setattr(PaperMarket, "get_quotes", get_quotes)
    monkeypatch.setattr(TransportWSHandler, "cleanup_operation", cleanup_as_the_broker_answers)
    user = await server.sign_up("ada")
    async with raw_session(server.address, user.access_token, TRANSPORT_WS) as session:
        await session.start("1", ["AAPL"])
        await eventually(lambda: bool(answer))
        await session.stop("1")
        await session.start("1", ["MSFT"])  # the id reused at once
        first = await session.message()
        server.tick()
        second = await session.message()
        symbols = [message["payload"]["data"]["quotes"]["symbol"] for message in (first, second)]
        assert symbols == ["MSFT", "MSFT"]
        assert {key[1] for key in server.services.streams.subscribed(next(iter(server.services.streams._users)))} == {
            "MSFT"
        }
