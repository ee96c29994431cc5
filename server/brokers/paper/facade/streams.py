"""Alpaca's streaming protocols over the paper exchange.

Market data (/v2/iex, /v2/sip, /v1beta1/indicative, /v1beta1/opra) speaks msgpack, as
alpaca-py always does (a client that sends JSON text is answered in JSON text); the
trading stream (/stream) speaks JSON. Limits are Alpaca's: one market-data connection
per key and family (406), 30 stock symbols on iex and 200 option quotes on indicative
(405); sip and opra only for keys on the "unlimited" data plan (409). New data is pushed
whenever the market's clock reaches a new step.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgpack
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from server.brokers.domain import Bar, Quote, Trade, TradeUpdate
from server.brokers.paper.facade import wire
from server.brokers.paper.facade.access import KeyPair
from server.brokers.paper.facade.http import FacadeState

logger = logging.getLogger(__name__)
AUTH_TIMEOUT_SECONDS = 10.0
POLL_SECONDS = 0.02
TRADE_QUEUE_SIZE = 10000
CHANNELS = ("trades", "quotes", "bars")
FEED_LIMITS = {"iex": 30, "indicative": 200}
PAID_FEEDS = {"sip", "opra"}


@dataclass
class _Subscription:
    trades: set[str] = field(default_factory=set)
    quotes: set[str] = field(default_factory=set)
    bars: set[str] = field(default_factory=set)

    def channel(self, name: str) -> set[str]:
        return getattr(self, name)

    def message(self) -> dict[str, Any]:
        empty: list[str] = []
        return {
            "T": "subscription",
            **{name: sorted(self.channel(name)) for name in CHANNELS},
            "updatedBars": empty,
            "dailyBars": empty,
            "statuses": empty,
            "lulds": empty,
            "corrections": empty,
            "cancelErrors": empty,
        }


class StreamRegistry:
    """Open stream connections: for the one-connection-per-key rule and for dropping them all."""

    def __init__(self) -> None:
        self._market: dict[tuple[str, str], WebSocket] = {}
        self._all: set[WebSocket] = set()

    def claim(self, key_id: str, family: str, websocket: WebSocket) -> bool:
        if (key_id, family) in self._market:
            return False
        self._market[(key_id, family)] = websocket
        return True

    def release(self, websocket: WebSocket) -> None:
        self._all.discard(websocket)
        for slot, holder in list(self._market.items()):
            if holder is websocket:
                del self._market[slot]

    def track(self, websocket: WebSocket) -> None:
        self._all.add(websocket)

    def drop_all(self) -> None:
        """Fault injection: every open stream connection is cut."""
        for websocket in list(self._all):
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().create_task(websocket.close(code=1011))


def _timestamp(moment: datetime) -> msgpack.Timestamp:
    return msgpack.Timestamp.from_datetime(moment)


class _MarketConnection:
    def __init__(
        self, websocket: WebSocket, state: FacadeState, registry: StreamRegistry, feed: str, family: str
    ) -> None:
        self.websocket, self.state, self.registry = websocket, state, registry
        self.feed, self.family = feed, family
        self.binary = True
        self.subscription = _Subscription()
        self.pair: KeyPair | None = None
        self._sent: dict[tuple[str, str], object] = {}

    async def send(self, messages: list[dict[str, Any]]) -> None:
        if self.binary:
            await self.websocket.send_bytes(msgpack.packb(messages, datetime=False))
        else:
            await self.websocket.send_text(json.dumps(messages, default=_json_default))

    async def error(self, code: int, message: str) -> None:
        await self.send([{"T": "error", "code": code, "msg": message}])

    async def receive(self) -> dict[str, Any] | None:
        message = await self.websocket.receive()
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000))
        try:
            if message.get("bytes") is not None:
                self.binary = True
                decoded = msgpack.unpackb(message["bytes"])
            else:
                self.binary = False
                decoded = json.loads(message.get("text") or "")
        except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError):
            return None
        return decoded if isinstance(decoded, dict) else None

    async def run(self) -> None:
        await self.send([{"T": "success", "msg": "connected"}])
        try:
            async with asyncio.timeout(AUTH_TIMEOUT_SECONDS):
                while self.pair is None:
                    if not await self._handle(await self.receive()):
                        return
        except TimeoutError:
            await self.error(404, "auth timeout")
            return
        pump = asyncio.create_task(self._pump())
        try:
            while await self._handle(await self.receive()):
                pass
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump

    async def _handle(self, message: dict[str, Any] | None) -> bool:
        """Answer one client message; False ends the connection."""
        if message is None or not isinstance(message.get("action"), str):
            await self.error(400, "invalid syntax")
            return True
        action = message["action"]
        if action == "auth":
            return await self._auth(message)
        if self.pair is None:
            await self.error(401, "not authenticated")
            return True
        if action in {"subscribe", "unsubscribe"}:
            await self._subscribe(message, add=action == "subscribe")
            return True
        await self.error(400, "invalid syntax")
        return True

    async def _auth(self, message: dict[str, Any]) -> bool:
        if self.pair is not None:
            await self.error(403, "already authenticated")
            return True
        pair = self.state.keys.authenticate(message.get("key"), message.get("secret"))
        if pair is None:
            await self.error(402, "auth failed")
            return False
        if self.feed in PAID_FEEDS and pair.data_plan != "unlimited":
            await self.error(409, "insufficient subscription")
            return False
        if not self.registry.claim(pair.key_id, self.family, self.websocket):
            await self.error(406, "connection limit exceeded")
            return False
        self.pair = pair
        await self.send([{"T": "success", "msg": "authenticated"}])
        return True

    async def _subscribe(self, message: dict[str, Any], *, add: bool) -> None:
        wanted: dict[str, set[str]] = {}
        for name in CHANNELS:
            symbols = message.get(name, [])
            if not isinstance(symbols, list) or not all(isinstance(s, str) for s in symbols):
                await self.error(410, "invalid subscribe action")
                return
            current = self.subscription.channel(name)
            wanted[name] = current | set(symbols) if add else current - set(symbols)
        limit = FEED_LIMITS.get(self.feed)
        every = set().union(*wanted.values())
        if limit is not None and ("*" in every or len(every) > limit):
            await self.error(405, "symbol limit exceeded")
            return
        for name, symbols in wanted.items():
            self.subscription.channel(name).clear()
            self.subscription.channel(name).update(symbols)
        await self.send([self.subscription.message()])

    async def _pump(self) -> None:
        market = self.state.exchange.market
        last_step = -1
        while True:
            step = market.current_step()
            if step != last_step:
                last_step = step
                batch = self._fresh_data()
                if batch:
                    await self.send(batch)
            await asyncio.sleep(POLL_SECONDS)

    def _fresh_data(self) -> list[dict[str, Any]]:
        exchange = self.state.exchange
        batch: list[dict[str, Any]] = []
        for symbol in self._symbols("quotes"):
            quote = exchange.quote(symbol)
            if self._changed("q", symbol, quote):
                batch.append(_quote_message(quote))
        for symbol in self._symbols("trades"):
            trade = exchange.market.latest_trade(symbol) if exchange.market.has_symbol(symbol) else None
            if trade is not None and self._changed("t", symbol, trade.trade_id):
                batch.append(_trade_message(trade))
        for symbol in self._symbols("bars"):
            bars = exchange.market.minute_bars(symbol) if exchange.market.has_symbol(symbol) else []
            if bars and self._changed("b", symbol, bars[-1].timestamp):
                batch.append(_bar_message(bars[-1]))
        return batch

    def _symbols(self, channel: str) -> list[str]:
        chosen = self.subscription.channel(channel)
        if "*" in chosen:
            return sorted(self.state.exchange.market.assets)
        resolve = self.state.exchange.instruments.resolve
        return sorted(s for s in chosen if resolve(s) is not None)

    def _changed(self, kind: str, symbol: str, value: object) -> bool:
        if self._sent.get((kind, symbol)) == value:
            return False
        self._sent[(kind, symbol)] = value
        return True


def _quote_message(quote: Quote) -> dict[str, Any]:
    return {"T": "q", "S": quote.symbol, **wire.quote(quote), "t": _timestamp(quote.timestamp)}


def _trade_message(trade: Trade) -> dict[str, Any]:
    return {"T": "t", "S": trade.symbol, **wire.trade(trade), "t": _timestamp(trade.timestamp)}


def _bar_message(bar: Bar) -> dict[str, Any]:
    return {"T": "b", "S": bar.symbol, **wire.bar(bar), "t": _timestamp(bar.timestamp)}


def _json_default(value: object) -> object:
    if isinstance(value, msgpack.Timestamp):
        return value.to_datetime().isoformat().replace("+00:00", "Z")
    raise TypeError(type(value).__name__)


async def _close(websocket: WebSocket) -> None:
    if websocket.application_state is WebSocketState.CONNECTED:
        with contextlib.suppress(Exception):
            await websocket.close()


def market_stream(feed: str, family: str) -> Callable[[WebSocket], Any]:
    async def endpoint(websocket: WebSocket) -> None:
        await websocket.accept()
        registry: StreamRegistry = websocket.app.state.streams
        registry.track(websocket)
        connection = _MarketConnection(websocket, websocket.app.state.facade, registry, feed, family)
        try:
            await connection.run()
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            registry.release(websocket)
            await _close(websocket)

    return endpoint


async def trading_stream(websocket: WebSocket) -> None:
    await websocket.accept()
    state: FacadeState = websocket.app.state.facade
    registry: StreamRegistry = websocket.app.state.streams
    registry.track(websocket)
    updates: asyncio.Queue[TradeUpdate] = asyncio.Queue(maxsize=TRADE_QUEUE_SIZE)
    remove: Callable[[], None] | None = None
    try:
        pair = await _trading_auth(websocket, state)
        if pair is None:
            return
        account_id = state.exchange.open_account(pair.account_id)

        def forward(owner: str, update: TradeUpdate) -> None:
            if owner == account_id:
                with contextlib.suppress(asyncio.QueueFull):
                    updates.put_nowait(update)

        sender = asyncio.create_task(_send_updates(websocket, updates))
        try:
            while True:
                message = await _receive_json(websocket)
                data = message.get("data") if isinstance(message, dict) else None
                if isinstance(message, dict) and message.get("action") == "listen" and isinstance(data, dict):
                    # Each listen names the whole set: updates flow only while it holds trade_updates.
                    streams = [s for s in data.get("streams", []) if s == "trade_updates"]
                    if streams and remove is None:
                        remove = state.exchange.add_listener(forward)
                    elif not streams and remove is not None:
                        remove()
                        remove = None
                    await websocket.send_text(json.dumps({"stream": "listening", "data": {"streams": streams}}))
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        if remove is not None:
            remove()
        registry.release(websocket)
        await _close(websocket)


async def _receive_json(websocket: WebSocket) -> object:
    message = await websocket.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000))
    raw = message.get("text") if message.get("text") is not None else message.get("bytes")
    try:
        return json.loads(raw or "")
    except ValueError:
        return None


async def _trading_auth(websocket: WebSocket, state: FacadeState) -> KeyPair | None:
    try:
        async with asyncio.timeout(AUTH_TIMEOUT_SECONDS):
            message = await _receive_json(websocket)
    except TimeoutError:
        return None
    data = message.get("data") if isinstance(message, dict) else None
    pair = None
    if isinstance(message, dict) and message.get("action") in {"authenticate", "auth"} and isinstance(data, dict):
        pair = state.keys.authenticate(data.get("key_id"), data.get("secret_key"))
    status = "authorized" if pair else "unauthorized"
    await websocket.send_text(
        json.dumps({"stream": "authorization", "data": {"action": "authenticate", "status": status}})
    )
    return pair


async def _send_updates(websocket: WebSocket, updates: asyncio.Queue[TradeUpdate]) -> None:
    while True:
        update = await updates.get()
        await websocket.send_text(json.dumps(wire.trade_update(update)))


routes = [
    WebSocketRoute("/v2/iex", market_stream("iex", "stocks")),
    WebSocketRoute("/v2/sip", market_stream("sip", "stocks")),
    WebSocketRoute("/v1beta1/indicative", market_stream("indicative", "options")),
    WebSocketRoute("/v1beta1/opra", market_stream("opra", "options")),
    WebSocketRoute("/stream", trading_stream),
]
