"""The facade's streams: alpaca-py's stream classes parse what they get; Alpaca's limits and codes hold."""

from __future__ import annotations

import asyncio
import contextlib
import json
import queue
import threading
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import httpx
import msgpack
import pytest
from alpaca.data.enums import DataFeed, OptionsFeed
from alpaca.data.live.option import OptionDataStream
from alpaca.data.live.stock import StockDataStream
from alpaca.data.models import Bar, Quote, Trade
from alpaca.trading.models import TradeUpdate
from alpaca.trading.stream import TradingStream
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from server.brokers.domain import OrderRequest, OrderSide
from tests.utils.facade import FAULT_TOKEN, KEY_ID, SECRET_KEY, Facade, serve_facade
from tests.utils.paper import paper_world

pytestmark = pytest.mark.anyio
WAIT_SECONDS = 10.0
OPTION = "AAPL261218C00230000"


@pytest.fixture
async def facade() -> AsyncIterator[Facade]:
    async with serve_facade(paper_world()) as served:
        yield served


async def wait_for(items: queue.Queue[Any], facade: Facade, count: int = 1, *, tick: bool = True) -> list[Any]:
    """Collect `count` items from a stream thread, stepping the market clock while waiting."""
    got: list[Any] = []
    async with asyncio.timeout(WAIT_SECONDS):
        while len(got) < count:
            if tick:
                facade.world.clock.advance(1)
            await asyncio.sleep(0.05)
            while not items.empty():
                got.append(items.get_nowait())
    return got


