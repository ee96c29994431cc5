"""Market subscriptions over WebSocket are delivered through the connection's outbox: the
same messages Strawberry would send, conflated per symbol, ended in order."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Hashable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

import pytest
from graphql import ExecutionResult, GraphQLError
from starlette.websockets import WebSocketDisconnect
from websockets.asyncio.client import connect

from server.api.errors import ApiError, ErrorCode
from server.api.streams.direct import DirectStream, DirectTarget, Outbox
from server.api.streams.encoding import PreEncoded
from server.api.streams.execution import SubscriptionExecutor
from server.brokers.domain import Quote
from server.streams.mailbox import Mailbox
from tests.utils.streams import LEGACY_WS, TRANSPORT_WS, Stream, StreamingServer, multipart_events, ws_session

pytestmark = pytest.mark.anyio
QUOTES = "subscription($symbols: [String!]!) { quotes(symbols: $symbols) { symbol bidPrice askPrice timestamp } }"
NOW = datetime(2026, 12, 7, 15, tzinfo=UTC)
WAIT = 5.0


# ----- over a real server ---------------------------------------------------------------


async def raw_messages(address: str, token: str, protocol: str, count: int) -> list[str]:
    """The text of the first `count` messages of a quote subscription, as sent."""
    start = "subscribe" if protocol == TRANSPORT_WS else "start"
    async with asyncio.timeout(WAIT), connect(f"ws://{address}/graphql", subprotocols=[protocol]) as socket:  # type: ignore[list-item]
        await socket.send(json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}}))
        assert json.loads(await socket.recv())["type"] == "connection_ack"
        subscribe = {"id": "op 1", "type": start, "payload": {"query": QUOTES, "variables": {"symbols": ["AAPL"]}}}
        await socket.send(json.dumps(subscribe))
        received: list[str] = []
        while len(received) < count:
            message = await socket.recv()
            assert isinstance(message, str)
            if json.loads(message)["type"] != "ka":  # legacy keep-alives
                received.append(message)
        return received


@pytest.mark.parametrize(
    ("protocol", "keys", "streamed"),
    [(TRANSPORT_WS, ["id", "type", "payload"], "next"), (LEGACY_WS, ["type", "id", "payload"], "data")],
)
async def test_websocket_messages_are_the_bytes_strawberry_sends(
    server: StreamingServer, protocol: str, keys: list[str], streamed: str
) -> None:
    user = await server.sign_up("ada")
    (text,) = await raw_messages(server.address, user.access_token, protocol, 1)
    message = json.loads(text)
    assert list(message) == keys  # Strawberry's own key order for the protocol
    assert message["type"] == streamed
    assert message["id"] == "op 1"
    assert text == json.dumps(message, separators=(",", ":"))
    quote = message["payload"]["data"]["quotes"]
    assert quote["symbol"] == "AAPL"
    assert Decimal(quote["bidPrice"]) < Decimal(quote["askPrice"])


async def test_websocket_subscriptions_are_delivered_directly_and_multipart_ones_through_a_mailbox(
    server: StreamingServer,
) -> None:
    ada, bob = await server.sign_up("ada"), await server.sign_up("bob")
    async with ws_session(server.address, ada.access_token) as session:
        stream = Stream(session, QUOTES, symbols=["AAPL"])
        await stream.next()
        events = multipart_events(server.address, bob.access_token, QUOTES, {"symbols": ["MSFT"]})
        try:
            await anext(events)
            receivers = {
                ref.user_id: type(subscription.receiver)
                for ref, streams in server.services.streams._users.items()
                for routes in streams.routes.values()
                for subscription in routes
            }
            assert receivers == {ada.user_id: DirectStream, bob.user_id: Mailbox}
        finally:
            await events.aclose()  # type: ignore[attr-defined]
            await stream.close()


# ----- the outbox and its streams -------------------------------------------------------


class SharedExecutor:
    """Stands in for a subscription's executor: each payload's data, or an error."""

    def shared_result(self, payload: object) -> ExecutionResult:
        if payload == "bad":
            return ExecutionResult(data=None, errors=[GraphQLError("cannot be executed")])
        return ExecutionResult(data={"quotes": {"symbol": payload}})


class Socket:
    def __init__(self, fail_on: str | None = None, disconnect_on: str | None = None) -> None:
        self.sent: list[str] = []
        self._fail_on, self._disconnect_on = fail_on, disconnect_on

    async def send(self, message: object) -> None:
        assert isinstance(message, PreEncoded)
        if self._fail_on and self._fail_on in message.text:
            raise ValueError("the socket broke")
        if self._disconnect_on and self._disconnect_on in message.text:
            raise WebSocketDisconnect()
        self.sent.append(message.text)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def quote(symbol: str, step: int = 0) -> Quote:
    one = Decimal(1)
    return Quote(symbol, one, one, Decimal(2), one, NOW + timedelta(seconds=step))


def stream_on(outbox: Outbox, op: str, clock: Clock | None = None, lifetime: float = 60) -> DirectStream:
    return DirectStream(
        DirectTarget(outbox, f'{{"id":"{op}","type":"next","payload":{{"data":'),
        cast(SubscriptionExecutor, SharedExecutor()),
        lambda event: cast(Any, event).symbol,
        NOW + timedelta(seconds=lifetime),
        clock or Clock(),
    )


def key(symbol: str) -> Hashable:
    return ("quotes", symbol)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_the_latest_event_per_symbol_wins_while_it_waits() -> None:
    socket = Socket()
    outbox = Outbox(socket.send)
    stream = stream_on(outbox, "1")
    for step in range(3):
        stream.put(key("AAPL"), quote("AAPL", step))
        stream.put(key("MSFT"), quote("MSFT", step))
    assert len(outbox) == 2
    assert outbox.replaced == 4
    await settle()
    assert socket.sent == [
        '{"id":"1","type":"next","payload":{"data":{"quotes":{"symbol":"AAPL"}}}}',
        '{"id":"1","type":"next","payload":{"data":{"quotes":{"symbol":"MSFT"}}}}',
    ]
    stream.close()
    outbox.close()


async def test_a_failure_ends_the_stream_after_what_was_waiting() -> None:
    socket = Socket()
    outbox = Outbox(socket.send)
    stream = stream_on(outbox, "1")
    stream.put(key("AAPL"), quote("AAPL"))
    stream.fail(ApiError(ErrorCode.BROKER_UNAVAILABLE, "upstream gone"))
    stream.put(key("MSFT"), quote("MSFT"))  # after the end: never sent
    with pytest.raises(ApiError) as raised:
        async with asyncio.timeout(WAIT):
            await stream.wait()
    assert raised.value.code is ErrorCode.BROKER_UNAVAILABLE
    assert [json.loads(text)["payload"]["data"]["quotes"]["symbol"] for text in socket.sent] == ["AAPL"]
    outbox.close()


async def test_an_event_after_the_token_expired_ends_the_stream_instead() -> None:
    socket, clock = Socket(), Clock()
    outbox = Outbox(socket.send)
    stream = stream_on(outbox, "1", clock)
    clock.now += timedelta(seconds=61)
    stream.put(key("AAPL"), quote("AAPL"))
    with pytest.raises(ApiError) as raised:
        async with asyncio.timeout(WAIT):
            await stream.wait()
    assert raised.value.code is ErrorCode.UNAUTHENTICATED
    assert socket.sent == []
    outbox.close()


async def test_a_quiet_stream_ends_when_its_token_expires() -> None:
    stream = stream_on(Outbox(Socket().send), "1", lifetime=0.05)
    with pytest.raises(ApiError) as raised:
        async with asyncio.timeout(WAIT):
            await stream.wait()
    assert raised.value.code is ErrorCode.UNAUTHENTICATED


async def test_an_event_that_cannot_be_executed_ends_only_its_stream() -> None:
    socket = Socket()
    outbox = Outbox(socket.send)
    broken, healthy = stream_on(outbox, "1"), stream_on(outbox, "2")
    broken.put(key("bad"), cast(Quote, type("Event", (), {"symbol": "bad"})()))
    healthy.put(key("AAPL"), quote("AAPL"))
    with pytest.raises(GraphQLError, match="cannot be executed"):
        async with asyncio.timeout(WAIT):
            await broken.wait()
    await settle()
    assert [json.loads(text)["id"] for text in socket.sent] == ["2"]
    healthy.close()
    outbox.close()


async def test_a_failed_send_ends_its_stream_and_the_writer_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    socket = Socket(fail_on='"1"')
    outbox = Outbox(socket.send)
    first, second = stream_on(outbox, "1"), stream_on(outbox, "2")
    first.put(key("AAPL"), quote("AAPL"))
    second.put(key("AAPL"), quote("AAPL"))
    with pytest.raises(ValueError, match="the socket broke"):
        async with asyncio.timeout(WAIT):
            await first.wait()
    second.put(key("MSFT"), quote("MSFT"))
    await settle()
    assert [json.loads(text)["payload"]["data"]["quotes"]["symbol"] for text in socket.sent] == ["AAPL", "MSFT"]
    assert [record.getMessage() for record in caplog.records] == ["sending a market message failed"]
    second.close()
    outbox.close()


async def test_a_closed_connection_stops_the_writer_quietly(caplog: pytest.LogCaptureFixture) -> None:
    socket = Socket(disconnect_on="AAPL")
    outbox = Outbox(socket.send)
    stream = stream_on(outbox, "1")
    stream.put(key("AAPL"), quote("AAPL"))
    await settle()
    assert outbox._writer is not None
    assert outbox._writer.done()
    assert outbox._writer.exception() is None
    stream.put(key("MSFT"), quote("MSFT"))  # the connection's handler ends its streams; nothing more is written
    outbox.close()
    async with asyncio.timeout(WAIT):
        await stream.wait()  # ended with its connection
    assert socket.sent == []
    assert caplog.records == []


async def test_a_closed_stream_sends_nothing_more() -> None:
    socket = Socket()
    outbox = Outbox(socket.send)
    stream = stream_on(outbox, "1")
    stream.put(key("AAPL"), quote("AAPL"))
    stream.close()
    stream.put(key("MSFT"), quote("MSFT"))
    await settle()
    assert socket.sent == []
    outbox.close()
