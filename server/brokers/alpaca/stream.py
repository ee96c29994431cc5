"""Alpaca's market-data stream, spoken directly: a thin asyncio client on `websockets`
and `msgpack`.

Why not alpaca-py's StockDataStream/OptionDataStream: inside a running loop only their
private `_run_forever()` works, subscribing from the loop's thread deadlocks it, stopping
takes seconds, and auth failures (402) and the connection limit (406) are retried forever
in silence (see ALPACA-WIRE.md). This client never blocks the loop, reports every refusal
at once as a FeedError, and leaves reconnecting to the StreamHub's runner.

Messages become this product's domain types (Decimal prices, aware UTC times), as every
other broker's data does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgpack
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from server.brokers.alpaca.convert import price, size
from server.brokers.domain import Bar, Quote, Trade
from server.brokers.streaming import (
    Channel,
    EventSink,
    Family,
    FeedDropped,
    FeedError,
    FeedProblem,
    MarketEvent,
)

logger = logging.getLogger(__name__)
HANDSHAKE_TIMEOUT_SECONDS = 5.0
CLOSE_TIMEOUT_SECONDS = 1.0
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
# Alpaca's error codes that end a connection's usefulness; the rest are logged.
REFUSALS = {
    402: FeedProblem.AUTH_FAILED,
    406: FeedProblem.CONNECTION_LIMIT,
    405: FeedProblem.SYMBOL_LIMIT,
    409: FeedProblem.INSUFFICIENT_SUBSCRIPTION,
    411: FeedProblem.INSUFFICIENT_SUBSCRIPTION,
}
MESSAGES = {
    FeedProblem.AUTH_FAILED: "The broker refused the stream's API keys.",
    FeedProblem.CONNECTION_LIMIT: "The broker allows one stream per account and another one is open.",
    FeedProblem.SYMBOL_LIMIT: "The broker's feed refused more symbols.",
    FeedProblem.INSUFFICIENT_SUBSCRIPTION: "The account's market-data plan does not include this feed.",
}


def _time(value: Any) -> datetime:
    if isinstance(value, msgpack.Timestamp):
        return value.to_datetime()
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).astimezone(UTC)


def parse_event(message: dict[str, Any]) -> tuple[Channel, MarketEvent] | None:
    kind, symbol = message.get("T"), message.get("S")
    if kind == "q":
        return Channel.QUOTES, Quote(
            symbol=symbol,
            bid_price=price(message["bp"]),
            bid_size=size(message["bs"]),
            ask_price=price(message["ap"]),
            ask_size=size(message["as"]),
            timestamp=_time(message["t"]),
        )
    if kind == "t":
        return Channel.TRADES, Trade(
            symbol=symbol,
            price=price(message["p"]),
            size=size(message["s"]),
            timestamp=_time(message["t"]),
            trade_id=int(message.get("i") or 0),
        )
    if kind == "b":
        return Channel.BARS, Bar(
            symbol=symbol,
            open=price(message["o"]),
            high=price(message["h"]),
            low=price(message["l"]),
            close=price(message["c"]),
            volume=size(message["v"]),
            trade_count=int(message.get("n") or 0),
            vwap=price(message.get("vw") or message["c"]),
            timestamp=_time(message["t"]),
        )
    return None


def _refusal(message: dict[str, Any]) -> FeedError | None:
    problem = REFUSALS.get(message.get("code", 0))
    return FeedError(problem, MESSAGES[problem]) if problem is not None else None


def _decode(raw: str | bytes) -> list[dict[str, Any]]:
    decoded = msgpack.unpackb(raw, timestamp=3) if isinstance(raw, bytes) else json.loads(raw)
    items = decoded if isinstance(decoded, list) else [decoded]
    return [item for item in items if isinstance(item, dict)]


FEED_SYMBOL_LIMITS = {"iex": 30, "indicative": 200}  # the free plans; sip and opra have none


@dataclass(frozen=True, slots=True)
class AlpacaStreams:
    """Where a connection's market-data streams are, and which feeds it uses."""

    base_url: str
    stock_feed: str = "iex"
    option_feed: str = "indicative"

    def feed(self, family: Family, key_id: str, secret_key: str) -> AlpacaFeed:
        base = self.base_url.rstrip("/")
        name = self.stock_feed if family is Family.STOCKS else self.option_feed
        url = f"{base}/v2/{name}" if family is Family.STOCKS else f"{base}/v1beta1/{name}"
        return AlpacaFeed(url, key_id, secret_key, family, symbol_limit=FEED_SYMBOL_LIMITS.get(name))