@contextlib.asynccontextmanager
async def running(stream: Any) -> AsyncIterator[None]:
    """alpaca-py streams block in run(): give them a thread, and stop them off our loop."""
    thread = threading.Thread(target=stream.run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        await asyncio.wait_for(asyncio.to_thread(stream.stop), WAIT_SECONDS)
        await asyncio.to_thread(thread.join, WAIT_SECONDS)


def collector(items: queue.Queue[Any]) -> Callable[[Any], Any]:
    async def handler(item: Any) -> None:
        items.put(item)

    return handler


async def test_stock_stream_quotes_trades_and_bars_parse(facade: Facade) -> None:
    stream = StockDataStream(KEY_ID, SECRET_KEY, feed=DataFeed.IEX, url_override=f"ws://{facade.address}/v2/iex")
    quotes: queue.Queue[Quote] = queue.Queue()
    trades: queue.Queue[Trade] = queue.Queue()
    bars: queue.Queue[Bar] = queue.Queue()
    stream.subscribe_quotes(collector(quotes), "AAPL", "MSFT")
    stream.subscribe_trades(collector(trades), "AAPL")
    stream.subscribe_bars(collector(bars), "SPY")
    async with running(stream):
        got_quotes = await wait_for(quotes, facade, 4)
        got_trades = await wait_for(trades, facade, 2)
        facade.world.clock.advance(61)
        got_bars = await wait_for(bars, facade, 1)
    assert {q.symbol for q in got_quotes} == {"AAPL", "MSFT"}
    assert all(isinstance(q, Quote) and q.bid_price < q.ask_price for q in got_quotes)
    assert got_quotes[-1].timestamp.tzinfo is not None
    assert all(t.symbol == "AAPL" and t.price > 0 for t in got_trades)
    assert got_bars[0].symbol == "SPY"
    assert got_bars[0].low <= got_bars[0].close <= got_bars[0].high


async def test_option_stream_quotes_parse(facade: Facade) -> None:
    stream = OptionDataStream(
        KEY_ID, SECRET_KEY, feed=OptionsFeed.INDICATIVE, url_override=f"ws://{facade.address}/v1beta1/indicative"
    )
    quotes: queue.Queue[Quote] = queue.Queue()
    stream.subscribe_quotes(collector(quotes), OPTION)
    async with running(stream):
        [quote, *_] = await wait_for(quotes, facade, 1)
    assert quote.symbol == OPTION
    assert 0 < quote.bid_price < quote.ask_price


async def test_trading_stream_delivers_this_accounts_trade_updates(facade: Facade) -> None:
    stream = TradingStream(KEY_ID, SECRET_KEY, paper=True, url_override=f"ws://{facade.address}/stream")
    updates: queue.Queue[TradeUpdate] = queue.Queue()
    stream.subscribe_trade_updates(collector(updates))
    exchange = facade.world.exchange
    listening = asyncio.Event()
    add_listener = exchange.add_listener

    def add_and_tell(listener: Any) -> Callable[[], None]:
        listening.set()  # the facade's /stream subscribes on the loop thread once asked to listen
        return add_listener(listener)

    exchange.add_listener = add_and_tell  # type: ignore[method-assign]
    async with running(stream):
        await asyncio.wait_for(listening.wait(), WAIT_SECONDS)
        other = exchange.open_account()
        exchange.submit(other, OrderRequest("AAPL", OrderSide.BUY, qty=Decimal(1)))
        order = exchange.submit(facade.world.account_id, OrderRequest("AAPL", OrderSide.BUY, qty=Decimal(3)))
        got = await wait_for(updates, facade, 2, tick=False)
    assert [str(u.event) for u in got] == ["new", "fill"]
    assert {str(u.order.id) for u in got} == {order.id}
    assert got[1].qty == 3
    assert got[1].position_qty == 3


# ----- the protocol itself, byte for byte --------------------------------------------


async def open_stream(facade: Facade, path: str = "/v2/iex") -> ClientConnection:
    ws = await connect(f"ws://{facade.address}{path}")
    assert await read(ws) == [{"T": "success", "msg": "connected"}]
    return ws


async def read(ws: ClientConnection) -> list[dict[str, Any]]:
    async with asyncio.timeout(WAIT_SECONDS):
        return msgpack.unpackb(await ws.recv())  # timestamps stay msgpack.Timestamp


async def send(ws: ClientConnection, message: dict[str, Any]) -> list[dict[str, Any]]:
    await ws.send(msgpack.packb(message))
    return await read(ws)


async def authenticated(facade: Facade, path: str = "/v2/iex") -> ClientConnection:
    ws = await open_stream(facade, path)
    assert await send(ws, {"action": "auth", "key": KEY_ID, "secret": SECRET_KEY}) == [
        {"T": "success", "msg": "authenticated"}
    ]
    return ws


async def test_wrong_keys_get_402(facade: Facade) -> None:
    ws = await open_stream(facade)
    assert await send(ws, {"action": "auth", "key": KEY_ID, "secret": "wrong"}) == [
        {"T": "error", "code": 402, "msg": "auth failed"}
    ]
    await ws.close()


async def test_subscribing_before_auth_gets_401(facade: Facade) -> None:
    ws = await open_stream(facade)
    assert await send(ws, {"action": "subscribe", "quotes": ["AAPL"]}) == [
        {"T": "error", "code": 401, "msg": "not authenticated"}
    ]
    assert await send(ws, {"nonsense": True}) == [{"T": "error", "code": 400, "msg": "invalid syntax"}]
    await ws.close()


async def test_a_second_connection_with_the_same_key_gets_406(facade: Facade) -> None:
    first = await authenticated(facade)
    second = await open_stream(facade)
    assert await send(second, {"action": "auth", "key": KEY_ID, "secret": SECRET_KEY}) == [
        {"T": "error", "code": 406, "msg": "connection limit exceeded"}
    ]
    options = await authenticated(facade, "/v1beta1/indicative")  # another family has its own slot
    for ws in (first, second, options):
        await ws.close()


async def test_more_than_30_symbols_on_iex_gets_405_and_keeps_the_old_set(facade: Facade) -> None:
    ws = await authenticated(facade)
    symbols = sorted(facade.world.exchange.market.assets)[:31]
    [ack] = await send(ws, {"action": "subscribe", "quotes": symbols[:30]})
    assert len(ack["quotes"]) == 30
    assert await send(ws, {"action": "subscribe", "trades": symbols[30:]}) == [
        {"T": "error", "code": 405, "msg": "symbol limit exceeded"}
    ]
    [ack] = await send(ws, {"action": "unsubscribe", "quotes": symbols[1:30]})
    assert (ack["T"], ack["quotes"], ack["trades"]) == ("subscription", symbols[:1], [])
    await ws.close()


async def test_quotes_carry_msgpack_timestamps(facade: Facade) -> None:
    ws = await authenticated(facade)
    await send(ws, {"action": "subscribe", "quotes": ["AAPL"]})
    facade.world.clock.advance(1)
    [quote] = await read(ws)
    assert quote["T"] == "q"
    assert quote["S"] == "AAPL"
    assert isinstance(quote["t"], msgpack.Timestamp)
    assert {"bp", "bs", "ap", "as", "bx", "ax", "c", "z"} <= set(quote)
    await ws.close()


async def drain(ws: ClientConnection) -> None:
    async with asyncio.timeout(WAIT_SECONDS):
        while True:
            await ws.recv()


async def test_dropped_streams_are_cut_by_fault_injection(facade: Facade) -> None:
    ws = await authenticated(facade)
    async with httpx.AsyncClient(base_url=facade.url, timeout=10) as http:
        response = await http.post("/_faults", json={"drop_streams": True}, headers={"x-fault-token": FAULT_TOKEN})
    assert response.status_code == 200
    with pytest.raises(ConnectionClosed) as closed:
        await drain(ws)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1011
    again = await authenticated(facade)  # the slot was released: reconnecting works
    await again.close()


async def test_trade_updates_flow_only_while_listened_to(facade: Facade) -> None:
    exchange, account = facade.world.exchange, facade.world.account_id
    ws = await connect(f"ws://{facade.address}/stream")
    try:

        async def message(payload: dict[str, Any]) -> dict[str, Any]:
            await ws.send(json.dumps(payload))
            async with asyncio.timeout(WAIT_SECONDS):
                return json.loads(await ws.recv())

        auth = {"action": "auth", "data": {"key_id": KEY_ID, "secret_key": SECRET_KEY}}
        assert (await message(auth))["data"]["status"] == "authorized"
        before = exchange.submit(account, OrderRequest("AAPL", OrderSide.BUY, qty=Decimal(1)))
        listen = {"action": "listen", "data": {"streams": ["trade_updates"]}}
        assert (await message(listen))["data"] == {"streams": ["trade_updates"]}
        after = exchange.submit(account, OrderRequest("AAPL", OrderSide.BUY, qty=Decimal(2)))
        async with asyncio.timeout(WAIT_SECONDS):
            sent = [json.loads(await ws.recv()) for _ in range(2)]
        # The order placed before `listen` was not sent; the one after it was, new then filled.
        assert [(m["data"]["event"], m["data"]["order"]["id"]) for m in sent] == [("new", after.id), ("fill", after.id)]
        assert before.id != after.id
        unlisten = {"action": "listen", "data": {"streams": []}}
        assert (await message(unlisten))["data"] == {"streams": []}
        exchange.submit(account, OrderRequest("AAPL", OrderSide.BUY, qty=Decimal(3)))
        # Nothing was queued for it: the next message is the answer to the next listen.
        assert (await message(unlisten))["stream"] == "listening"
    finally:
        await ws.close()
