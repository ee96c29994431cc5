"""Alpaca's trade-updates stream (`/stream`, JSON), spoken directly on `websockets`.

Why not alpaca-py's TradingStream: its `run()` calls `asyncio.run()`, `stop()` from the
loop's thread deadlocks, and a refused key is retried forever in silence (ALPACA-WIRE.md).
This client is a task on the server's loop: it signs in, listens to trade_updates,
parses each event into alpaca-py's own TradeUpdate model (so the wire is judged by
alpaca-py) and hands the domain update on. A dropped connection is reconnected with
backoff and jitter; each time it is listening `on_resume` runs, so the caller can fetch
what changed while nobody was listening. Refused keys are logged at each attempt and
retried slowly, never in a tight loop; stopping takes well under a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from contextvars import Context
from typing import Any

from alpaca.trading.models import TradeUpdate as AlpacaTradeUpdate
from pydantic import ValidationError
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from server.brokers.alpaca import convert
from server.brokers.domain import TradeUpdate
from server.metrics import UpstreamStream
from server.streams.backoff import Backoff

logger = logging.getLogger(__name__)
HANDSHAKE_TIMEOUT_SECONDS = 5.0
CLOSE_TIMEOUT_SECONDS = 1.0
REFUSED_RETRY_SECONDS = 60.0


class StreamRefused(Exception):
    """The broker refused the stream's keys."""


class StreamBroken(Exception):
    """The connection failed or ended; worth reconnecting."""


def _decode(raw: str | bytes) -> dict[str, Any]:
    message = json.loads(raw)
    if not isinstance(message, dict):
        raise StreamBroken("unexpected message shape")
    return message


def parse_trade_update(data: dict[str, Any]) -> TradeUpdate:
    return convert.trade_update(AlpacaTradeUpdate.model_validate(data))


class TradeUpdatesStream:
    def __init__(
        self,
        url: str,
        key_id: str,
        secret_key: str,
        deliver: Callable[[TradeUpdate], None],
        *,
        on_resume: Callable[[], Awaitable[None]] | None = None,
        backoff: Backoff | None = None,
        gauge: UpstreamStream | None = None,
    ) -> None:
        self._url = url
        self._key_id = key_id
        self._secret_key = secret_key
        self._deliver = deliver
        self._on_resume = on_resume
        self._backoff = backoff or Backoff()
        self._task: asyncio.Task[None] | None = None
        self._resuming: set[asyncio.Task[None]] = set()
        self.connects = 0  # sessions that reached "listening"
        self.refused = False  # the last attempt was refused for its keys
        # Who counts the live connection; set by whoever knows the account's kind (paper or live).
        self.gauge = gauge

    def __repr__(self) -> str:  # never the keys
        return f"TradeUpdatesStream({self._url})"

    def start(self) -> None:
        if self._task is None:
            # A context of its own: the stream outlives the request that built its broker.
            self._task = asyncio.create_task(self._run(), name="alpaca-trade-updates", context=Context())

    async def stop(self) -> None:
        tasks = [task for task in (self._task, *self._resuming) if task is not None]
        self._task = None
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        failures = 0
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                await self._session()
            except StreamRefused:
                self.refused = True
                if self.gauge is not None:
                    self.gauge.failed("auth_failed")
                logger.warning("trade updates stream refused the connection's keys; retrying slowly")
                await asyncio.sleep(REFUSED_RETRY_SECONDS)
                continue
            except StreamBroken as error:
                logger.info("trade updates stream interrupted: %s", error)
            except Exception:
                logger.exception("trade updates stream failed")
            failures = self._backoff.after_drop(failures, loop.time() - started)
            await asyncio.sleep(self._backoff.delay(failures))

    async def _session(self) -> None:
        try:
            websocket = await connect(
                self._url, open_timeout=HANDSHAKE_TIMEOUT_SECONDS, close_timeout=CLOSE_TIMEOUT_SECONDS
            )
        except (OSError, InvalidHandshake, TimeoutError) as error:
            raise StreamBroken(f"cannot reach the stream: {type(error).__name__}") from None
        try:
            async with asyncio.timeout(HANDSHAKE_TIMEOUT_SECONDS):
                await self._sign_in(websocket)
            self.refused = False
            self.connects += 1
            if self.gauge is not None:
                self.gauge.up()
            # Also the first time: orders may have moved before it was up. One catch-up at a time.
            if self._on_resume is not None and not self._resuming:
                resume = asyncio.create_task(self._resume(), name="alpaca-trade-updates-resume")
                self._resuming.add(resume)
                resume.add_done_callback(self._resuming.discard)
            await self._read(websocket)
        except ConnectionClosed as error:
            raise StreamBroken(f"closed: {error.rcvd.code if error.rcvd else 'no close frame'}") from None
        except TimeoutError:
            raise StreamBroken("no answer while signing in") from None
        finally:
            if self.gauge is not None:
                self.gauge.down()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(CLOSE_TIMEOUT_SECONDS):
                    await websocket.close()

    async def _sign_in(self, websocket: ClientConnection) -> None:
        auth = {"action": "authenticate", "data": {"key_id": self._key_id, "secret_key": self._secret_key}}
        await websocket.send(json.dumps(auth))
        answer = _decode(await websocket.recv())
        status = (answer.get("data") or {}).get("status")
        if answer.get("stream") != "authorization" or status != "authorized":
            raise StreamRefused
        await websocket.send(json.dumps({"action": "listen", "data": {"streams": ["trade_updates"]}}))
        while _decode(await websocket.recv()).get("stream") != "listening":
            pass

    async def _read(self, websocket: ClientConnection) -> None:
        async for raw in websocket:
            message = _decode(raw)
            if message.get("stream") != "trade_updates":
                continue
            try:
                update = parse_trade_update(message.get("data") or {})
            except (ValidationError, ValueError, KeyError) as error:
                logger.warning("unreadable trade update", extra={"error": type(error).__name__})
                continue
            self._deliver(update)
        raise StreamBroken("the stream ended")

    async def _resume(self) -> None:
        assert self._on_resume is not None
        try:
            await self._on_resume()
        except Exception:
            logger.exception("catching up after a trade updates reconnect failed")