class AlpacaFeed:
    def __init__(self, url: str, key_id: str, secret_key: str, family: Family, *, symbol_limit: int | None) -> None:
        self._url = url
        self._key_id = key_id
        self._secret_key = secret_key
        self.family = family
        self.symbol_limit = symbol_limit

    def __repr__(self) -> str:  # never the keys
        return f"AlpacaFeed({self.family.value}, {self._url})"

    async def connect(self, deliver: EventSink) -> AlpacaFeedConnection:
        try:
            websocket = await connect(
                self._url,
                open_timeout=HANDSHAKE_TIMEOUT_SECONDS,
                close_timeout=CLOSE_TIMEOUT_SECONDS,
                max_size=MAX_MESSAGE_BYTES,
            )
        except (OSError, InvalidHandshake, TimeoutError) as error:
            raise FeedDropped(f"cannot reach the stream: {type(error).__name__}") from None
        try:
            async with asyncio.timeout(HANDSHAKE_TIMEOUT_SECONDS):
                await self._authenticate(websocket)
        except BaseException:
            with contextlib.suppress(Exception):
                await websocket.close()
            raise
        return AlpacaFeedConnection(websocket, deliver)

    async def _authenticate(self, websocket: ClientConnection) -> None:
        try:
            await _expect(websocket, "connected")
            auth = {"action": "auth", "key": self._key_id, "secret": self._secret_key}
            await websocket.send(msgpack.packb(auth))
            await _expect(websocket, "authenticated")
        except (ConnectionClosed, TimeoutError) as error:
            raise FeedDropped(f"the stream closed during sign-in: {type(error).__name__}") from None


async def _expect(websocket: ClientConnection, success: str) -> None:
    for message in _decode(await websocket.recv()):
        if message.get("T") == "error":
            refusal = _refusal(message)
            if refusal is not None:
                raise refusal
            raise FeedDropped(f"stream error {message.get('code')}")
        if message.get("T") == "success" and message.get("msg") == success:
            return
    raise FeedDropped(f"unexpected answer while waiting for {success!r}")


class AlpacaFeedConnection:
    def __init__(self, websocket: ClientConnection, deliver: EventSink) -> None:
        self._websocket = websocket
        self._deliver = deliver
        self._reader = asyncio.create_task(self._read(), name="alpaca-stream-reader")

    async def subscribe(self, channel: Channel, symbols: Iterable[str]) -> None:
        await self._send({"action": "subscribe", channel.value: list(symbols)})

    async def unsubscribe(self, channel: Channel, symbols: Iterable[str]) -> None:
        await self._send({"action": "unsubscribe", channel.value: list(symbols)})

    async def wait_closed(self) -> None:
        await asyncio.shield(self._reader)  # raises FeedDropped or FeedError
        raise FeedDropped("the stream ended")

    async def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(BaseException):
            await self._reader
        with contextlib.suppress(Exception):
            async with asyncio.timeout(CLOSE_TIMEOUT_SECONDS):
                await self._websocket.close()

    async def _send(self, message: dict[str, Any]) -> None:
        try:
            await self._websocket.send(msgpack.packb(message))
        except ConnectionClosed:
            raise FeedDropped("the stream closed") from None

    async def _read(self) -> None:
        try:
            async for raw in self._websocket:
                self._handle(_decode(raw))
        except ConnectionClosed:
            pass
        raise FeedDropped("the stream closed")

    def _handle(self, messages: Sequence[dict[str, Any]]) -> None:
        events: list[tuple[Channel, MarketEvent]] = []
        for message in messages:
            if message.get("T") == "error":
                refusal = _refusal(message)
                if refusal is not None:
                    raise refusal
                logger.warning("stream error", extra={"code": message.get("code"), "msg": message.get("msg")})
                continue
            try:
                event = parse_event(message)
            except (KeyError, ValueError, ArithmeticError):
                logger.warning("unreadable stream message", extra={"type": message.get("T")})
                continue
            if event is not None:
                events.append(event)
        if events:
            self._deliver(events)
