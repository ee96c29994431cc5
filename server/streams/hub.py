"""StreamHub: per user and broker connection, one upstream feed per family, shared by
every subscription that user has, on any WebSocket or HTTP connection.

Symbols are reference-counted: the upstream subscribes on a symbol's first use and
unsubscribes after its last. The feed's symbol limit is checked before anything changes
upstream, so a subscription over it is refused alone. A feed starts with the first
subscription and stops a grace period after the last one ends, so a client that
resubscribes at once (a page reload) keeps the connection. Every call here is
synchronous and cheap: the I/O happens in each feed's runner task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from server.brokers.registry import ConnectionRef
from server.brokers.streaming import Channel, Family, MarketEvent, MarketFeed
from server.metrics import Metrics, UpstreamStream
from server.metrics.labels import provider_of
from server.streams.backoff import Backoff
from server.streams.mailbox import Mailbox, Receiver
from server.streams.runner import FeedFailure, FeedRunner

logger = logging.getLogger(__name__)
STOP_TIMEOUT_SECONDS = 1.0

FeedFactory = Callable[[Family], MarketFeed]
"""The user's feed of a family, built when the first subscription needs it."""
StreamKey = tuple[Channel, str]


class SymbolLimitError(Exception):
    def __init__(self, family: Family, limit: int, wanted: int) -> None:
        super().__init__(
            f"The {family.value} feed allows {limit} symbols per connection; this subscription would need {wanted}."
        )
        self.family = family
        self.limit = limit
        self.wanted = wanted


