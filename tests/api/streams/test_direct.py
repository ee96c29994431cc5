"""Market subscriptions over WebSocket are delivered through the connection's outbox: the
same messages Strawberry would send, conflated per symbol, ended in order."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Hashable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace
from typing import Any, cast

import pytest
from graphql import ExecutionResult, GraphQLError
from starlette.websockets import WebSocketDisconnect

from server.api.errors import ApiError, ErrorCode
from server.api.streams.direct import DirectStream, DirectTarget, Outbox
from server.api.streams.encoding import PreEncoded
from server.api.streams.execution import SubscriptionExecutor
from server.brokers.domain import Quote
from server.streams.hub import MarketSubscription
from server.streams.mailbox import Mailbox
from tests.utils.metrics import scrape, value
from tests.utils.streams import (
    LEGACY_WS,
    RAW_QUOTES,
    TRANSPORT_WS,
    Stream,
    StreamingServer,
    eventually,
    multipart_events,
    raw_session,
    ws_session,
)

pytestmark = pytest.mark.anyio
NOW = datetime(2026, 12, 7, 15, tzinfo=UTC)
WAIT = 5.0


# ----- over a real server ---------------------------------------------------------------


PROTOCOLS = [(TRANSPORT_WS, ["id", "type", "payload"], "next"), (LEGACY_WS, ["type", "id", "payload"], "data")]


@pytest.mark.parametrize(("protocol", "keys", "streamed"), PROTOCOLS)
async def test_websocket_messages_are_the_bytes_strawberry_sends(
    server: StreamingServer, protocol: str, keys: list[str], streamed: str
) -> None:
    user = await server.sign_up("ada")
    async with raw_session(server.address, user.access_token, protocol) as session:
        await session.start("op 1", ["AAPL"])
        text = await session.text()
    message = json.loads(text)
    assert list(message) == keys  # Strawberry's own key order for the protocol
    assert message["type"] == streamed
    assert message["id"] == "op 1"
    assert text == json.dumps(message, separators=(",", ":"))
    quote = message["payload"]["data"]["quotes"]
    assert quote["symbol"] == "AAPL"
    assert Decimal(quote["bidPrice"]) < Decimal(quote["askPrice"])


@pytest.mark.parametrize(("protocol", "keys", "streamed"), PROTOCOLS)
async def test_a_stream_that_fails_ends_as_strawberry_ends_it_and_is_counted_then(
    server: StreamingServer, protocol: str, keys: list[str], streamed: str
) -> None:
    user = await server.sign_up("ada")
    async with raw_session(server.address, user.access_token, protocol) as session:
        await session.start("1", ["AAPL"])
        assert (await session.message())["type"] == streamed
        live = await scrape(server.http)
        server.tick(16 * 60)  # past the 15-minute token: the next quote finds it expired
        failed = await session.message()
        completed = await session.message()
        ended = await scrape(server.http)
    assert list(failed) == keys
    assert failed["type"] == streamed
    assert failed["payload"]["data"] is None
    (error,) = failed["payload"]["errors"]
    assert error["extensions"]["code"] == "UNAUTHENTICATED"
    expected = {"type": "complete", "id": "1"} if protocol == LEGACY_WS else {"id": "1", "type": "complete"}
    assert completed == expected
    assert value(live, "graphql_subscriptions_active", field="quotes") == 1
    assert value(live, "graphql_operations_total", type="subscription", outcome="ok") == 0  # still open
    assert value(ended, "graphql_subscriptions_active", field="quotes") == 0
    assert value(ended, "graphql_operations_total", type="subscription", outcome="UNAUTHENTICATED") == 1
    assert server.services.streams._users == {}  # its upstream symbol released


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_a_stopped_stream_releases_its_symbol_and_its_id(server: StreamingServer, protocol: str) -> None:
    user = await server.sign_up("ada")
    async with raw_session(server.address, user.access_token, protocol) as session:
        await session.start("1", ["AAPL"])
        await session.message()
        await session.stop("1")
        if protocol == LEGACY_WS:  # legacy graphql-ws answers a stop
            assert await session.message() == {"type": "complete", "id": "1"}
        await eventually(lambda: server.services.streams._users == {})
        await session.start("1", ["MSFT"])  # the id is free again
        assert (await session.message())["payload"]["data"]["quotes"]["symbol"] == "MSFT"
    samples = await scrape(server.http)
    assert value(samples, "graphql_operations_total", type="subscription", outcome="ok") >= 1


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_a_connection_that_closes_closes_its_streams_quietly(
    server: StreamingServer, protocol: str, caplog: pytest.LogCaptureFixture
) -> None:
    user = await server.sign_up("ada")
    async with raw_session(server.address, user.access_token, protocol) as session:
        await session.start("1", ["AAPL"])
        await session.start("2", ["MSFT"])
        await session.message()
        await session.message()
        live = await scrape(server.http)
    await eventually(lambda: server.services.streams._users == {})
    ended = await scrape(server.http)
    assert value(live, "graphql_subscriptions_active", field="quotes") == 2
    assert value(ended, "graphql_subscriptions_active", field="quotes") == 0
    assert value(ended, "graphql_operations_total", type="subscription", outcome="ok") == 2
    assert [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING] == []


async def test_websocket_subscriptions_are_delivered_directly_and_multipart_ones_through_a_mailbox(
    server: StreamingServer,
) -> None:
    ada, bob = await server.sign_up("ada"), await server.sign_up("bob")
    async with ws_session(server.address, ada.access_token) as session:
        stream = Stream(session, RAW_QUOTES, symbols=["AAPL"])
        await stream.next()
        events = multipart_events(server.address, bob.access_token, RAW_QUOTES, {"symbols": ["MSFT"]})
        try:
            await anext(events)
            receivers = {
                ref.user_id: type(subscription.receiver)
                for ref, streams in server.services.streams._users.items()
                for routes in streams.routes.values()
                for subscription in routes
            }
            assert receivers == {ada.user_id: DirectStream, bob.user_id: Mailbox}
            (direct,) = [
                subscription.receiver
                for streams in server.services.streams._users.values()
                for routes in streams.routes.values()
                for subscription in routes
                if isinstance(subscription.receiver, DirectStream)
            ]
            assert direct.outbox._flush is not None  # the server's protocol offers its flush
        finally:
            await events.aclose()  # type: ignore[attr-defined]
            await stream.close()


async def test_streams_of_one_query_and_variables_share_an_executor_that_keeps_no_context(
    server: StreamingServer,
) -> None:
    ada, bob = await server.sign_up("ada"), await server.sign_up("bob")
    async with (
        raw_session(server.address, ada.access_token, TRANSPORT_WS) as first,
        raw_session(server.address, bob.access_token, LEGACY_WS) as second,
    ):
        await first.start("1", ["AAPL"])
        await first.start("2", ["MSFT"])
        await second.start("1", ["AAPL"])
        for session, count in ((first, 2), (second, 1)):
            for _ in range(count):
                await session.message()
        streams = {
            (ref.user_id, key[1]): subscription.receiver
            for ref, user_streams in server.services.streams._users.items()
            for key, routes in user_streams.routes.items()
            for subscription in routes
        }
        executors = {owner: cast(DirectStream, stream)._executor for owner, stream in streams.items()}
    assert executors[(ada.user_id, "AAPL")] is executors[(bob.user_id, "AAPL")]
    assert executors[(ada.user_id, "MSFT")] is not executors[(ada.user_id, "AAPL")]
    assert all(executor.context_value is None for executor in executors.values())


# ----- the outbox and its streams -------------------------------------------------------


class SharedExecutor:
    """Stands in for a subscription's executor: each payload's data, or an error."""

    def shared_result(self, payload: object) -> ExecutionResult:
        if payload == "bad":
            failure = RuntimeError("a resolver failed")
            return ExecutionResult(data=None, errors=[GraphQLError(str(failure), original_error=failure)])
        return ExecutionResult(data={"quotes": {"symbol": payload}})


class Host:
    """Stands in for a connection's handler: a socket's sent messages, the streams it adopted
    and the errors it ended them with."""

    def __init__(self, fail_on: str | None = None, disconnect_on: str | None = None) -> None:
        self.outbox = Outbox(self.send)
        self.sent: list[str] = []
        self.adopted: dict[str, DirectStream] = {}
        self.ended: list[tuple[str, dict[str, Any]]] = []
        self._fail_on, self._disconnect_on = fail_on, disconnect_on

    async def send(self, message: object) -> None:
        assert isinstance(message, PreEncoded)
        if self._fail_on and self._fail_on in message.text:
            raise ValueError("the socket broke")
        if self._disconnect_on and self._disconnect_on in message.text:
            raise WebSocketDisconnect
        self.sent.append(message.text)

    def adopt(self, operation_id: str, stream: DirectStream) -> bool:
        self.adopted[operation_id] = stream
        return True

    async def end(self, operation_id: str, error: GraphQLError) -> None:
        self.ended.append((operation_id, dict(error.formatted)))

    def symbols_sent(self) -> list[str]:
        return [json.loads(text)["payload"]["data"]["quotes"]["symbol"] for text in self.sent]


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def quote(symbol: str, step: int = 0) -> Quote:
    one = Decimal(1)
    return Quote(symbol, one, one, Decimal(2), one, NOW + timedelta(seconds=step))


def handed_over(host: Host, op: str, clock: Clock | None = None, lifetime: float = 60) -> DirectStream:
    """A stream for operation `op` on `host`, handed over as the resolver does."""
    stream = DirectStream(
        DirectTarget(host, op, f'{{"id":"{op}","type":"next","payload":{{"data":'),
        cast(SubscriptionExecutor, SharedExecutor()),
        lambda event: cast(Any, event).symbol,
        NOW + timedelta(seconds=lifetime),
        clock or Clock(),
    )
    stream.hand_over(MarketSubscription(frozenset()))
    return stream


def key(symbol: str) -> Hashable:
    return ("quotes", symbol)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def until_ended(host: Host, count: int = 1) -> None:
    async with asyncio.timeout(WAIT):
        while len(host.ended) < count:  # noqa: ASYNC110  (the writer ends streams in its own time)
            await asyncio.sleep(0.01)


def codes(host: Host) -> list[tuple[str, str]]:
    return [(op, error["extensions"]["code"]) for op, error in host.ended]


async def test_the_latest_event_per_symbol_wins_while_it_waits() -> None:
    host = Host()
    stream = handed_over(host, "1")
    for step in range(3):
        stream.put(key("AAPL"), quote("AAPL", step))
        stream.put(key("MSFT"), quote("MSFT", step))
    assert len(host.outbox) == 2
    assert host.outbox.replaced == 4
    await settle()
    assert host.sent == [
        '{"id":"1","type":"next","payload":{"data":{"quotes":{"symbol":"AAPL"}}}}',
        '{"id":"1","type":"next","payload":{"data":{"quotes":{"symbol":"MSFT"}}}}',
    ]
    host.outbox.close()


async def test_a_failure_ends_the_stream_after_what_was_waiting_with_its_code() -> None:
    host = Host()
    stream = handed_over(host, "1")
    ended: list[GraphQLError | None] = []
    stream.when_ended(ended.append)
    stream.put(key("AAPL"), quote("AAPL"))
    stream.fail(ApiError(ErrorCode.BROKER_UNAVAILABLE, "upstream gone"))
    stream.put(key("MSFT"), quote("MSFT"))  # after the end: never sent
    await until_ended(host)
    assert host.symbols_sent() == ["AAPL"]
    assert host.ended == [("1", {"message": "upstream gone", "extensions": {"code": "BROKER_UNAVAILABLE"}})]
    assert [error and error.extensions for error in ended] == [{"code": "BROKER_UNAVAILABLE"}]
    assert not stream.open
    host.outbox.close()


async def test_an_event_after_the_token_expired_ends_the_stream_instead() -> None:
    host, clock = Host(), Clock()
    stream = handed_over(host, "1", clock)
    clock.now += timedelta(seconds=61)
    stream.put(key("AAPL"), quote("AAPL"))
    await until_ended(host)
    assert codes(host) == [("1", "UNAUTHENTICATED")]
    assert host.sent == []
    host.outbox.close()


async def test_a_quiet_stream_ends_when_its_token_expires() -> None:
    host = Host()
    handed_over(host, "1", lifetime=0.05)
    await until_ended(host)
    assert codes(host) == [("1", "UNAUTHENTICATED")]
    host.outbox.close()


async def test_an_event_that_cannot_be_executed_ends_only_its_stream(caplog: pytest.LogCaptureFixture) -> None:
    host = Host()
    broken, healthy = handed_over(host, "1"), handed_over(host, "2")
    broken.put(key("bad"), cast(Quote, SimpleNamespace(symbol="bad")))
    healthy.put(key("AAPL"), quote("AAPL"))
    await until_ended(host)
    await settle()
    assert codes(host) == [("1", "INTERNAL_SERVER_ERROR")]  # masked, and logged with its cause
    assert [record.getMessage() for record in caplog.records] == ["unexpected error in operation"]
    assert [json.loads(text)["id"] for text in host.sent] == ["2"]
    assert healthy.open
    host.outbox.close()


async def test_a_failed_send_ends_its_stream_and_the_writer_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    host = Host(fail_on='"1"')
    first, second = handed_over(host, "1"), handed_over(host, "2")
    first.put(key("AAPL"), quote("AAPL"))
    second.put(key("AAPL"), quote("AAPL"))
    await until_ended(host)
    second.put(key("MSFT"), quote("MSFT"))
    await settle()
    assert host.symbols_sent() == ["AAPL", "MSFT"]
    assert codes(host) == [("1", "INTERNAL_SERVER_ERROR")]
    assert [record.getMessage() for record in caplog.records] == ["unexpected error in operation"]
    host.outbox.close()


async def test_a_closed_connection_stops_the_writer_quietly(caplog: pytest.LogCaptureFixture) -> None:
    host = Host(disconnect_on="AAPL")
    stream = handed_over(host, "1")
    stream.put(key("AAPL"), quote("AAPL"))
    await settle()
    writer = host.outbox._writer
    assert writer is not None
    assert writer.done()
    assert writer.exception() is None
    assert host.sent == []
    assert caplog.records == []


async def test_a_closed_stream_sends_nothing_more_and_releases_its_subscription() -> None:
    host = Host()
    stream = handed_over(host, "1")
    released: list[MarketSubscription] = []
    stream._subscription = MarketSubscription(frozenset(), _release=released.append)
    ended: list[GraphQLError | None] = []
    stream.when_ended(ended.append)
    stream.put(key("AAPL"), quote("AAPL"))
    stream.close()
    stream.put(key("MSFT"), quote("MSFT"))
    stream.fail(ApiError(ErrorCode.BROKER_UNAVAILABLE, "too late"))
    await settle()
    assert host.sent == []
    assert host.ended == []
    assert ended == [None]
    assert len(released) == 1
    host.outbox.close()


async def test_an_operation_over_before_its_hand_over_closes_its_subscription() -> None:
    host = Host()
    host.adopt = lambda operation_id, stream: False  # type: ignore[method-assign]
    released: list[MarketSubscription] = []
    stream = DirectStream(
        DirectTarget(host, "1", '{"id":"1","type":"next","payload":{"data":'),
        cast(SubscriptionExecutor, SharedExecutor()),
        lambda event: cast(Any, event).symbol,
        NOW + timedelta(seconds=60),
        Clock(),
    )
    stream.hand_over(MarketSubscription(frozenset(), _release=released.append))
    assert not stream.open
    assert len(released) == 1
    stream.put(key("AAPL"), quote("AAPL"))
    assert len(host.outbox) == 0


async def test_a_failed_stream_closed_before_its_end_was_sent_counts_its_code() -> None:
    host = Host()
    stream = handed_over(host, "1")
    stream.fail(ApiError(ErrorCode.BROKER_UNAVAILABLE, "upstream gone"))
    stream.close()  # the connection closed first
    late: list[GraphQLError | None] = []
    stream.when_ended(late.append)  # after the end: called at once
    await settle()
    assert host.ended == []
    assert [error and error.extensions for error in late] == [{"code": "BROKER_UNAVAILABLE"}]
    host.outbox.close()


async def test_each_batch_is_flushed_as_soon_as_it_is_written() -> None:
    host = Host()
    flushed: list[int] = []
    host.outbox = Outbox(host.send, lambda: flushed.append(len(host.sent)))
    stream = handed_over(host, "1")
    stream.put(key("AAPL"), quote("AAPL"))
    stream.put(key("MSFT"), quote("MSFT"))
    await settle()
    stream.put(key("SPY"), quote("SPY"))
    await settle()
    assert flushed == [2, 3]  # once per batch, after its messages
    host.outbox.close()
