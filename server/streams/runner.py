"""One upstream feed kept alive: connect, subscribe what is wanted, reconnect with backoff.

The owner says what it wants (`want`) and never waits: the runner's task converges the
upstream on it, and after a reconnect it subscribes every wanted symbol again, so
subscribers keep receiving without doing anything. A refusal (bad keys, connection or
symbol limit, missing subscription) is not retried: the owner hears of it at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from contextvars import Context

from server.brokers.streaming import (
    Channel,
    EventSink,
    FeedConnection,
    FeedDropped,
    FeedError,
    FeedProblem,
    MarketFeed,
)
from server.metrics import UpstreamStream
from server.streams.backoff import Backoff

logger = logging.getLogger(__name__)
CONNECT_TIMEOUT_SECONDS = 10.0
CLOSE_TIMEOUT_SECONDS = 1.0
MAX_FAILED_CONNECTS = 8


class FeedFailure(Exception):
    """Why a feed gave up, as subscribers hear it."""

    def __init__(self, problem: FeedProblem, message: str) -> None:
        super().__init__(message)
        self.problem = problem
        self.message = message


FailureSink = Callable[["FeedRunner", FeedFailure], None]


class FeedRunner:
    def __init__(
        self,
        feed: MarketFeed,
        deliver: EventSink,
        on_failure: FailureSink,
        *,
        backoff: Backoff,
        gauge: UpstreamStream | None = None,
    ) -> None:
        self.feed = feed
        self._gauge = gauge
        self._deliver = deliver
        self._on_failure = on_failure
        self._backoff = backoff
        self._wanted: dict[Channel, frozenset[str]] = {channel: frozenset() for channel in Channel}
        self._changed = asyncio.Event()
        self.connects = 0
        self.connected = False
        # A context of its own: the feed outlives the subscription whose set-up started it.
        self.task = asyncio.create_task(self._run(), name=f"feed-{feed.family.value}", context=Context())

    def want(self, wanted: Mapping[Channel, set[str]]) -> None:
        self._wanted = {channel: frozenset(wanted.get(channel, ())) for channel in Channel}
        self._changed.set()

    def stop(self) -> asyncio.Task[None]:
        self.task.cancel()
        return self.task

    async def _run(self) -> None:
        failed_connects = 0
        drops = 0  # consecutive short sessions: their reconnects back off like failed connects
        loop = asyncio.get_running_loop()
        while True:
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT_SECONDS):
                    connection = await self.feed.connect(self._deliver)
            except FeedError as error:
                self._fail(error.problem, error.message)
                return
            except (FeedDropped, OSError, TimeoutError) as error:
                failed_connects += 1
                if failed_connects >= MAX_FAILED_CONNECTS:
                    self._fail(FeedProblem.UNAVAILABLE, "The broker's stream cannot be reached.")
                    return
                logger.warning("feed connect failed", extra={"error": type(error).__name__, "attempt": failed_connects})
                await asyncio.sleep(self._backoff.delay(failed_connects))
                continue
            failed_connects = 0
            self.connects += 1
            started = loop.time()
            try:
                await self._serve(connection)
            except FeedError as error:
                self._fail(error.problem, error.message)
                return
            except (FeedDropped, OSError) as error:
                logger.info("feed dropped; reconnecting", extra={"error": type(error).__name__})
                drops = self._backoff.after_drop(drops, loop.time() - started)
                await asyncio.sleep(self._backoff.delay(drops))
            finally:
                self.connected = False
                if self._gauge is not None:
                    self._gauge.down()
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(CLOSE_TIMEOUT_SECONDS):
                        await connection.close()

    async def _serve(self, connection: FeedConnection) -> None:
        self.connected = True
        if self._gauge is not None:
            self._gauge.up()
        subscribed: dict[Channel, frozenset[str]] = {channel: frozenset() for channel in Channel}
        closed = asyncio.create_task(connection.wait_closed())
        try:
            while True:
                self._changed.clear()
                wanted = self._wanted
                for channel in Channel:
                    gone, new = subscribed[channel] - wanted[channel], wanted[channel] - subscribed[channel]
                    if gone:
                        await connection.unsubscribe(channel, sorted(gone))
                    if new:
                        await connection.subscribe(channel, sorted(new))
                subscribed = wanted
                if self._changed.is_set():
                    continue
                changed = asyncio.create_task(self._changed.wait())
                try:
                    await asyncio.wait({closed, changed}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    changed.cancel()
                if closed.done():
                    closed.result()  # raises why it closed
                    raise FeedDropped("the stream ended")
        finally:
            closed.cancel()
            with contextlib.suppress(asyncio.CancelledError, FeedDropped, FeedError, OSError):
                await closed

    def _fail(self, problem: FeedProblem, message: str) -> None:
        logger.warning("feed refused", extra={"problem": problem.value})
        if self._gauge is not None:
            self._gauge.failed(problem.value)
        self._on_failure(self, FeedFailure(problem, message))