@dataclass(eq=False)
class MarketSubscription:
    """One GraphQL subscription's share of a user's feeds."""

    keys: frozenset[StreamKey]
    receiver: Receiver[MarketEvent] = field(default_factory=Mailbox)
    _release: Callable[[MarketSubscription], None] | None = None

    @property
    def families(self) -> set[Family]:
        return {Family.of(symbol) for _, symbol in self.keys}

    @property
    def mailbox(self) -> Mailbox[MarketEvent]:
        """The subscription's mailbox, when its values wait in one (the default receiver)."""
        if not isinstance(self.receiver, Mailbox):
            raise TypeError("this subscription delivers to its own receiver, not a mailbox")
        return self.receiver

    async def events(self) -> AsyncIterator[MarketEvent]:
        """Each update once it arrives; raises FeedFailure if the upstream refuses us."""
        while True:
            for event in await self.mailbox.take():
                yield event

    def close(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            release(self)


class _UserStreams:
    def __init__(self, hub: StreamHub, ref: ConnectionRef, feed_factory: FeedFactory) -> None:
        self._hub = hub
        self.ref = ref
        self.feed_factory = feed_factory
        self.feeds: dict[Family, MarketFeed] = {}
        self.runners: dict[Family, FeedRunner] = {}
        self.counts: Counter[StreamKey] = Counter()
        self.routes: dict[StreamKey, set[MarketSubscription]] = {}
        self.latest: dict[StreamKey, MarketEvent] = {}
        self.idle_timer: asyncio.TimerHandle | None = None

    @property
    def idle(self) -> bool:
        return not self.counts

    def feed(self, family: Family) -> MarketFeed:
        if family not in self.feeds:
            self.feeds[family] = self.feed_factory(family)
        return self.feeds[family]

    def check_limits(self, keys: Iterable[StreamKey]) -> None:
        wanted = {*self.counts, *keys}
        for family in {Family.of(symbol) for _, symbol in wanted}:
            limit = self.feed(family).symbol_limit
            symbols = {symbol for _, symbol in wanted if Family.of(symbol) is family}
            if limit is not None and len(symbols) > limit:
                raise SymbolLimitError(family, limit, len(symbols))

    def add(self, subscription: MarketSubscription) -> None:
        self.check_limits(subscription.keys)
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None
        for key in subscription.keys:
            self.counts[key] += 1
            self.routes.setdefault(key, set()).add(subscription)
            if key in self.latest:
                subscription.receiver.put(key, self.latest[key])
        self._update_feeds(subscription.families)

    def remove(self, subscription: MarketSubscription) -> None:
        for key in subscription.keys:
            routes = self.routes.get(key)
            if routes is None or subscription not in routes:
                continue
            routes.discard(subscription)
            self.counts[key] -= 1
            if self.counts[key] <= 0:
                del self.counts[key], self.routes[key]
                self.latest.pop(key, None)
        self._update_feeds(subscription.families)
        if self.idle:
            self.idle_timer = asyncio.get_running_loop().call_later(self._hub.grace_seconds, self._hub.expire, self)

    def _update_feeds(self, families: Iterable[Family]) -> None:
        for family in families:
            wanted: dict[Channel, set[str]] = {channel: set() for channel in Channel}
            for channel, symbol in self.counts:
                if Family.of(symbol) is family:
                    wanted[channel].add(symbol)
            runner = self.runners.get(family)
            if runner is None and any(wanted.values()):
                runner = self.runners[family] = FeedRunner(
                    self.feed(family), self.deliver, self._failed, backoff=self._hub.backoff, gauge=self._gauge(family)
                )
            if runner is not None:
                runner.want(wanted)

    def _gauge(self, family: Family) -> UpstreamStream | None:
        metrics = self._hub.metrics
        if metrics is None:
            return None
        return metrics.upstream(provider_of(type(self.feed(family)).__name__), f"market_{family.value}")

    def deliver(self, events: Sequence[tuple[Channel, MarketEvent]]) -> None:
        for channel, event in events:
            key = (channel, event.symbol)
            subscribers = self.routes.get(key)
            if subscribers is None:
                continue  # unsubscribed meanwhile
            self.latest[key] = event
            for subscription in subscribers:
                subscription.receiver.put(key, event)

    def _failed(self, runner: FeedRunner, failure: FeedFailure) -> None:
        """The upstream refused us: every subscription on that feed ends with the reason.

        The runner is forgotten only after they are all closed, so closing them one by one
        never starts a new runner for the ones still open (no retry behind the client's back)."""
        family = runner.feed.family
        failed = {
            subscription
            for (_, symbol), subscribers in self.routes.items()
            if Family.of(symbol) is family
            for subscription in subscribers
        }
        for subscription in failed:
            subscription.receiver.fail(failure)
            subscription.close()
        if self.runners.get(family) is runner:
            del self.runners[family]

    def stop(self) -> list[asyncio.Task[None]]:
        if self.idle_timer is not None:
            self.idle_timer.cancel()
        tasks = [runner.stop() for runner in self.runners.values()]
        self.runners.clear()
        return tasks


class StreamHub:
    def __init__(
        self, *, grace_seconds: float = 5.0, backoff: Backoff | None = None, metrics: Metrics | None = None
    ) -> None:
        self.grace_seconds = grace_seconds
        self.backoff = backoff or Backoff()
        self.metrics = metrics
        self._users: dict[ConnectionRef, _UserStreams] = {}

    def subscribe(
        self,
        ref: ConnectionRef,
        wanted: Mapping[Channel, Iterable[str]],
        feeds: FeedFactory,
        receiver: Receiver[MarketEvent] | None = None,
    ) -> MarketSubscription:
        """Raises SymbolLimitError (nothing changes) or the feed factory's error. Events go
        to `receiver`, or else to a Mailbox of the subscription's own (`events()`)."""
        keys = frozenset((channel, symbol) for channel, symbols in wanted.items() for symbol in symbols)
        streams = self._users.get(ref)
        if streams is None:
            streams = _UserStreams(self, ref, feeds)
        subscription = MarketSubscription(keys, receiver if receiver is not None else Mailbox())
        streams.add(subscription)  # raises before anything is registered
        subscription._release = streams.remove
        self._users[ref] = streams
        return subscription

    def expire(self, streams: _UserStreams) -> None:
        if streams.idle and self._users.get(streams.ref) is streams:
            del self._users[streams.ref]
            streams.stop()

    def runners(self, ref: ConnectionRef) -> dict[Family, FeedRunner]:
        streams = self._users.get(ref)
        return dict(streams.runners) if streams else {}

    def subscribed(self, ref: ConnectionRef) -> dict[StreamKey, int]:
        streams = self._users.get(ref)
        return dict(streams.counts) if streams else {}

    async def close(self) -> None:
        """Stop every feed; bounded, so shutting down never hangs on an upstream."""
        tasks = [task for streams in self._users.values() for task in streams.stop()]
        self._users.clear()
        if tasks:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(STOP_TIMEOUT_SECONDS):
                    await asyncio.gather(*tasks, return_exceptions=True)
